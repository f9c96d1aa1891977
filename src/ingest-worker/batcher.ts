import { BatchEncoder } from '../batch/encoder.js';
import { DEFAULTS } from '../config/defaults.js';
import type { FusedSetResult, SetMeta } from '../decode/decode-service.js';
import type { RecordContext } from '../decode/template/record-context.js';
import type { FlowRecord } from '../flow/flow-record.js';
import type { PseudonymKeyStamp } from '../flow/privacy.js';
import type { AppendResult, BatchSink, RecordSink } from '../flow/pipeline.js';
import type { FusedBatchTarget, FusedRecordWriter } from './fused-writer.js';

/**
 * The batch stage in front of the spool: groups records into batches by count, serialized
 * bytes and age, writes them in the batch format (src/batch) and hands each closed batch to a
 * BatchSink (the spool's writer). Records held here are not yet durable: at most `maxAgeMs`
 * of data (plus what is in flight) can be lost on a crash.
 *
 * Two ways to hold a batch:
 * - queued (the ingest worker): records are serialized into the open batch as they arrive
 *   (they die young, and each is read while still in cache), fused writers write into it
 *   straight from packet bytes, `maxBytes` is the exact serialized size, and a closed batch
 *   goes to `sink.enqueue` (compressed on the compressor thread, committed in groups); its
 *   records count as `inFlightRecords` until the sink reports them.
 * - whole batches (default): records wait as FlowRecords, `maxBytes` is an estimate, and a
 *   closed batch is serialized and committed at once with `sink.append`.
 * A record that cannot be serialized fails its whole batch: the sink drops and counts it
 * ('encode') in order with the batches before it.
 */
export interface BatcherOptions {
  /** Records per batch. Default: the spool.batch.maxRecords setting's. */
  readonly maxRecords?: number;
  /** Serialized bytes (before compression; estimated unless queued). Default: spool.batch.maxBytes's. */
  readonly maxBytes?: number;
  /** Oldest record's maximum wait. Default: spool.batch.maxAgeMs's. */
  readonly maxAgeMs?: number;
  readonly setTimer?: (fn: () => void, ms: number) => unknown;
  readonly clearTimer?: (handle: unknown) => void;
  /** Serialize as records arrive and enqueue closed batches (see above). Default false. */
  readonly queued?: boolean;
  /** Called with each append result (metrics, logging). */
  readonly onAppend?: (result: AppendResult) => void;
  /** Called when the sink throws (a bug, or a closed spool), or records arrive after close(); they are counted as dropped. */
  readonly onError?: (err: unknown, records: number) => void;
  /**
   * The pseudonymisation key in force, recorded in each batch's header when it opens (queued)
   * or is serialized (whole batches); the caller flushes before the key changes. Omit: none.
   */
  readonly keyStamp?: () => PseudonymKeyStamp | null;
}

