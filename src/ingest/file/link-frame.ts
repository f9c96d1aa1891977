/**
 * One captured link-layer frame → the UDP datagram in it, shared by the classic pcap and the
 * pcapng readers: the link types read, the IPv4/IPv6 (extension headers, fragments) and UDP
 * headers, and the sink that collects packets and counts what is skipped.
 */
import { DecodeError, DecodeErrorCode } from '../../flow/errors.js';
import { ETHERNET_HEADER_BYTES, ETHERTYPE_IPV4, ETHERTYPE_IPV6, MAX_VLAN_TAGS, VLAN_TAG_BYTES, isVlanTagType } from '../../flow/ethernet.js';
import { ipv4ToString, ipv6ToString } from '../../flow/ip.js';
import type { CaptureReadOptions, CapturedPacket } from './capture-types.js';

/** Link-layer header types (tcpdump.org linktypes). */
export const LinkType = {
  Null: 0,
  Ethernet: 1,
  Raw: 101,
  LinuxSll: 113,
  Ipv4: 228,
  Ipv6: 229,
  LinuxSll2: 276,
} as const;

/** Linux cooked capture v1: protocol type at offset 14 of a 16-byte header. */
const SLL_HEADER_BYTES = 16;
/** Linux cooked capture v2: protocol type at offset 0 of a 20-byte header. */
const SLL2_HEADER_BYTES = 20;
/** BSD loopback: a 4-byte address family in the capturing host's byte order. */
const NULL_HEADER_BYTES = 4;

const PROTO_UDP = 17;
const PROTO_HOPOPTS = 0;
const PROTO_ROUTING = 43;
const PROTO_FRAGMENT = 44;
const PROTO_DSTOPTS = 60;
const MAX_IPV6_EXTENSION_HEADERS = 8;
const UDP_HEADER_BYTES = 8;
const IPV4_MF = 0x2000;
const IPV4_OFFSET_MASK = 0x1fff;

export function be32(b: Uint8Array, i: number): number {
  return (((b[i] ?? 0) << 24) | ((b[i + 1] ?? 0) << 16) | ((b[i + 2] ?? 0) << 8) | (b[i + 3] ?? 0)) >>> 0;
}

export function be16(b: Uint8Array, i: number): number {
  return ((b[i] ?? 0) << 8) | (b[i + 1] ?? 0);
}

/** Where the IP packet starts in a frame of the given link type, or null when it is not IP. */
function ipStart(frame: Uint8Array, linkType: number): number | null {
  switch (linkType) {
    case LinkType.Ethernet: {
      if (frame.length < ETHERNET_HEADER_BYTES) return null;
      let pos = 12;
      let type = be16(frame, pos);
      pos += 2;
      for (let tags = 0; isVlanTagType(type); tags++) {
        if (tags >= MAX_VLAN_TAGS || pos + VLAN_TAG_BYTES > frame.length) return null;
        type = be16(frame, pos + 2);
        pos += VLAN_TAG_BYTES;
      }
      return type === ETHERTYPE_IPV4 || type === ETHERTYPE_IPV6 ? pos : null;
    }
    case LinkType.LinuxSll: {
      if (frame.length < SLL_HEADER_BYTES) return null;
      const type = be16(frame, 14);
      return type === ETHERTYPE_IPV4 || type === ETHERTYPE_IPV6 ? SLL_HEADER_BYTES : null;
    }
    case LinkType.LinuxSll2: {
      if (frame.length < SLL2_HEADER_BYTES) return null;
      const type = be16(frame, 0);
      return type === ETHERTYPE_IPV4 || type === ETHERTYPE_IPV6 ? SLL2_HEADER_BYTES : null;
    }
    case LinkType.Null:
      // The family value differs between OSes (AF_INET6 is 10, 24, 28 or 30): the IP version
      // nibble that follows is what decides.
      return frame.length > NULL_HEADER_BYTES ? NULL_HEADER_BYTES : null;
    case LinkType.Raw:
    case LinkType.Ipv4:
    case LinkType.Ipv6:
      return 0;
    default:
      return null;
  }
}

interface UdpDatagram {
  src: string;
  srcPort: number;
  /** Offset of the UDP payload within the frame and its length. */
  payloadStart: number;
  payloadLength: number;
}

type IpResult = UdpDatagram | 'fragment' | 'other';

