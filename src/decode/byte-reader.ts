import { DecodeError, DecodeErrorCode } from '../flow/errors.js';
import type { Counter } from '../flow/flow-record.js';

/**
 * A bounds-checked big-endian reader over a window [start, end) of a byte array. Sub-readers
 * (`sub(len)`) are zero-copy views cut to a declared length (a set, a record, a sample), so a
 * lying inner length can never read past its parent: the parent checks the length first.
 * Every read checks the remaining length and throws a DecodeError carrying the absolute
 * offset within the original message, never a RangeError.
 */
export class ByteReader {
  readonly buf: Uint8Array;
  readonly view: DataView;
  /** Absolute start of this window within `buf`. */
  readonly start: number;
  /** Absolute end (exclusive) of this window within `buf`. */
  readonly end: number;
  /** Absolute read position within `buf`. */
  pos: number;
  /** Offset of `buf`'s byte 0 within the message, for error offsets when buf is itself a slice. */
  readonly baseOffset: number;

  constructor(buf: Uint8Array, start = 0, end = buf.length, baseOffset = 0, view?: DataView) {
    if (start < 0 || end > buf.length || start > end) {
      throw new DecodeError(DecodeErrorCode.Truncated, `reader window [${start}, ${end}) outside ${buf.length} bytes`, baseOffset + start);
    }
    this.buf = buf;
    this.view = view ?? new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    this.start = start;
    this.end = end;
    this.pos = start;
    this.baseOffset = baseOffset;
  }

  /** Bytes left in this window. */
  get remaining(): number {
    return this.end - this.pos;
  }

  /** Offset of the read position relative to the start of the message (for errors and tools). */
  get offset(): number {
    return this.baseOffset + this.pos;
  }

  /** Throws Truncated unless `n` more bytes are available. */
  need(n: number, what: string): void {
    if (n < 0 || this.pos + n > this.end) {
      throw new DecodeError(DecodeErrorCode.Truncated, `${what}: need ${n} bytes, ${this.end - this.pos} left`, this.offset);
    }
  }

  u8(what = 'u8'): number {
    this.need(1, what);
    return this.view.getUint8(this.pos++);
  }

  u16(what = 'u16'): number {
    this.need(2, what);
    const v = this.view.getUint16(this.pos);
    this.pos += 2;
    return v;
  }

  u32(what = 'u32'): number {
    this.need(4, what);
    const v = this.view.getUint32(this.pos);
    this.pos += 4;
    return v;
  }

  /** Unsigned 64-bit as an exact Counter (number while safe, bigint beyond). */
  u64(what = 'u64'): Counter {
    this.need(8, what);
    const v = readCounter64(this.view, this.pos);
    this.pos += 8;
    return v;
  }

  skip(n: number, what = 'skip'): void {
    this.need(n, what);
    this.pos += n;
  }

  /** A zero-copy view of the next n bytes; advances past them. */
  bytes(n: number, what = 'bytes'): Uint8Array {
    this.need(n, what);
    const b = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return b;
  }

  /** A sub-reader over the next n bytes (checked against this window); advances past them. */
  sub(n: number, what = 'sub-reader'): ByteReader {
    this.need(n, what);
    const r = new ByteReader(this.buf, this.pos, this.pos + n, this.baseOffset, this.view);
    this.pos += n;
    return r;
  }
}

/** 2^53 expressed in the high 32-bit word: a u64 whose high word is below this is a safe integer. */
const SAFE_HIGH_WORD_LIMIT = 0x200000;

/** Reads an unsigned 64-bit big-endian value exactly: a number when ≤ 2^53 - 1, else a bigint. */
export function readCounter64(view: DataView, pos: number): Counter {
  const hi = view.getUint32(pos);
  const lo = view.getUint32(pos + 4);
  if (hi < SAFE_HIGH_WORD_LIMIT) return hi * 0x100000000 + lo;
  return (BigInt(hi) << 32n) | BigInt(lo);
}

/**
 * Reads an unsigned big-endian integer of 1..8 bytes (reduced-size encoding, RFC 7011 §6.2)
 * exactly, as a Counter. The caller guarantees the bytes are in bounds.
 */
export function readUnsignedN(view: DataView, pos: number, len: number): Counter {
  switch (len) {
    case 1:
      return view.getUint8(pos);
    case 2:
      return view.getUint16(pos);
    case 4:
      return view.getUint32(pos);
    case 8:
      return readCounter64(view, pos);
    default: {
      if (len <= 6) {
        let v = 0;
        for (let i = 0; i < len; i++) v = v * 256 + view.getUint8(pos + i);
        return v;
      }
      let v = 0n;
      for (let i = 0; i < len; i++) v = (v << 8n) | BigInt(view.getUint8(pos + i));
      return v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
    }
  }
}
