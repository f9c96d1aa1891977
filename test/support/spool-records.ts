/**
 * Records in and out of a spool through the batch format, for tests: the spool itself only
 * stores batch-format bytes (src/batch) and never reads them.
 */
import { decodeBatch } from '../../src/batch/decoder.js';
import { encodeBatch } from '../../src/batch/encoder.js';
import type { FlowRecord } from '../../src/flow/flow-record.js';
import type { AppendDone, AppendResult, LeasedBatch } from '../../src/flow/pipeline.js';

/** Serializes `records` as one batch and appends it (what the Batcher does with a whole batch). */
export function appendRecords(writer: { append(batch: Uint8Array, recordCount: number): AppendResult }, records: readonly FlowRecord[]): AppendResult {
  return writer.append(encodeBatch(records), records.length);
}

export type LeasedRecords = LeasedBatch & { readonly records: FlowRecord[] };

/** Leases up to `n` batches and decodes each (what the drain does). */
export function leaseRecords(reader: { lease(n: number): LeasedBatch[] }, n: number): LeasedRecords[] {
  return reader.lease(n).map((b) => ({ ...b, records: decodeBatch(b.batch) }));
}

/** Every verifiable record in chain order (what `spool export` prints). */
export function exportRecords(inspector: { exportBatches(): Iterable<{ readonly batch: Uint8Array }> }): FlowRecord[] {
  const out: FlowRecord[] = [];
  for (const { batch } of inspector.exportBatches()) out.push(...decodeBatch(batch));
  return out;
}

/** Serializes `records` as one batch and queues it (what the ingest worker's Batcher does). */
export function enqueueRecords(writer: { enqueue(batch: Uint8Array, recordCount: number, done: AppendDone): void }, records: readonly FlowRecord[], done: AppendDone): void {
  writer.enqueue(encodeBatch(records), records.length, done);
}
