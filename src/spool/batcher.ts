import type { DirectSetResult, SetMeta } from '../decode/decode-service.js';
import type { RecordContext } from '../decode/template/record-context.js';
import type { FlowRecord } from '../flow/flow-record.js';
import type { RecordSink } from '../flow/pipeline.js';
import type { FusedBatchTarget, FusedRecordWriter } from './fused-writer.js';
import type { AppendResult, QueuedAppendDone } from './spool.js';

/**
 * The batch stage in front of the spool: groups records into batches by count, estimated
 * serialized bytes and age, and hands each batch to `target.append` (Spool.append, or a
 * proxy to a spool in a worker thread). Records held here are not yet durable: at most
 * `maxAgeMs` of data (plus what is in flight) can be lost on a crash.
 */
export interface BatchTarget {
  append(records: readonly FlowRecord[]): AppendResult;
}

/** Spool's streaming batch (addQueued … flushQueued): records are serialized as they arrive. */
export interface StreamingBatchTarget extends BatchTarget {
  addQueued(r: FlowRecord): void;
  /** Whether addQueued/addFused would take a record now (open, writable). */
  readonly acceptsQueued: boolean;
  /** Spool.addFused: one record by a fused writer; the offset after it (added, or dropped by the writer's filter), or -1 (malformed, not added). */
  addFused(w: FusedRecordWriter, view: DataView, buf: Uint8Array, p: number, end: number, ctx: RecordContext, m: SetMeta): number;
  readonly queuedBatchRecords: number;
  readonly queuedBatchBytes: number;
  flushQueued(done: QueuedAppendDone): void;
}

function isStreaming(t: BatchTarget): t is StreamingBatchTarget {
  return typeof (t as Partial<StreamingBatchTarget>).addQueued === 'function' && typeof (t as Partial<StreamingBatchTarget>).flushQueued === 'function';
}

export interface BatcherOptions {
  /** Default 20 000 records. */
  readonly maxRecords?: number;
  /** Estimated serialized bytes (before compression). Default 1 MiB. */
  readonly maxBytes?: number;
  /** Oldest record's maximum wait. Default 1 s. */
  readonly maxAgeMs?: number;
  readonly setTimer?: (fn: () => void, ms: number) => unknown;
  readonly clearTimer?: (handle: unknown) => void;
  /**
   * Hand records to the target's streaming batch (Spool.addQueued/flushQueued: serialized as
   * they arrive, compressed on the compressor thread) when it has one; records count as
   * `inFlightRecords` from their batch's flush until committed, and `maxBytes` is the exact
   * serialized size. Default false: whole batches to `append`.
   */
  readonly queued?: boolean;
  /** Called with each append result (metrics, logging). */
  readonly onAppend?: (result: AppendResult) => void;
  /** Called when the target throws (a bug, or a closed spool); the batch is counted as dropped. */
  readonly onError?: (err: unknown, records: number) => void;
}

export const DEFAULT_BATCH_MAX_RECORDS = 20_000;
export const DEFAULT_BATCH_MAX_BYTES = 1024 * 1024;
export const DEFAULT_BATCH_MAX_AGE_MS = 1000;

/** Serialized size estimate: an IPv4 record with ~15 fields takes ~40 bytes in batch-codec; each IPv6 address adds 12. */
const BASE_RECORD_BYTES = 40;
const IPV6_EXTRA_BYTES = 12;

function estimateBytes(r: FlowRecord): number {
  let n = BASE_RECORD_BYTES;
  if (r.srcAddr instanceof Uint8Array) n += IPV6_EXTRA_BYTES;
  if (r.dstAddr instanceof Uint8Array) n += IPV6_EXTRA_BYTES;
  return n;
}

export interface BatcherCounters {
  readonly batches: number;
  readonly records: number;
  readonly droppedRecords: number;
  /** Handed to a queued append and not yet committed or dropped. */
  readonly inFlightRecords: number;
}

export class Batcher implements RecordSink, FusedBatchTarget {
  private readonly maxRecords: number;
  private readonly maxBytes: number;
  private readonly maxAgeMs: number;
  private readonly setTimer: (fn: () => void, ms: number) => unknown;
  private readonly clearTimer: (handle: unknown) => void;
  private pending: FlowRecord[] = [];
  private pendingBytes = 0;
  private timer: unknown = null;
  private closed = false;
  private batches = 0;
  private records = 0;
  private droppedRecords = 0;
  private inFlightRecords = 0;
  /** The target's streaming batch, when `queued` and the target has one. */
  private readonly stream: StreamingBatchTarget | null;

