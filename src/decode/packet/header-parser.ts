/**
 * Parser for packet headers a flow exporter copies into its records: the first
 * `header_length` bytes of an sFlow sampled frame (sFlow v5 §5.2 "sampled_header", usually
 * 128 bytes, so headers are routinely cut short) and IPFIX packet sections
 * (dataLinkFrameSection 315, ipHeaderPacketSection 313; RFC 7133 §4.7, RFC 5477 §8.2). The
 * parser reads as far as the bytes go and reports what it saw; a short or malformed header
 * is never an error, since the record's other fields are still worth a flow record.
 *
 * Layers: Ethernet II (IEEE 802.3) with any stack of 802.1Q / 802.1ad (QinQ) tags, MPLS
 * label stacks (RFC 3032), IPv4 (RFC 791), IPv6 (RFC 8200) with its extension header chain,
 * TCP (RFC 9293), UDP (RFC 768), ICMP (RFC 792), ICMPv6 (RFC 4443), and the tunnels real
 * networks carry: IP-in-IP (protocol 4 and 41, RFC 2003 / RFC 2473), GRE (protocol 47,
 * RFC 2784 / RFC 2890) and VXLAN (UDP port 4789, RFC 7348). Under the `inner` layer policy
 * (the default, layer-policy.ts) every IP field comes from the innermost header read; under
 * `outer` from the first. Fields are never mixed across headers.
 */

import { ETHERNET_HEADER_BYTES, ETHERTYPE_IPV4, ETHERTYPE_IPV6, MAX_VLAN_TAGS, VLAN_TAG_BYTES, isVlanTagType } from '../../flow/ethernet.js';
import type { LayerPolicy } from '../template/layer-policy.js';

/** sFlow header_protocol values (sFlow v5 §5.2, "header_protocol" enum). */
export const HeaderProtocol = {
  Ethernet: 1,
  Ipv4: 11,
  Ipv6: 12,
} as const;

const VLAN_ID_MASK = 0x0fff;

const IPV4_MIN_HEADER_BYTES = 20;
const IPV6_HEADER_BYTES = 40;
/** IPv4 flags/fragment-offset: the 13-bit offset; a non-zero offset means no L4 header. */
const IPV4_FRAGMENT_OFFSET_MASK = 0x1fff;
/** Bound on the IPv6 extension-header walk (RFC 8200 §4.1 recommends each type at most once or twice). */
const MAX_IPV6_EXTENSION_HEADERS = 8;

const PROTO_HOPOPTS = 0;
const PROTO_ICMP = 1;
const PROTO_TCP = 6;
const PROTO_UDP = 17;
const PROTO_ROUTING = 43;
const PROTO_FRAGMENT = 44;
const PROTO_AH = 51;
const PROTO_ICMPV6 = 58;
const PROTO_DSTOPTS = 60;
const PROTO_MOBILITY = 135;
const PROTO_IPIP = 4;
const PROTO_IPV6_IN_IP = 41;
const PROTO_GRE = 47;

/** IANA-assigned VXLAN UDP port (RFC 7348 §5). */
const VXLAN_PORT = 4789;
const VXLAN_HEADER_BYTES = 8;
/** GRE (RFC 2784 §2, RFC 2890 §2): C, K and S bits each add 4 bytes to the 4-byte base header. */
const GRE_BASE_BYTES = 4;
const GRE_FLAG_CHECKSUM = 0x8000;
const GRE_FLAG_KEY = 0x2000;
const GRE_FLAG_SEQUENCE = 0x1000;
const GRE_VERSION_MASK = 0x0007;
/** Transparent Ethernet Bridging: GRE carrying an Ethernet frame (NVGRE, RFC 7637). */
const ETHERTYPE_TEB = 0x6558;
const ETHERTYPE_MPLS = 0x8847;
const ETHERTYPE_MPLS_MULTICAST = 0x8848;
const MPLS_LABEL_BYTES = 4;
/** More labels than this is not a real stack (RFC 3032 has no limit; real stacks hold 2–5). */
const MAX_MPLS_LABELS = 8;
/** Tunnels inside tunnels followed at most this deep; a crafted chain stops here. */
const MAX_ENCAPSULATIONS = 3;

