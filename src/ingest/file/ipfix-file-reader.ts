/**
 * RFC 5655 IPFIX files: "a serialized stream of IPFIX Messages" (RFC 5655 §6), each framed
 * by the Length field of its own message header (RFC 7011 §3.1: version u16 = 10, length
 * u16 counting the 16-byte header). A message that runs past the end of the file is a
 * truncated file: reading stops there with the offset.
 */
import { DecodeError, DecodeErrorCode } from '../../flow/errors.js';
import type { CaptureReadOptions, CaptureReadResult, CapturedPacket } from './capture-types.js';
import { addresslessPacket } from './file-packet.js';

export const IPFIX_VERSION = 10;
export const IPFIX_HEADER_BYTES = 16;

function u16(b: Uint8Array, i: number): number {
  return ((b[i] ?? 0) << 8) | (b[i + 1] ?? 0);
}

/** True when the bytes are exactly a run of well-framed IPFIX messages. */
export function looksLikeIpfixFile(bytes: Uint8Array): boolean {
  let pos = 0;
  if (bytes.length < IPFIX_HEADER_BYTES) return false;
  while (pos < bytes.length) {
    if (bytes.length - pos < IPFIX_HEADER_BYTES || u16(bytes, pos) !== IPFIX_VERSION) return false;
    const len = u16(bytes, pos + 2);
    if (len < IPFIX_HEADER_BYTES || len > bytes.length - pos) return false;
    pos += len;
  }
  return true;
}

/** Cuts an IPFIX file into its messages; all packets get the default (or overriding) exporter. */
export function readIpfixFile(bytes: Uint8Array, opts: CaptureReadOptions): CaptureReadResult {
  const packets: CapturedPacket[] = [];
  const problems: DecodeError[] = [];
  let pos = 0;
  if (bytes.length === 0) {
    problems.push(new DecodeError(DecodeErrorCode.BadFile, 'empty IPFIX file', 0));
  }
  while (pos < bytes.length) {
    const left = bytes.length - pos;
    if (left < IPFIX_HEADER_BYTES) {
      problems.push(new DecodeError(DecodeErrorCode.Truncated, `truncated IPFIX file: ${left} bytes left, a message header needs ${IPFIX_HEADER_BYTES}`, pos));
      break;
    }
    const version = u16(bytes, pos);
    if (version !== IPFIX_VERSION) {
      problems.push(new DecodeError(DecodeErrorCode.BadVersion, `not an IPFIX message (version ${version}); stopping`, pos, { version }));
      break;
    }
    const len = u16(bytes, pos + 2);
    if (len < IPFIX_HEADER_BYTES) {
      problems.push(new DecodeError(DecodeErrorCode.BadLength, `IPFIX message length ${len} is shorter than its header; cannot resynchronise`, pos + 2, { length: len }));
      break;
    }
    if (len > left) {
      problems.push(new DecodeError(DecodeErrorCode.Truncated, `truncated IPFIX file: message of ${len} bytes, ${left} left`, pos, { length: len }));
      break;
    }
    packets.push(addresslessPacket(bytes, pos, pos + len, opts));
    pos += len;
  }
  return { format: 'ipfix', packets, problems, ipFragmentsSkipped: 0, nonUdpSkipped: 0 };
}
