import { newFlowRecord, type FlowRecord, type FlowType, type Transport } from '../flow/flow-record.js';
import type { PseudonymKeyStamp } from '../flow/privacy.js';
import { grownBytes } from '../flow/byte-buffer.js';
import { NO_SPAN, type BatchSpan } from '../flow/pipeline.js';
import {
  BATCH_FORMAT_VERSION, BATCH_FORMAT_VERSION_STAMPED, BIGINT_OCTETS, BIGINT_PACKETS, HEAD_BITMAP, HEAD_CONTEXT, HEAD_TIME_DELTA, HEADER_ROOM, INITIAL_BYTES_PER_RECORD,
  MAX_RECORD_FIXED_BYTES, MAX_STRING_BYTES, MAX_TIME_DELTA, PRESENT_BGPNH, PRESENT_DST, PRESENT_END, PRESENT_IDENTITY, PRESENT_NH, PRESENT_SRC,
  PRESENT_START, PRESENT_UPTIME, STAMP_FINGERPRINT_BYTES, TWO_POW_28, V6_BGPNH, V6_DST, V6_NH, V6_SRC, formatError, putAddr, putCounter, putNum, putVarint, putZigzag,
} from './format.js';

/** The batch encoder (format in format.ts): one per writing thread, its output buffer reused between batches. */

const utf8Encoder = new TextEncoder();

/**
 * Writes srcPort … icmpCode (bitmap bits 11..25, each only if present) at buf[p]; returns the
 * position after them. Unrolled in bitmap order (a keyed loop over property names is several
 * times slower), and a function of its own so that V8's inlining budget, which is per
 * optimized function, covers these putNum calls as well as record()'s.
 */
function putOptionalNumbers(buf: Uint8Array, view: DataView, p: number, r: FlowRecord): number {
  let v: number | null;
  if ((v = r.srcPort) !== null) p = putNum(buf, view, p, v);
  if ((v = r.dstPort) !== null) p = putNum(buf, view, p, v);
  if ((v = r.protocol) !== null) p = putNum(buf, view, p, v);
  if ((v = r.tos) !== null) p = putNum(buf, view, p, v);
  if ((v = r.tcpFlags) !== null) p = putNum(buf, view, p, v);
  if ((v = r.inputIf) !== null) p = putNum(buf, view, p, v);
  if ((v = r.outputIf) !== null) p = putNum(buf, view, p, v);
  if ((v = r.srcMask) !== null) p = putNum(buf, view, p, v);
  if ((v = r.dstMask) !== null) p = putNum(buf, view, p, v);
  if ((v = r.srcAs) !== null) p = putNum(buf, view, p, v);
  if ((v = r.dstAs) !== null) p = putNum(buf, view, p, v);
  if ((v = r.srcVlan) !== null) p = putNum(buf, view, p, v);
  if ((v = r.dstVlan) !== null) p = putNum(buf, view, p, v);
  if ((v = r.icmpType) !== null) p = putNum(buf, view, p, v);
  if ((v = r.icmpCode) !== null) p = putNum(buf, view, p, v);
  return p;
}

/** Stands in for "no previous record" so the encoder's `prev` keeps one shape. */
const PLACEHOLDER_RECORD: FlowRecord = newFlowRecord('netflow', 0, 'udp', '', null, 0, 0);

/** Reusable serializer: keeps its output buffer between batches (one per appending thread). */
export class BatchEncoder {
  private buf: Uint8Array;
  private view: DataView;
  private pos = 0;
  private readonly strings = new Map<string, number>();
  private lastString: string | null = null;
  /** The previous record's context (see HEAD_CONTEXT) and bitmap. */
  private prev: FlowRecord = PLACEHOLDER_RECORD;
  private prevBits = 0;
  private hasPrev = false;
  private lastIndex = 0;
  private count = 0;
  /** The open batch's pseudonymisation key stamp (null: addresses are as decoded). */
  private stamp: PseudonymKeyStamp | null = null;
  /** Earliest and latest exportTime (Unix seconds) of the batch's records: tracked where the context changes, so per packet, not per record. */
  private minExportS = Number.POSITIVE_INFINITY;
  private maxExportS = Number.NEGATIVE_INFINITY;

  constructor(initialBytes = 1 << 20) {
    this.buf = new Uint8Array(initialBytes);
    this.view = new DataView(this.buf.buffer);
  }

  /** Serializes `records`; the result is a view of the encoder's buffer, valid until the next call. */
  encode(records: readonly FlowRecord[], stamp: PseudonymKeyStamp | null = null): Uint8Array {
    this.begin(records.length, stamp);
    for (const r of records) this.add(r);
    return this.finish();
  }