/** Serialized size estimate: an IPv4 record with ~15 fields takes ~40 bytes in the batch format; each IPv6 address adds 12. */
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
  private readonly queued: boolean;
  private readonly encoder = new BatchEncoder();
  /** Whole-batch mode: the records of the open batch. */
  private pending: FlowRecord[] = [];
  private pendingBytes = 0;
  /** Queued mode: whether `encoder` holds an open batch, its records, and the first serialization error in it. */
  private open = false;
  private openCount = 0;
  private openFailure: unknown = null;
  private timer: unknown = null;
  private closed = false;
  private batches = 0;
  private records = 0;
  private droppedRecords = 0;
  private inFlightRecords = 0;

  constructor(
    private readonly sink: BatchSink,
    private readonly options: BatcherOptions = {},
  ) {
    this.maxRecords = options.maxRecords ?? DEFAULTS.spool.batch.maxRecords;
    this.maxBytes = options.maxBytes ?? DEFAULTS.spool.batch.maxBytes;
    this.maxAgeMs = options.maxAgeMs ?? DEFAULTS.spool.batch.maxAgeMs;
    this.setTimer = options.setTimer ?? ((fn, ms) => setTimeout(fn, ms).unref());
    this.clearTimer = options.clearTimer ?? ((h) => clearTimeout(h as NodeJS.Timeout));
    if (!(this.maxRecords >= 1 && this.maxBytes >= 1 && this.maxAgeMs >= 0)) throw new RangeError('batcher limits must be positive');
    this.queued = options.queued === true;
  }

  accept(records: readonly FlowRecord[]): void {
    if (this.closed) {
      if (records.length > 0) this.report(records.length, new Error('records arrived after the batcher closed'), null);
      return;
    }
    if (this.queued) {
      // Serialized now: the batch holds bytes, not records.
      for (const r of records) {
        this.begin();
        this.openCount++;
        if (this.openFailure === null) {
          try {
            this.encoder.add(r);
          } catch (err) {
            this.openFailure = err;
          }
        }
        this.flushIfFull();
      }
      this.armIfOpen();
      return;
    }
    for (const r of records) {
      this.pending.push(r);
      this.pendingBytes += estimateBytes(r);
      if (this.pending.length >= this.maxRecords || this.pendingBytes >= this.maxBytes) this.flush();
    }
    if (this.pending.length > 0 && this.timer === null) this.armTimer();
  }

  /** Fused records need an open serialized batch and a sink that takes it; otherwise (batcher or sink closed, read-only sink) they take the FlowRecord path and are counted as dropped there. */
  get acceptsFused(): boolean {
    return this.queued && !this.closed && this.sink.writable;
  }

  /** Records in the open serialized batch (queued), not yet handed to the sink. */
  get openRecords(): number {
    return this.open ? this.openCount : 0;
  }

  /**
   * The fused path (fused-writer.ts): the records of one data set, [p, end), are written
   * straight into the open batch, with the same cuts as accept() (checked after each
   * record, so batches keep their exact limits).
   */
  writeFusedSet(w: FusedRecordWriter, view: DataView, buf: Uint8Array, p: number, end: number, minLength: number, ctx: RecordContext, m: SetMeta, result: FusedSetResult): void {
    result.records = 0;
    result.malformed = false;
    if (!this.acceptsFused) throw new Error('Batcher.writeFusedSet needs an open queued batcher (check acceptsFused)');
    // `result.records` counts each record as soon as it is decoded — in the batch, or dropped
    // by the writer's filter (counted there) — so a failure that escapes (DecodeService counts
    // it as a decode error) leaves the records before it counted.
    try {
      while (end - p >= minLength) {
        const q = this.writeFused(w, view, buf, p, end, ctx, m);
        if (q < 0) {
          result.malformed = true;
          result.malformedAt = p;
          break;
        }
        result.records++;
        p = q;
        this.flushIfFull();
      }
    } finally {
      this.armIfOpen();
    }
  }

  /**
   * One record by a fused writer at `p`: the offset after it, or -1 when its variable-length
   * field runs past `end` (nothing added). A writer that throws before writing anything (while
   * decoding) leaves the batch as it was and the error goes to the caller, as a decoder's
   * would; one that throws part-way through the record fails the batch like a record that
   * cannot be serialized, and the set goes on with the next record.
   */
  private writeFused(w: FusedRecordWriter, view: DataView, buf: Uint8Array, p: number, end: number, ctx: RecordContext, m: SetMeta): number {
    this.begin();
    const e = this.encoder;
    const before = e.bytes;
    try {
      const q = w(view, buf, p, end, ctx, e, m);
      // A record the writer's filter dropped leaves the batch as it was (see FusedRecordWriter).
      if (q >= 0 && e.bytes !== before) this.openCount++;
      return q;
    } catch (err) {
      if (e.bytes === before) throw err;
      this.openCount++;
      this.openFailure ??= err;
      // The writer noted where the record ends before it began writing (see fused-writer.ts).
      const next = e.fusedRecordEnd;
      return next > p && next <= end ? next : end;
    }
  }

  /** Opens a serialized batch unless one is open. */
  private begin(): void {
    if (this.open) return;
    this.encoder.begin(0, this.options.keyStamp?.() ?? null);
    this.open = true;
    this.openCount = 0;
    this.openFailure = null;
  }

  /** Closes the open serialized batch once it holds maxRecords records or maxBytes bytes. */
  private flushIfFull(): void {
    if (this.openCount >= this.maxRecords || this.encoder.bytes >= this.maxBytes) this.flush();
  }

  /** Starts the age timer for an open serialized batch that has none. */
  private armIfOpen(): void {
    if (this.open && this.openCount > 0 && this.timer === null) this.armTimer();
  }

  private armTimer(): void {
    this.timer = this.setTimer(() => {
      this.timer = null;
      this.flush();
    }, this.maxAgeMs);
  }

  /** Closes the open batch now and hands it to the sink. */
  flush(): void {
    if (this.timer !== null) {
      this.clearTimer(this.timer);
      this.timer = null;
    }
    if (this.queued) this.flushQueued();
    else this.flushWhole();
  }

  private flushQueued(): void {
    const n = this.open ? this.openCount : 0;
    this.open = false;
    if (n === 0) return;
    this.inFlightRecords += n;
    const done = (err: unknown, result: AppendResult | null): void => {
      this.inFlightRecords -= n;
      this.report(n, err, result);
    };
    try {
      if (this.openFailure !== null) {
        this.sink.reject(n, this.openFailure, done);
        return;
      }
      let batch: Uint8Array;
      try {
        // A copy that owns its buffer: the sink may transfer it to the compressor thread.
        batch = this.encoder.finish().slice();
      } catch (err) {
        this.sink.reject(n, err, done);
        return;
      }
      this.sink.enqueue(batch, n, done, this.encoder.exportSpan);
    } catch (err) {
      this.inFlightRecords -= n;
      this.report(n, err, null);
    }
  }

  private flushWhole(): void {
    if (this.pending.length === 0) return;
    const records = this.pending;
    this.pending = [];
    this.pendingBytes = 0;
    const n = records.length;
    let result: AppendResult | null = null;
    try {
      let batch: Uint8Array | null = null;
      try {
        batch = this.encoder.encode(records, this.options.keyStamp?.() ?? null);
      } catch (err) {
        this.sink.reject(n, err, (e, r) => this.report(n, e, r));
      }
      if (batch !== null) result = this.sink.append(batch, n, this.encoder.exportSpan);
    } catch (err) {
      this.report(n, err, null);
      return;
    }
    if (result !== null) this.report(n, null, result);
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
