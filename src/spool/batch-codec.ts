import type { Counter, FlowRecord, FlowType, IpAddr, Transport } from '../flow/flow-record.js';
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
 *     u32le   presence bitmap (bits below: a set bit means "present" / "IPv6" / "bigint")
 *     str     flowtype, transport, exporter, [exporterIdentity if PRESENT_IDENTITY]
 *     num     flowversion, observationDomainId, exportTime, ipVersion, samplingInterval
 *     addr    srcAddr, dstAddr, nextHop, bgpNextHop        (each only if present)
 *     ctr     octets, packets
 *     num     srcPort … uptimeMs in bitmap order (bits 11..28; each only if present)
 *
 *   str  = varint index into the batch's string table; an index equal to the table's current
 *          size introduces a new entry and is followed by varint byte length + UTF-8 bytes
 *          (strings are interned per batch, so an exporter name costs one byte per record).
 *   num  = exact JS number: varint(2·v) for a non-negative safe integer v (every even number
 *          ≤ 2^54 is exact in a double, so 2·v never rounds); otherwise varint(1) followed by
 *          the float64 LE (negative, fractional, -0, NaN: still bit-exact).
 *   addr = IPv4: u32 BE; IPv6: 16 bytes in network order (the bitmap says which).
 *   ctr  = a number: num; a bigint (bitmap bit set): u64 LE, exact to 64 bits.
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

/**
 * Nullable numeric properties in bitmap order, bits 11..28 (OPTIONAL_BASE_BIT + index):
 * srcPort, dstPort, protocol, tos, tcpFlags, inputIf, outputIf, srcMask, dstMask, srcAs, dstAs,
 * srcVlan, dstVlan, icmpType, icmpCode, startMs, endMs, uptimeMs.
 */

/** Upper bound of one record's bytes excluding string payloads: bitmap + 4 IPv6 + 23 nums (9 B max) + 2 u64 + 4 string refs. */
const MAX_RECORD_FIXED_BYTES = 4 + 4 * 16 + 23 * 9 + 2 * 9 + 4 * 8;
/** Initial output size per record; typical IPv4 records take 30–45 bytes. */
const INITIAL_BYTES_PER_RECORD = 64;
/** A string table entry larger than this is refused on decode (exporter names are short). */
const MAX_STRING_BYTES = 64 * 1024;
/** 2^32, for splitting values that do not fit 32-bit bit operations. */
const TWO_POW_32 = 4294967296;
const TWO_POW_28 = 268435456;

const utf8Encoder = new TextEncoder();
const utf8Decoder = new TextDecoder('utf-8', { fatal: true });

function formatError(message: string, context: Record<string, number> = {}): SpoolError {
  return new SpoolError(SpoolErrorCode.Format, `batch codec: ${message}`, context);
}

/** Reusable serializer: keeps its output buffer between batches (one per appending thread). */
export class BatchEncoder {
  private buf: Uint8Array;
  private view: DataView;
  private pos = 0;
  private readonly strings = new Map<string, number>();
  private lastString: string | null = null;
  private lastIndex = 0;

  constructor(initialBytes = 1 << 20) {
    this.buf = new Uint8Array(initialBytes);
    this.view = new DataView(this.buf.buffer);
  }

  /** Serializes `records`; the result is a view of the encoder's buffer, valid until the next call. */
  encode(records: readonly FlowRecord[]): Uint8Array {
    this.pos = 0;
    this.strings.clear();
    this.lastString = null;
    this.ensure(16 + records.length * INITIAL_BYTES_PER_RECORD);
    this.buf[this.pos++] = BATCH_FORMAT_VERSION;
    this.varint(records.length);
    for (const r of records) this.record(r);
    return this.buf.subarray(0, this.pos);
  }

