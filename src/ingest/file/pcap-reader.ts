/**
 * Classic libpcap files (pcap-savefile(5); draft-ietf-opsawg-pcap): a 24-byte global header
 * then records of a 16-byte header (ts_sec, ts_frac, incl_len, orig_len) plus incl_len bytes
 * of frame. The magic gives the byte order (a1b2c3d4 or its byte swap) and the timestamp
 * resolution (a1b2c3d4 microseconds, a1b23c4d nanoseconds).
 *
 * From each frame the reader takes the UDP payload of an IPv4/IPv6 packet, in file order,
 * with the IP source as the exporter and the capture time as receivedAtMs. Fragments are
 * skipped and counted (a flow datagram split by IP fragmentation cannot be decoded from its
 * first fragment alone, and this tool does not reassemble). pcapng files (what Wireshark and
 * dumpcap write by default) are read by pcapng-reader.ts through the same per-frame step.
 */
import { DecodeError, DecodeErrorCode } from '../../flow/errors.js';
import type { CaptureReadOptions, CaptureReadResult } from './capture-types.js';
import { be32, isSupportedLinkType, newFrameSink, takeFrame } from './link-frame.js';
import { readPcapng } from './pcapng-reader.js';

const PCAP_MAGIC_US = 0xa1b2c3d4;
const PCAP_MAGIC_NS = 0xa1b23c4d;
const PCAPNG_MAGIC = 0x0a0d0d0a;
const PCAP_GLOBAL_HEADER_BYTES = 24;
const PCAP_RECORD_HEADER_BYTES = 16;
/** libpcap's MAXIMUM_SNAPLEN: no valid record is longer; a larger incl_len means a corrupt file. */
const PCAP_MAX_RECORD_BYTES = 262144;

export function isPcap(bytes: Uint8Array): boolean {
  if (bytes.length < 4) return false;
  const m = be32(bytes, 0);
  const swapped = ((m & 0xff) << 24 | (m & 0xff00) << 8 | (m >>> 8) & 0xff00 | m >>> 24) >>> 0;
  return m === PCAP_MAGIC_US || m === PCAP_MAGIC_NS || swapped === PCAP_MAGIC_US || swapped === PCAP_MAGIC_NS;
}

export function isPcapng(bytes: Uint8Array): boolean {
  return bytes.length >= 4 && be32(bytes, 0) === PCAPNG_MAGIC;
}

export function readPcap(bytes: Uint8Array, opts: CaptureReadOptions): CaptureReadResult {
  const sink = newFrameSink();
  const { problems } = sink;
  const result = (): CaptureReadResult => ({ format: 'pcap', ...sink });

  if (isPcapng(bytes)) return readPcapng(bytes, opts);
  if (bytes.length < PCAP_GLOBAL_HEADER_BYTES) {
    problems.push(new DecodeError(DecodeErrorCode.Truncated, `truncated pcap: global header needs ${PCAP_GLOBAL_HEADER_BYTES} bytes, file has ${bytes.length}`, 0));
    return result();
  }
  if (!isPcap(bytes)) {
    problems.push(new DecodeError(DecodeErrorCode.BadFile, `not a pcap file (magic 0x${be32(bytes, 0).toString(16)})`, 0));
    return result();
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const magicBe = view.getUint32(0, false);
  const littleEndian = magicBe !== PCAP_MAGIC_US && magicBe !== PCAP_MAGIC_NS;
  const magic = view.getUint32(0, littleEndian);
  const fracPerMs = magic === PCAP_MAGIC_NS ? 1_000_000 : 1000;
  // The link type is the low 16 bits of the last header word (the high bits carry FCS info).
  const linkType = view.getUint32(20, littleEndian) & 0xffff;
  if (!isSupportedLinkType(linkType)) {
    problems.push(new DecodeError(DecodeErrorCode.BadFile, `unsupported pcap link type ${linkType} (supported: Ethernet, Linux SLL/SLL2, raw IP, loopback)`, 20, { linkType }));
    return result();
  }

  let pos = PCAP_GLOBAL_HEADER_BYTES;
  while (pos < bytes.length) {
    if (bytes.length - pos < PCAP_RECORD_HEADER_BYTES) {
      problems.push(new DecodeError(DecodeErrorCode.Truncated, `truncated pcap: record header needs ${PCAP_RECORD_HEADER_BYTES} bytes, ${bytes.length - pos} left`, pos));
      break;
    }
    const tsSec = view.getUint32(pos, littleEndian);
    const tsFrac = view.getUint32(pos + 4, littleEndian);
    const inclLen = view.getUint32(pos + 8, littleEndian);
    const origLen = view.getUint32(pos + 12, littleEndian);
    if (inclLen > PCAP_MAX_RECORD_BYTES) {
      problems.push(new DecodeError(DecodeErrorCode.BadLength, `pcap record length ${inclLen} exceeds ${PCAP_MAX_RECORD_BYTES}: corrupt file`, pos + 8, { length: inclLen }));
      break;
    }
    const frameStart = pos + PCAP_RECORD_HEADER_BYTES;
    if (frameStart + inclLen > bytes.length) {
      problems.push(new DecodeError(DecodeErrorCode.Truncated, `truncated pcap: record of ${inclLen} bytes, ${bytes.length - frameStart} left`, pos, { length: inclLen }));
      break;
    }
    const frame = bytes.subarray(frameStart, frameStart + inclLen);
    pos = frameStart + inclLen;

    takeFrame(sink, bytes, frame, frameStart, origLen, linkType, tsSec * 1000 + Math.floor(tsFrac / fracPerMs), opts);
  }
  return result();
}