  /**
   * Starts a batch that is written record by record as records arrive (`add`), so a record is
   * serialized while it is still in cache and can die young instead of waiting in memory for
   * the whole batch. `expected` only sizes the buffer; `stamp` says which pseudonymisation key
   * wrote its addresses (the header records it). Any unfinished batch is discarded.
   */
  begin(expected = 0, stamp: PseudonymKeyStamp | null = null): void {
    this.stamp = stamp;
    this.pos = HEADER_ROOM;
    this.count = 0;
    this.strings.clear();
    this.lastString = null;
    this.hasPrev = false;
    this.prev = PLACEHOLDER_RECORD;
    this.minExportS = Number.POSITIVE_INFINITY;
    this.maxExportS = Number.NEGATIVE_INFINITY;
    this.ensure(16 + expected * INITIAL_BYTES_PER_RECORD);
  }

  /** The export times (Unix seconds) of the batch's earliest and latest records since begin(); nulls when it has none. */
  get exportSpan(): BatchSpan {
    return this.minExportS <= this.maxExportS ? { firstExportS: this.minExportS, lastExportS: this.maxExportS } : NO_SPAN;
  }

  add(r: FlowRecord): void {
    this.record(r);
    this.count++;
  }

  /** Records added since begin(). */
  get records(): number {
    return this.count;
  }

  /** Bytes written since begin() (records only; the header adds at most HEADER_ROOM). */
  get bytes(): number {
    return this.pos - HEADER_ROOM;
  }

  /**
   * Completes the batch: the header (version, record count) goes right before the records,
   * in the room begin() left, so the result is the same canonical encoding encode() gives.
   * The result is a view of the encoder's buffer, valid until the next begin().
   */
  finish(): Uint8Array {
    const n = this.count;
    if (n >= TWO_POW_28) throw formatError('too many records in one batch', { records: n });
    let len = 1;
    for (let x = n; x >= 0x80; x >>>= 7) len++;
    const stamp = this.stamp;
    if (stamp === null) {
      const start = HEADER_ROOM - 1 - len;
      this.buf[start] = BATCH_FORMAT_VERSION;
      putVarint(this.buf, start + 1, n);
      return this.buf.subarray(start, this.pos);
    }
    const head = stampBytes(stamp);
    const start = HEADER_ROOM - 1 - head.length - len;
    this.buf[start] = BATCH_FORMAT_VERSION_STAMPED;
    this.buf.set(head, start + 1);
    putVarint(this.buf, start + 1 + head.length, n);
    return this.buf.subarray(start, this.pos);
  }

  private record(r: FlowRecord): void {
    this.ensure(MAX_RECORD_FIXED_BYTES);
    // The bitmap first: it decides whether the previous record's applies.
    let bits = 0;
    const { srcAddr, dstAddr, nextHop, bgpNextHop, startMs, endMs } = r;
    if (srcAddr !== null) bits |= typeof srcAddr === 'number' ? PRESENT_SRC : PRESENT_SRC | V6_SRC;
    if (dstAddr !== null) bits |= typeof dstAddr === 'number' ? PRESENT_DST : PRESENT_DST | V6_DST;
    if (nextHop !== null) bits |= typeof nextHop === 'number' ? PRESENT_NH : PRESENT_NH | V6_NH;
    if (bgpNextHop !== null) bits |= typeof bgpNextHop === 'number' ? PRESENT_BGPNH : PRESENT_BGPNH | V6_BGPNH;
    if (r.exporterIdentity !== null) bits |= PRESENT_IDENTITY;
    if (typeof r.octets === 'bigint') bits |= BIGINT_OCTETS;
    if (typeof r.packets === 'bigint') bits |= BIGINT_PACKETS;
    if (r.srcPort !== null) bits |= 1 << 11;
    if (r.dstPort !== null) bits |= 1 << 12;
    if (r.protocol !== null) bits |= 1 << 13;
    if (r.tos !== null) bits |= 1 << 14;
    if (r.tcpFlags !== null) bits |= 1 << 15;
    if (r.inputIf !== null) bits |= 1 << 16;
    if (r.outputIf !== null) bits |= 1 << 17;
    if (r.srcMask !== null) bits |= 1 << 18;
    if (r.dstMask !== null) bits |= 1 << 19;
    if (r.srcAs !== null) bits |= 1 << 20;
    if (r.dstAs !== null) bits |= 1 << 21;
    if (r.srcVlan !== null) bits |= 1 << 22;
    if (r.dstVlan !== null) bits |= 1 << 23;
    if (r.icmpType !== null) bits |= 1 << 24;
    if (r.icmpCode !== null) bits |= 1 << 25;
    if (startMs !== null) bits |= PRESENT_START;
    if (endMs !== null) bits |= PRESENT_END;
    if (r.uptimeMs !== null) bits |= PRESENT_UPTIME;

