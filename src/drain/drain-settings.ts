import { DEFAULTS } from '../config/defaults.js';
import { ConfigError, ConfigErrorCode } from '../flow/errors.js';
import type { BackoffSettings } from './backoff.js';
import { DEFAULT_AUTH_SETTINGS, type AuthSettings } from './fusion-auth.js';
import { DEFAULT_TLS_SETTINGS, type FusionTlsSettings } from './fusion-http.js';
import { DEFAULT_ENCODER_SETTINGS, type EncoderSettings } from './upload-encoder.js';

/** The drain's settings: their defaults (the schema's, src/config/defaults.ts) and the check they pass once, at construction. */

/** The drain.fusion.uploadUrl setting's default (src/config/schema.ts says where it comes from). */
export const DEFAULT_UPLOAD_URL = DEFAULTS.drain.fusion.uploadUrl;

export interface DrainSettings {
  readonly uploadUrl: string;
  readonly encoder: EncoderSettings;
  readonly tls: FusionTlsSettings;
  readonly auth: AuthSettings;
  /** Batches in flight at once. */
  readonly concurrency: number;
  /** Retry backoff of uploads. */
  readonly backoff: BackoffSettings;
  /** Cap on compressed bytes sent per second (null = no cap). */
  readonly maxBytesPerSecond: number | null;
  /** Cap on records sent per second (null = no cap). */
  readonly maxRecordsPerSecond: number | null;
  /** How often to look at an empty spool (notify() wakes the drain earlier). */
  readonly idlePollMs: number;
  /** Mixed into idempotency keys so two probes never share one (e.g. the probe name). */
  readonly idempotencyScope: string;
  /** Register exporters with POST /api/v1/device (off by default). */
  readonly registerDevices: boolean;
  /**
   * Worker threads that serialize, compress and upload batches (0 = all on the drain's own
   * thread). With N workers the drain's thread only leases, paces and acks, so throughput
   * scales with cores; give concurrency ≥ uploadWorkers.
   */
  readonly uploadWorkers: number;
}

export const DEFAULT_DRAIN_SETTINGS: DrainSettings = Object.freeze({
  uploadUrl: DEFAULT_UPLOAD_URL,
  encoder: DEFAULT_ENCODER_SETTINGS,
  tls: DEFAULT_TLS_SETTINGS,
  auth: DEFAULT_AUTH_SETTINGS,
  // The drain settings' defaults (src/config/schema.ts); idlePollMs and the scope are not settings.
  concurrency: DEFAULTS.drain.concurrency,
  backoff: Object.freeze({ baseMs: DEFAULTS.drain.retry.initialDelayMs, capMs: DEFAULTS.drain.retry.maxDelayMs }),
  maxBytesPerSecond: DEFAULTS.drain.maxBytesPerSecond ?? null,
  maxRecordsPerSecond: DEFAULTS.drain.maxRecordsPerSecond ?? null,
  idlePollMs: 1000,
  idempotencyScope: '',
  registerDevices: DEFAULTS.drain.fusion.registerDevices,
  uploadWorkers: DEFAULTS.drain.uploadWorkers,
});

/** More upload workers than this buys nothing but memory (each has its own TLS pool). */
const MAX_UPLOAD_WORKERS = 32;

export type DeepPartial<T> = { [K in keyof T]?: T[K] extends readonly unknown[] ? T[K] : T[K] extends object ? DeepPartial<T[K]> : T[K] };

/** Merges `partial` over the defaults, validates once (ConfigError naming the setting) and freezes. */
export function resolveDrainSettings(partial: DeepPartial<DrainSettings> = {}): DrainSettings {
  const d = DEFAULT_DRAIN_SETTINGS;
  const s: DrainSettings = Object.freeze({
    ...d,
    ...stripUndefined(partial),
    encoder: Object.freeze({ ...d.encoder, ...stripUndefined(partial.encoder ?? {}) }),
    tls: Object.freeze({ ...d.tls, ...stripUndefined(partial.tls ?? {}) }),
    auth: Object.freeze({
      ...d.auth,
      ...stripUndefined(partial.auth ?? {}),
      backoff: Object.freeze({ ...d.auth.backoff, ...stripUndefined(partial.auth?.backoff ?? {}) }),
    }),
    backoff: Object.freeze({ ...d.backoff, ...stripUndefined(partial.backoff ?? {}) }),
  });
  const bad = (setting: string, msg: string): never => {
    throw new ConfigError(ConfigErrorCode.Invalid, setting, `${setting}: ${msg}`);
  };
  let url: URL | null = null;
  try {
    url = new URL(s.uploadUrl);
  } catch {
    url = null;
  }
  if (url?.protocol !== 'https:') bad('drain.fusion.uploadUrl', 'want an https:// URL');
  if (!Number.isInteger(s.concurrency) || s.concurrency < 1 || s.concurrency > 64) bad('drain.concurrency', 'want an integer 1–64');
  if (!(s.backoff.baseMs > 0) || !(s.backoff.capMs >= s.backoff.baseMs)) bad('drain.retry', 'want 0 < initialDelayMs ≤ maxDelayMs');
  if (!(s.auth.backoff.baseMs > 0) || !(s.auth.backoff.capMs >= s.auth.backoff.baseMs)) bad('drain.auth.backoff', 'want 0 < baseMs ≤ capMs');
  if (!(s.auth.renewFraction > 0 && s.auth.renewFraction <= 1)) bad('drain.auth.renewFraction', 'want 0 < f ≤ 1');
  for (const k of ['maxBytesPerSecond', 'maxRecordsPerSecond'] as const) {
    const v = s[k];
    if (v !== null && !(v > 0)) bad(`drain.${k}`, 'want a positive number or null (no cap)');
  }
  if (!(s.idlePollMs > 0)) bad('drain.idlePollMs', 'want a positive number');
  if (!Number.isInteger(s.uploadWorkers) || s.uploadWorkers < 0 || s.uploadWorkers > MAX_UPLOAD_WORKERS) bad('drain.uploadWorkers', `want an integer 0–${MAX_UPLOAD_WORKERS}`);
  return s;
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