/** What a sampled header revealed; null where the bytes ended or the layer is absent. */
export interface SampledHeaderInfo {
  /** VLAN IDs of the 802.1Q/802.1ad tags, outermost first. */
  vlans: number[];
  ethertype: number | null;
  ipVersion: number;
  srcAddr: number | Uint8Array | null;
  dstAddr: number | Uint8Array | null;
  protocol: number | null;
  /** IPv4 TOS byte or IPv6 traffic class. */
  tos: number | null;
  /** IPv4 total length, or IPv6 payload length + 40. */
  ipLength: number | null;
  srcPort: number | null;
  dstPort: number | null;
  /** TCP flags including NS (bit 8). */
  tcpFlags: number | null;
  icmpType: number | null;
  icmpCode: number | null;
  /** True when the header ended before the layer it was in was complete. */
  truncated: boolean;
  /** Encapsulations seen (IP-in-IP, GRE, VXLAN); 0 for a plain packet. */
  tunnels: number;
}

export function emptyHeaderInfo(): SampledHeaderInfo {
  return {
    vlans: [],
    ethertype: null,
    ipVersion: 0,
    srcAddr: null,
    dstAddr: null,
    protocol: null,
    tos: null,
    ipLength: null,
    srcPort: null,
    dstPort: null,
    tcpFlags: null,
    icmpType: null,
    icmpCode: null,
    truncated: false,
    tunnels: 0,
  };
}

/** Copies the IP-layer fields of `from` (an inner header) over `to`, as one unit. */
function takeIpLayer(to: SampledHeaderInfo, from: SampledHeaderInfo): void {
  to.ipVersion = from.ipVersion;
  to.srcAddr = from.srcAddr;
  to.dstAddr = from.dstAddr;
  to.protocol = from.protocol;
  to.tos = from.tos;
  to.ipLength = from.ipLength;
  to.srcPort = from.srcPort;
  to.dstPort = from.dstPort;
  to.tcpFlags = from.tcpFlags;
  to.icmpType = from.icmpType;
  to.icmpCode = from.icmpCode;
  to.truncated = from.truncated;
}

/** How deep the parse is and which layer it keeps (threaded through the recursive descent). */
export interface Walk {
  readonly policy: LayerPolicy;
  depth: number;
}

const INNER: LayerPolicy = 'inner';

function u16(b: Uint8Array, i: number): number {
  return ((b[i] ?? 0) << 8) | (b[i + 1] ?? 0);
}

function u32(b: Uint8Array, i: number): number {
  return (((b[i] ?? 0) << 24) | ((b[i + 1] ?? 0) << 16) | ((b[i + 2] ?? 0) << 8) | (b[i + 3] ?? 0)) >>> 0;
}

/**
 * Parses a sampled header of the given sFlow header_protocol. Unknown protocols give an
 * empty result. Never throws: every read is checked against `h.length`.
 */
export function parseSampledHeader(headerProtocol: number, h: Uint8Array, policy: LayerPolicy = INNER): SampledHeaderInfo {
  const info = emptyHeaderInfo();
  const walk: Walk = { policy, depth: 0 };
  switch (headerProtocol) {
    case HeaderProtocol.Ethernet:
      parseEthernet(h, info, 0, walk);
      break;
    case HeaderProtocol.Ipv4:
      parseIpv4(h, 0, info, walk);
      break;
    case HeaderProtocol.Ipv6:
      parseIpv6(h, 0, info, walk);
      break;
    default:
      break;
  }
  return info;
}

/** Parses an IP packet whose version is given by its first nibble (an ipHeaderPacketSection, an MPLS payload). */
export function parseIpPacket(h: Uint8Array, start: number, info: SampledHeaderInfo, walk: Walk = { policy: INNER, depth: 0 }): void {
  if (start >= h.length) {
    info.truncated = true;
    return;
  }
  const version = (h[start] ?? 0) >> 4;
  if (version === 4) parseIpv4(h, start, info, walk);
  else if (version === 6) parseIpv6(h, start, info, walk);
}

export function parseEthernet(h: Uint8Array, info: SampledHeaderInfo, start = 0, walk: Walk = { policy: INNER, depth: 0 }): void {
  if (start + ETHERNET_HEADER_BYTES > h.length) {
    info.truncated = true;
    return;
  }
  let pos = start + 12;
  let type = u16(h, pos);
  pos += 2;
  let tags = 0;
  while (isVlanTagType(type)) {
    if (tags >= MAX_VLAN_TAGS) return;
    if (pos + VLAN_TAG_BYTES > h.length) {
      info.truncated = true;
      return;
    }
    info.vlans.push(u16(h, pos) & VLAN_ID_MASK);
    type = u16(h, pos + 2);
    pos += VLAN_TAG_BYTES;
    tags++;
  }
  info.ethertype = type;
  parseEthertype(h, pos, type, info, walk);
}

