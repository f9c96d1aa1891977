/**
 * Builds sFlow v5 datagrams (XDR, sflow.org sFlow Version 5) and the packet headers they
 * sample from readable values, for tests: every length and count is computed from what is
 * encoded, so a test states intent ("an expanded sample with a QinQ TCP header") rather
 * than pasted hex. Tests corrupt the result on purpose where they want malformed input.
 */
import { parseIpv4, parseIpv6 } from '../../src/flow/ip.js';

export function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let pos = 0;
  for (const p of parts) {
    out.set(p, pos);
    pos += p.length;
  }
  return out;
}

export function u32(...values: number[]): Uint8Array {
  const b = new Uint8Array(values.length * 4);
  const v = new DataView(b.buffer);
  values.forEach((x, i) => v.setUint32(i * 4, x >>> 0));
  return b;
}

export function u64(value: bigint): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, value);
  return b;
}

/** XDR opaque: bytes padded with zeros to a multiple of 4. */
export function padded(bytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(Math.ceil(bytes.length / 4) * 4);
  out.set(bytes);
  return out;
}

export function ipBytes(a: string): Uint8Array {
  if (a.includes(':')) {
    const b = parseIpv6(a);
    if (b === null) throw new Error(`bad IPv6 ${a}`);
    return b;
  }
  const v = parseIpv4(a);
  if (v === null) throw new Error(`bad IPv4 ${a}`);
  return u32(v);
}

/** sFlow address: type 1 IPv4 / 2 IPv6 / 0 unknown, then the address. */
export function address(a: string | null): Uint8Array {
  if (a === null) return u32(0);
  return a.includes(':') ? concat([u32(2), ipBytes(a)]) : concat([u32(1), ipBytes(a)]);
}

/** A sample or record envelope: data_format, length, data. */
export function envelope(format: number, body: Uint8Array): Uint8Array {
  return concat([u32(format, body.length), body]);
}

export interface DatagramSpec {
  agent?: string | null;
  subAgentId?: number;
  sequence?: number;
  uptimeMs?: number;
  samples: readonly Uint8Array[];
}

export function datagram(d: DatagramSpec): Uint8Array {
  return concat([u32(5), address(d.agent === undefined ? '192.0.2.10' : d.agent), u32(d.subAgentId ?? 0, d.sequence ?? 1, d.uptimeMs ?? 1000, d.samples.length), ...d.samples]);
}

export interface FlowSampleSpec {
  expanded?: boolean;
  sequence?: number;
  sourceIdType?: number;
  sourceIdIndex?: number;
  samplingRate?: number;
  samplePool?: number;
  drops?: number;
  /** Compact: the 32-bit word (format in the 2 high bits). Expanded: [format, value]. */
  input?: number | readonly [number, number];
  output?: number | readonly [number, number];
  records: readonly Uint8Array[];
}

function iface(v: number | readonly [number, number] | undefined, expanded: boolean): Uint8Array {
  const x = v ?? 1;
  if (expanded) return typeof x === 'number' ? u32(x >>> 30, x & 0x3fffffff) : u32(x[0], x[1]);
  return typeof x === 'number' ? u32(x) : u32(((x[0] << 30) | (x[1] & 0x3fffffff)) >>> 0);
}

export function flowSample(s: FlowSampleSpec): Uint8Array {
  const expanded = s.expanded ?? false;
  const source = expanded ? u32(s.sourceIdType ?? 0, s.sourceIdIndex ?? 1) : u32(((s.sourceIdType ?? 0) << 24) | (s.sourceIdIndex ?? 1));
  const body = concat([
    u32(s.sequence ?? 1),
    source,
    u32(s.samplingRate ?? 1, s.samplePool ?? 1, s.drops ?? 0),
    iface(s.input, expanded),
    iface(s.output, expanded),
    u32(s.records.length),
    ...s.records,
  ]);
  return envelope(expanded ? 3 : 1, body);
}

export function counterSample(records: readonly Uint8Array[], expanded = false, sequence = 1, sourceIdIndex = 1): Uint8Array {
  const source = expanded ? u32(0, sourceIdIndex) : u32(sourceIdIndex);
  return envelope(expanded ? 4 : 2, concat([u32(sequence), source, u32(records.length), ...records]));
}

export interface IfCountersSpec {
  ifIndex: number;
  ifSpeed?: bigint;
  ifInOctets?: bigint;
  ifOutOctets?: bigint;
  ifInUcastPkts?: number;
}

export function genericInterfaceCounters(c: IfCountersSpec): Uint8Array {
  return envelope(
    1,
    concat([
      u32(c.ifIndex, 6),
      u64(c.ifSpeed ?? 1_000_000_000n),
      u32(1, 3),
      u64(c.ifInOctets ?? 0n),
      u32(c.ifInUcastPkts ?? 0, 0, 0, 0, 0, 0),
      u64(c.ifOutOctets ?? 0n),
      u32(0, 0, 0, 0, 0, 0),
    ]),
  );
}

export function rawHeaderRecord(headerProtocol: number, frameLength: number, header: Uint8Array, stripped = 4): Uint8Array {
  return envelope(1, concat([u32(headerProtocol, frameLength, stripped, header.length), padded(header)]));
}

export function sampledIpv4Record(r: { length: number; protocol: number; src: string; dst: string; srcPort: number; dstPort: number; tcpFlags: number; tos: number }): Uint8Array {
  return envelope(3, concat([u32(r.length, r.protocol), ipBytes(r.src), ipBytes(r.dst), u32(r.srcPort, r.dstPort, r.tcpFlags, r.tos)]));
}