  private record(r: FlowRecord): void {
    this.ensure(MAX_RECORD_FIXED_BYTES);
    const bitmapPos = this.pos;
    this.pos += 4;
    let bits = 0;
    this.str(r.flowtype);
    this.str(r.transport);
    this.str(r.exporter);
    if (r.exporterIdentity !== null) {
      bits |= PRESENT_IDENTITY;
      this.str(r.exporterIdentity);
    }
    this.ensure(MAX_RECORD_FIXED_BYTES);
    this.num(r.flowversion);
    this.num(r.observationDomainId);
    this.num(r.exportTime);
    this.num(r.ipVersion);
    this.num(r.samplingInterval);
    if (r.srcAddr !== null) bits |= this.addr(r.srcAddr) ? PRESENT_SRC | V6_SRC : PRESENT_SRC;
    if (r.dstAddr !== null) bits |= this.addr(r.dstAddr) ? PRESENT_DST | V6_DST : PRESENT_DST;
    if (r.nextHop !== null) bits |= this.addr(r.nextHop) ? PRESENT_NH | V6_NH : PRESENT_NH;
    if (r.bgpNextHop !== null) bits |= this.addr(r.bgpNextHop) ? PRESENT_BGPNH | V6_BGPNH : PRESENT_BGPNH;
    if (this.counter(r.octets)) bits |= BIGINT_OCTETS;
    if (this.counter(r.packets)) bits |= BIGINT_PACKETS;
    // Optional numbers, unrolled in OPTIONAL_NUMBERS order (a keyed loop over property names is several times slower).
    let v: number | null;
    if ((v = r.srcPort) !== null) { bits |= 1 << 11; this.num(v); }
    if ((v = r.dstPort) !== null) { bits |= 1 << 12; this.num(v); }
    if ((v = r.protocol) !== null) { bits |= 1 << 13; this.num(v); }
    if ((v = r.tos) !== null) { bits |= 1 << 14; this.num(v); }
    if ((v = r.tcpFlags) !== null) { bits |= 1 << 15; this.num(v); }
    if ((v = r.inputIf) !== null) { bits |= 1 << 16; this.num(v); }
    if ((v = r.outputIf) !== null) { bits |= 1 << 17; this.num(v); }
    if ((v = r.srcMask) !== null) { bits |= 1 << 18; this.num(v); }
    if ((v = r.dstMask) !== null) { bits |= 1 << 19; this.num(v); }
    if ((v = r.srcAs) !== null) { bits |= 1 << 20; this.num(v); }
    if ((v = r.dstAs) !== null) { bits |= 1 << 21; this.num(v); }
    if ((v = r.srcVlan) !== null) { bits |= 1 << 22; this.num(v); }
    if ((v = r.dstVlan) !== null) { bits |= 1 << 23; this.num(v); }
    if ((v = r.icmpType) !== null) { bits |= 1 << 24; this.num(v); }
    if ((v = r.icmpCode) !== null) { bits |= 1 << 25; this.num(v); }
    if ((v = r.startMs) !== null) { bits |= 1 << 26; this.num(v); }
    if ((v = r.endMs) !== null) { bits |= 1 << 27; this.num(v); }
    if ((v = r.uptimeMs) !== null) { bits |= 1 << 28; this.num(v); }
    const buf = this.buf;
    buf[bitmapPos] = bits & 0xff;
    buf[bitmapPos + 1] = (bits >>> 8) & 0xff;
    buf[bitmapPos + 2] = (bits >>> 16) & 0xff;
    buf[bitmapPos + 3] = bits >>> 24;
  }

  private remember(s: string, idx: number): void {
    this.lastString = s;
    this.lastIndex = idx;
  }

