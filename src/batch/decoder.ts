import type { Counter, FlowRecord, FlowType, IpAddr, Transport } from '../flow/flow-record.js';
import type { PseudonymKeyStamp } from '../flow/privacy.js';
import {
  BATCH_FORMAT_VERSION, BATCH_FORMAT_VERSION_STAMPED, STAMP_FINGERPRINT_BYTES, BIGINT_OCTETS, BIGINT_PACKETS, HEAD_BITMAP, HEAD_CONTEXT, HEAD_TIME_DELTA, MAX_STRING_BYTES, PRESENT_BGPNH, PRESENT_DST,
  PRESENT_END, PRESENT_IDENTITY, PRESENT_NH, PRESENT_SRC, PRESENT_START, PRESENT_UPTIME, V6_BGPNH, V6_DST, V6_NH, V6_SRC, formatError,
} from './format.js';

/** The batch decoder (format in format.ts): bounds-checked, every count capped before allocation. */

const utf8Decoder = new TextDecoder('utf-8', { fatal: true });

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
  readHeader(r);
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

/** Reads the version byte and, in a stamped batch, the stamp; leaves `r` at the record count. */
function readHeader(r: BatchReader): PseudonymKeyStamp | null {
  const version = r.u8();
  if (version === BATCH_FORMAT_VERSION) return null;
  if (version !== BATCH_FORMAT_VERSION_STAMPED) throw formatError('unsupported batch format version', { version });
  const startS = r.varint();
  const lengthS = r.varint();
  r.need(STAMP_FINGERPRINT_BYTES);
  const fingerprint = new Uint8Array(STAMP_FINGERPRINT_BYTES);
  for (let i = 0; i < STAMP_FINGERPRINT_BYTES; i++) fingerprint[i] = r.u8();
  return { startS, lengthS, fingerprint };
}

/** The record count in a serialized batch's header (without decoding it). */
export function batchRecordCount(bytes: Uint8Array): number {
  const r = new BatchReader(bytes);
  readHeader(r);
  return r.varint();
}

/** Which pseudonymisation key wrote the batch's addresses; null when they are as decoded (version 1). */
export function batchKeyStamp(bytes: Uint8Array): PseudonymKeyStamp | null {
  return readHeader(new BatchReader(bytes));
}