export function sampledIpv6Record(r: { length: number; protocol: number; src: string; dst: string; srcPort: number; dstPort: number; tcpFlags: number; priority: number }): Uint8Array {
  return envelope(4, concat([u32(r.length, r.protocol), ipBytes(r.src), ipBytes(r.dst), u32(r.srcPort, r.dstPort, r.tcpFlags, r.priority)]));
}

export function extendedSwitchRecord(srcVlan: number, dstVlan: number): Uint8Array {
  return envelope(1001, u32(srcVlan, 0, dstVlan, 0));
}

export function extendedRouterRecord(nextHop: string, srcMask: number, dstMask: number): Uint8Array {
  return envelope(1002, concat([address(nextHop), u32(srcMask, dstMask)]));
}

export function extendedGatewayRecord(g: { nextHop: string; as: number; srcAs: number; srcPeerAs: number; path: readonly (readonly number[])[]; communities: readonly number[]; localPref: number }): Uint8Array {
  const segs = g.path.map((asns) => concat([u32(2, asns.length), u32(...asns)]));
  return envelope(1003, concat([address(g.nextHop), u32(g.as, g.srcAs, g.srcPeerAs, g.path.length), ...segs, u32(g.communities.length, ...g.communities), u32(g.localPref)]));
}

// ---- sampled packet headers ----

export function tcpHeader(sport: number, dport: number, flags: number): Uint8Array {
  const b = new Uint8Array(20);
  const v = new DataView(b.buffer);
  v.setUint16(0, sport);
  v.setUint16(2, dport);
  v.setUint32(4, 1000);
  v.setUint8(12, (5 << 4) | ((flags >> 8) & 1));
  v.setUint8(13, flags & 0xff);
  v.setUint16(14, 65535);
  return b;
}

export function udpHeader(sport: number, dport: number, payloadLength = 0): Uint8Array {
  const b = new Uint8Array(8);
  const v = new DataView(b.buffer);
  v.setUint16(0, sport);
  v.setUint16(2, dport);
  v.setUint16(4, 8 + payloadLength);
  return b;
}

export function icmpHeader(type: number, code: number): Uint8Array {
  return Uint8Array.from([type, code, 0, 0, 0, 1, 0, 1]);
}

export function ipv4Packet(p: { src: string; dst: string; protocol: number; tos?: number; l4: Uint8Array; totalLength?: number; fragmentOffset8?: number }): Uint8Array {
  const b = new Uint8Array(20 + p.l4.length);
  const v = new DataView(b.buffer);
  v.setUint8(0, 0x45);
  v.setUint8(1, p.tos ?? 0);
  v.setUint16(2, p.totalLength ?? b.length);
  v.setUint16(6, p.fragmentOffset8 ?? 0);
  v.setUint8(8, 64);
  v.setUint8(9, p.protocol);
  b.set(ipBytes(p.src), 12);
  b.set(ipBytes(p.dst), 16);
  b.set(p.l4, 20);
  return b;
}

export function ipv6Packet(p: { src: string; dst: string; nextHeader: number; trafficClass?: number; l4: Uint8Array; payloadLength?: number }): Uint8Array {
  const b = new Uint8Array(40 + p.l4.length);
  const v = new DataView(b.buffer);
  v.setUint32(0, ((6 << 28) | ((p.trafficClass ?? 0) << 20)) >>> 0);
  v.setUint16(4, p.payloadLength ?? p.l4.length);
  v.setUint8(6, p.nextHeader);
  v.setUint8(7, 64);
  b.set(ipBytes(p.src), 8);
  b.set(ipBytes(p.dst), 24);
  b.set(p.l4, 40);
  return b;
}

/** Ethernet II with 802.1Q/802.1ad tags: `tags` as [tpid, vid] outermost first. */
export function ethernetFrame(ethertype: number, payload: Uint8Array, tags: readonly (readonly [number, number])[] = []): Uint8Array {
  const b = new Uint8Array(14 + tags.length * 4 + payload.length);
  const v = new DataView(b.buffer);
  b.set([0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x00, 0x66, 0x77, 0x88, 0x99, 0xaa]);
  let pos = 12;
  for (const [tpid, vid] of tags) {
    v.setUint16(pos, tpid);
    v.setUint16(pos + 2, vid);
    pos += 4;
  }
  v.setUint16(pos, ethertype);
  b.set(payload, pos + 2);
  return b;
}

/** GRE header (RFC 2784 / RFC 2890): flags word with the C/K/S bits for the options given, then the protocol type. */
export function greHeader(protocolType: number, o: { key?: number; sequence?: number; checksum?: boolean } = {}): Uint8Array {
  const flags = (o.checksum === true ? 0x8000 : 0) | (o.key !== undefined ? 0x2000 : 0) | (o.sequence !== undefined ? 0x1000 : 0);
  const words: number[] = [];
  if (o.checksum === true) words.push(0);
  if (o.key !== undefined) words.push(o.key);
  if (o.sequence !== undefined) words.push(o.sequence);
  return concat([Uint8Array.of(flags >> 8, flags & 0xff, protocolType >> 8, protocolType & 0xff), ...(words.length > 0 ? [u32(...words)] : [])]);
}

/** VXLAN header (RFC 7348 §5): the I flag and a 24-bit VNI. */
export function vxlanHeader(vni: number): Uint8Array {
  return Uint8Array.of(0x08, 0, 0, 0, (vni >>> 16) & 0xff, (vni >>> 8) & 0xff, vni & 0xff, 0);
}

/** An MPLS label stack (RFC 3032), bottom-of-stack bit on the last entry, TTL 64. */
export function mplsStack(labels: readonly number[]): Uint8Array {
  return concat(labels.map((l, i) => u32(((l << 12) | (i === labels.length - 1 ? 0x100 : 0) | 64) >>> 0)));
}
