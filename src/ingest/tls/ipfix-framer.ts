/**
 * Cuts IPFIX Messages out of a TCP/TLS byte stream (RFC 7011 §10.4: messages are sent back to
 * back; each starts with the 16-byte Message Header whose Length field at offset 2 counts the
 * whole message, header included). A message that lies within one received chunk is handed on
 * as a view of that chunk (zero-copy); one that spans chunks is assembled once into a buffer
 * of exactly its declared length, allocated only after the length passed the limit check.
 *
 * A framing error is not recoverable on a stream (there is no resynchronisation point), so
 * after the first error the framer refuses further input and the connection must be closed.
 */

/** RFC 7011 §3.1: Version Number of IPFIX. */
export const IPFIX_VERSION = 10;
/** RFC 7011 §3.1: the Message Header alone is 16 octets, so no message is shorter. */
export const IPFIX_HEADER_LENGTH = 16;
/** Version (2 octets) + Length (2 octets): what the framer needs to size a message. */
const LENGTH_PREFIX = 4;
/** The 16-bit Length field caps a message at 65535 octets. */
export const IPFIX_MAX_MESSAGE_LENGTH = 0xffff;

export type FramingErrorReason = 'bad_version' | 'too_short' | 'too_long';

export interface FramingError {
  readonly reason: FramingErrorReason;
  /** Byte offset of the offending message header within the stream. */
  readonly streamOffset: number;
  readonly version: number;
  readonly length: number;
}

export class IpfixFramer {
  private readonly maxMessageBytes: number;
  private readonly prefix = Buffer.alloc(LENGTH_PREFIX);
  private prefixFilled = 0;
  private partial: Buffer | null = null;
  private partialFilled = 0;
  /** Stream offset of the next byte to be consumed. */
  private offset = 0;
  private failed: FramingError | null = null;

  /** `maxMessageBytes` is clamped to [16, 65535]. */
  constructor(maxMessageBytes: number = IPFIX_MAX_MESSAGE_LENGTH) {
    this.maxMessageBytes = Math.max(IPFIX_HEADER_LENGTH, Math.min(IPFIX_MAX_MESSAGE_LENGTH, Math.floor(maxMessageBytes)));
  }

  /** Bytes held for an incomplete message. */
  get bufferedBytes(): number {
    return this.partial !== null ? this.partialFilled : this.prefixFilled;
  }

  /**
   * Feeds a chunk; calls `onMessage` for each complete message in order. Returns null, or the
   * framing error that stopped it (also returned for every later call).
   */
  push(chunk: Buffer, onMessage: (message: Buffer) => void): FramingError | null {
    if (this.failed !== null) return this.failed;
    let pos = 0;
    while (pos < chunk.length) {
      if (this.partial !== null) {
        const n = Math.min(this.partial.length - this.partialFilled, chunk.length - pos);
        chunk.copy(this.partial, this.partialFilled, pos, pos + n);
        this.partialFilled += n;
        pos += n;
        if (this.partialFilled === this.partial.length) {
          const msg = this.partial;
          this.offset += msg.length;
          this.partial = null;
          this.partialFilled = 0;
          onMessage(msg);
        }
        continue;
      }
      if (this.prefixFilled > 0 || chunk.length - pos < LENGTH_PREFIX) {
        // The version/length prefix itself is split across chunks.
        const n = Math.min(LENGTH_PREFIX - this.prefixFilled, chunk.length - pos);
        chunk.copy(this.prefix, this.prefixFilled, pos, pos + n);
        this.prefixFilled += n;
        pos += n;
        if (this.prefixFilled < LENGTH_PREFIX) break;
        const length = this.prefix.readUInt16BE(2);
        const err = this.check(this.prefix.readUInt16BE(0), length);
        if (err !== null) return err;
        this.partial = Buffer.allocUnsafe(length);
        this.prefix.copy(this.partial, 0);
        this.partialFilled = LENGTH_PREFIX;
        this.prefixFilled = 0;
        continue;
      }
      const length = chunk.readUInt16BE(pos + 2);
      const err = this.check(chunk.readUInt16BE(pos), length);
      if (err !== null) return err;
      if (chunk.length - pos >= length) {
        const msg = chunk.subarray(pos, pos + length);
        pos += length;
        this.offset += length;
        onMessage(msg);
      } else {
        this.partial = Buffer.allocUnsafe(length);
        this.partialFilled = 0;
      }
    }
    return null;
  }

  private check(version: number, length: number): FramingError | null {
    let reason: FramingErrorReason | null = null;
    if (version !== IPFIX_VERSION) reason = 'bad_version';
    else if (length < IPFIX_HEADER_LENGTH) reason = 'too_short';
    else if (length > this.maxMessageBytes) reason = 'too_long';
    if (reason === null) return null;
    this.failed = { reason, streamOffset: this.offset, version, length };
    return this.failed;
  }
}
