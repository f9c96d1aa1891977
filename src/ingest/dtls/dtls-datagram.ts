/**
 * Structural check of a UDP datagram as a sequence of DTLS 1.2 records (RFC 6347 §4.1),
 * done before OpenSSL sees it. OpenSSL 3.0 tears down an established association on some
 * malformed records it should merely discard (a forged 17-byte datagram did it to stock
 * `openssl s_server`), so anything that cannot be a valid record for a sealflow association
 * is dropped here. The check is conservative: it only rejects what is impossible given our
 * configuration (DTLS ≥ 1.2 AEAD suites, renegotiation refused), never something a
 * conforming peer could send.
 *
 * Record header (13 bytes): type u8, version u16, epoch u16, sequence_number u48, length u16.
 */

export const DTLS_RECORD_HEADER_BYTES = 13;
/** Handshake message header inside a record: type u8, length u24, message_seq u16, fragment_offset u24, fragment_length u24. */
export const DTLS_HANDSHAKE_HEADER_BYTES = 12;

export const ContentType = { ChangeCipherSpec: 20, Alert: 21, Handshake: 22, ApplicationData: 23 } as const;

/** DTLS 1.0 (0xfeff, also the record version of many DTLS 1.2 ClientHellos) and DTLS 1.2 (0xfefd). */
const DTLS_1_0_VERSION = 0xfeff;
const DTLS_1_2_VERSION = 0xfefd;
/** RFC 6347 §4.1 / RFC 5246 §6.2.3: a record's length never exceeds 2^14 + 2048. */
const MAX_RECORD_LENGTH = 16384 + 2048;
/**
 * Renegotiation is refused (SSL_OP_NO_RENEGOTIATION), so only epoch 0 (plaintext handshake)
 * and epoch 1 (the one negotiated key) can ever carry valid records.
 */
const MAX_EPOCH = 1;
/** Smallest protected record with our AEAD-only suites: the 16-byte Poly1305/GCM tag. */
const MIN_PROTECTED_RECORD_LENGTH = 16;
/** Handshake message size cap: OpenSSL's own certificate-list limit (100 KiB) plus slack. */
const MAX_HANDSHAKE_MESSAGE_LENGTH = 102_400 + 16_384;
/** HandshakeType client_hello (RFC 5246 §7.4). */
const HANDSHAKE_CLIENT_HELLO = 1;
/** Alert levels (RFC 5246 §7.2): warning, fatal. */
const ALERT_LEVEL_WARNING = 1;
const ALERT_LEVEL_FATAL = 2;

export type DatagramRejectReason =
  | 'short_header'
  | 'bad_content_type'
  | 'bad_version'
  | 'bad_epoch'
  | 'bad_length'
  | 'plaintext_app_data'
  | 'bad_ccs'
  | 'bad_alert'
  | 'bad_handshake_fragment'
  | 'short_protected_record';

export type DatagramInspection =
  | {
      readonly ok: true;
      readonly records: number;
      /** The first record is an epoch-0 handshake record starting with a ClientHello fragment. */
      readonly clientHello: boolean;
      readonly hasApplicationData: boolean;
      readonly maxEpoch: number;
    }
  | { readonly ok: false; readonly reason: DatagramRejectReason; readonly offset: number };

function reject(reason: DatagramRejectReason, offset: number): DatagramInspection {
  return { ok: false, reason, offset };
}

function u16(b: Uint8Array, o: number): number {
  return ((b[o] ?? 0) << 8) | (b[o + 1] ?? 0);
}

function u24(b: Uint8Array, o: number): number {
  return ((b[o] ?? 0) << 16) | ((b[o + 1] ?? 0) << 8) | (b[o + 2] ?? 0);
}

/**
 * Checks the handshake fragments of an epoch-0 record body [start, end): each fragment header
 * must fit, its fragment must lie within the declared message length, and the fragments must
 * tile the record exactly (RFC 6347 §4.2.2). Returns the first fragment's message type or -1.
 */
function checkHandshakeFragments(b: Uint8Array, start: number, end: number): number {
  let o = start;
  let firstType = -2;
  while (o < end) {
    if (end - o < DTLS_HANDSHAKE_HEADER_BYTES) return -1;
    const msgType = b[o] ?? 0;
    const msgLength = u24(b, o + 1);
    const fragmentOffset = u24(b, o + 6);
    const fragmentLength = u24(b, o + 9);
    if (msgLength > MAX_HANDSHAKE_MESSAGE_LENGTH) return -1;
    if (fragmentOffset + fragmentLength > msgLength) return -1;
    if (fragmentLength > end - o - DTLS_HANDSHAKE_HEADER_BYTES) return -1;
    if (firstType === -2) firstType = msgType;
    o += DTLS_HANDSHAKE_HEADER_BYTES + fragmentLength;
  }
  return firstType < 0 ? -1 : firstType;
}

