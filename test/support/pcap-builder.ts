/**
 * Builds classic pcap files from UDP datagrams, for tests: captures of what a real exporter
 * sent (written by a test that received the datagrams on a loopback socket) and synthetic
 * captures exercising every link type, byte order and timestamp resolution the reader
 * supports. IPv4 and UDP checksums are computed, so tshark reads the frames as valid.
 */
import { parseIpv4, parseIpv6 } from '../../src/flow/ip.js';

export interface PcapDatagram {
  readonly payload: Uint8Array;
  readonly src: string;
  readonly dst: string;
  readonly srcPort: number;
  readonly dstPort: number;
  /** Capture time, Unix ms (µs/ns part from `extraNs`). */
  readonly timestampMs: number;
  readonly extraNs?: number;
  /** Wrap the Ethernet frame in these 802.1Q VLAN tags (outermost first). */
  readonly vlans?: readonly number[];
  /** Split an IPv4 datagram into two fragments after this many bytes of IP payload (multiple of 8). */
  readonly fragmentAt?: number;
}

export type PcapLinkType = 0 | 1 | 101 | 113 | 228 | 229 | 276;

export interface PcapOptions {
  readonly linkType?: PcapLinkType;
  readonly littleEndian?: boolean;
  readonly nanosecond?: boolean;
  /** Truncate every captured frame to this many bytes (incl_len < orig_len). */
  readonly snaplen?: number;
}

