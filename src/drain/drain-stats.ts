import type { AuthStats } from './fusion-auth.js';
import type { RetryReason } from './chunk-upload.js';
import type { BatchSourceStatus } from '../flow/pipeline.js';

/** What the drain reports on /stats (and the metrics read). */

/** Retries by reason, all zero (every reason present, so /stats and the metrics list each one). */
export function emptyRetries(): Record<RetryReason, number> {
  return { timeout: 0, tls: 0, pin: 0, refused: 0, reset: 0, network: 0, aborted: 0, 'http-5xx': 0, 'http-429': 0, 'http-408': 0, auth: 0, forbidden: 0, endpoint: 0, encode: 0, source: 0, worker: 0 };
}

export interface DrainStats {
  readonly state: 'idle' | 'running' | 'stopping' | 'stopped';
  readonly deliveredBatches: number;
  readonly deliveredRecords: number;
  /** Compressed bytes of 2xx requests. */
  readonly deliveredBytes: number;
  readonly deliveredRawBytes: number;
  readonly requests: number;
  readonly retries: Readonly<Record<RetryReason, number>>;
  readonly parkedBatches: number;
  readonly parkedRecords: number;
  /** Parked batches by HTTP status (bounded: 4xx codes only). */
  readonly parkedByStatus: Readonly<Record<string, number>>;
  /** Chunks skipped on retry because they already got 2xx. */
  readonly chunksSkipped: number;
  readonly auth: Readonly<AuthStats>;
  readonly tlsPinMismatches: number;
  readonly inFlightBatches: number;
  readonly consecutiveFailures: number;
  readonly backoffRemainingMs: number;
  readonly lastSuccessAtMs: number | null;
  readonly lastErrorAtMs: number | null;
  readonly lastError: string | null;
  /** EWMA (τ = 10 s) of delivered records and compressed bytes per second. */
  readonly recordsPerSec: number;
  readonly bytesPerSec: number;
  readonly spool: BatchSourceStatus | null;
  /** Spool records / recordsPerSec; null when nothing is being delivered. */
  readonly etaMs: number | null;
  readonly devicesRegistered: number;
  readonly deviceRegistrationFailures: number;
  /** gzip level in use (adapts between 1 and drain.fusion.gzipLevel); null when not compressing with gzip. */
  readonly gzipLevel: number | null;
}
