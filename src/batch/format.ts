import type { Counter, IpAddr } from '../flow/flow-record.js';
import { SpoolError, SpoolErrorCode } from '../flow/errors.js';

/**
 * The batch format: FlowRecord[] ⇄ compact bytes. It sits below both stages that handle
 * batches: the ingest worker writes it (encoder.ts, and the fused writers through the
 * primitives below), the spool compresses, seals and stores it without reading it, and the
 * drain decodes it (decoder.ts). Row-oriented, single pass, no JSON. `raw` is not stored (it
 * is decoded again on demand only on the live path); it comes back as null.
 *
 * Format (version BATCH_FORMAT_VERSION, or BATCH_FORMAT_VERSION_STAMPED when the records'
 * addresses were pseudonymised, src/privacy):
 *
 *   u8      format version
 *   stamp   only in version 2: the pseudonymisation key in force (PseudonymKeyStamp):
 *             varint period start (Unix seconds), varint period length (seconds, 0 = never
 *             rotates), 8 bytes master key fingerprint
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
/** The same format with a pseudonymisation key stamp after the version byte. */
export const BATCH_FORMAT_VERSION_STAMPED = 2;
/** Bytes of the key fingerprint in a stamp. */
export const STAMP_FINGERPRINT_BYTES = 8;
/** Largest stamp: two varints below 2^35 (5 bytes each) and the fingerprint. */
export const MAX_STAMP_BYTES = 5 + 5 + STAMP_FINGERPRINT_BYTES;

// Presence bitmap bits.
export const PRESENT_SRC = 1 << 0;
export const V6_SRC = 1 << 1;
export const PRESENT_DST = 1 << 2;
export const V6_DST = 1 << 3;
export const PRESENT_NH = 1 << 4;
export const V6_NH = 1 << 5;
export const PRESENT_BGPNH = 1 << 6;
export const V6_BGPNH = 1 << 7;
export const PRESENT_IDENTITY = 1 << 8;
export const BIGINT_OCTETS = 1 << 9;
export const BIGINT_PACKETS = 1 << 10;
export const PRESENT_START = 1 << 26;
export const PRESENT_END = 1 << 27;
export const PRESENT_UPTIME = 1 << 28;
/** Bit of the first optional number (srcPort); see the list below. */
export const OPTIONAL_BASE_BIT = 11;

// Record head bits.
export const HEAD_BITMAP = 1;
export const HEAD_CONTEXT = 2;
export const HEAD_TIME_DELTA = 4;
/** Time deltas are used only below this magnitude (keeps zz values < 2^51, exact in a double). */
export const MAX_TIME_DELTA = 2 ** 50;

/**
 * Nullable numeric properties in bitmap order, bits 11..28 (OPTIONAL_BASE_BIT + index):
 * srcPort, dstPort, protocol, tos, tcpFlags, inputIf, outputIf, srcMask, dstMask, srcAs, dstAs,
 * srcVlan, dstVlan, icmpType, icmpCode, startMs, endMs, uptimeMs.
 */
export const OPTIONAL_NUMBERS = ['srcPort', 'dstPort', 'protocol', 'tos', 'tcpFlags', 'inputIf', 'outputIf', 'srcMask', 'dstMask', 'srcAs', 'dstAs', 'srcVlan', 'dstVlan', 'icmpType', 'icmpCode'] as const;

/** Upper bound of one record's bytes excluding string payloads: head + bitmap + 4 IPv6 + 23 nums (9 B max) + 2 u64 + 4 string refs. */
export const MAX_RECORD_FIXED_BYTES = 1 + 4 + 4 * 16 + 23 * 9 + 2 * 9 + 4 * 8;
/** Initial output size per record; typical IPv4 records take 30–45 bytes. */
export const INITIAL_BYTES_PER_RECORD = 64;
/** A string table entry larger than this is refused on decode (exporter names are short). */
export const MAX_STRING_BYTES = 64 * 1024;
/** 2^32, for splitting values that do not fit 32-bit bit operations. */
export const TWO_POW_32 = 4294967296;
export const TWO_POW_28 = 268435456;
/** putNum's fast path: 2·v < 2^30 stays within 32-bit operations. */
export const SMALL_NUM_LIMIT = 2 ** 29;
/** Room left before the first record for the header: version byte + stamp + record count varint (< 2^28, ≤ 4 bytes). */
export const HEADER_ROOM = 1 + MAX_STAMP_BYTES + 4;

/** Malformed batch bytes: SpoolError with the stable code ERR_SPOOL_FORMAT (batches live in the spool). */
export function formatError(message: string, context: Record<string, number> = {}): SpoolError {
  return new SpoolError(SpoolErrorCode.Format, `batch codec: ${message}`, context);
}

// The format's writers, shared by BatchEncoder.record() and the ingest worker's fused writers
// (src/ingest-worker/fused-writer.ts), which must leave exactly the same bytes.

/** Unsigned LEB128 of an integer 0 ≤ v < 2^56 at buf[p]; returns the position after it. Uses 32-bit operations on two 28-bit halves. */
export function putVarint(buf: Uint8Array, p: number, v: number): number {
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
export function putNum(buf: Uint8Array, view: DataView, p: number, v: number): number {
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

export function putNumOther(buf: Uint8Array, view: DataView, p: number, v: number): number {
  if (Number.isSafeInteger(v) && v >= 0 && (v !== 0 || 1 / v > 0)) return putVarint(buf, p, v * 2);
  buf[p++] = 1;
  view.setFloat64(p, v, true);
  return p + 8;
}

/** Writes zz(d) (see the format) at buf[p]; returns the position after it. */
export function putZigzag(buf: Uint8Array, p: number, d: number): number {
  return putVarint(buf, p, d >= 0 ? d * 2 : -d * 2 - 1);
}

/** Writes an address (IPv4 or IPv6, as the bitmap already says) at buf[p]; returns the position after it. */
export function putAddr(buf: Uint8Array, view: DataView, p: number, a: IpAddr): number {
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
export function putCounter(buf: Uint8Array, view: DataView, p: number, c: Counter): number {
  return typeof c === 'number' ? putNum(buf, view, p, c) : putBigCounter(view, p, c);
}

function putBigCounter(view: DataView, p: number, c: bigint): number {
  if (c < 0n || c > 0xffffffffffffffffn) throw formatError('counter outside the unsigned 64-bit range');
  view.setBigUint64(p, c, true);
  return p + 8;
}
