import { DEFAULTS } from '../config/defaults.js';
import { ConfigError, ConfigErrorCode } from '../flow/errors.js';

/** What bounds the decoder's memory: bytes of state in all and per exporter, sessions, templates, fields and held data. */

export interface DecodeLimits {
  /** Templates (data + options, all domains) one transport session may define. */
  maxTemplatesPerSession: number;
  /** Fields one template may have. */
  maxFieldsPerTemplate: number;
  /** Over UDP/DTLS a template not refreshed for this long is dropped (RFC 7011 §8.4). */
  templateLifetimeMs: number;
  /** How long a data set waits for its template (RFC 7011 §9.3); 0 disables holding. */
  pendingHoldMs: number;
  /** Held data sets per session (each holds ≥ 1 record). */
  maxPendingRecordsPerSession: number;
  /** Bytes of held data per session. */
  maxPendingBytesPerSession: number;
  /** Transport sessions tracked at once; beyond it one is evicted (state-budget.ts). */
  maxSessions: number;
  /** Bytes of decoder state (sessions, domains, templates, samplers, held data) in all (state-budget.ts). */
  maxStateBytes: number;
  /** Bytes of decoder state one exporter address may hold, all its sessions together. */
  maxStateBytesPerExporter: number;
}

/** The decode settings' defaults (src/config/schema.ts says why each is what it is), and one limit that is not a setting. */
export const DEFAULT_DECODE_LIMITS: Readonly<DecodeLimits> = Object.freeze({
  maxTemplatesPerSession: DEFAULTS.decode.maxTemplatesPerSession,
  maxFieldsPerTemplate: DEFAULTS.decode.maxFieldsPerTemplate,
  templateLifetimeMs: DEFAULTS.decode.templateLifetimeSeconds * 1000,
  pendingHoldMs: DEFAULTS.decode.pendingHoldMs,
  maxPendingRecordsPerSession: DEFAULTS.decode.maxPendingRecordsPerSession,
  // Held data is copied out of its datagram: 4 MiB bounds what one session can hold that way.
  maxPendingBytesPerSession: 4 * 1024 * 1024,
  maxSessions: DEFAULTS.decode.maxSessions,
  maxStateBytes: DEFAULTS.decode.maxStateBytes,
  maxStateBytesPerExporter: DEFAULTS.decode.maxStateBytesPerExporter,
});

/** The limits with `limits` applied over the defaults, checked. Throws ConfigError (setting `decode.<limit>`) for a negative or non-finite limit. */
export function resolveDecodeLimits(limits: Partial<DecodeLimits>): Readonly<DecodeLimits> {
  const merged: DecodeLimits = { ...DEFAULT_DECODE_LIMITS };
  for (const key of Object.keys(DEFAULT_DECODE_LIMITS) as (keyof DecodeLimits)[]) {
    const v = limits[key];
    if (v === undefined) continue;
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) {
      throw new ConfigError(ConfigErrorCode.Invalid, `decode.${key}`, `decode.${key} must be a finite number ≥ 0 (got ${String(v)}); set it to a count or milliseconds, or leave it out for ${DEFAULT_DECODE_LIMITS[key]}`);
    }
    merged[key] = v;
  }
  return Object.freeze(merged);
}
