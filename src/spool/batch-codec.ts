import { newFlowRecord, type Counter, type FlowRecord, type FlowType, type IpAddr, type Transport } from '../flow/flow-record.js';
import { grownBytes } from '../flow/byte-buffer.js';
import { SpoolError, SpoolErrorCode } from '../flow/errors.js';

/**
 * The spool's batch serializer: FlowRecord[] ⇄ compact bytes (before compression and
 * sealing). Row-oriented, single pass, no JSON. `raw` is not stored (it is decoded again on
 * demand only on the live path); it comes back as null.
 *
 * Format (version BATCH_FORMAT_VERSION):
 *
 *   u8      format version
 *   varint  record count
 *   record* :
 *     u8      head: HEAD_BITMAP | HEAD_CONTEXT | HEAD_TIME_DELTA
 *     u32le   presence bitmap (bits below: a set bit means "present" / "IPv6" / "bigint");
 *             only with HEAD_BITMAP, else the previous record's bitmap applies
 *     context only with HEAD_CONTEXT, else the previous record's context applies:
 *       str   flowtype, transport, exporter, [exporterIdentity if PRESENT_IDENTITY]
 *       num   flowversion, observationDomainId, exportTime, ipVersion, samplingInterval
 *     addr    srcAddr, dstAddr, nextHop, bgpNextHop        (each only if present)
 *     ctr     octets, packets
 *     num     srcPort … uptimeMs in bitmap order (bits 11..28; each only if present), except
 *             that with HEAD_TIME_DELTA startMs is zz(startMs − exportTime·1000) and endMs is
 *             zz(endMs − startMs) (integers only; a flow's times sit seconds from its export)
 *
 *   The first record has HEAD_BITMAP | HEAD_CONTEXT. Records of one exporter share context and
 *   usually the bitmap, so those cost one byte instead of ~16.
 *   str  = varint index into the batch's string table; an index equal to the table's current
 *          size introduces a new entry and is followed by varint byte length + UTF-8 bytes
 *          (strings are interned per batch, so an exporter name costs one byte per record).
 *   num  = exact JS number: varint(2·v) for a non-negative safe integer v (every even number
 *          ≤ 2^54 is exact in a double, so 2·v never rounds); otherwise varint(1) followed by
 *          the float64 LE (negative, fractional, -0, NaN: still bit-exact).
 *   addr = IPv4: u32 BE; IPv6: 16 bytes in network order (the bitmap says which).
 *   ctr  = a number: num; a bigint (bitmap bit set): u64 LE, exact to 64 bits.
 *   zz   = zigzag: varint(2·d) for d ≥ 0, varint(−2·d − 1) for d < 0 (|d| < 2^50 here).
 *   varint = unsigned LEB128, at most 8 bytes here (values < 2^55).
 */

export const BATCH_FORMAT_VERSION = 1;

// Presence bitmap bits.
const PRESENT_SRC = 1 << 0;
const V6_SRC = 1 << 1;
const PRESENT_DST = 1 << 2;
const V6_DST = 1 << 3;
const PRESENT_NH = 1 << 4;
const V6_NH = 1 << 5;
const PRESENT_BGPNH = 1 << 6;
const V6_BGPNH = 1 << 7;
const PRESENT_IDENTITY = 1 << 8;
const BIGINT_OCTETS = 1 << 9;
const BIGINT_PACKETS = 1 << 10;
const PRESENT_START = 1 << 26;
const PRESENT_END = 1 << 27;
const PRESENT_UPTIME = 1 << 28;
/** Bit of the first optional number (srcPort); see the list below. */
const OPTIONAL_BASE_BIT = 11;

// Record head bits.
const HEAD_BITMAP = 1;
const HEAD_CONTEXT = 2;
const HEAD_TIME_DELTA = 4;
/** Time deltas are used only below this magnitude (keeps zz values < 2^51, exact in a double). */
const MAX_TIME_DELTA = 2 ** 50;

/**
 * Nullable numeric properties in bitmap order, bits 11..28 (OPTIONAL_BASE_BIT + index):
 * srcPort, dstPort, protocol, tos, tcpFlags, inputIf, outputIf, srcMask, dstMask, srcAs, dstAs,
 * srcVlan, dstVlan, icmpType, icmpCode, startMs, endMs, uptimeMs.
 */