    let head = 0;
    if (bits !== this.prevBits || !this.hasPrev) head |= HEAD_BITMAP;
    if (!this.sameContext(r.flowtype, r.flowversion, r.transport, r.exporter, r.exporterIdentity, r.observationDomainId, r.exportTime, r.ipVersion, r.samplingInterval)) {
      head |= HEAD_CONTEXT;
    }
    const base = r.exportTime * 1000;
    const timeDelta =
      startMs !== null && endMs !== null && Number.isSafeInteger(startMs) && Number.isSafeInteger(endMs) && Number.isSafeInteger(base) &&
      Math.abs(startMs - base) < MAX_TIME_DELTA && Math.abs(endMs - startMs) < MAX_TIME_DELTA && !Object.is(startMs, -0) && !Object.is(endMs, -0);
    if (timeDelta) head |= HEAD_TIME_DELTA;

    this.buf[this.pos++] = head;
    if ((head & HEAD_BITMAP) !== 0) this.writeBits(bits);
    if ((head & HEAD_CONTEXT) !== 0) this.writeContext(r);
    // The per-record fields, written through locals: ensure() above reserved room for them.
    const buf = this.buf;
    const view = this.view;
    let p = this.pos;
    if (srcAddr !== null) p = putAddr(buf, view, p, srcAddr);
    if (dstAddr !== null) p = putAddr(buf, view, p, dstAddr);
    if (nextHop !== null) p = putAddr(buf, view, p, nextHop);
    if (bgpNextHop !== null) p = putAddr(buf, view, p, bgpNextHop);
    p = putCounter(buf, view, p, r.octets);
    p = putCounter(buf, view, p, r.packets);
    p = putOptionalNumbers(buf, view, p, r);
    if (timeDelta) {
      p = putZigzag(buf, p, startMs - base);
      p = putZigzag(buf, p, endMs - startMs);
    } else {
      if (startMs !== null) p = putNum(buf, view, p, startMs);
      if (endMs !== null) p = putNum(buf, view, p, endMs);
    }
    if (r.uptimeMs !== null) p = putNum(buf, view, p, r.uptimeMs);
    this.pos = p;
  }

  /** Whether a record with this context can share the previous record's (HEAD_CONTEXT unset); numbers compare bit-exactly (NaN, -0). */
  private sameContext(
    flowtype: FlowType,
    flowversion: number,
    transport: Transport,
    exporter: string,
    identity: string | null,
    observationDomainId: number,
    exportTime: number,
    ipVersion: number,
    samplingInterval: number,
  ): boolean {
    const prev = this.prev;
    return (
      this.hasPrev &&
      prev.exporter === exporter &&
      prev.flowtype === flowtype &&
      prev.transport === transport &&
      prev.exporterIdentity === identity &&
      Object.is(prev.flowversion, flowversion) &&
      Object.is(prev.ipVersion, ipVersion) &&
      Object.is(prev.samplingInterval, samplingInterval) &&
      Object.is(prev.exportTime, exportTime) &&
      Object.is(prev.observationDomainId, observationDomainId)
    );
  }

  /** Writes `r`'s context (see the format) and makes it the one later records are compared with. */
  private writeContext(r: FlowRecord): void {
    this.str(r.flowtype);
    this.str(r.transport);
    this.str(r.exporter);
    if (r.exporterIdentity !== null) this.str(r.exporterIdentity);
    this.ensure(MAX_RECORD_FIXED_BYTES);
    this.num(r.flowversion);
    this.num(r.observationDomainId);
    this.num(r.exportTime);
    this.num(r.ipVersion);
    this.num(r.samplingInterval);
    // Every record's exportTime passes here: it is part of the context (sameContext compares it).
    const t = r.exportTime;
    if (t < this.minExportS) this.minExportS = t;
    if (t > this.maxExportS) this.maxExportS = t;
    this.prev = r;
    this.hasPrev = true;
  }

