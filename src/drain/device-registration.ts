import { parsePrefix } from '../flow/cidr.js';
import { ConfigError, ConfigErrorCode } from '../flow/errors.js';

/**
 * Exporter registration (docs/FUSION.md, "Devices"): POST {base}/api/v1/device with
 * {name, ips, samplerate} (+ optional tags, site). Fusion matches flows to devices by exporter
 * IP, so a probe may register each exporter it sees. Off by default: Fusion admins often
 * manage devices themselves, and registration needs a key with device write rights.
 */
export interface DeviceRegistration {
  readonly name: string;
  /** CIDR strings the device exports from, e.g. ["192.0.2.1/32"]. */
  readonly ips: readonly string[];
  /** 1–65535. */
  readonly samplerate: number;
  readonly tags?: readonly string[];
  readonly site?: string;
}

/** Fusion's limits on samplerate. */
const MIN_SAMPLERATE = 1;
const MAX_SAMPLERATE = 65535;

/** The request body; throws ConfigError for a value Fusion would reject (it rejects unknown keys too). */
export function deviceBody(d: DeviceRegistration): Record<string, unknown> {
  if (d.name.trim() === '') throw new ConfigError(ConfigErrorCode.Invalid, 'device.name', 'device.name: must not be empty');
  if (d.ips.length === 0) throw new ConfigError(ConfigErrorCode.Invalid, 'device.ips', 'device.ips: at least one CIDR is needed');
  for (const ip of d.ips) {
    if (parsePrefix(ip) === null) throw new ConfigError(ConfigErrorCode.Invalid, 'device.ips', `device.ips: ${JSON.stringify(ip)} is not a CIDR prefix`);
  }
  const sr = d.samplerate;
  if (!Number.isInteger(sr) || sr < MIN_SAMPLERATE || sr > MAX_SAMPLERATE) {
    throw new ConfigError(ConfigErrorCode.Invalid, 'device.samplerate', `device.samplerate: want an integer ${MIN_SAMPLERATE}–${MAX_SAMPLERATE}`);
  }
  const body: Record<string, unknown> = { name: d.name, ips: [...d.ips], samplerate: sr };
  if (d.tags !== undefined) body.tags = [...d.tags];
  if (d.site !== undefined) body.site = d.site;
  return body;
}

/** A /32 or /128 CIDR for an exporter address as text. */
export function hostCidr(address: string): string {
  return address.includes(':') ? `${address}/128` : `${address}/32`;
}
