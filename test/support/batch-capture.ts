import { encodeBatch } from '../../src/batch/encoder.js';
import type { AppendDone, AppendResult, BatchSink } from '../../src/flow/pipeline.js';

/**
 * A BatchSink without a spool, for a real Batcher in front of it (tests and the decode
 * benchmark): every batch is taken as committed, and kept (the batch-format bytes) unless
 * `keep` is false.
 */
export class CapturedBatches implements BatchSink {
  readonly batches: Uint8Array[] = [];
  readonly counts: number[] = [];
  readonly writable = true;
  private nextId = 1;

  constructor(private readonly keep = true) {}

  append(batch: Uint8Array, recordCount: number): AppendResult {
    return this.take(batch.slice(), recordCount);
  }

  enqueue(batch: Uint8Array, recordCount: number, done: AppendDone): void {
    done(null, this.take(batch, recordCount));
  }

  reject(recordCount: number, _err: unknown, done: AppendDone): void {
    done(null, { id: null, records: recordCount, droppedRecords: recordCount, evictedBatches: 0, evictedRecords: 0, evictedDiskFullRecords: 0, dropReason: 'encode' });
  }

  /** The one batch taken (the batch format's empty batch when none was). */
  single(): Uint8Array {
    if (this.batches.length > 1) throw new Error(`${this.batches.length} batches, expected at most one`);
    return this.batches[0] ?? encodeBatch([]);
  }

  private take(batch: Uint8Array, recordCount: number): AppendResult {
    if (this.keep) {
      this.batches.push(batch);
      this.counts.push(recordCount);
    }
    return { id: this.nextId++, records: recordCount, droppedRecords: 0, evictedBatches: 0, evictedRecords: 0, evictedDiskFullRecords: 0, dropReason: null };
  }
}