/** Upper bound of one record's bytes excluding string payloads: head + bitmap + 4 IPv6 + 23 nums (9 B max) + 2 u64 + 4 string refs. */
const MAX_RECORD_FIXED_BYTES = 1 + 4 + 4 * 16 + 23 * 9 + 2 * 9 + 4 * 8;
/** Initial output size per record; typical IPv4 records take 30–45 bytes. */
const INITIAL_BYTES_PER_RECORD = 64;
/** A string table entry larger than this is refused on decode (exporter names are short). */
const MAX_STRING_BYTES = 64 * 1024;
/** 2^32, for splitting values that do not fit 32-bit bit operations. */
const TWO_POW_32 = 4294967296;
const TWO_POW_28 = 268435456;
/** putNum's fast path: 2·v < 2^30 stays within 32-bit operations. */
const SMALL_NUM_LIMIT = 2 ** 29;
/** Room left before the first record for the header: version byte + record count varint (< 2^28, ≤ 4 bytes). */
const HEADER_ROOM = 1 + 4;

const utf8Encoder = new TextEncoder();
const utf8Decoder = new TextDecoder('utf-8', { fatal: true });

function formatError(message: string, context: Record<string, number> = {}): SpoolError {
  return new SpoolError(SpoolErrorCode.Format, `batch codec: ${message}`, context);
}

/** Unsigned LEB128 of an integer 0 ≤ v < 2^56 at buf[p]; returns the position after it. Uses 32-bit operations on two 28-bit halves. */
function putVarint(buf: Uint8Array, p: number, v: number): number {
  if (v >= TWO_POW_28) {
    const lo = v % TWO_POW_28;
    buf[p++] = (lo & 0x7f) | 0x80;
    buf[p++] = ((lo >>> 7) & 0x7f) | 0x80;
    buf[p++] = ((lo >>> 14) & 0x7f) | 0x80;
    buf[p++] = ((lo >>> 21) & 0x7f) | 0x80;
    v = (v - lo) / TWO_POW_28;
  }
  while (v >= 0x80) {
    buf[p++] = (v & 0x7f) | 0x80;
    v >>>= 7;
  }
  buf[p++] = v;
  return p;
}

/**
 * Writes `num` (see the format) at buf[p]; returns the position after it. The inline branch is
 * the common case, an integer 0 < v < 2^29 (ports, flags, interface indexes, AS numbers), whose
 * 2·v fits the 32-bit operations of the loop; everything else (0 and -0 included, to keep -0
 * bit-exact) goes to putNumOther. The put* helpers are kept this small on purpose: record()
 * calls them ~20 times per record, and V8 inlines them only while their summed bytecode stays
 * within its per-function budget (measured: 160 → ~125 ns per record when inlined).
 */
function putNum(buf: Uint8Array, view: DataView, p: number, v: number): number {
  if ((v | 0) === v && v > 0 && v < SMALL_NUM_LIMIT) {
    let x = v * 2;
    while (x >= 0x80) {
      buf[p++] = (x & 0x7f) | 0x80;
      x >>>= 7;
    }
    buf[p++] = x;
    return p;
  }
  return putNumOther(buf, view, p, v);
}

function putNumOther(buf: Uint8Array, view: DataView, p: number, v: number): number {
  if (Number.isSafeInteger(v) && v >= 0 && (v !== 0 || 1 / v > 0)) return putVarint(buf, p, v * 2);
  buf[p++] = 1;
  view.setFloat64(p, v, true);
  return p + 8;
}

/** Writes zz(d) (see the format) at buf[p]; returns the position after it. */
function putZigzag(buf: Uint8Array, p: number, d: number): number {
  return putVarint(buf, p, d >= 0 ? d * 2 : -d * 2 - 1);
}

/** Writes an address (IPv4 or IPv6, as the bitmap already says) at buf[p]; returns the position after it. */
function putAddr(buf: Uint8Array, view: DataView, p: number, a: IpAddr): number {
  if (typeof a === 'number' && a >= 0 && a < TWO_POW_32 && (a >>> 0) === a) {
    view.setUint32(p, a, false);
    return p + 4;
  }
  return putAddrOther(buf, p, a);
}

