import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * A sample IPFIX message for trying a development probe (`sealflow run` on its embedded
 * defaults writes it under the data directory; the start-up banner's commands send it). One
 * message (RFC 7011 §3) holding a template set and a data set, so the same bytes are one UDP
 * datagram and a valid IPFIX-over-TLS stream. Addresses are from the documentation ranges
 * (RFC 5737), times are the moment it was written.
 */

export const SAMPLE_RECORDS = 10;
export const SAMPLE_FILE = 'messages.ipfix';

const IPFIX_VERSION = 10;
const HEADER_BYTES = 16;
const SET_HEADER_BYTES = 4;
const TEMPLATE_SET_ID = 2;
const TEMPLATE_ID = 256;
/** [information element id, length] (RFC 7012 / IANA IPFIX registry). */
const FIELDS: readonly (readonly [number, number])[] = [
  [8, 4], // sourceIPv4Address
  [12, 4], // destinationIPv4Address
  [7, 2], // sourceTransportPort
  [11, 2], // destinationTransportPort
  [4, 1], // protocolIdentifier
  [1, 8], // octetDeltaCount
  [2, 8], // packetDeltaCount
  [152, 8], // flowStartMilliseconds
  [153, 8], // flowEndMilliseconds
];
const RECORD_BYTES = FIELDS.reduce((a, [, len]) => a + len, 0);
const PROTOCOL_TCP = 6;

export function sampleIpfixMessage(nowMs: number, records = SAMPLE_RECORDS): Buffer {
  const templateBytes = SET_HEADER_BYTES + 4 + FIELDS.length * 4;
  const dataBytes = SET_HEADER_BYTES + records * RECORD_BYTES;
  const b = Buffer.alloc(HEADER_BYTES + templateBytes + dataBytes);
  b.writeUInt16BE(IPFIX_VERSION, 0);
  b.writeUInt16BE(b.length, 2);
  b.writeUInt32BE(Math.floor(nowMs / 1000), 4); // exportTime
  b.writeUInt32BE(0, 8); // sequenceNumber: data records before this message
  b.writeUInt32BE(1, 12); // observationDomainId
  let o = HEADER_BYTES;
  b.writeUInt16BE(TEMPLATE_SET_ID, o);
  b.writeUInt16BE(templateBytes, o + 2);
  b.writeUInt16BE(TEMPLATE_ID, o + 4);
  b.writeUInt16BE(FIELDS.length, o + 6);
  o += 8;
  for (const [id, len] of FIELDS) {
    b.writeUInt16BE(id, o);
    b.writeUInt16BE(len, o + 2);
    o += 4;
  }
  b.writeUInt16BE(TEMPLATE_ID, o);
  b.writeUInt16BE(dataBytes, o + 2);
  o += SET_HEADER_BYTES;
  for (let i = 0; i < records; i++) {
    b.set([192, 0, 2, 10 + i], o);
    b.set([198, 51, 100, 20 + i], o + 4);
    b.writeUInt16BE(40_000 + i, o + 8);
    b.writeUInt16BE(443, o + 10);
    b.writeUInt8(PROTOCOL_TCP, o + 12);
    b.writeBigUInt64BE(BigInt(1500 * (i + 1)), o + 13);
    b.writeBigUInt64BE(BigInt(i + 1), o + 21);
    b.writeBigUInt64BE(BigInt(nowMs - 60_000), o + 29);
    b.writeBigUInt64BE(BigInt(nowMs - 1_000), o + 37);
    o += RECORD_BYTES;
  }
  return b;
}

/** Writes the sample message to `<dir>/messages.ipfix` (replacing an older one) and returns its path. */
export async function writeSampleMessages(dir: string, nowMs: number = Date.now()): Promise<string> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const file = join(dir, SAMPLE_FILE);
  await writeFile(file, sampleIpfixMessage(nowMs));
  return file;
}
