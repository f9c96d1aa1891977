import type { FlowRecord } from '../flow/flow-record.js';

/**
 * What the drain needs from the spool (src/spool satisfies it structurally; the drain never
 * imports the spool, the composition root passes it in).
 *
 * Contract:
 * - `lease(n)` returns up to n batches that are not already leased, oldest first, decrypted
 *   in memory. A leased batch stays in the spool (encrypted) until `ack`, `release` or `park`.
 * - `ack(id)` deletes (crypto-shreds) the batch: called only after Fusion answered 2xx for
 *   every chunk of it.
 * - `release(id)` returns the batch to the queue unchanged (it will be leased again, still
 *   oldest first); the spool counts the attempt.
 * - `park(id, reason)` sets the batch aside, still encrypted, because Fusion rejected it
 *   permanently; it is never leased again and shows in `spool status`.
 * - `leaseEncoded(n)` (optional) is `lease(n)` with each batch as the spool's verified
 *   batch-codec bytes instead of records: the drain then hands the bytes to an upload worker
 *   without decoding and re-encoding them on its own thread.
 */
export interface LeasedBatch {
  readonly id: number;
  readonly records: FlowRecord[];
  readonly recordCount: number;
  readonly createdAtMs: number;
  readonly attempts: number;
  readonly bytes: number;
}

export type LeasedEncodedBatch = Omit<LeasedBatch, 'records'> & {
  /** Batch-codec bytes (src/spool/batch-codec.ts); `decodeBatch(batch)` gives the records. */
  readonly batch: Uint8Array;
};

export interface DrainSourceStatus {
  readonly batches: number;
  readonly records: number;
  readonly bytes: number;
  readonly oldestAgeMs?: number | null | undefined;
  /** A stable id of the spool file, when the spool has one (mixed into idempotency keys). */
  readonly spoolId?: string | undefined;
}

export interface DrainSource {
  lease(maxBatches: number): LeasedBatch[];
  leaseEncoded?(maxBatches: number): LeasedEncodedBatch[];
  ack(id: number): void;
  release(id: number): void;
  park(id: number, reason: string): void;
  status(): DrainSourceStatus;
}
