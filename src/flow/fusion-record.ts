import type { Counter, FlowRecord, IpAddr } from './flow-record.js';
import { ipToString } from './ip.js';
import { protocolName } from './protocols.js';

/**
 * The Fusion flow record (../shared/FUSION.md, "The flow record"): the JSON object the drain
 * uploads and `--stdout` / `sealflow decode` print. Enrichment fields that Fusion adds on its
 * side (owner AS, geo, reputation, interface names) are not sent.
 *
 * Exact 64-bit counters: `bits` and `packets` are JSON numbers while they are safe integers
 * (≤ 2^53 - 1) and decimal strings beyond that, so no precision is ever lost.
 */
export type JsonCounter = number | string;

export interface FusionAs {
  asnumber: number;
  asorg: string;
}

export interface FusionTcpFlags {
  urg: boolean;
  ack: boolean;
  psh: boolean;
  rst: boolean;
  syn: boolean;
  fin: boolean;
  ece: boolean;
  cwr: boolean;
  ns: boolean;
}

export interface FusionFlowRecord {
  timestamp: number;
  flowtype: string;
  flowversion: number;
  flowsrcip: string;
  ipversion: number;
  srcip: string | null;
  dstip: string | null;
  srcport: number | null;
  dstport: number | null;
  protocol: string | null;
  protocolint: number | null;
  bits: JsonCounter;
  packets: JsonCounter;
  pbratio: number;
  flowbrate: number;
  flowprate: number;
  tos: number | null;
  tcpflags: FusionTcpFlags | null;
  tcpflagsint: number | null;
  input: number | null;
  output: number | null;
  srcmask: number | null;
  dstmask: number | null;
  nexthop: string | null;
  bgpnexthop: string | null;
  srcas: FusionAs | null;
  dstas: FusionAs | null;
  srcvlan: number | null;
  dstvlan: number | null;
  icmptype: number | null;
  icmpcode: number | null;
  /** Flow start/end, absolute Unix milliseconds. */
  start: number | null;
  end: number | null;
  /** end - start in ms. */
  duration: number | null;
  samplerate: number;
  /** Exporter sysUpTime in ms, where the protocol carries it. */
  uptime: number | null;
}

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

/** JSON form of an exact counter: a number while safe, else a decimal string. */
export function counterToJson(c: Counter): JsonCounter {
  if (typeof c === 'number') return c;
  return c <= MAX_SAFE ? Number(c) : c.toString();
}

/** octets × 8 exactly. */
export function bitsOf(octets: Counter): Counter {
  if (typeof octets === 'number') {
    const bits = octets * 8;
    return bits <= Number.MAX_SAFE_INTEGER ? bits : BigInt(octets) * 8n;
  }
  return octets * 8n;
}

/** A counter as a (possibly rounded) double, for rates and ratios only. */
function approx(c: Counter): number {
  return typeof c === 'number' ? c : Number(c);
}

function ipOrNull(a: IpAddr | null): string | null {
  return a === null ? null : ipToString(a);
}

export function tcpFlagsOf(v: number): FusionTcpFlags {
  return {
    fin: (v & 0x01) !== 0,
    syn: (v & 0x02) !== 0,
    rst: (v & 0x04) !== 0,
    psh: (v & 0x08) !== 0,
    ack: (v & 0x10) !== 0,
    urg: (v & 0x20) !== 0,
    ece: (v & 0x40) !== 0,
    cwr: (v & 0x80) !== 0,
    ns: (v & 0x100) !== 0,
  };
}

function round6(x: number): number {
  return Math.round(x * 1e6) / 1e6;
}

export function toFusionRecord(r: FlowRecord): FusionFlowRecord {
  const bits = bitsOf(r.octets);
  const bitsApprox = approx(bits);
  const packetsApprox = approx(r.packets);
  const duration = r.startMs !== null && r.endMs !== null && r.endMs >= r.startMs ? r.endMs - r.startMs : null;
  // Rates over the flow's duration; a zero-length flow (single packet) has no meaningful
  // rate, so it reports its totals as a per-second rate, as NetoFlow does.
  const seconds = duration !== null && duration > 0 ? duration / 1000 : 1;
  const icmp = r.protocol === 1 || r.protocol === 58;
  return {
    timestamp: r.exportTime,
    flowtype: r.flowtype,
    flowversion: r.flowversion,
    flowsrcip: r.exporter,
    ipversion: r.ipVersion,
    srcip: ipOrNull(r.srcAddr),
    dstip: ipOrNull(r.dstAddr),
    srcport: r.srcPort,
    dstport: r.dstPort,
    protocol: r.protocol === null ? null : protocolName(r.protocol),
    protocolint: r.protocol,
    bits: counterToJson(bits),
    packets: counterToJson(r.packets),
    pbratio: bitsApprox > 0 ? round6(packetsApprox / bitsApprox) : 0,
    flowbrate: round6(bitsApprox / seconds),
    flowprate: round6(packetsApprox / seconds),
    tos: r.tos,
    tcpflags: r.tcpFlags === null ? null : tcpFlagsOf(r.tcpFlags),
    tcpflagsint: r.tcpFlags,
    input: r.inputIf,
    output: r.outputIf,
    srcmask: r.srcMask,
    dstmask: r.dstMask,
    nexthop: ipOrNull(r.nextHop),
    bgpnexthop: ipOrNull(r.bgpNextHop),
    srcas: r.srcAs === null ? null : { asnumber: r.srcAs, asorg: '' },
    dstas: r.dstAs === null ? null : { asnumber: r.dstAs, asorg: '' },
    srcvlan: r.srcVlan,
    dstvlan: r.dstVlan,
    icmptype: icmp ? r.icmpType : null,
    icmpcode: icmp ? r.icmpCode : null,
    start: r.startMs,
    end: r.endMs,
    duration,
    samplerate: r.samplingInterval,
    uptime: r.uptimeMs,
  };
}