  constructor(
    private readonly target: BatchTarget,
    private readonly options: BatcherOptions = {},
  ) {
    this.maxRecords = options.maxRecords ?? DEFAULT_BATCH_MAX_RECORDS;
    this.maxBytes = options.maxBytes ?? DEFAULT_BATCH_MAX_BYTES;
    this.maxAgeMs = options.maxAgeMs ?? DEFAULT_BATCH_MAX_AGE_MS;
    this.setTimer = options.setTimer ?? ((fn, ms) => setTimeout(fn, ms).unref());
    this.clearTimer = options.clearTimer ?? ((h) => clearTimeout(h as NodeJS.Timeout));
    if (!(this.maxRecords >= 1 && this.maxBytes >= 1 && this.maxAgeMs >= 0)) throw new RangeError('batcher limits must be positive');
    this.stream = options.queued === true && isStreaming(target) ? target : null;
  }

  accept(records: readonly FlowRecord[]): void {
    if (this.closed) {
      this.droppedRecords += records.length;
      return;
    }
    const stream = this.stream;
    if (stream !== null) {
      // Serialized now: the batch holds bytes, not records (see Spool.addQueued).
      for (const r of records) {
        try {
          stream.addQueued(r);
        } catch (err) {
          // Only a closed spool refuses a record here (serialization errors fail the batch at flush).
          this.report(1, err, null);
          continue;
        }
        this.flushIfFull(stream);
      }
      this.armIfOpen(stream);
      return;
    }
    for (const r of records) {
      this.pending.push(r);
      this.pendingBytes += estimateBytes(r);
      if (this.pending.length >= this.maxRecords || this.pendingBytes >= this.maxBytes) this.flush();
    }
    if (this.pending.length > 0 && this.timer === null) this.armTimer();
  }

  /** Fused records need an open streaming batch; otherwise (batcher or spool closed, read-only spool) they take the FlowRecord path and are counted as dropped there. */
  get acceptsFused(): boolean {
    return this.stream !== null && !this.closed && this.stream.acceptsQueued;
  }

  /**
   * The fused path (fused-writer.ts): the records of one data set, [p, end), are written
   * straight into the streaming batch, with the same cuts as accept() (checked after each
   * record, so batches keep their exact limits).
   */
  writeFusedSet(w: FusedRecordWriter, view: DataView, buf: Uint8Array, p: number, end: number, minLength: number, ctx: RecordContext, m: SetMeta, result: DirectSetResult): void {
    result.records = 0;
    result.malformed = false;
    const stream = this.stream;
    if (stream === null || !this.acceptsFused) throw new Error('Batcher.writeFusedSet needs an open streaming target (check acceptsFused)');
    // `result.records` counts each record as soon as it is decoded — in the batch, or dropped
    // by the writer's filter (counted there) — so a failure that escapes (DecodeService counts
    // it as a decode error) leaves the records before it counted.
    try {
      while (end - p >= minLength) {
        const q = stream.addFused(w, view, buf, p, end, ctx, m);
        if (q < 0) {
          result.malformed = true;
          result.malformedAt = p;
          break;
        }
        result.records++;
        p = q;
        this.flushIfFull(stream);
      }
    } finally {
      this.armIfOpen(stream);
    }
  }

  /** Closes the streaming batch once it holds maxRecords records or maxBytes serialized bytes. */
  private flushIfFull(stream: StreamingBatchTarget): void {
    if (stream.queuedBatchRecords >= this.maxRecords || stream.queuedBatchBytes >= this.maxBytes) this.flush();
  }

  /** Starts the age timer for an open streaming batch that has none. */
  private armIfOpen(stream: StreamingBatchTarget): void {
    if (stream.queuedBatchRecords > 0 && this.timer === null) this.armTimer();
  }

  private armTimer(): void {
    this.timer = this.setTimer(() => {
      this.timer = null;
      this.flush();
    }, this.maxAgeMs);
  }

  /** Appends what is pending now as one batch. */
  flush(): void {
    if (this.timer !== null) {
      this.clearTimer(this.timer);
      this.timer = null;
    }
    const stream = this.stream;
    if (stream !== null) {
      const n = stream.queuedBatchRecords;
      if (n === 0) return;
      this.inFlightRecords += n;
      try {
        stream.flushQueued((err, result) => {
          this.inFlightRecords -= n;
          this.report(n, err, result);
        });
      } catch (err) {
        this.inFlightRecords -= n;
        this.report(n, err, null);
      }
      return;
    }
    if (this.pending.length === 0) return;
    const batch = this.pending;
    this.pending = [];
    this.pendingBytes = 0;
    const n = batch.length;
    let result: AppendResult;
    try {
      result = this.target.append(batch);
    } catch (err) {
      this.report(n, err, null);
      return;
    }
    this.report(n, null, result);
  }

  private report(n: number, err: unknown, result: AppendResult | null): void {
    if (result === null) {
      this.droppedRecords += n;
      this.options.onError?.(err, n);
      return;
    }
    this.batches++;
    this.records += n - result.droppedRecords;
    this.droppedRecords += result.droppedRecords;
    this.options.onAppend?.(result);
  }

  counters(): BatcherCounters {
    return { batches: this.batches, records: this.records, droppedRecords: this.droppedRecords, inFlightRecords: this.inFlightRecords };
  }

  /** Flushes and stops; later records are counted as dropped. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.flush();
    this.closed = true;
  }
}
