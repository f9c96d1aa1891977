import { DecodeError, DecodeErrorCode } from '../../flow/errors.js';
import type { ExporterPacket } from '../../flow/exporter-packet.js';
import type { FlowRecord } from '../../flow/flow-record.js';
import { newFlowRecord } from '../../flow/flow-record.js';
import { ByteReader } from '../byte-reader.js';

/**
 * NetFlow v5 (Cisco "NetFlow Export Datagram Format", version 5): a fixed 24-byte header
 * followed by `count` fixed 48-byte flow records. There is no length field: the count is the
 * only framing, so it is checked against the datagram length before any record is read.
 *
 * Header (all fields big-endian):
 *   0 version u16 (= 5)       2 count u16 (1..30)        4 sysUptime u32 (ms)
 *   8 unix_secs u32          12 unix_nsecs u32          16 flow_sequence u32
 *  20 engine_type u8         21 engine_id u8            22 sampling_interval u16
 *     (2 high bits: sampling mode; 14 low bits: interval)
 * Record:
 *   0 srcaddr u32   4 dstaddr u32   8 nexthop u32  12 input u16  14 output u16
 *  16 dPkts u32    20 dOctets u32  24 first u32   28 last u32   32 srcport u16
 *  34 dstport u16  36 pad1 u8      37 tcp_flags u8 38 prot u8    39 tos u8
 *  40 src_as u16   42 dst_as u16   44 src_mask u8 45 dst_mask u8 46 pad2 u16
 */

export const NETFLOW5_VERSION = 5;
export const NETFLOW5_HEADER_BYTES = 24;
export const NETFLOW5_RECORD_BYTES = 48;
/** Cisco's limit: a v5 datagram carries at most 30 records (24 + 30 × 48 = 1464 bytes). */
export const NETFLOW5_MAX_RECORDS = 30;
/** The 14 low bits of the header's sampling field hold the interval. */
const SAMPLING_INTERVAL_MASK = 0x3fff;
/** first/last and sysUptime are u32 milliseconds that wrap after 2^32 ms (~49.7 days). */
const UPTIME_MODULUS = 0x100000000;
const NS_PER_MS = 1_000_000;

export interface Netflow5Header {
  sequence: number;
  count: number;
  samplingInterval: number;
  /** The 2-bit sampling mode from the header (0 none/unspecified, 1 deterministic, 2 random). */
  samplingMode: number;
  /** engine_type << 8 | engine_id. */
  observationDomainId: number;
  /** sysUptime at export, ms. */
  uptimeMs: number;
  /** Export time, Unix ms (unix_secs and unix_nsecs). */
  exportTimeMs: number;
}

/** Total datagram length for a v5 datagram of `count` records. */
export function netflow5Length(count: number): number {
  return NETFLOW5_HEADER_BYTES + count * NETFLOW5_RECORD_BYTES;
}

/**
 * Converts a sysUptime-relative switching time to absolute Unix ms. The difference is taken
 * modulo 2^32 because sysUptime wraps: a `first` a little above `sysUptime` means the
 * counter wrapped between flow start and export (softflowd writes 0xffffffff for a flow
 * that began 1 ms before uptime 0), never a flow that starts after its own export.
 */
function absoluteMs(exportTimeMs: number, uptimeMs: number, switched: number): number {
  const ageMs = (uptimeMs - switched + UPTIME_MODULUS) % UPTIME_MODULUS;
  return exportTimeMs - ageMs;
}

/**
 * Decodes one NetFlow v5 datagram, appending one FlowRecord per flow record to `out`.
 * Throws DecodeError (and appends nothing) when the header is malformed or the count does not
 * fit the datagram. Bytes after count × 48 (padding some exporters add) are ignored.
 */
