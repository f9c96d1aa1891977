import type { IpAddr } from './flow-record.js';
import { ipToString, parseIp } from './ip.js';

/**
 * CIDR prefixes and prefix sets over IpAddr, shared by the UDP exporter allowlist, TLS/DTLS
 * identity-to-source bindings and flow filters. IPv4 and IPv6 are separate families: an IPv4
 * prefix never matches an IPv6 address (callers normalise IPv4-mapped IPv6 first).
 */
export interface Prefix {
  readonly text: string;
  readonly family: 4 | 6;
  /** IPv4: network as uint32. */
  readonly v4Network: number;
  /** IPv4: netmask as uint32. */
  readonly v4Mask: number;
  /** IPv6: network bytes. */
  readonly v6Network: Uint8Array;
  readonly length: number;
}

/** Parses "a.b.c.d/len", "x::y/len" or a bare address (host prefix). Returns null when invalid. */
export function parsePrefix(text: string): Prefix | null {
  const slash = text.indexOf('/');
  const addrText = slash >= 0 ? text.slice(0, slash) : text;
  const addr = parseIp(addrText.trim());
  if (addr === null) return null;
  const family: 4 | 6 = typeof addr === 'number' ? 4 : 6;
  const max = family === 4 ? 32 : 128;
  let length = max;
  if (slash >= 0) {
    const lenText = text.slice(slash + 1).trim();
    if (!/^\d{1,3}$/.test(lenText)) return null;
    length = Number(lenText);
    if (length > max) return null;
  }
  if (typeof addr === 'number') {
    const mask = length === 0 ? 0 : (0xffffffff << (32 - length)) >>> 0;
    return { text, family, v4Network: (addr & mask) >>> 0, v4Mask: mask, v6Network: new Uint8Array(0), length };
  }
  const net = new Uint8Array(16);
  for (let i = 0; i < 16; i++) {
    const bits = Math.max(0, Math.min(8, length - i * 8));
    const m = bits === 0 ? 0 : (0xff << (8 - bits)) & 0xff;
    net[i] = (addr[i] ?? 0) & m;
  }
  return { text, family, v4Network: 0, v4Mask: 0, v6Network: net, length };
}

/**
 * The prefix as written has bits set after its length (192.0.2.1/24): ambiguous, since the
 * writer meant either the network (192.0.2.0/24) or the host (192.0.2.1/32). Returns the
 * network form to suggest, or null when the text is a proper network (or not a prefix).
 */
export function networkOfHostBits(text: string): string | null {
  const p = parsePrefix(text);
  const slash = text.indexOf('/');
  if (p === null || slash < 0) return null;
  const addr = parseIp(text.slice(0, slash).trim());
  if (addr === null) return null;
  const network = p.family === 4 ? ipToString(p.v4Network) : ipToString(p.v6Network);
  return network === ipToString(addr) ? null : `${network}/${p.length}`;
}

export function prefixContains(p: Prefix, addr: IpAddr): boolean {
  if (typeof addr === 'number') return p.family === 4 && ((addr & p.v4Mask) >>> 0) === p.v4Network;
  if (p.family !== 6 || addr.length !== 16) return false;
  const full = p.length >> 3;
  for (let i = 0; i < full; i++) if (addr[i] !== p.v6Network[i]) return false;
  const rem = p.length & 7;
  if (rem === 0) return true;
  const m = (0xff << (8 - rem)) & 0xff;
  return ((addr[full] ?? 0) & m) === p.v6Network[full];
}

/** An immutable set of prefixes. An empty set contains nothing. */
export class PrefixSet {
  readonly prefixes: readonly Prefix[];
  private readonly v4: readonly Prefix[];
  private readonly v6: readonly Prefix[];
  constructor(prefixes: readonly Prefix[]) {
    this.prefixes = prefixes;
    this.v4 = prefixes.filter((p) => p.family === 4);
    this.v6 = prefixes.filter((p) => p.family === 6);
  }

  /** Parses every entry; throws a RangeError naming the first invalid one. */
  static parse(texts: readonly string[]): PrefixSet {
    const out: Prefix[] = [];
    for (const t of texts) {
      const p = parsePrefix(t);
      if (p === null) throw new RangeError(`invalid address or CIDR prefix: ${JSON.stringify(t)}`);
      out.push(p);
    }
    return new PrefixSet(out);
  }

  get size(): number {
    return this.prefixes.length;
  }

  contains(addr: IpAddr): boolean {
    if (typeof addr === 'number') {
      for (const p of this.v4) if (((addr & p.v4Mask) >>> 0) === p.v4Network) return true;
      return false;
    }
    for (const p of this.v6) if (prefixContains(p, addr)) return true;
    return false;
  }

  /** Checks a textual (already normalised) address; unparsable text is not contained. */
  containsText(address: string): boolean {
    const a = parseIp(address);
    return a !== null && this.contains(a);
  }
}
