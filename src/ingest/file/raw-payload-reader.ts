/**
 * Raw `.dat` / `.bin` captures: the payload of one UDP datagram without IP/UDP headers, as
 * other decoders' test suites store them. Two framings glue several messages into one file,
 * and both carry enough to split them again:
 *   - IPFIX (version 10): each message has its own Length (RFC 7011 §3.1);
 *   - NetFlow v5: each datagram is 24 + count × 48 bytes.
 * NetFlow v9 (no message length, RFC 3954 §5.1) and sFlow (one datagram) stay whole. When a
 * split point does not make sense (length 0, count too large) the rest stays one payload, so
 * the decoder reports the problem with its offset instead of it being hidden here.
 */
import { DecodeError, DecodeErrorCode } from '../../flow/errors.js';
import type { CaptureReadOptions, CaptureReadResult, CapturedPacket } from './capture-types.js';
import { addresslessPacket } from './file-packet.js';
import { IPFIX_HEADER_BYTES, IPFIX_VERSION } from './ipfix-file-reader.js';

const NETFLOW5_VERSION = 5;
const NETFLOW5_HEADER_BYTES = 24;
const NETFLOW5_RECORD_BYTES = 48;
/** Cisco's v5 maximum records per datagram. */
const NETFLOW5_MAX_RECORDS = 30;

function u16(b: Uint8Array, i: number): number {
  return ((b[i] ?? 0) << 8) | (b[i + 1] ?? 0);
}

/** Length of the message starting at `pos` when it can be framed by its own fields, else null. */
function framedLength(bytes: Uint8Array, pos: number, version: number): number | null {
  const left = bytes.length - pos;
  if (left < 4 || u16(bytes, pos) !== version) return null;
  if (version === IPFIX_VERSION) {
    const len = u16(bytes, pos + 2);
    return len >= IPFIX_HEADER_BYTES && len <= left ? len : null;
  }
  const count = u16(bytes, pos + 2);
  const len = NETFLOW5_HEADER_BYTES + count * NETFLOW5_RECORD_BYTES;
  return count <= NETFLOW5_MAX_RECORDS && len <= left ? len : null;
}

function allZero(bytes: Uint8Array, from: number): boolean {
  for (let i = from; i < bytes.length; i++) if (bytes[i] !== 0) return false;
  return true;
}

export function splitRawPayload(bytes: Uint8Array, opts: CaptureReadOptions): CaptureReadResult {
  const packets: CapturedPacket[] = [];
  const problems: DecodeError[] = [];
  const emit = (from: number, to: number): void => {
    packets.push(addresslessPacket(bytes, from, to, opts));
  };
  if (bytes.length === 0) {
    problems.push(new DecodeError(DecodeErrorCode.BadFile, 'empty capture file', 0));
    return { format: 'raw', packets, problems, ipFragmentsSkipped: 0, nonUdpSkipped: 0 };
  }
  const version = bytes.length >= 2 ? u16(bytes, 0) : -1;
  if (version !== IPFIX_VERSION && version !== NETFLOW5_VERSION) {
    emit(0, bytes.length);
    return { format: 'raw', packets, problems, ipFragmentsSkipped: 0, nonUdpSkipped: 0 };
  }
  let pos = 0;
  while (pos < bytes.length) {
    const len = framedLength(bytes, pos, version);
    if (len === null) {
      // Zero padding after the last message (some exporters pad datagrams) is not a message.
      if (pos > 0 && allZero(bytes, pos)) break;
      emit(pos, bytes.length);
      break;
    }
    emit(pos, pos + len);
    pos += len;
  }
  return { format: 'raw', packets, problems, ipFragmentsSkipped: 0, nonUdpSkipped: 0 };
}
