import type { SetMeta } from '../../src/decode/decode-service.js';
import type { RecordContext } from '../../src/decode/template/record-context.js';
import type { FlowRecord } from '../../src/flow/flow-record.js';
import type { BatchEncoder } from '../../src/spool/batch-codec.js';
import type { StreamingBatchTarget } from '../../src/spool/batcher.js';
import type { FusedRecordWriter } from '../../src/spool/fused-writer.js';
import type { AppendResult } from '../../src/spool/spool.js';

/**
 * The spool's streaming batch without the spool (Spool.addFused's success path), for a real
 * Batcher in front of it: records go into one BatchEncoder (begun by the caller). The Batcher's
 * limits must never be reached (flushQueued is not implemented); with `restartAtBytes` the
 * encoder is finished and begun afresh once that many bytes are written, as a batch cut would
 * (benchmarks), otherwise everything lands in one batch (tests read it).
 */
export class EncoderTarget implements StreamingBatchTarget {
  readonly acceptsQueued = true;
  queuedBatchRecords = 0;
  constructor(
    private readonly e: BatchEncoder,
    private readonly restartAtBytes = Infinity,
  ) {}
  get queuedBatchBytes(): number {
    return this.e.bytes;
  }
  addQueued(r: FlowRecord): void {
    this.e.add(r);
    this.queuedBatchRecords++;
    this.restartIfFull();
  }
  addFused(w: FusedRecordWriter, view: DataView, buf: Uint8Array, p: number, end: number, ctx: RecordContext, m: SetMeta): number {
    const before = this.e.bytes;
    const q = w(view, buf, p, end, ctx, this.e, m);
    if (q >= 0 && this.e.bytes !== before) this.queuedBatchRecords++; // as Spool.addFused: a filtered record writes nothing
    this.restartIfFull();
    return q;
  }
  private restartIfFull(): void {
    if (this.e.bytes < this.restartAtBytes) return;
    this.e.finish();
    this.e.begin();
  }
  flushQueued(): void {
    throw new Error('not reached: the batch limits are never hit here');
  }
  append(): AppendResult {
    throw new Error('not reached: the Batcher is queued');
  }
}