function parseIp(frame: Uint8Array, start: number): IpResult {
  if (start >= frame.length) return 'other';
  const version = (frame[start] ?? 0) >> 4;
  if (version === 4) {
    if (start + 20 > frame.length) return 'other';
    const ihl = ((frame[start] ?? 0) & 0x0f) * 4;
    const total = be16(frame, start + 2);
    if (ihl < 20 || total < ihl || start + total > frame.length) return 'other';
    const flags = be16(frame, start + 6);
    if ((flags & IPV4_MF) !== 0 || (flags & IPV4_OFFSET_MASK) !== 0) return 'fragment';
    if (frame[start + 9] !== PROTO_UDP) return 'other';
    // The IP total length bounds the datagram: Ethernet pads short frames to 60 bytes.
    return udp(frame, start + ihl, start + total, ipv4ToString(be32(frame, start + 12)));
  }
  if (version === 6) {
    if (start + 40 > frame.length) return 'other';
    const end = start + 40 + be16(frame, start + 4);
    if (end > frame.length) return 'other';
    const src = ipv6ToString(frame.subarray(start + 8, start + 24));
    let next = frame[start + 6] ?? 0;
    let pos = start + 40;
    for (let i = 0; i < MAX_IPV6_EXTENSION_HEADERS; i++) {
      if (next === PROTO_UDP) return udp(frame, pos, end, src);
      if (next === PROTO_FRAGMENT) return 'fragment';
      if (next !== PROTO_HOPOPTS && next !== PROTO_ROUTING && next !== PROTO_DSTOPTS) return 'other';
      if (pos + 2 > end) return 'other';
      next = frame[pos] ?? 0;
      pos += ((frame[pos + 1] ?? 0) + 1) * 8;
    }
    return 'other';
  }
  return 'other';
}

function udp(frame: Uint8Array, pos: number, ipEnd: number, src: string): IpResult {
  if (pos + UDP_HEADER_BYTES > ipEnd) return 'other';
  const udpLength = be16(frame, pos + 4);
  if (udpLength < UDP_HEADER_BYTES || pos + udpLength > ipEnd) return 'other';
  return { src, srcPort: be16(frame, pos), payloadStart: pos + UDP_HEADER_BYTES, payloadLength: udpLength - UDP_HEADER_BYTES };
}

/** Where the frames of a pcap or pcapng file go: counts and packets, shared by both readers. */
export interface FrameSink {
  readonly packets: CapturedPacket[];
  readonly problems: DecodeError[];
  ipFragmentsSkipped: number;
  nonUdpSkipped: number;
}

export function newFrameSink(): FrameSink {
  return { packets: [], problems: [], ipFragmentsSkipped: 0, nonUdpSkipped: 0 };
}

export function isSupportedLinkType(linkType: number): boolean {
  return (Object.values(LinkType) as number[]).includes(linkType);
}

/**
 * Takes one captured frame (`frame` = bytes[frameStart, frameStart + frame.length)) of the
 * given link type: its UDP payload becomes a packet, a fragment or a non-UDP frame is counted,
 * a frame cut by the snapshot length is a problem.
 */
export function takeFrame(sink: FrameSink, bytes: Uint8Array, frame: Uint8Array, frameStart: number, origLen: number, linkType: number, receivedAtMs: number, opts: CaptureReadOptions): void {
  const start = ipStart(frame, linkType);
  const ip = start === null ? 'other' : parseIp(frame, start);
  if (ip === 'fragment') {
    sink.ipFragmentsSkipped++;
    return;
  }
  if (ip === 'other') {
    if (frame.length < origLen) {
      sink.problems.push(new DecodeError(DecodeErrorCode.Truncated, `pcap frame cut by the snapshot length (${frame.length} of ${origLen} bytes captured); skipped`, frameStart, { length: origLen }));
    } else {
      sink.nonUdpSkipped++;
    }
    return;
  }
  const exporter = opts.exporterOverride ?? ip.src;
  const payloadOffset = frameStart + ip.payloadStart;
  sink.packets.push({
    packet: {
      payload: bytes.subarray(payloadOffset, payloadOffset + ip.payloadLength),
      exporter,
      exporterPort: ip.srcPort,
      transport: 'file',
      sessionKey: opts.sessionKeyFor(exporter),
      identity: null,
      receivedAtMs,
    },
    fileOffset: payloadOffset,
  });
}