function parseEthertype(h: Uint8Array, pos: number, type: number, info: SampledHeaderInfo, walk: Walk): void {
  if (type === ETHERTYPE_IPV4) parseIpv4(h, pos, info, walk);
  else if (type === ETHERTYPE_IPV6) parseIpv6(h, pos, info, walk);
  else if (type === ETHERTYPE_MPLS || type === ETHERTYPE_MPLS_MULTICAST) parseMpls(h, pos, info, walk);
}

/** RFC 3032 §2.1: 4-byte label stack entries, the last with the bottom-of-stack bit; then the payload, IP by its version nibble. */
function parseMpls(h: Uint8Array, pos: number, info: SampledHeaderInfo, walk: Walk): void {
  for (let i = 0; i < MAX_MPLS_LABELS; i++) {
    if (pos + MPLS_LABEL_BYTES > h.length) {
      info.truncated = true;
      return;
    }
    const bottom = ((h[pos + 2] ?? 0) & 0x01) === 1;
    pos += MPLS_LABEL_BYTES;
    if (bottom) {
      parseIpPacket(h, pos, info, walk);
      return;
    }
  }
}

/**
 * A tunnel's payload at `pos`: under the inner policy it is parsed into a fresh result and,
 * when an IP header was read there, replaces every IP field at once; under the outer policy
 * (or past MAX_ENCAPSULATIONS) the outer header stays. Returns whether the inner one was taken.
 */
function enterTunnel(info: SampledHeaderInfo, walk: Walk, parse: (inner: SampledHeaderInfo, w: Walk) => void): boolean {
  info.tunnels++;
  if (walk.policy !== INNER || walk.depth >= MAX_ENCAPSULATIONS) return false;
  const inner = emptyHeaderInfo();
  const w: Walk = { policy: walk.policy, depth: walk.depth + 1 };
  parse(inner, w);
  info.tunnels += inner.tunnels;
  if (inner.ipVersion === 0) return false;
  takeIpLayer(info, inner);
  return true;
}

/** RFC 2784 / RFC 2890 GRE header at `pos` (version 0 only; version 1 is PPTP's, RFC 2637). */
function parseGre(h: Uint8Array, pos: number, info: SampledHeaderInfo, walk: Walk): void {
  if (pos + GRE_BASE_BYTES > h.length) {
    info.truncated = true;
    return;
  }
  const flags = u16(h, pos);
  if ((flags & GRE_VERSION_MASK) !== 0) return;
  const type = u16(h, pos + 2);
  let payload = pos + GRE_BASE_BYTES;
  if ((flags & GRE_FLAG_CHECKSUM) !== 0) payload += 4;
  if ((flags & GRE_FLAG_KEY) !== 0) payload += 4;
  if ((flags & GRE_FLAG_SEQUENCE) !== 0) payload += 4;
  enterTunnel(info, walk, (inner, w) => {
    if (type === ETHERTYPE_TEB) parseEthernet(h, inner, payload, w);
    else parseEthertype(h, payload, type, inner, w);
  });
}

export function parseIpv4(h: Uint8Array, start: number, info: SampledHeaderInfo, walk: Walk = { policy: INNER, depth: 0 }): void {
  if (start + IPV4_MIN_HEADER_BYTES > h.length) {
    info.truncated = true;
    return;
  }
  const b0 = h[start] ?? 0;
  if (b0 >> 4 !== 4) return;
  const ihlBytes = (b0 & 0x0f) * 4;
  if (ihlBytes < IPV4_MIN_HEADER_BYTES) return;
  info.ipVersion = 4;
  info.tos = h[start + 1] ?? 0;
  info.ipLength = u16(h, start + 2);
  const fragmentOffset = u16(h, start + 6) & IPV4_FRAGMENT_OFFSET_MASK;
  info.protocol = h[start + 9] ?? 0;
  info.srcAddr = u32(h, start + 12);
  info.dstAddr = u32(h, start + 16);
  // Only the first fragment carries the transport header.
  if (fragmentOffset !== 0) return;
  const l4 = start + ihlBytes;
  if (l4 > h.length) {
    info.truncated = true;
    return;
  }
  parsePayload(h, l4, info.protocol, info, walk);
}