  private ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.pos));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }

  /** Unsigned LEB128 of an integer 0 ≤ v < 2^56, using 32-bit operations on two 28-bit halves. */
  private varint(v: number): void {
    const buf = this.buf;
    let p = this.pos;
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
    this.pos = p;
  }

  private num(v: number): void {
    if (Number.isSafeInteger(v) && v >= 0 && (v !== 0 || 1 / v > 0)) {
      this.varint(v * 2);
    } else {
      this.buf[this.pos++] = 1;
      this.view.setFloat64(this.pos, v, true);
      this.pos += 8;
    }
  }

  /** Writes an address; returns whether it is IPv6. */
  private addr(a: IpAddr): boolean {
    if (typeof a === 'number') {
      if (!(Number.isInteger(a) && a >= 0 && a < TWO_POW_32)) throw formatError('IPv4 address is not an unsigned 32-bit integer');
      this.view.setUint32(this.pos, a, false);
      this.pos += 4;
      return false;
    }
    if (a.length !== 16) throw formatError('IPv6 address is not 16 bytes', { length: a.length });
    this.buf.set(a, this.pos);
    this.pos += 16;
    return true;
  }

  /** Writes a counter; returns whether it is a bigint. */
  private counter(c: Counter): boolean {
    if (typeof c === 'number') {
      this.num(c);
      return false;
    }
    if (c < 0n || c > 0xffffffffffffffffn) throw formatError('counter outside the unsigned 64-bit range');
    this.view.setBigUint64(this.pos, c, true);
    this.pos += 8;
    return true;
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

/** Smallest possible encoded record (bitmap + 3 one-byte string refs + 5 one-byte numbers + 2 counters). */
const MIN_RECORD_BYTES = 4 + 3 + 5 + 2;

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
  for (let i = 0; i < count; i++) {
    const bits = r.u32le();
    const flowtype = readString(r, table) as FlowType;
    const transport = readString(r, table) as Transport;
    const exporter = readString(r, table);
    const exporterIdentity = (bits & PRESENT_IDENTITY) !== 0 ? readString(r, table) : null;
    const flowversion = r.num();
    const observationDomainId = r.num();
    const exportTime = r.num();
    const ipVersion = r.num();
    const samplingInterval = r.num();
    const srcAddr = readAddr(r, bits, PRESENT_SRC, V6_SRC);
    const dstAddr = readAddr(r, bits, PRESENT_DST, V6_DST);
    const nextHop = readAddr(r, bits, PRESENT_NH, V6_NH);
    const bgpNextHop = readAddr(r, bits, PRESENT_BGPNH, V6_BGPNH);
    const octets: Counter = (bits & BIGINT_OCTETS) !== 0 ? r.u64le() : r.num();
    const packets: Counter = (bits & BIGINT_PACKETS) !== 0 ? r.u64le() : r.num();
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
      srcPort: (bits & (1 << 11)) !== 0 ? r.num() : null,
      dstPort: (bits & (1 << 12)) !== 0 ? r.num() : null,
      protocol: (bits & (1 << 13)) !== 0 ? r.num() : null,
      octets,
      packets,
      tos: (bits & (1 << 14)) !== 0 ? r.num() : null,
      tcpFlags: (bits & (1 << 15)) !== 0 ? r.num() : null,
      inputIf: (bits & (1 << 16)) !== 0 ? r.num() : null,
      outputIf: (bits & (1 << 17)) !== 0 ? r.num() : null,
      srcMask: (bits & (1 << 18)) !== 0 ? r.num() : null,
      dstMask: (bits & (1 << 19)) !== 0 ? r.num() : null,
      nextHop,
      bgpNextHop,
      srcAs: (bits & (1 << 20)) !== 0 ? r.num() : null,
      dstAs: (bits & (1 << 21)) !== 0 ? r.num() : null,
      srcVlan: (bits & (1 << 22)) !== 0 ? r.num() : null,
      dstVlan: (bits & (1 << 23)) !== 0 ? r.num() : null,
      icmpType: (bits & (1 << 24)) !== 0 ? r.num() : null,
      icmpCode: (bits & (1 << 25)) !== 0 ? r.num() : null,
      startMs: (bits & (1 << 26)) !== 0 ? r.num() : null,
      endMs: (bits & (1 << 27)) !== 0 ? r.num() : null,
      uptimeMs: (bits & (1 << 28)) !== 0 ? r.num() : null,
      samplingInterval,
      raw: null,
    };
  }
  if (!r.atEnd()) throw formatError('trailing bytes after the last record', { offset: r.pos });
  return out;
}

/** Serializes with a fresh encoder (tests, tools); hot paths keep a BatchEncoder. */
export function encodeBatch(records: readonly FlowRecord[]): Uint8Array {
  return new BatchEncoder(16 + records.length * INITIAL_BYTES_PER_RECORD).encode(records).slice();
}
