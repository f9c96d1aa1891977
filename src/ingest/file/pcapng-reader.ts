/**
 * pcapng files (draft-ietf-opsawg-pcapng; what Wireshark and dumpcap write by default): a
 * sequence of blocks, each `type u32 | total length u32 | body | total length u32`, in the
 * byte order the Section Header Block announces. A file may hold several sections (each
 * restarts the interface list and may change byte order) and several interfaces, each with
 * its own link type and timestamp resolution.
 *
 * Blocks read: Section Header (0x0A0D0D0A), Interface Description (1: link type, if_tsresol),
 * Enhanced Packet (6), Simple Packet (3: no interface id or time; interface 0, the file's
 * first time or the default), the obsolete Packet Block (2). Every other block is skipped by
 * its length. Frames go through the same per-frame step as classic pcap (takeFrame): UDP
 * payloads become packets with the IP source as exporter and the capture time as receivedAtMs.
 */
import { DecodeError, DecodeErrorCode } from '../../flow/errors.js';
import type { CaptureReadOptions, CaptureReadResult } from './capture-types.js';
import { isSupportedLinkType, newFrameSink, takeFrame } from './link-frame.js';

const BLOCK_SHB = 0x0a0d0d0a;
const BLOCK_IDB = 1;
const BLOCK_PB = 2;
const BLOCK_SPB = 3;
const BLOCK_EPB = 6;
const BYTE_ORDER_MAGIC = 0x1a2b3c4d;
/** Type, total length, trailing total length. */
const BLOCK_OVERHEAD_BYTES = 12;
/** Byte-order magic, version, section length. */
const SHB_BODY_BYTES = 16;
const IDB_BODY_BYTES = 8;
const EPB_BODY_BYTES = 20;
const PB_BODY_BYTES = 20;
const SPB_BODY_BYTES = 4;
/** Option if_tsresol (code 9): 1 byte, MSB clear → 10^-n s, set → 2^-n s. */
const OPT_IF_TSRESOL = 9;
const OPT_END = 0;
/** Interfaces one section may declare; more is not a capture, it is an attack on memory. */
const MAX_INTERFACES = 4096;
/** Largest block believed (libpcap's pcapng reader refuses blocks over 16 MiB). */
const MAX_BLOCK_BYTES = 16 * 1024 * 1024;
/** Default resolution: microseconds. */
const DEFAULT_UNITS_PER_SECOND = 1_000_000n;

interface Interface {
  readonly linkType: number;
  readonly unitsPerSecond: bigint;
}

function pad4(n: number): number {
  return (n + 3) & ~3;
}

/** Units per second of an if_tsresol value, or null when it is not representable (2^-n with n > 62, 10^-n with n > 18). */
function resolution(v: number): bigint | null {
  const n = v & 0x7f;
  if ((v & 0x80) !== 0) return n <= 62 ? 1n << BigInt(n) : null;
  return n <= 18 ? 10n ** BigInt(n) : null;
}

