import { brotliCompressSync, constants as zlibConstants, deflateRawSync, deflateSync, gzipSync } from 'node:zlib';
import { compressBatch, SEAL_FORMAT_BROTLI, SEAL_FORMAT_DEFLATE } from '../spool/compression.js';

/**
 * The attestation canaries: flow records with values no real network sends, fixed so that an
 * operator (or a test) can search for them too, and so that a leak found by one attestation is
 * found by every later one. Addresses are in the documentation prefixes (RFC 5737, RFC 3849)
 * with a marker in their host part; the 64-bit counter spells a marker in hex. The report
 * never prints these values (an attestation must not plant what the next one looks for); it
 * names the encodings it searched for.
 *
 * What a leak could look like, and so what is searched for (needles()):
 *   binary  the IPv4 pair (src‖dst) as 32-bit words in network and little-endian order, each
 *           IPv6 address in network order and byte-reversed, the IPv4 source as an IPv4-mapped
 *           IPv6 address, the 64-bit counter in both byte orders;
 *   text    the addresses (dotted quad, RFC 5952, fully expanded, bare hex) and the counter
 *           and bit count in decimal, each as UTF-8 and as UTF-16LE;
 *   batch   a window of the canary batch's plaintext batch-format bytes (read back from the
 *           spool), and of its brotli (the spool's own), raw deflate, zlib and gzip forms —
 *           what a batch written unencrypted, compressed or not, would contain.
 * The scan (scan.ts) also inflates every gzip/zlib stream it finds and searches the output.
 */

export const CANARY_SRC_V4 = '203.0.113.201';
export const CANARY_DST_V4 = '198.51.100.202';
export const CANARY_SRC_V6 = '2001:db8:c0ff:ee00:5ea1:f10e:ca7a:1';
export const CANARY_DST_V6 = '2001:db8:c0ff:ee00:5ea1:f10e:ca7a:2';
export const CANARY_SRC_PORT = 0xcafe;
export const CANARY_DST_PORT = 0xbabe;
/** 0x5EA1F10ECA7A1E57: above 2^53, so kept as a bigint and stored as a 64-bit word in the batch. */
export const CANARY_OCTETS = 0x5ea1f10eca7a1e57n;
export const CANARY_PACKETS = 0x0a77e57ca7a1n;
/** The IPFIX observation domain the canaries are exported in (a marker for logs). */
export const CANARY_DOMAIN = 0x5ea1f10e;
/** Records per address family in the canary message. */
export const CANARY_RECORDS_PER_FAMILY = 4;

export interface Needle {
  readonly name: string;
  readonly bytes: Buffer;
}

function v4Bytes(a: string): Buffer {
  return Buffer.from(a.split('.').map(Number));
}

/** 16 bytes of an IPv6 address given in RFC 5952 form (one '::' at most). */
function v6Bytes(a: string): Buffer {
  const [head = '', tail] = a.split('::');
  const h = head === '' ? [] : head.split(':');
  const t = tail === undefined || tail === '' ? [] : tail.split(':');
  const groups = [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  const out = Buffer.alloc(16);
  groups.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16), i * 2));
  return out;
}

function expandedV6(a: string): string {
  const b = v6Bytes(a);
  const parts: string[] = [];
  for (let i = 0; i < 16; i += 2) parts.push(b.readUInt16BE(i).toString(16).padStart(4, '0'));
  return parts.join(':');
}

function u16(v: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(v);
  return b;
}

function u32(v: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(v >>> 0);
  return b;
}

function u64(v: bigint, le = false): Buffer {
  const b = Buffer.alloc(8);
  if (le) b.writeBigUInt64LE(v);
  else b.writeBigUInt64BE(v);
  return b;
}

const reversed = (b: Buffer): Buffer => Buffer.from(b).reverse();

/** IPFIX set: id, length, body (RFC 7011 §3.3.2). */
function set(id: number, body: Buffer): Buffer {
  return Buffer.concat([u16(id), u16(4 + body.length), body]);
}

const V4_TEMPLATE = 256;
const V6_TEMPLATE = 257;
/** (IE id, length) of the canary templates: addresses, ports, protocol, octets, packets (RFC 7012 §5). */
const V4_FIELDS: readonly (readonly [number, number])[] = [[8, 4], [12, 4], [7, 2], [11, 2], [4, 1], [1, 8], [2, 8]];
const V6_FIELDS: readonly (readonly [number, number])[] = [[27, 16], [28, 16], [7, 2], [11, 2], [4, 1], [1, 8], [2, 8]];

function template(id: number, fields: readonly (readonly [number, number])[]): Buffer {
  return Buffer.concat([u16(id), u16(fields.length), ...fields.map(([ie, len]) => Buffer.concat([u16(ie), u16(len)]))]);
}

