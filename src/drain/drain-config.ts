import type { DrainConfig, SecretSource } from '../config/schema.js';
import { resolveSecret, type ResolveSecretOptions } from '../config/secrets.js';
import { resolveDrainSettings, type DrainSettings } from './drain.js';
import { parseNetosecret, type FusionCredentials } from './netosecret.js';

/**
 * The bridge from the validated configuration slice (`drain`, src/config/schema.ts) to the
 * drain's own settings and credentials. The composition root calls these once at start.
 */

export const NETOSECRET_SETTING = 'drain.fusion.netosecret';

export interface DrainRuntimeExtras {
  /** Extra CA certificate(s) as PEM, e.g. the embedded stand-in's self-signed certificate. */
  readonly caPem?: string | null;
  /** Overrides drain.fusion.uploadUrl (the embedded stand-in's URL). */
  readonly uploadUrl?: string;
  /** Mixed into idempotency keys (e.g. the probe's name). */
  readonly idempotencyScope?: string;
}

export function drainSettingsFromConfig(drain: DrainConfig, extras: DrainRuntimeExtras = {}): DrainSettings {
  const f = drain.fusion;
  return resolveDrainSettings({
    uploadUrl: extras.uploadUrl ?? f.uploadUrl,
    encoder: { framing: f.framing, compression: f.compression, gzipLevel: f.gzipLevel, adaptiveGzip: f.adaptiveGzip, maxRecordsPerRequest: f.maxRecordsPerRequest, maxBytesPerRequest: f.maxBytesPerRequest },
    tls: {
      caFile: f.caFile ?? null,
      caPem: extras.caPem ?? null,
      pinSha256: f.pinSha256 ?? [],
      proxyUrl: f.proxyUrl ?? null,
      connectTimeoutMs: f.connectTimeoutMs,
      headersTimeoutMs: f.headersTimeoutMs,
      bodyTimeoutMs: f.bodyTimeoutMs,
    },
    concurrency: Math.max(drain.concurrency, drain.uploadWorkers),
    uploadWorkers: drain.uploadWorkers,
    backoff: { baseMs: drain.retry.initialDelayMs, capMs: Math.max(drain.retry.initialDelayMs, drain.retry.maxDelayMs) },
    maxBytesPerSecond: drain.maxBytesPerSecond ?? null,
    maxRecordsPerSecond: drain.maxRecordsPerSecond ?? null,
    registerDevices: f.registerDevices,
    ...(extras.idempotencyScope === undefined ? {} : { idempotencyScope: extras.idempotencyScope }),
  });
}

/**
 * Reads and decodes the netosecret from its configured source ({env}/{file}/{command}; the
 * SEALFLOW_FUSION_NETOSECRET[_FILE|_COMMAND] variables land there through the config loader).
 * Returns null when none is configured. Errors are ConfigErrors naming drain.fusion.netosecret.
 */
export async function fusionCredentialsFromConfig(drain: DrainConfig, options: ResolveSecretOptions = {}): Promise<FusionCredentials | null> {
  const source = drain.fusion.netosecret as SecretSource | undefined;
  if (source === undefined) return null;
  // Name the variable itself when the key came from the environment: that is what to fix.
  const setting = 'env' in source ? `${source.env} (${NETOSECRET_SETTING})` : NETOSECRET_SETTING;
  const bytes = await resolveSecret(source, setting, options);
  try {
    return parseNetosecret(bytes.toString('utf8'), setting);
  } finally {
    bytes.fill(0);
  }
}