export function decodeNetflow5(packet: ExporterPacket, out: FlowRecord[]): Netflow5Header {
  const payload = packet.payload;
  const header = readNetflow5Header(payload);
  // readNetflow5Header proved 24 + count × 48 ≤ payload.length: every read below is in bounds.
  const v = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  const exportTime = Math.floor(header.exportTimeMs / 1000);
  for (let i = 0, at = NETFLOW5_HEADER_BYTES; i < header.count; i++, at += NETFLOW5_RECORD_BYTES) {
    const rec = newFlowRecord('netflow', NETFLOW5_VERSION, packet.transport, packet.exporter, packet.identity, header.observationDomainId, exportTime);
    rec.ipVersion = 4;
    rec.srcAddr = v.getUint32(at);
    rec.dstAddr = v.getUint32(at + 4);
    rec.nextHop = v.getUint32(at + 8);
    rec.inputIf = v.getUint16(at + 12);
    rec.outputIf = v.getUint16(at + 14);
    rec.packets = v.getUint32(at + 16);
    rec.octets = v.getUint32(at + 20);
    rec.startMs = absoluteMs(header.exportTimeMs, header.uptimeMs, v.getUint32(at + 24));
    rec.endMs = absoluteMs(header.exportTimeMs, header.uptimeMs, v.getUint32(at + 28));
    rec.srcPort = v.getUint16(at + 32);
    const dstPort = v.getUint16(at + 34);
    rec.dstPort = dstPort;
    // at + 36: pad1
    rec.tcpFlags = v.getUint8(at + 37);
    const protocol = v.getUint8(at + 38);
    rec.protocol = protocol;
    rec.tos = v.getUint8(at + 39);
    rec.srcAs = v.getUint16(at + 40);
    rec.dstAs = v.getUint16(at + 42);
    rec.srcMask = v.getUint8(at + 44);
    rec.dstMask = v.getUint8(at + 45);
    // at + 46: pad2
    rec.uptimeMs = header.uptimeMs;
    rec.samplingInterval = header.samplingInterval;
    if (protocol === 1 || protocol === 58) {
      // v5 has no ICMP fields; exporters put type × 256 + code in the destination port.
      rec.icmpType = dstPort >>> 8;
      rec.icmpCode = dstPort & 0xff;
    }
    out.push(rec);
  }
  return header;
}

/** Reads and validates the v5 header (version, count vs. datagram length). */
export function readNetflow5Header(payload: Uint8Array): Netflow5Header {
  const r = new ByteReader(payload);
  r.need(NETFLOW5_HEADER_BYTES, 'NetFlow v5 header');
  const version = r.u16();
  if (version !== NETFLOW5_VERSION) {
    throw new DecodeError(DecodeErrorCode.BadVersion, `not a NetFlow v5 datagram (version ${version})`, 0, { version });
  }
  const count = r.u16();
  const uptimeMs = r.u32();
  const unixSecs = r.u32();
  const unixNsecs = r.u32();
  const sequence = r.u32();
  const engineType = r.u8();
  const engineId = r.u8();
  const sampling = r.u16();
  if (count > NETFLOW5_MAX_RECORDS) {
    throw new DecodeError(DecodeErrorCode.BadCount, `NetFlow v5 count ${count} exceeds the maximum of ${NETFLOW5_MAX_RECORDS}`, 2, { count });
  }
  const need = netflow5Length(count);
  if (need > payload.length) {
    throw new DecodeError(
      DecodeErrorCode.BadCount,
      `NetFlow v5 count ${count} needs ${need} bytes, datagram has ${payload.length}`,
      2,
      { count, length: payload.length },
    );
  }
  const interval = sampling & SAMPLING_INTERVAL_MASK;
  return {
    sequence,
    count,
    // An interval of 0 means unsampled; Juniper sets the interval with mode 0, so the mode
    // bits do not decide whether the interval applies.
    samplingInterval: interval === 0 ? 1 : interval,
    samplingMode: sampling >>> 14,
    observationDomainId: (engineType << 8) | engineId,
    uptimeMs,
    exportTimeMs: unixSecs * 1000 + Math.floor(unixNsecs / NS_PER_MS),
  };
}
