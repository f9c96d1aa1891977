/**
 * Parser for the packet header an sFlow agent copies into a raw packet header flow record
 * (sFlow v5 §5.2 "sampled_header"): the first `header_length` bytes of the sampled frame,
 * usually 128, so the headers are routinely cut short. The parser reads as far as the bytes
 * go and reports what it saw; a short or malformed header is never an error, since the
 * record's other fields (frame length, interfaces) are still worth a flow record.
 *
 * Layers: Ethernet II (IEEE 802.3) with any stack of 802.1Q / 802.1ad (QinQ) tags, IPv4
 * (RFC 791), IPv6 (RFC 8200) with its extension header chain, TCP (RFC 9293), UDP (RFC 768),
 * ICMP (RFC 792), ICMPv6 (RFC 4443).
 */

import { ETHERNET_HEADER_BYTES, ETHERTYPE_IPV4, ETHERTYPE_IPV6, MAX_VLAN_TAGS, VLAN_TAG_BYTES, isVlanTagType } from '../../flow/ethernet.js';

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
  };
}

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
export function parseSampledHeader(headerProtocol: number, h: Uint8Array): SampledHeaderInfo {
  const info = emptyHeaderInfo();
  switch (headerProtocol) {
    case HeaderProtocol.Ethernet:
      parseEthernet(h, info);
      break;
    case HeaderProtocol.Ipv4:
      parseIpv4(h, 0, info);
      break;
    case HeaderProtocol.Ipv6:
      parseIpv6(h, 0, info);
      break;
    default:
      break;
  }
  return info;
}

export function parseEthernet(h: Uint8Array, info: SampledHeaderInfo): void {
  if (h.length < ETHERNET_HEADER_BYTES) {
    info.truncated = true;
    return;
  }
  let pos = 12;
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
  if (type === ETHERTYPE_IPV4) parseIpv4(h, pos, info);
  else if (type === ETHERTYPE_IPV6) parseIpv6(h, pos, info);
}

export function parseIpv4(h: Uint8Array, start: number, info: SampledHeaderInfo): void {
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
  parseTransport(h, l4, info.protocol, info);
}

export function parseIpv6(h: Uint8Array, start: number, info: SampledHeaderInfo): void {
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
      parseTransport(h, pos, next, info);
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