/** Inspects one datagram; never throws. */
export function inspectDtlsDatagram(b: Uint8Array): DatagramInspection {
  let o = 0;
  let records = 0;
  let clientHello = false;
  let hasApplicationData = false;
  let maxEpoch = 0;
  if (b.length === 0) return reject('short_header', 0);
  while (o < b.length) {
    if (b.length - o < DTLS_RECORD_HEADER_BYTES) return reject('short_header', o);
    const type = b[o] ?? 0;
    const version = u16(b, o + 1);
    const epoch = u16(b, o + 3);
    const length = u16(b, o + 11);
    if (type < ContentType.ChangeCipherSpec || type > ContentType.ApplicationData) return reject('bad_content_type', o);
    if (version !== DTLS_1_2_VERSION && version !== DTLS_1_0_VERSION) return reject('bad_version', o + 1);
    if (epoch > MAX_EPOCH) return reject('bad_epoch', o + 3);
    if (length === 0 || length > MAX_RECORD_LENGTH || length > b.length - o - DTLS_RECORD_HEADER_BYTES) {
      return reject('bad_length', o + 11);
    }
    const body = o + DTLS_RECORD_HEADER_BYTES;
    if (epoch === 0) {
      switch (type) {
        case ContentType.ApplicationData:
          return reject('plaintext_app_data', o);
        case ContentType.ChangeCipherSpec:
          // RFC 5246 §7.1: the message is the single byte 1.
          if (length !== 1 || b[body] !== 1) return reject('bad_ccs', o);
          break;
        case ContentType.Alert: {
          const level = b[body];
          if (length !== 2 || (level !== ALERT_LEVEL_WARNING && level !== ALERT_LEVEL_FATAL)) return reject('bad_alert', o);
          break;
        }
        default: {
          const first = checkHandshakeFragments(b, body, body + length);
          if (first < 0) return reject('bad_handshake_fragment', body);
          if (records === 0 && first === HANDSHAKE_CLIENT_HELLO) clientHello = true;
        }
      }
    } else {
      if (length < MIN_PROTECTED_RECORD_LENGTH) return reject('short_protected_record', o);
      if (type === ContentType.ApplicationData) hasApplicationData = true;
      maxEpoch = epoch;
    }
    records++;
    o = body + length;
  }
  return { ok: true, records, clientHello, hasApplicationData, maxEpoch };
}

/** Plaintext bytes every protected record of a content type carries at least (RFC 5246 §7). */
const MIN_PLAINTEXT_BY_TYPE: Readonly<Record<number, number>> = {
  [ContentType.ChangeCipherSpec]: 1,
  [ContentType.Alert]: 2,
  // Post-handshake handshake messages (a retransmitted Finished): at least a message header.
  [ContentType.Handshake]: DTLS_HANDSHAKE_HEADER_BYTES,
  // RFC 5246 §6.2.1: zero-length application data fragments MAY be sent.
  [ContentType.ApplicationData]: 0,
};

/**
 * Second check for a datagram bound for an established association, once the cipher and so
 * the per-record overhead `overhead` (explicit nonce + AEAD tag) are known: every protected
 * (epoch ≥ 1) record must be long enough to hold that overhead plus the smallest plaintext of
 * its content type. OpenSSL 3.0 fails the whole association on some shorter records instead
 * of discarding them. Call only on a datagram inspectDtlsDatagram accepted.
 */
export function protectedRecordsFit(b: Uint8Array, overhead: number): boolean {
  let o = 0;
  while (o + DTLS_RECORD_HEADER_BYTES <= b.length) {
    const type = b[o] ?? 0;
    const epoch = u16(b, o + 3);
    const length = u16(b, o + 11);
    if (epoch !== 0 && length < overhead + (MIN_PLAINTEXT_BY_TYPE[type] ?? 0)) return false;
    o += DTLS_RECORD_HEADER_BYTES + length;
  }
  return true;
}

/** ClientHello body (RFC 6347 §4.2.1): client_version u16, then the 32-byte random. */
const CLIENT_RANDOM_OFFSET = DTLS_RECORD_HEADER_BYTES + DTLS_HANDSHAKE_HEADER_BYTES + 2;
const CLIENT_RANDOM_BYTES = 32;

/**
 * The client random of a ClientHello datagram (one that inspectDtlsDatagram flagged as
 * `clientHello`), as hex, or null when the first fragment does not contain it. A client keeps
 * its random across the HelloVerifyRequest round trip and retransmissions, so it tells a
 * retransmitted hello of a handshake in progress from a new handshake by a restarted exporter.
 */
export function clientHelloRandom(b: Uint8Array): string | null {
  const fragmentOffset = u24(b, DTLS_RECORD_HEADER_BYTES + 6);
  if (fragmentOffset !== 0 || b.length < CLIENT_RANDOM_OFFSET + CLIENT_RANDOM_BYTES) return null;
  return Buffer.from(b.buffer, b.byteOffset + CLIENT_RANDOM_OFFSET, CLIENT_RANDOM_BYTES).toString('hex');
}