/** One IPFIX message (RFC 7011 §3.1) with both templates and the canary records of both families. */
export function canaryMessage(exportTimeS: number, sequence = 0): Buffer {
  const record = (src: Buffer, dst: Buffer): Buffer => Buffer.concat([src, dst, u16(CANARY_SRC_PORT), u16(CANARY_DST_PORT), Buffer.of(17), u64(CANARY_OCTETS), u64(CANARY_PACKETS)]);
  const v4 = Array.from({ length: CANARY_RECORDS_PER_FAMILY }, () => record(v4Bytes(CANARY_SRC_V4), v4Bytes(CANARY_DST_V4)));
  const v6 = Array.from({ length: CANARY_RECORDS_PER_FAMILY }, () => record(v6Bytes(CANARY_SRC_V6), v6Bytes(CANARY_DST_V6)));
  const body = Buffer.concat([set(2, Buffer.concat([template(V4_TEMPLATE, V4_FIELDS), template(V6_TEMPLATE, V6_FIELDS)])), set(V4_TEMPLATE, Buffer.concat(v4)), set(V6_TEMPLATE, Buffer.concat(v6))]);
  return Buffer.concat([u16(10), u16(16 + body.length), u32(exportTimeS), u32(sequence), u32(CANARY_DOMAIN), body]);
}

/** Records the canary message carries. */
export const CANARY_RECORDS = 2 * CANARY_RECORDS_PER_FAMILY;

/** A window from the middle of `b` (its start and end may be shared with non-canary data; the middle is the batch's own). */
function middle(b: Uint8Array, length: number): Buffer {
  const n = Math.min(length, b.length);
  const start = Math.max(0, Math.floor((b.length - n) / 2));
  return Buffer.from(b.subarray(start, start + n));
}

const BATCH_WINDOW_BYTES = 32;

/**
 * Everything the scan looks for (see the header). `batches`: plaintexts of the canary batch —
 * as read back from the spool, and as the batch format encodes the canary records decoded on
 * their own (the same bytes unless something is wrong, and the only copy when the spool's
 * batch cannot be read back).
 */
export function needles(batches: readonly Uint8Array[]): Needle[] {
  const s4 = v4Bytes(CANARY_SRC_V4);
  const d4 = v4Bytes(CANARY_DST_V4);
  const s6 = v6Bytes(CANARY_SRC_V6);
  const d6 = v6Bytes(CANARY_DST_V6);
  const out: Needle[] = [
    { name: 'IPv4 address pair, network order', bytes: Buffer.concat([s4, d4]) },
    { name: 'IPv4 address pair, little-endian words', bytes: Buffer.concat([reversed(s4), reversed(d4)]) },
    { name: 'IPv6 source address, network order', bytes: s6 },
    { name: 'IPv6 destination address, network order', bytes: d6 },
    { name: 'IPv6 source address, byte-reversed', bytes: reversed(s6) },
    { name: 'IPv6 destination address, byte-reversed', bytes: reversed(d6) },
    { name: 'IPv4 source as IPv4-mapped IPv6', bytes: Buffer.concat([Buffer.alloc(10), Buffer.of(0xff, 0xff), s4]) },
    { name: '64-bit counter, big-endian', bytes: u64(CANARY_OCTETS) },
    { name: '64-bit counter, little-endian', bytes: u64(CANARY_OCTETS, true) },
  ];
  const texts: [string, string][] = [
    ['IPv4 source, dotted text', CANARY_SRC_V4],
    ['IPv4 destination, dotted text', CANARY_DST_V4],
    ['IPv6 source, RFC 5952 text', CANARY_SRC_V6],
    ['IPv6 destination, RFC 5952 text', CANARY_DST_V6],
    ['IPv6 source, expanded text', expandedV6(CANARY_SRC_V6)],
    ['IPv6 source, bare hex', s6.toString('hex')],
    ['counter, decimal text', CANARY_OCTETS.toString()],
    ['bit count, decimal text', (CANARY_OCTETS * 8n).toString()],
  ];
  for (const [name, text] of texts) {
    out.push({ name: `${name} (UTF-8)`, bytes: Buffer.from(text, 'utf8') });
    out.push({ name: `${name} (UTF-16LE)`, bytes: Buffer.from(text, 'utf16le') });
  }
  const seen = new Set<string>();
  for (const batch of batches) {
    const key = Buffer.from(batch).toString('base64');
    if (batch.length === 0 || seen.has(key)) continue;
    seen.add(key);
    const which = seen.size === 1 ? '' : ` #${seen.size}`;
    out.push({ name: `canary batch${which}, plaintext batch format`, bytes: middle(batch, BATCH_WINDOW_BYTES) });
    const forms: [string, Uint8Array][] = [
      ['canary batch, brotli (the spool\'s compression)', compressBatch(SEAL_FORMAT_BROTLI, batch)],
      ['canary batch, raw deflate (the spool\'s deflate)', compressBatch(SEAL_FORMAT_DEFLATE, batch)],
      ['canary batch, brotli default quality', brotliCompressSync(batch, { params: { [zlibConstants.BROTLI_PARAM_SIZE_HINT]: batch.length } })],
      ['canary batch, raw deflate default level', deflateRawSync(batch)],
      ['canary batch, zlib', deflateSync(batch)],
      ['canary batch, gzip', gzipSync(batch)],
    ];
    for (const [name, packed] of forms) if (packed.length >= 16) out.push({ name: name.replace('canary batch', `canary batch${which}`), bytes: middle(packed, Math.min(BATCH_WINDOW_BYTES, packed.length)) });
  }
  return out;
}
