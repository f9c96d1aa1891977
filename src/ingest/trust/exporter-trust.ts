import type { X509Certificate } from 'node:crypto';
import { ExporterPolicy, type ExporterCheck, type ExporterIdentitySettings } from './exporter-policy.js';
import { loadTrustMaterial, type TrustFiles, type TrustMaterial } from './trust-material.js';

/** Everything a mutually authenticated listener trusts: its files plus the exporter allowlist. */
export interface ExporterTrustSettings extends TrustFiles {
  readonly exporters: readonly ExporterIdentitySettings[];
}

/**
 * The trust state of one secure listener (TLS or DTLS): certificate material checked at load,
 * plus the identity policy. Immutable; a reload builds a new one and swaps it in only when it
 * loaded cleanly, so a broken file on disk never weakens or breaks the running listener.
 */
export class ExporterTrust {
  readonly material: TrustMaterial;
  readonly policy: ExporterPolicy;

  private constructor(material: TrustMaterial, policy: ExporterPolicy) {
    this.material = material;
    this.policy = policy;
  }

  /**
   * Loads and validates everything. `settingPrefix` is the listener's configuration path
   * ('listeners.tls', 'listeners.dtls'); errors are ConfigError naming `<prefix>.caFile`,
   * `<prefix>.identities[2].sources[0]`, etc.
   */
  static load(settings: ExporterTrustSettings, settingPrefix: string, nowMs: number = Date.now()): ExporterTrust {
    // The configuration calls the allowlist `identities` (src/config/schema.ts).
    const policy = ExporterPolicy.fromSettings(settings.exporters, `${settingPrefix}.identities`);
    const material = loadTrustMaterial(settings, settingPrefix, nowMs);
    return new ExporterTrust(material, policy);
  }

  /** See ExporterPolicy.checkExporter: call only with a certificate OpenSSL chain-verified. */
  checkExporter(cert: X509Certificate | null | undefined, sourceAddress: string, nowMs: number = Date.now()): ExporterCheck {
    return this.policy.checkExporter(cert, sourceAddress, nowMs);
  }

  domainAllowed(identity: string, observationDomainId: number): boolean {
    return this.policy.domainAllowed(identity, observationDomainId);
  }
}

/** The configuration slice of a secure listener (listeners.tls / listeners.dtls) that trust reads. */
export interface TrustConfigSlice {
  readonly certFile?: string | undefined;
  readonly keyFile?: string | undefined;
  readonly caFile?: string | undefined;
  readonly crlFiles: readonly string[];
  readonly identities: readonly {
    readonly name: string;
    readonly sources?: readonly string[] | undefined;
    readonly observationDomains?: readonly number[] | undefined;
  }[];
}

/**
 * ExporterTrustSettings from a listener's configuration. Missing files become '' so that
 * loading fails with the listener's own "file not set" message naming the setting.
 */
export function trustSettingsFromConfig(l: TrustConfigSlice): ExporterTrustSettings {
  return {
    certFile: l.certFile ?? '',
    keyFile: l.keyFile ?? '',
    caFile: l.caFile ?? '',
    crlFiles: l.crlFiles,
    exporters: l.identities.map((i) => ({
      name: i.name,
      ...(i.sources === undefined ? {} : { sources: i.sources }),
      ...(i.observationDomains === undefined ? {} : { observationDomainIds: i.observationDomains }),
    })),
  };
}
