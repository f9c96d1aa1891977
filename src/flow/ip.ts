import type { IpAddr } from './flow-record.js';

/**
 * Address conversions between the in-memory IpAddr form (IPv4 = uint32 number, IPv6 = 16
 * bytes) and text. Text output follows RFC 5952 (lowercase, longest zero run compressed,
 * IPv4-mapped addresses as ::ffff:a.b.c.d).
 */

export function ipv4ToString(v: number): string {
  return `${(v >>> 24) & 0xff}.${(v >>> 16) & 0xff}.${(v >>> 8) & 0xff}.${v & 0xff}`;
}

export function ipv6ToString(b: Uint8Array): string {
  if (b.length !== 16) throw new RangeError(`IPv6 address must be 16 bytes, got ${b.length}`);
  const words: number[] = [];
  for (let i = 0; i < 16; i += 2) words.push(((b[i] ?? 0) << 8) | (b[i + 1] ?? 0));
  // IPv4-mapped ::ffff:a.b.c.d (RFC 5952 §5).
  if (words[0] === 0 && words[1] === 0 && words[2] === 0 && words[3] === 0 && words[4] === 0 && words[5] === 0xffff) {
    return `::ffff:${b[12]}.${b[13]}.${b[14]}.${b[15]}`;
  }
  // Longest run of two or more zero words is compressed (first one on ties).
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (words[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && words[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (w: number | undefined): string => (w ?? 0).toString(16);
  if (bestStart < 0) return words.map(hex).join(':');
  const head = words.slice(0, bestStart).map(hex).join(':');
  const tail = words.slice(bestStart + bestLen).map(hex).join(':');
  return `${head}::${tail}`;
}

export function ipToString(a: IpAddr): string {
  return typeof a === 'number' ? ipv4ToString(a) : ipv6ToString(a);
}

/** Parses dotted IPv4 text; returns null when it is not exactly four decimal octets. */
export function parseIpv4(text: string): number | null {
  const parts = text.split('.');
  if (parts.length !== 4) return null;
  let v = 0;
  for (const p of parts) {
    if (!/^\d{1,3}$/.test(p)) return null;
    const n = Number(p);
    if (n > 255) return null;
    v = v * 256 + n;
  }
  return v >>> 0;
}

/** Parses IPv6 text (with optional embedded IPv4 tail); returns null when invalid. Zone IDs are rejected. */
export function parseIpv6(text: string): Uint8Array | null {
  if (text.includes('%')) return null;
  let s = text;
  const out = new Uint8Array(16);
  let v4Tail: number | null = null;
  const lastColon = s.lastIndexOf(':');
  if (lastColon >= 0 && s.slice(lastColon + 1).includes('.')) {
    v4Tail = parseIpv4(s.slice(lastColon + 1));
    if (v4Tail === null) return null;
    s = `${s.slice(0, lastColon + 1)}0:0`;
  }
  const halves = s.split('::');
  if (halves.length > 2) return null;
  const parseWords = (part: string): number[] | null => {
    if (part === '') return [];
    const ws = part.split(':');
    const res: number[] = [];
    for (const w of ws) {
      if (!/^[0-9a-fA-F]{1,4}$/.test(w)) return null;
      res.push(parseInt(w, 16));
    }
    return res;
  };
  const head = parseWords(halves[0] ?? '');
  const tail = halves.length === 2 ? parseWords(halves[1] ?? '') : [];
  if (head === null || tail === null) return null;
  if (halves.length === 1 && head.length !== 8) return null;
  if (halves.length === 2 && head.length + tail.length > 7) return null;
  const words = [...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail];
  words.forEach((w, i) => {
    out[i * 2] = w >> 8;
    out[i * 2 + 1] = w & 0xff;
  });
  if (v4Tail !== null) {
    out[12] = (v4Tail >>> 24) & 0xff;
    out[13] = (v4Tail >>> 16) & 0xff;
    out[14] = (v4Tail >>> 8) & 0xff;
    out[15] = v4Tail & 0xff;
  }
  return out;
}

/** Parses IPv4 or IPv6 text into an IpAddr, or null. */
export function parseIp(text: string): IpAddr | null {
  return text.includes(':') ? parseIpv6(text) : parseIpv4(text);
}

/**
 * Normalises a socket address: strips brackets and an IPv6 zone, and unmaps IPv4-mapped IPv6
 * (::ffff:a.b.c.d, what a dual-stack socket reports for IPv4 peers) to dotted IPv4.
 */
export function normaliseAddress(address: string): string {
  let a = address.startsWith('[') && address.endsWith(']') ? address.slice(1, -1) : address;
  const pct = a.indexOf('%');
  if (pct >= 0) a = a.slice(0, pct);
  const lower = a.toLowerCase();
  if (lower.startsWith('::ffff:') && lower.slice(7).includes('.')) return lower.slice(7);
  return lower;
}