function putAddrOther(buf: Uint8Array, p: number, a: IpAddr): number {
  if (typeof a === 'number') throw formatError('IPv4 address is not an unsigned 32-bit integer');
  if (a.length !== 16) throw formatError('IPv6 address is not 16 bytes', { length: a.length });
  buf.set(a, p);
  return p + 16;
}

/** Writes a counter (a number, or a bigint as the bitmap already says) at buf[p]; returns the position after it. */
function putCounter(buf: Uint8Array, view: DataView, p: number, c: Counter): number {
  return typeof c === 'number' ? putNum(buf, view, p, c) : putBigCounter(view, p, c);
}

function putBigCounter(view: DataView, p: number, c: bigint): number {
  if (c < 0n || c > 0xffffffffffffffffn) throw formatError('counter outside the unsigned 64-bit range');
  view.setBigUint64(p, c, true);
  return p + 8;
}

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

  constructor(initialBytes = 1 << 20) {
    this.buf = new Uint8Array(initialBytes);
    this.view = new DataView(this.buf.buffer);
  }

  /** Serializes `records`; the result is a view of the encoder's buffer, valid until the next call. */
  encode(records: readonly FlowRecord[]): Uint8Array {
    this.begin(records.length);
    for (const r of records) this.add(r);
    return this.finish();
  }

  /**
   * Starts a batch that is written record by record as records arrive (`add`), so a record is
   * serialized while it is still in cache and can die young instead of waiting in memory for
   * the whole batch. `expected` only sizes the buffer. Any unfinished batch is discarded.
   */
  begin(expected = 0): void {
    this.pos = HEADER_ROOM;
    this.count = 0;
    this.strings.clear();
    this.lastString = null;
    this.hasPrev = false;
    this.prev = PLACEHOLDER_RECORD;
    this.ensure(16 + expected * INITIAL_BYTES_PER_RECORD);
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
    const start = HEADER_ROOM - 1 - len;
    this.buf[start] = BATCH_FORMAT_VERSION;
    putVarint(this.buf, start + 1, n);
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

/** Bounds-checked reader over one serialized batch (already authenticated, still never trusted blindly). */
class BatchReader {
  pos = 0;
  private readonly view: DataView;
  constructor(private readonly buf: Uint8Array) {
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  }

  need(n: number): void {
    if (this.pos + n > this.buf.length) throw formatError('truncated batch', { offset: this.pos, need: n });
  }

  u8(): number {
    this.need(1);
    return this.buf[this.pos++] ?? 0;
  }

  varint(): number {
    const buf = this.buf;
    let result = 0;
    let mul = 1;
    for (let i = 0; i < 8; i++) {
      if (this.pos >= buf.length) throw formatError('truncated varint', { offset: this.pos });
      const b = buf[this.pos++] ?? 0;
      result += (b & 0x7f) * mul;
      if (b < 0x80) return result;
      mul *= 128;
    }
    throw formatError('varint too long', { offset: this.pos });
  }

  num(): number {
    const v = this.varint();
    if (v % 2 === 0) return v / 2;
    if (v !== 1) throw formatError('bad number tag', { offset: this.pos });
    this.need(8);
    const f = this.view.getFloat64(this.pos, true);
    this.pos += 8;
    return f;
  }

  zigzag(): number {
    const z = this.varint();
    return z % 2 === 0 ? z / 2 : -(z + 1) / 2;
  }

  u32be(): number {
    this.need(4);
    const v = this.view.getUint32(this.pos, false);
    this.pos += 4;
    return v;
  }

  u32le(): number {
    this.need(4);
    const v = this.view.getUint32(this.pos, true);
    this.pos += 4;
    return v;
  }

  u64le(): bigint {
    this.need(8);
    const v = this.view.getBigUint64(this.pos, true);
    this.pos += 8;
    return v;
  }

  bytes16(): Uint8Array {
    this.need(16);
    // A plain Uint8Array (never a Buffer view of the inflated batch), as decoders produce.
    const out = new Uint8Array(16);
    out.set(this.buf.subarray(this.pos, this.pos + 16));
    this.pos += 16;
    return out;
  }

  utf8(len: number): string {
    this.need(len);
    let s: string;
    try {
      s = utf8Decoder.decode(this.buf.subarray(this.pos, this.pos + len));
    } catch {
      throw formatError('string is not valid UTF-8', { offset: this.pos });
    }
    this.pos += len;
    return s;
  }

  atEnd(): boolean {
    return this.pos === this.buf.length;
  }
}

function readString(r: BatchReader, table: string[]): string {
  const idx = r.varint();
  const known = table[idx];
  if (known !== undefined) return known;
  if (idx !== table.length) throw formatError('string index out of order', { offset: r.pos, index: idx });
  const len = r.varint();
  if (len > MAX_STRING_BYTES) throw formatError('string too long', { offset: r.pos, bytes: len });
  const s = r.utf8(len);
  table.push(s);
  return s;
}

function readAddr(r: BatchReader, bits: number, present: number, v6: number): IpAddr | null {
  if ((bits & present) === 0) return null;
  return (bits & v6) !== 0 ? r.bytes16() : r.u32be();
}

/** Smallest possible encoded record (head + 2 one-byte counters). */
const MIN_RECORD_BYTES = 1 + 2;

/** Parses a serialized batch back into records (raw = null). Throws SpoolError(ERR_SPOOL_FORMAT) on malformed input. */
export function decodeBatch(bytes: Uint8Array): FlowRecord[] {
  const r = new BatchReader(bytes);
  const version = r.u8();
  if (version !== BATCH_FORMAT_VERSION) throw formatError('unsupported batch format version', { version });
  const count = r.varint();
  // Cap before allocating: a record takes at least MIN_RECORD_BYTES.
  if (count * MIN_RECORD_BYTES > bytes.length) throw formatError('record count larger than the batch', { count });
  const table: string[] = [];
  const out = new Array<FlowRecord>(count);
  let bits = 0;
  let flowtype: FlowType = 'netflow';
  let transport: Transport = 'udp';
  let exporter = '';
  let exporterIdentity: string | null = null;
  let flowversion = 0;
  let observationDomainId = 0;
  let exportTime = 0;
  let ipVersion = 0;
  let samplingInterval = 0;
  for (let i = 0; i < count; i++) {
    const head = r.u8();
    if (i === 0 && (head & (HEAD_BITMAP | HEAD_CONTEXT)) !== (HEAD_BITMAP | HEAD_CONTEXT)) throw formatError('first record lacks bitmap or context');
    if (head > (HEAD_BITMAP | HEAD_CONTEXT | HEAD_TIME_DELTA)) throw formatError('bad record head', { offset: r.pos });
    if ((head & HEAD_BITMAP) !== 0) bits = r.u32le();
    if ((head & HEAD_CONTEXT) !== 0) {
      flowtype = readString(r, table) as FlowType;
      transport = readString(r, table) as Transport;
      exporter = readString(r, table);
      exporterIdentity = (bits & PRESENT_IDENTITY) !== 0 ? readString(r, table) : null;
      flowversion = r.num();
      observationDomainId = r.num();
      exportTime = r.num();
      ipVersion = r.num();
      samplingInterval = r.num();
    } else if (((bits & PRESENT_IDENTITY) !== 0) !== (exporterIdentity !== null)) {
      throw formatError('bitmap disagrees with the shared context', { offset: r.pos });
    }
    const srcAddr = readAddr(r, bits, PRESENT_SRC, V6_SRC);
    const dstAddr = readAddr(r, bits, PRESENT_DST, V6_DST);
    const nextHop = readAddr(r, bits, PRESENT_NH, V6_NH);
    const bgpNextHop = readAddr(r, bits, PRESENT_BGPNH, V6_BGPNH);
    const octets: Counter = (bits & BIGINT_OCTETS) !== 0 ? r.u64le() : r.num();
    const packets: Counter = (bits & BIGINT_PACKETS) !== 0 ? r.u64le() : r.num();
    const srcPort = (bits & (1 << 11)) !== 0 ? r.num() : null;
    const dstPort = (bits & (1 << 12)) !== 0 ? r.num() : null;
    const protocol = (bits & (1 << 13)) !== 0 ? r.num() : null;
    const tos = (bits & (1 << 14)) !== 0 ? r.num() : null;
    const tcpFlags = (bits & (1 << 15)) !== 0 ? r.num() : null;
    const inputIf = (bits & (1 << 16)) !== 0 ? r.num() : null;
    const outputIf = (bits & (1 << 17)) !== 0 ? r.num() : null;
    const srcMask = (bits & (1 << 18)) !== 0 ? r.num() : null;
    const dstMask = (bits & (1 << 19)) !== 0 ? r.num() : null;
    const srcAs = (bits & (1 << 20)) !== 0 ? r.num() : null;
    const dstAs = (bits & (1 << 21)) !== 0 ? r.num() : null;
    const srcVlan = (bits & (1 << 22)) !== 0 ? r.num() : null;
    const dstVlan = (bits & (1 << 23)) !== 0 ? r.num() : null;
    const icmpType = (bits & (1 << 24)) !== 0 ? r.num() : null;
    const icmpCode = (bits & (1 << 25)) !== 0 ? r.num() : null;
    let startMs: number | null;
    let endMs: number | null;
    if ((head & HEAD_TIME_DELTA) !== 0) {
      if ((bits & (PRESENT_START | PRESENT_END)) !== (PRESENT_START | PRESENT_END)) throw formatError('time delta without both times', { offset: r.pos });
      startMs = exportTime * 1000 + r.zigzag();
      endMs = startMs + r.zigzag();
    } else {
      startMs = (bits & PRESENT_START) !== 0 ? r.num() : null;
      endMs = (bits & PRESENT_END) !== 0 ? r.num() : null;
    }
    const uptimeMs = (bits & PRESENT_UPTIME) !== 0 ? r.num() : null;
    // Property order matches newFlowRecord() so decoded records share its hidden class.
    out[i] = {
      flowtype,
      flowversion,
      transport,
      exporter,
      exporterIdentity,
      observationDomainId,
      exportTime,
      ipVersion,
      srcAddr,
      dstAddr,
      srcPort,
      dstPort,
      protocol,
      octets,
      packets,
      tos,
      tcpFlags,
      inputIf,
      outputIf,
      srcMask,
      dstMask,
      nextHop,
      bgpNextHop,
      srcAs,
      dstAs,
      srcVlan,
      dstVlan,
      icmpType,
      icmpCode,
      startMs,
      endMs,
      uptimeMs,
      samplingInterval,
      raw: null,
    };
  }
  if (!r.atEnd()) throw formatError('trailing bytes after the last record', { offset: r.pos });
  return out;
}

/** The record count in a serialized batch's header (without decoding it). */
export function batchRecordCount(bytes: Uint8Array): number {
  const r = new BatchReader(bytes);
  const version = r.u8();
  if (version !== BATCH_FORMAT_VERSION) throw formatError('unsupported batch format version', { version });
  return r.varint();
}

/** Serializes with a fresh encoder (tests, tools); hot paths keep a BatchEncoder. */
export function encodeBatch(records: readonly FlowRecord[]): Uint8Array {
  return new BatchEncoder(16 + records.length * INITIAL_BYTES_PER_RECORD).encode(records).slice();
}

/**
 * The format's writers and bitmap constants, for the fused writers' generated code
 * (fused-writer.ts), which must produce exactly the bytes BatchEncoder.record() does.
 */
export const codecInternals = {
  putNum,
  putNumOther,
  SMALL_NUM_LIMIT,
  putAddr,
  putCounter,
  putVarint,
  PRESENT_SRC,
  V6_SRC,
  PRESENT_DST,
  V6_DST,
  PRESENT_NH,
  V6_NH,
  PRESENT_BGPNH,
  V6_BGPNH,
  PRESENT_IDENTITY,
  BIGINT_OCTETS,
  BIGINT_PACKETS,
  OPTIONAL_BASE_BIT,
  PRESENT_START,
  PRESENT_END,
  PRESENT_UPTIME,
  MAX_TIME_DELTA,
} as const;
