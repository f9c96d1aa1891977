import type { Counter, RawRecord } from '../flow/flow-record.js';
import { ipv4ToString, ipv6ToString } from '../flow/ip.js';
import { readCounter64, readUnsignedN } from './byte-reader.js';
import type { IeDataType } from './ie/ie-table.js';
import { lookupV9Field, lookupIe } from './ie/ie-table.js';
import { readVarLength, VARIABLE_LENGTH } from './template/field-mapping.js';

/**
 * The full element set of one IPFIX / NetFlow v9 data record, decoded on demand from the
 * RawRecord kept on each FlowRecord (the hot path decodes only what FlowRecord needs).
 */

/** A decoded value. Integers are exact (bigint beyond 2^53 - 1 / below -(2^53 - 1)). */
export type ElementValue = number | bigint | string | boolean | Uint8Array | null;

export interface DecodedElement {
  readonly id: number;
  readonly enterprise: number;
  /** IE name from the table, or `ie<enterprise>.<id>` when the table does not know it. */
  readonly name: string;
  /** Abstract data type used to decode (octetArray for unknown elements or unexpected lengths). */
  readonly type: IeDataType;
  /**
   * unsigned/signed → Counter-like exact integer; float → number; boolean → boolean (RFC 7011
   * §6.1.5: 1 true, 2 false, else null); macAddress → "aa:bb:cc:dd:ee:ff"; string → UTF-8 text;
   * ipv4/ipv6Address → text; dateTime* → Unix ms (fractional for micro/nanoseconds);
   * octetArray and the list types (RFC 6313, not expanded) → the bytes (a view, not a copy).
   */
  readonly value: ElementValue;
}

const NTP_UNIX_OFFSET_S = 2208988800;
const TWO_POW_32 = 4294967296;
const utf8 = new TextDecoder('utf-8');

function hex2(b: number): string {
  return b.toString(16).padStart(2, '0');
}

function signed(view: DataView, at: number, len: number): number | bigint {
  const u = readUnsignedN(view, at, len);
  const bits = BigInt(len * 8);
  const v = BigInt.asIntN(Number(bits), BigInt(u));
  return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
}

function decodeValue(type: IeDataType, bytes: Uint8Array, view: DataView, at: number, len: number): { type: IeDataType; value: ElementValue } {
  switch (type) {
    case 'unsigned8':
    case 'unsigned16':
    case 'unsigned32':
    case 'unsigned64':
      if (len >= 1 && len <= 8) return { type, value: readUnsignedN(view, at, len) };
      break;
    case 'signed8':
    case 'signed16':
    case 'signed32':
    case 'signed64':
      if (len >= 1 && len <= 8) return { type, value: signed(view, at, len) };
      break;
    case 'float32':
    case 'float64':
      if (len === 4) return { type, value: view.getFloat32(at) };
      if (len === 8) return { type, value: view.getFloat64(at) };
      break;
    case 'boolean':
      if (len === 1) {
        const b = view.getUint8(at);
        return { type, value: b === 1 ? true : b === 2 ? false : null };
      }
      break;
    case 'macAddress':
      if (len === 6) return { type, value: Array.from(bytes.subarray(at, at + 6), hex2).join(':') };
      break;
    case 'string': {
      // Fixed-length string fields are NUL-padded by exporters (Cisco NBAR, H3C): trailing NULs are padding.
      let stop = at + len;
      while (stop > at && bytes[stop - 1] === 0) stop--;
      return { type, value: utf8.decode(bytes.subarray(at, stop)) };
    }
    case 'ipv4Address':
      if (len === 4) return { type, value: ipv4ToString(view.getUint32(at)) };
      break;
    case 'ipv6Address':
      if (len === 16) return { type, value: ipv6ToString(bytes.subarray(at, at + 16)) };
      break;
    case 'dateTimeSeconds':
      if (len === 4) return { type, value: view.getUint32(at) * 1000 };
      break;
    case 'dateTimeMilliseconds':
      if (len === 8) {
        const v: Counter = readCounter64(view, at);
        return { type, value: v };
      }
      break;
    case 'dateTimeMicroseconds':
    case 'dateTimeNanoseconds':
      if (len === 8) return { type, value: (view.getUint32(at) - NTP_UNIX_OFFSET_S) * 1000 + (view.getUint32(at + 4) * 1000) / TWO_POW_32 };
      break;
    case 'octetArray':
    case 'basicList':
    case 'subTemplateList':
    case 'subTemplateMultiList':
      return { type, value: bytes.subarray(at, at + len) };
  }
  return { type: 'octetArray', value: bytes.subarray(at, at + len) };
}

/**
 * Decodes every element of `raw`. Never throws: a record whose variable-length field runs
 * past its bytes yields the elements before it.
 */
export function decodeElements(raw: RawRecord): DecodedElement[] {
  const bytes = raw.bytes;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: DecodedElement[] = [];
  let q = 0;
  const end = bytes.length;
  for (const f of raw.fields) {
    let n = f.length;
    if (n === VARIABLE_LENGTH) {
      const v = readVarLength(view, q, end);
      if (v < 0) break;
      n = v >>> 2;
      q += v & 3;
    }
    if (q + n > end) break;
    const ie = f.enterprise === 0 ? lookupV9Field(f.id) : lookupIe(f.enterprise, f.id);
    const { type, value } = decodeValue(ie?.type ?? 'octetArray', bytes, view, q, n);
    out.push({ id: f.id, enterprise: f.enterprise, name: ie?.name ?? `ie${f.enterprise}.${f.id}`, type, value });
    q += n;
  }
  return out;
}