/** What follows an IP header: a tunnel (IP-in-IP, GRE, VXLAN over UDP) or the transport header. */
function parsePayload(h: Uint8Array, pos: number, protocol: number, info: SampledHeaderInfo, walk: Walk): void {
  switch (protocol) {
    case PROTO_IPIP:
      enterTunnel(info, walk, (inner, w) => parseIpv4(h, pos, inner, w));
      return;
    case PROTO_IPV6_IN_IP:
      enterTunnel(info, walk, (inner, w) => parseIpv6(h, pos, inner, w));
      return;
    case PROTO_GRE:
      parseGre(h, pos, info, walk);
      return;
    default:
      break;
  }
  parseTransport(h, pos, protocol, info);
  // RFC 7348 §5: VXLAN is UDP to port 4789, an 8-byte header, then the inner Ethernet frame.
  if (protocol === PROTO_UDP && info.dstPort === VXLAN_PORT && pos + 8 + VXLAN_HEADER_BYTES <= h.length) {
    const frame = pos + 8 + VXLAN_HEADER_BYTES;
    enterTunnel(info, walk, (inner, w) => parseEthernet(h, inner, frame, w));
  }
}

export function parseIpv6(h: Uint8Array, start: number, info: SampledHeaderInfo, walk: Walk = { policy: INNER, depth: 0 }): void {
  if (start + IPV6_HEADER_BYTES > h.length) {
    info.truncated = true;
    return;
  }
  const w0 = u32(h, start);
  if (w0 >>> 28 !== 6) return;
  info.ipVersion = 6;
  info.tos = (w0 >>> 20) & 0xff;
  info.ipLength = u16(h, start + 4) + IPV6_HEADER_BYTES;
  info.srcAddr = h.slice(start + 8, start + 24);
  info.dstAddr = h.slice(start + 24, start + 40);
  let next = h[start + 6] ?? 0;
  let pos = start + IPV6_HEADER_BYTES;
  for (let i = 0; i <= MAX_IPV6_EXTENSION_HEADERS; i++) {
    if (next === PROTO_HOPOPTS || next === PROTO_ROUTING || next === PROTO_DSTOPTS || next === PROTO_MOBILITY) {
      // RFC 8200 §4.3-4.6: Hdr Ext Len in 8-octet units, not counting the first 8.
      if (pos + 2 > h.length) break;
      const len = ((h[pos + 1] ?? 0) + 1) * 8;
      next = h[pos] ?? 0;
      pos += len;
    } else if (next === PROTO_AH) {
      // RFC 4302 §2.2: Payload Len in 4-octet units, minus 2.
      if (pos + 2 > h.length) break;
      const len = ((h[pos + 1] ?? 0) + 2) * 4;
      next = h[pos] ?? 0;
      pos += len;
    } else if (next === PROTO_FRAGMENT) {
      // RFC 8200 §4.5: 8 bytes; only the fragment with offset 0 carries the upper header.
      if (pos + 8 > h.length) break;
      const offset = u16(h, pos + 2) >>> 3;
      next = h[pos] ?? 0;
      pos += 8;
      if (offset !== 0) {
        info.protocol = next;
        return;
      }
    } else {
      info.protocol = next;
      if (pos > h.length) {
        info.truncated = true;
        return;
      }
      parsePayload(h, pos, next, info, walk);
      return;
    }
  }
  // The chain ran past the captured bytes (or the bound): the upper protocol is unknown.
  info.truncated = true;
}

/** Reads ports, TCP flags or ICMP type/code of a transport header starting at `pos`. */
export function parseTransport(h: Uint8Array, pos: number, protocol: number, info: SampledHeaderInfo): void {
  const avail = h.length - pos;
  switch (protocol) {
    case PROTO_TCP:
      if (avail < 4) {
        info.truncated = true;
        return;
      }
      info.srcPort = u16(h, pos);
      info.dstPort = u16(h, pos + 2);
      // Data offset/NS byte at 12, flags byte at 13 (RFC 9293 §3.1, RFC 3540 for NS).
      if (avail < 14) {
        info.truncated = true;
        return;
      }
      info.tcpFlags = (((h[pos + 12] ?? 0) & 0x01) << 8) | (h[pos + 13] ?? 0);
      return;
    case PROTO_UDP:
      if (avail < 4) {
        info.truncated = true;
        return;
      }
      info.srcPort = u16(h, pos);
      info.dstPort = u16(h, pos + 2);
      return;
    case PROTO_ICMP:
    case PROTO_ICMPV6:
      if (avail < 2) {
        info.truncated = true;
        return;
      }
      info.icmpType = h[pos] ?? 0;
      info.icmpCode = h[pos + 1] ?? 0;
      return;
    default:
      return;
  }
}