function checksum(parts: readonly Uint8Array[]): number {
  let sum = 0;
  for (const p of parts) {
    for (let i = 0; i < p.length; i += 2) sum += ((p[i] ?? 0) << 8) | (p[i + 1] ?? 0);
  }
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

function addrBytes(a: string): Uint8Array {
  if (a.includes(':')) {
    const b = parseIpv6(a);
    if (b === null) throw new Error(`bad IPv6 ${a}`);
    return b;
  }
  const v = parseIpv4(a);
  if (v === null) throw new Error(`bad IPv4 ${a}`);
  return new Uint8Array([v >>> 24, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff]);
}

function udpSegment(d: PcapDatagram, src: Uint8Array, dst: Uint8Array): Uint8Array {
  const seg = new Uint8Array(8 + d.payload.length);
  const v = new DataView(seg.buffer);
  v.setUint16(0, d.srcPort);
  v.setUint16(2, d.dstPort);
  v.setUint16(4, seg.length);
  seg.set(d.payload, 8);
  const pseudo = new Uint8Array(src.length * 2 + (src.length === 4 ? 4 : 8));
  pseudo.set(src, 0);
  pseudo.set(dst, src.length);
  const pv = new DataView(pseudo.buffer);
  if (src.length === 4) {
    pv.setUint8(9, 17);
    pv.setUint16(10, seg.length);
  } else {
    pv.setUint32(32, seg.length);
    pv.setUint8(39, 17);
  }
  const padded = seg.length % 2 === 0 ? seg : Uint8Array.from([...seg, 0]);
  const c = checksum([pseudo, padded]);
  v.setUint16(6, c === 0 ? 0xffff : c);
  return seg;
}

let ipId = 1;

/** IP packets (one, or two fragments) carrying the datagram. */
export function ipPackets(d: PcapDatagram): Uint8Array[] {
  const src = addrBytes(d.src);
  const dst = addrBytes(d.dst);
  const seg = udpSegment(d, src, dst);
  if (src.length === 16) {
    const p = new Uint8Array(40 + seg.length);
    const v = new DataView(p.buffer);
    v.setUint32(0, 0x60000000);
    v.setUint16(4, seg.length);
    v.setUint8(6, 17);
    v.setUint8(7, 64);
    p.set(src, 8);
    p.set(dst, 24);
    p.set(seg, 40);
    return [p];
  }
  const id = ipId++ & 0xffff;
  const v4 = (body: Uint8Array, offset8: number, more: boolean): Uint8Array => {
    const p = new Uint8Array(20 + body.length);
    const v = new DataView(p.buffer);
    v.setUint8(0, 0x45);
    v.setUint16(2, p.length);
    v.setUint16(4, id);
    v.setUint16(6, (more ? 0x2000 : 0) | offset8);
    v.setUint8(8, 64);
    v.setUint8(9, 17);
    p.set(src, 12);
    p.set(dst, 16);
    v.setUint16(10, checksum([p.subarray(0, 20)]));
    p.set(body, 20);
    return p;
  };
  if (d.fragmentAt !== undefined && d.fragmentAt < seg.length) {
    return [v4(seg.subarray(0, d.fragmentAt), 0, true), v4(seg.subarray(d.fragmentAt), d.fragmentAt / 8, false)];
  }
  return [v4(seg, 0, false)];
}

function frameFor(ip: Uint8Array, linkType: PcapLinkType, vlans: readonly number[]): Uint8Array {
  const ethertype = (ip[0] ?? 0) >> 4 === 6 ? 0x86dd : 0x0800;
  switch (linkType) {
    case 1: {
      const f = new Uint8Array(14 + vlans.length * 4 + ip.length);
      const v = new DataView(f.buffer);
      f.set([0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01], 0);
      let pos = 12;
      for (const vlan of vlans) {
        v.setUint16(pos, 0x8100);
        v.setUint16(pos + 2, vlan);
        pos += 4;
      }
      v.setUint16(pos, ethertype);
      f.set(ip, pos + 2);
      return f;
    }
    case 113: {
      const f = new Uint8Array(16 + ip.length);
      const v = new DataView(f.buffer);
      v.setUint16(0, 0); // packet type: to us
      v.setUint16(2, 772); // ARPHRD_LOOPBACK
      v.setUint16(4, 6);
      v.setUint16(14, ethertype);
      f.set(ip, 16);
      return f;
    }
    case 276: {
      const f = new Uint8Array(20 + ip.length);
      const v = new DataView(f.buffer);
      v.setUint16(0, ethertype);
      v.setUint32(4, 1); // ifindex
      v.setUint16(8, 772);
      v.setUint8(11, 6);
      f.set(ip, 20);
      return f;
    }
    case 0: {
      const f = new Uint8Array(4 + ip.length);
      // Host byte order (little-endian here); AF_INET = 2, AF_INET6 = 24 (BSD).
      new DataView(f.buffer).setUint32(0, ethertype === 0x0800 ? 2 : 24, true);
      f.set(ip, 4);
      return f;
    }
    case 101:
    case 228:
    case 229:
      return ip;
  }
}

/** A whole pcap file holding the datagrams in order. */
export function buildPcap(datagrams: readonly PcapDatagram[], opts: PcapOptions = {}): Uint8Array {
  const linkType = opts.linkType ?? 1;
  const le = opts.littleEndian ?? true;
  const chunks: Uint8Array[] = [];
  const gh = new Uint8Array(24);
  const gv = new DataView(gh.buffer);
  gv.setUint32(0, opts.nanosecond === true ? 0xa1b23c4d : 0xa1b2c3d4, le);
  gv.setUint16(4, 2, le);
  gv.setUint16(6, 4, le);
  gv.setUint32(16, opts.snaplen ?? 262144, le);
  gv.setUint32(20, linkType, le);
  chunks.push(gh);
  for (const d of datagrams) {
    for (const ip of ipPackets(d)) {
      const frame = frameFor(ip, linkType, d.vlans ?? []);
      const incl = opts.snaplen !== undefined ? Math.min(opts.snaplen, frame.length) : frame.length;
      const rh = new Uint8Array(16);
      const rv = new DataView(rh.buffer);
      const sec = Math.floor(d.timestampMs / 1000);
      const ms = d.timestampMs - sec * 1000;
      const frac = opts.nanosecond === true ? ms * 1_000_000 + (d.extraNs ?? 0) : ms * 1000 + Math.floor((d.extraNs ?? 0) / 1000);
      rv.setUint32(0, sec, le);
      rv.setUint32(4, frac, le);
      rv.setUint32(8, incl, le);
      rv.setUint32(12, frame.length, le);
      chunks.push(rh, frame.subarray(0, incl));
    }
  }
  const total = chunks.reduce((n, c) => n + c.length, 0);
  const out = new Uint8Array(total);
  let pos = 0;
  for (const c of chunks) {
    out.set(c, pos);
    pos += c.length;
  }
  return out;
}