  /**
   * For fused writers (fused-writer.ts), which have no FlowRecord: writes a record's head byte,
   * its bitmap when it differs from the previous record's and its context when any part
   * differs, exactly as record() does for a record with these values, then reserves room for
   * the fields; returns the position they start at (write them to `out`, then endRecord()).
   * The context is written into the head as record() does; what later records are compared
   * with is kept as a small context-only FlowRecord, made only when the context changes
   * (about once per packet).
   */
  writeHead(
    bits: number,
    timeDelta: boolean,
    flowtype: FlowType,
    flowversion: number,
    transport: Transport,
    exporter: string,
    identity: string | null,
    observationDomainId: number,
    exportTime: number,
    ipVersion: number,
    samplingInterval: number,
  ): number {
    this.ensure(MAX_RECORD_FIXED_BYTES);
    let head = timeDelta ? HEAD_TIME_DELTA : 0;
    if (bits !== this.prevBits || !this.hasPrev) head |= HEAD_BITMAP;
    const sameContext = this.sameContext(flowtype, flowversion, transport, exporter, identity, observationDomainId, exportTime, ipVersion, samplingInterval);
    if (!sameContext) head |= HEAD_CONTEXT;
    this.buf[this.pos++] = head;
    if ((head & HEAD_BITMAP) !== 0) this.writeBits(bits);
    if (!sameContext) {
      const c = newFlowRecord(flowtype, flowversion, transport, exporter, identity, observationDomainId, exportTime);
      c.ipVersion = ipVersion;
      c.samplingInterval = samplingInterval;
      this.writeContext(c);
    }
    return this.pos;
  }

  /** Set by a fused writer before writeHead(): the packet offset where its record ends, so a record whose serialization fails can be skipped exactly. */
  fusedRecordEnd = -1;

  /** The output buffer and its view, for a fused writer between writeHead() and endRecord(); valid until the next writeHead(). */
  get out(): Uint8Array {
    return this.buf;
  }

  get outView(): DataView {
    return this.view;
  }

  /** Completes a record a fused writer wrote after writeHead(); `p` is the position after its fields. */
  endRecord(p: number): void {
    this.pos = p;
    this.count++;
  }

  private writeBits(bits: number): void {
    const buf = this.buf;
    const p = this.pos;
    buf[p] = bits & 0xff;
    buf[p + 1] = (bits >>> 8) & 0xff;
    buf[p + 2] = (bits >>> 16) & 0xff;
    buf[p + 3] = bits >>> 24;
    this.pos = p + 4;
    this.prevBits = bits;
  }

  private remember(s: string, idx: number): void {
    this.lastString = s;
    this.lastIndex = idx;
  }

  private ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    this.buf = grownBytes(this.buf, this.pos, n);
    this.view = new DataView(this.buf.buffer);
  }

  private varint(v: number): void {
    this.pos = putVarint(this.buf, this.pos, v);
  }

  private num(v: number): void {
    this.pos = putNum(this.buf, this.view, this.pos, v);
  }

  private str(s: string): void {
    // Interned strings repeat record after record: most lookups hit the one-entry cache.
    if (s === this.lastString) {
      this.varint(this.lastIndex);
      return;
    }
    const idx = this.strings.get(s);
    if (idx !== undefined) {
      this.remember(s, idx);
      this.varint(idx);
      return;
    }
    const next = this.strings.size;
    this.remember(s, next);
    this.strings.set(s, next);
    this.varint(next);
    this.ensure(s.length * 3 + 8);
    const lenPos = this.pos;
    // Reserve a fixed 3-byte varint for the length (strings ≤ 2^21 - 1 bytes; longer are refused on decode anyway).
    const { written } = utf8Encoder.encodeInto(s, this.buf.subarray(lenPos + 3));
    if (written > MAX_STRING_BYTES) throw formatError('string longer than the batch format allows', { bytes: written });
    this.buf[lenPos] = (written & 0x7f) | 0x80;
    this.buf[lenPos + 1] = ((written >>> 7) & 0x7f) | 0x80;
    this.buf[lenPos + 2] = (written >>> 14) & 0x7f;
    this.pos = lenPos + 3 + written;
  }
}

/** A stamp's bytes (see the format). */
function stampBytes(s: PseudonymKeyStamp): Uint8Array {
  if (s.fingerprint.length !== STAMP_FINGERPRINT_BYTES) throw formatError('key fingerprint of the wrong length', { length: s.fingerprint.length });
  if (!(Number.isSafeInteger(s.startS) && s.startS >= 0 && s.startS < 2 ** 35 && Number.isSafeInteger(s.lengthS) && s.lengthS >= 0 && s.lengthS < 2 ** 35)) {
    throw formatError('key period outside the stamp\'s range');
  }
  const out = new Uint8Array(5 + 5 + STAMP_FINGERPRINT_BYTES);
  let p = putVarint(out, 0, s.startS);
  p = putVarint(out, p, s.lengthS);
  out.set(s.fingerprint, p);
  return out.subarray(0, p + STAMP_FINGERPRINT_BYTES);
}

/** Serializes with a fresh encoder (tests, tools); hot paths keep a BatchEncoder. */
export function encodeBatch(records: readonly FlowRecord[], stamp: PseudonymKeyStamp | null = null): Uint8Array {
  return new BatchEncoder(16 + records.length * INITIAL_BYTES_PER_RECORD).encode(records, stamp).slice();
}