export function readPcapng(bytes: Uint8Array, opts: CaptureReadOptions): CaptureReadResult {
  const sink = newFrameSink();
  const { problems } = sink;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let le = true;
  let interfaces: Interface[] = [];
  let sectionSeen = false;
  let pos = 0;
  while (pos < bytes.length) {
    if (bytes.length - pos < BLOCK_OVERHEAD_BYTES) {
      problems.push(new DecodeError(DecodeErrorCode.Truncated, `truncated pcapng: block header needs ${BLOCK_OVERHEAD_BYTES} bytes, ${bytes.length - pos} left`, pos));
      break;
    }
    const rawType = view.getUint32(pos, false);
    if (rawType === BLOCK_SHB) {
      // The byte order is known only after the byte-order magic of this section.
      if (bytes.length - pos < BLOCK_OVERHEAD_BYTES + SHB_BODY_BYTES) {
        problems.push(new DecodeError(DecodeErrorCode.Truncated, 'truncated pcapng section header', pos));
        break;
      }
      const magicLe = view.getUint32(pos + 8, true);
      if (magicLe === BYTE_ORDER_MAGIC) le = true;
      else if (view.getUint32(pos + 8, false) === BYTE_ORDER_MAGIC) le = false;
      else {
        problems.push(new DecodeError(DecodeErrorCode.BadFile, `pcapng section header with byte-order magic 0x${magicLe.toString(16)}: corrupt file`, pos + 8));
        break;
      }
      interfaces = [];
      sectionSeen = true;
    } else if (!sectionSeen) {
      problems.push(new DecodeError(DecodeErrorCode.BadFile, 'pcapng file does not start with a section header block', pos));
      break;
    }
    const type = view.getUint32(pos, le);
    const total = view.getUint32(pos + 4, le);
    if (total < BLOCK_OVERHEAD_BYTES || total % 4 !== 0 || total > MAX_BLOCK_BYTES) {
      problems.push(new DecodeError(DecodeErrorCode.BadLength, `pcapng block length ${total} is not a multiple of 4 between ${BLOCK_OVERHEAD_BYTES} and ${MAX_BLOCK_BYTES}: corrupt file`, pos + 4, { length: total }));
      break;
    }
    if (pos + total > bytes.length) {
      problems.push(new DecodeError(DecodeErrorCode.Truncated, `truncated pcapng: block of ${total} bytes, ${bytes.length - pos} left`, pos, { length: total }));
      break;
    }
    if (view.getUint32(pos + total - 4, le) !== total) {
      problems.push(new DecodeError(DecodeErrorCode.BadLength, `pcapng block lengths disagree (${total} at the start, ${view.getUint32(pos + total - 4, le)} at the end): corrupt file`, pos + total - 4));
      break;
    }
    const body = pos + 8;
    const bodyEnd = pos + total - 4;
    switch (type) {
      case BLOCK_IDB: {
        if (bodyEnd - body < IDB_BODY_BYTES) {
          problems.push(new DecodeError(DecodeErrorCode.Truncated, 'pcapng interface description block too short', pos));
          break;
        }
        if (interfaces.length >= MAX_INTERFACES) {
          problems.push(new DecodeError(DecodeErrorCode.BadCount, `more than ${MAX_INTERFACES} interfaces in one pcapng section`, pos, { count: interfaces.length }));
          break;
        }
        const linkType = view.getUint16(body, le);
        let unitsPerSecond: bigint | null = DEFAULT_UNITS_PER_SECOND;
        // Options: code u16, length u16, value padded to 4 bytes.
        for (let o = body + IDB_BODY_BYTES; o + 4 <= bodyEnd; ) {
          const code = view.getUint16(o, le);
          const len = view.getUint16(o + 2, le);
          if (code === OPT_END || o + 4 + len > bodyEnd) break;
          if (code === OPT_IF_TSRESOL && len >= 1) unitsPerSecond = resolution(bytes[o + 4] ?? 6);
          o += 4 + pad4(len);
        }
        if (unitsPerSecond === null) {
          problems.push(new DecodeError(DecodeErrorCode.BadFile, `pcapng interface ${interfaces.length}: timestamp resolution not representable`, pos));
          unitsPerSecond = DEFAULT_UNITS_PER_SECOND;
        }
        interfaces.push({ linkType, unitsPerSecond });
        if (!isSupportedLinkType(linkType)) {
          problems.push(new DecodeError(DecodeErrorCode.BadFile, `pcapng interface ${interfaces.length - 1}: unsupported link type ${linkType} (supported: Ethernet, Linux SLL/SLL2, raw IP, loopback); its packets are skipped`, pos, { linkType }));
        }
        break;
      }
      case BLOCK_EPB:
      case BLOCK_PB: {
        const need = type === BLOCK_EPB ? EPB_BODY_BYTES : PB_BODY_BYTES;
        if (bodyEnd - body < need) {
          problems.push(new DecodeError(DecodeErrorCode.Truncated, 'pcapng packet block too short', pos));
          break;
        }
        const ifId = type === BLOCK_EPB ? view.getUint32(body, le) : view.getUint16(body, le);
        const tsHigh = view.getUint32(body + 4, le);
        const tsLow = view.getUint32(body + 8, le);
        const capLen = view.getUint32(body + 12, le);
        const origLen = view.getUint32(body + 16, le);
        const dataStart = body + need;
        if (dataStart + capLen > bodyEnd) {
          problems.push(new DecodeError(DecodeErrorCode.BadLength, `pcapng packet of ${capLen} captured bytes runs past its block`, pos + 8 + 12, { length: capLen }));
          break;
        }
        const iface = interfaces[ifId];
        if (iface === undefined) {
          problems.push(new DecodeError(DecodeErrorCode.BadFile, `pcapng packet names interface ${ifId}, which the section has not described`, pos + 8, { interfaceId: ifId }));
          break;
        }
        if (!isSupportedLinkType(iface.linkType)) break;
        const ts = (BigInt(tsHigh) << 32n) | BigInt(tsLow);
        const ms = Number((ts * 1000n) / iface.unitsPerSecond);
        takeFrame(sink, bytes, bytes.subarray(dataStart, dataStart + capLen), dataStart, origLen, iface.linkType, ms, opts);
        break;
      }
      case BLOCK_SPB: {
        const iface = interfaces[0];
        if (iface === undefined || bodyEnd - body < SPB_BODY_BYTES) {
          problems.push(new DecodeError(DecodeErrorCode.BadFile, 'pcapng simple packet block without an interface 0', pos));
          break;
        }
        if (!isSupportedLinkType(iface.linkType)) break;
        const origLen = view.getUint32(body, le);
        const dataStart = body + SPB_BODY_BYTES;
        const capLen = Math.min(origLen, bodyEnd - dataStart);
        // A simple packet block carries no time: the capture's default time.
        takeFrame(sink, bytes, bytes.subarray(dataStart, dataStart + capLen), dataStart, origLen, iface.linkType, opts.defaultReceivedAtMs, opts);
        break;
      }
      default:
        break;
    }
    pos += total;
  }
  return { format: 'pcap', ...sink };
}
