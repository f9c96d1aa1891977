import type { Counter, FlowRecord, IpAddr } from '../../flow/flow-record.js';
import { newFlowRecord } from '../../flow/flow-record.js';
import { DecodeError, DecodeErrorCode } from '../../flow/errors.js';
import type { ExporterPacket } from '../../flow/exporter-packet.js';
import { ipToString } from '../../flow/ip.js';
import { ByteReader } from '../byte-reader.js';
import type { SampledHeaderInfo } from '../packet/header-parser.js';
import { parseSampledHeader } from '../packet/header-parser.js';
import type { LayerPolicy } from '../template/layer-policy.js';
import { DEFAULTS } from '../../config/defaults.js';

/**
 * sFlow version 5 (sflow.org, "sFlow Version 5", 2004), XDR encoded (RFC 4506: big-endian,
 * every item padded to a multiple of 4 bytes).
 *
 * Datagram:
 *   version u32 (= 5) | agent address (type u32: 1 IPv4 → 4 bytes, 2 IPv6 → 16 bytes,
 *   0 unknown → none) | sub_agent_id u32 | sequence_number u32 | uptime u32 (ms) |
 *   samples count u32 | samples
 * Sample / record envelope: data_format u32 (enterprise << 12 | format) | length u32 | data.
 * Every sample and record is decoded from a sub-reader cut to its declared length, so a
 * lying inner length cannot read past its parent; unknown formats are skipped by length.
 *
 * Each flow sample becomes one FlowRecord describing the ONE sampled packet: packets = 1,
 * samplingInterval = the sample's sampling rate (nothing is multiplied: estimated totals are
 * octets × samplingInterval), octets by the byte convention (SflowOctets, docs/decoding.md):
 * by default the IP packet length (IP header + payload), what NetFlow/IPFIX octet counters
 * count and what sflowtool, pmacct and akvorado report, so that sFlow and NetFlow records are
 * comparable in Fusion; optionally the sampled frame length (goflow2's bytes). Counter
 * samples are decoded for statistics (generic interface counters are returned) and never
 * turned into flows.
 */

export const SFLOW_VERSION = 5;

/**
 * sFlow byte convention: 'ip' counts the IP packet (IPv4 total length, IPv6 payload + 40) of
 * the header the layer policy keeps, falling back to the frame length for non-IP frames;
 * 'frame' counts the frame_length the agent reports (L2 header, and the FCS where the agent
 * includes it).
 */
export type SflowOctets = 'ip' | 'frame';

/** How decodeSflow shapes records (the probe's `decode` settings). */
export interface SflowDecodeOptions {
  readonly octets: SflowOctets;
  readonly layer: LayerPolicy;
}

/** The decode.sflowOctets and decode.tunnelLayer settings' defaults. */
export const DEFAULT_SFLOW_OPTIONS: SflowDecodeOptions = Object.freeze({ octets: DEFAULTS.decode.sflowOctets, layer: DEFAULTS.decode.tunnelLayer });

/** VLAN IDs are 12 bits (IEEE 802.1Q); agents write 0xFFFFFFFF or other values above 4095 for "none". */
const MAX_VLAN_ID = 4095;

/** goflow2's bound: no real agent fits more samples or records in one datagram (MTU ~1500). */
export const MAX_SFLOW_SAMPLES = 1000;
export const MAX_SFLOW_RECORDS_PER_SAMPLE = 1000;
/** An AS path longer than this (segments × ASes) is not a real BGP route; reject before allocating. */
export const MAX_SFLOW_AS_PATH = 1000;
/** Communities per extended gateway record, same reasoning. */
export const MAX_SFLOW_COMMUNITIES = 1000;
/** Smallest encoding of a sample or record: its data_format and length words. */
const ENVELOPE_BYTES = 8;

/** sFlow v5 §4 "address" type. */
const ADDRESS_UNKNOWN = 0;
const ADDRESS_IPV4 = 1;
const ADDRESS_IPV6 = 2;

/** Standard (enterprise 0) sample formats. */
export const SflowSampleFormat = {
  Flow: 1,
  Counters: 2,
  ExpandedFlow: 3,
  ExpandedCounters: 4,
} as const;

/** Standard (enterprise 0) flow record formats this decoder reads. */
export const SflowFlowRecordFormat = {
  RawPacketHeader: 1,
  SampledIpv4: 3,
  SampledIpv6: 4,
  ExtendedSwitch: 1001,
  ExtendedRouter: 1002,
  ExtendedGateway: 1003,
} as const;

/** Standard counter record formats this decoder reads. */
const COUNTER_RECORD_GENERIC_INTERFACE = 1;

/**
 * Interface encoding (sFlow v5 §5.1 "interface"): the 2 high bits give the format of the
 * 30-bit value in compact samples; expanded samples carry the format and a 32-bit value.
 */
export const SflowInterfaceFormat = {
  /** value is the ifIndex; 0x3fffffff means the packet came from / went to the agent itself. */
  Single: 0,
  /** value is a discard reason code (the packet was dropped). */
  Discarded: 1,
  /** value is the number of output interfaces (0 = unknown number > 1). */
  Multiple: 2,
} as const;
const INTERFACE_VALUE_MASK = 0x3fffffff;
/** ifIndex value meaning "internal to the agent" (no input/output interface). */
const INTERFACE_INTERNAL = 0x3fffffff;
/** Expanded samples may write the internal marker in the full 32-bit value. */
const INTERFACE_INTERNAL_EXPANDED = 0xffffffff;

export interface SflowInterface {
  format: number;
  value: number;
}

export interface SflowAsPathSegment {
  /** 1 = AS_SET, 2 = AS_SEQUENCE (RFC 4271 §4.3). */
  type: number;
  asns: number[];
}

/** Details of one flow sample beyond what FlowRecord carries, for tools and tests. */
export interface SflowFlowSampleDetail {
  /** Index of the matching FlowRecord among those this call appended. */
  recordIndex: number;
  expanded: boolean;
  sequence: number;
  sourceIdType: number;
  sourceIdIndex: number;
  samplingRate: number;
  samplePool: number;
  drops: number;
  input: SflowInterface;
  output: SflowInterface;
  /** Raw packet header record fields, when present. */
  headerProtocol: number | null;
  frameLength: number | null;
  stripped: number | null;
  headerLength: number | null;
  header: SampledHeaderInfo | null;
  /** Extended switch record as sent (VLAN 0 included), when present. */
  extendedSwitch: { srcVlan: number; srcPriority: number; dstVlan: number; dstPriority: number } | null;
  /** Extended gateway record, when present. */
  routerAs: number | null;
  srcPeerAs: number | null;
  asPath: SflowAsPathSegment[];
  communities: number[];
  localPref: number | null;
  /** Record formats (enterprise << 12 | format) skipped because this decoder does not read them. */
  skippedRecordFormats: number[];
}

/** sFlow v5 §5.3 generic interface counters (counter record 1). */
export interface SflowInterfaceCounters {
  sequence: number;
  sourceIdType: number;
  sourceIdIndex: number;
  ifIndex: number;
  ifType: number;
  ifSpeed: Counter;
  ifDirection: number;
  ifStatus: number;
  ifInOctets: Counter;
  ifInUcastPkts: number;
  ifInMulticastPkts: number;
  ifInBroadcastPkts: number;
  ifInDiscards: number;
  ifInErrors: number;
  ifInUnknownProtos: number;
  ifOutOctets: Counter;
  ifOutUcastPkts: number;
  ifOutMulticastPkts: number;
  ifOutBroadcastPkts: number;
  ifOutDiscards: number;
  ifOutErrors: number;
  ifPromiscuousMode: number;
}

export interface SflowDatagramInfo {
  sequence: number;
  /** Samples announced (and decoded or skipped) in the datagram. */
  samples: number;
  /** The agent address (also in each FlowRecord.exporter); the UDP source is `udpSource`. */
  agent: string;
  subAgentId: number;
  /** Agent uptime at export, ms. */
  uptimeMs: number;
  /** The datagram's UDP/transport source (packet.exporter), which may differ from the agent. */
  udpSource: string;
  flowSamples: number;
  counterSamples: number;
  /** Samples of formats this decoder does not read (e.g. drop samples, enterprise formats). */
  skippedSamples: number;
  /** Flow or counter records of formats this decoder does not read. */
  skippedRecords: number;
  /** Counter samples' generic interface counters, in datagram order. */
  interfaceCounters: SflowInterfaceCounters[];
}

function readAddress(r: ByteReader, what: string): IpAddr | null {
  const at = r.offset;
  const type = r.u32(`${what} type`);
  switch (type) {
    case ADDRESS_IPV4:
      return r.u32(what);
    case ADDRESS_IPV6:
      return r.bytes(16, what).slice();
    case ADDRESS_UNKNOWN:
      return null;
    default:
      throw new DecodeError(DecodeErrorCode.BadRecord, `sFlow ${what}: unknown address type ${type}`, at, { type });
  }
}

/** Reads an XDR count and checks it against a cap and against the bytes left (each item ≥ minBytes). */
function readCount(r: ByteReader, what: string, cap: number, minBytes: number): number {
  const at = r.offset;
  const n = r.u32(`${what} count`);
  if (n > cap || n * minBytes > r.remaining) {
    throw new DecodeError(DecodeErrorCode.BadCount, `sFlow ${what} count ${n} exceeds ${Math.min(cap, Math.floor(r.remaining / minBytes))}`, at, { count: n });
  }
  return n;
}

/** ifIndex for FlowRecord.inputIf/outputIf: only a single, real interface has one. */
export function interfaceIndex(i: SflowInterface): number | null {
  if (i.format !== SflowInterfaceFormat.Single) return null;
  if (i.value === INTERFACE_INTERNAL || i.value === INTERFACE_INTERNAL_EXPANDED) return null;
  return i.value;
}

function compactInterface(v: number): SflowInterface {
  return { format: v >>> 30, value: v & INTERFACE_VALUE_MASK };
}

/**
 * Decodes one sFlow v5 datagram: one FlowRecord per flow sample is appended to `out`, and
 * when `details` is given, one SflowFlowSampleDetail per flow sample to it. Atomic: on a
 * DecodeError nothing is appended.
 */
export function decodeSflow(packet: ExporterPacket, out: FlowRecord[], details?: SflowFlowSampleDetail[], options: SflowDecodeOptions = DEFAULT_SFLOW_OPTIONS): SflowDatagramInfo {
  const r = new ByteReader(packet.payload);
  const version = r.u32('sFlow version');
  if (version !== SFLOW_VERSION) {
    throw new DecodeError(DecodeErrorCode.BadVersion, `not an sFlow v5 datagram (version ${version})`, 0, { version });
  }
  const agentAddr = readAddress(r, 'agent address');
  const agent = agentAddr === null ? packet.exporter : ipToString(agentAddr);
  const subAgentId = r.u32('sub_agent_id');
  const sequence = r.u32('sequence_number');
  const uptimeMs = r.u32('uptime');
  const samples = readCount(r, 'samples', MAX_SFLOW_SAMPLES, ENVELOPE_BYTES);
  const info: SflowDatagramInfo = {
    sequence,
    samples,
    agent,
    subAgentId,
    uptimeMs,
    udpSource: packet.exporter,
    flowSamples: 0,
    counterSamples: 0,
    skippedSamples: 0,
    skippedRecords: 0,
    interfaceCounters: [],
  };
  const records: FlowRecord[] = [];
  const sampleDetails: SflowFlowSampleDetail[] = [];
  const ctx: SampleContext = { packet, agent, subAgentId, uptimeMs, info, records, details: sampleDetails, wantDetails: details !== undefined, options };
  for (let i = 0; i < samples; i++) {
    const format = r.u32('sample data_format');
    const length = r.u32('sample length');
    const s = r.sub(length, 'sample');
    if (format >>> 12 !== 0) {
      info.skippedSamples++;
      continue;
    }
    switch (format) {
      case SflowSampleFormat.Flow:
        decodeFlowSample(s, false, ctx);
        info.flowSamples++;
        break;
      case SflowSampleFormat.ExpandedFlow:
        decodeFlowSample(s, true, ctx);
        info.flowSamples++;
        break;
      case SflowSampleFormat.Counters:
        decodeCounterSample(s, false, ctx);
        info.counterSamples++;
        break;
      case SflowSampleFormat.ExpandedCounters:
        decodeCounterSample(s, true, ctx);
        info.counterSamples++;
        break;
      default:
        info.skippedSamples++;
        break;
    }
  }
  for (const rec of records) out.push(rec);
  if (details !== undefined) for (const d of sampleDetails) details.push(d);
  return info;
}

interface SampleContext {
  readonly packet: ExporterPacket;
  readonly agent: string;
  readonly subAgentId: number;
  readonly uptimeMs: number;
  readonly info: SflowDatagramInfo;
  readonly records: FlowRecord[];
  readonly details: SflowFlowSampleDetail[];
  readonly wantDetails: boolean;
  readonly options: SflowDecodeOptions;
}

/**
 * A sample's sequence number and data source: compact samples pack the source type in the
 * high byte and the index in the low 24 bits of one word; expanded samples use two words.
 */
function readSampleSource(s: ByteReader, expanded: boolean): { sequence: number; sourceIdType: number; sourceIdIndex: number } {
  const sequence = s.u32('sample sequence');
  if (expanded) return { sequence, sourceIdType: s.u32('source_id type'), sourceIdIndex: s.u32('source_id index') };
  const sourceId = s.u32('source_id');
  return { sequence, sourceIdType: sourceId >>> 24, sourceIdIndex: sourceId & 0xffffff };
}

/** sFlow v5 §5 flow_sample (format 1) and flow_sample_expanded (format 3). */
function decodeFlowSample(s: ByteReader, expanded: boolean, ctx: SampleContext): void {
  const { sequence, sourceIdType, sourceIdIndex } = readSampleSource(s, expanded);
  const samplingRate = s.u32('sampling_rate');
  const samplePool = s.u32('sample_pool');
  const drops = s.u32('drops');
  let input: SflowInterface;
  let output: SflowInterface;
  if (expanded) {
    input = { format: s.u32('input format'), value: s.u32('input value') };
    output = { format: s.u32('output format'), value: s.u32('output value') };
  } else {
    input = compactInterface(s.u32('input'));
    output = compactInterface(s.u32('output'));
  }
  const nRecords = readCount(s, 'flow records', MAX_SFLOW_RECORDS_PER_SAMPLE, ENVELOPE_BYTES);

  const { packet } = ctx;
  const rec = newFlowRecord('sflow', SFLOW_VERSION, packet.transport, ctx.agent, packet.identity, ctx.subAgentId, Math.floor(packet.receivedAtMs / 1000));
  rec.packets = 1;
  // A sampling rate of 0 is meaningless (1 in 0); report such samples as unsampled.
  rec.samplingInterval = samplingRate === 0 ? 1 : samplingRate;
  rec.inputIf = interfaceIndex(input);
  rec.outputIf = interfaceIndex(output);
  // sFlow carries no per-sample time: the sample was taken shortly before the datagram left.
  rec.startMs = packet.receivedAtMs;
  rec.endMs = packet.receivedAtMs;
  rec.uptimeMs = ctx.uptimeMs;

  const detail: SflowFlowSampleDetail = {
    recordIndex: ctx.records.length,
    expanded,
    sequence,
    sourceIdType,
    sourceIdIndex,
    samplingRate,
    samplePool,
    drops,
    input,
    output,
    headerProtocol: null,
    frameLength: null,
    stripped: null,
    headerLength: null,
    header: null,
    extendedSwitch: null,
    routerAs: null,
    srcPeerAs: null,
    asPath: [],
    communities: [],
    localPref: null,
    skippedRecordFormats: [],
  };
  let haveFrameLength = false;
  let ipPacketLength: number | null = null;
  for (let i = 0; i < nRecords; i++) {
    const format = s.u32('flow record data_format');
    const length = s.u32('flow record length');
    const d = s.sub(length, 'flow record');
    switch (format) {
      case SflowFlowRecordFormat.RawPacketHeader: {
        const headerProtocol = d.u32('header_protocol');
        const frameLength = d.u32('frame_length');
        const stripped = d.u32('stripped');
        const headerLength = d.u32('header length');
        const header = d.bytes(headerLength, 'sampled header');
        const h = parseSampledHeader(headerProtocol, header, ctx.options.layer);
        detail.headerProtocol = headerProtocol;
        detail.frameLength = frameLength;
        detail.stripped = stripped;
        detail.headerLength = headerLength;
        detail.header = h;
        rec.octets = ctx.options.octets === 'ip' && h.ipLength !== null ? h.ipLength : frameLength;
        haveFrameLength = true;
        applyHeader(rec, h);
        break;
      }
      case SflowFlowRecordFormat.SampledIpv4: {
        const length = d.u32('sampled IPv4 length');
        rec.protocol = d.u32('protocol');
        rec.srcAddr = d.u32('src_ip');
        rec.dstAddr = d.u32('dst_ip');
        rec.srcPort = d.u32('src_port');
        rec.dstPort = d.u32('dst_port');
        rec.tcpFlags = d.u32('tcp_flags');
        rec.tos = d.u32('tos');
        rec.ipVersion = 4;
        ipPacketLength = length;
        break;
      }
      case SflowFlowRecordFormat.SampledIpv6: {
        const length = d.u32('sampled IPv6 length');
        rec.protocol = d.u32('protocol');
        rec.srcAddr = d.bytes(16, 'src_ip').slice();
        rec.dstAddr = d.bytes(16, 'dst_ip').slice();
        rec.srcPort = d.u32('src_port');
        rec.dstPort = d.u32('dst_port');
        rec.tcpFlags = d.u32('tcp_flags');
        rec.tos = d.u32('priority');
        rec.ipVersion = 6;
        ipPacketLength = length;
        break;
      }
      case SflowFlowRecordFormat.ExtendedSwitch: {
        const sw = { srcVlan: d.u32('src_vlan'), srcPriority: d.u32('src_priority'), dstVlan: d.u32('dst_vlan'), dstPriority: d.u32('dst_priority') };
        rec.srcVlan = vlanOrNull(sw.srcVlan);
        rec.dstVlan = vlanOrNull(sw.dstVlan);
        detail.extendedSwitch = sw;
        break;
      }
      case SflowFlowRecordFormat.ExtendedRouter: {
        rec.nextHop = readAddress(d, 'router next hop');
        rec.srcMask = d.u32('src_mask_len');
        rec.dstMask = d.u32('dst_mask_len');
        break;
      }
      case SflowFlowRecordFormat.ExtendedGateway:
        decodeExtendedGateway(d, rec, detail);
        break;
      default:
        ctx.info.skippedRecords++;
        if (ctx.wantDetails) detail.skippedRecordFormats.push(format);
        break;
    }
  }
  // Without a raw header the sampled IPv4/IPv6 record's IP length is the best size known.
  if (!haveFrameLength && ipPacketLength !== null) rec.octets = ipPacketLength;
  ctx.records.push(rec);
  if (ctx.wantDetails) ctx.details.push(detail);
}

/**
 * VLAN ID 0 is IEEE 802.1Q's "null VLAN ID" (a priority-only tag, or an untagged frame in
 * the extended switch record): the frame belongs to no VLAN, so the record carries none.
 * Values above 4095 (agents send 0xFFFFFFFF for "unknown") are no VLAN ID at all.
 */
function vlanOrNull(vid: number): number | null {
  return vid === 0 || vid > MAX_VLAN_ID ? null : vid;
}

/**
 * Fills what a parsed sampled header revealed; fields it did not see stay as they are. With
 * QinQ (802.1ad) the record's VLAN is the customer (inner, last) tag: the service tag names
 * the provider's transport, the customer tag the network the flow belongs to.
 */
function applyHeader(rec: FlowRecord, h: SampledHeaderInfo): void {
  const customer = h.vlans[h.vlans.length - 1];
  if (customer !== undefined && rec.srcVlan === null) rec.srcVlan = vlanOrNull(customer);
  if (h.ipVersion === 0) return;
  rec.ipVersion = h.ipVersion;
  rec.srcAddr = h.srcAddr;
  rec.dstAddr = h.dstAddr;
  rec.protocol = h.protocol;
  rec.tos = h.tos;
  if (h.srcPort !== null) rec.srcPort = h.srcPort;
  if (h.dstPort !== null) rec.dstPort = h.dstPort;
  if (h.tcpFlags !== null) rec.tcpFlags = h.tcpFlags;
  if (h.icmpType !== null) rec.icmpType = h.icmpType;
  if (h.icmpCode !== null) rec.icmpCode = h.icmpCode;
}

/**
 * sFlow v5 §5.4 extended_gateway (1003): next hop, the router's AS, source AS, source peer
 * AS, the AS path to the destination (segments of AS_SET/AS_SEQUENCE), communities, local
 * preference. The destination AS is the last AS of the path; an empty path means the
 * destination is in the router's own AS.
 */
function decodeExtendedGateway(d: ByteReader, rec: FlowRecord, detail: SflowFlowSampleDetail): void {
  rec.bgpNextHop = readAddress(d, 'gateway next hop');
  const routerAs = d.u32('as');
  const srcAs = d.u32('src_as');
  const srcPeerAs = d.u32('src_peer_as');
  // Each segment is at least its type and length words.
  const segments = readCount(d, 'AS path segments', MAX_SFLOW_AS_PATH, 8);
  const path: SflowAsPathSegment[] = [];
  let total = 0;
  let lastAs: number | null = null;
  for (let i = 0; i < segments; i++) {
    const type = d.u32('as path segment type');
    const n = readCount(d, 'AS path segment', MAX_SFLOW_AS_PATH - total, 4);
    total += n;
    const asns: number[] = [];
    for (let j = 0; j < n; j++) asns.push(d.u32('as path asn'));
    if (n > 0) lastAs = asns[n - 1] ?? null;
    path.push({ type, asns });
  }
  const nCommunities = readCount(d, 'communities', MAX_SFLOW_COMMUNITIES, 4);
  const communities: number[] = [];
  for (let i = 0; i < nCommunities; i++) communities.push(d.u32('community'));
  const localPref = d.u32('localpref');
  // sFlow v5 §5.4: a source AS of 0 means the source is in the router's own AS (sflowtool, pmacct).
  rec.srcAs = srcAs === 0 ? routerAs : srcAs;
  rec.dstAs = lastAs ?? routerAs;
  detail.routerAs = routerAs;
  detail.srcPeerAs = srcPeerAs;
  detail.asPath = path;
  detail.communities = communities;
  detail.localPref = localPref;
}

/** sFlow v5 §5 counters_sample (format 2) and counters_sample_expanded (format 4). */
function decodeCounterSample(s: ByteReader, expanded: boolean, ctx: SampleContext): void {
  const { sequence, sourceIdType, sourceIdIndex } = readSampleSource(s, expanded);
  const n = readCount(s, 'counter records', MAX_SFLOW_RECORDS_PER_SAMPLE, ENVELOPE_BYTES);
  for (let i = 0; i < n; i++) {
    const format = s.u32('counter record data_format');
    const length = s.u32('counter record length');
    const d = s.sub(length, 'counter record');
    if (format !== COUNTER_RECORD_GENERIC_INTERFACE) {
      ctx.info.skippedRecords++;
      continue;
    }
    ctx.info.interfaceCounters.push({
      sequence,
      sourceIdType,
      sourceIdIndex,
      ifIndex: d.u32('ifIndex'),
      ifType: d.u32('ifType'),
      ifSpeed: d.u64('ifSpeed'),
      ifDirection: d.u32('ifDirection'),
      ifStatus: d.u32('ifStatus'),
      ifInOctets: d.u64('ifInOctets'),
      ifInUcastPkts: d.u32('ifInUcastPkts'),
      ifInMulticastPkts: d.u32('ifInMulticastPkts'),
      ifInBroadcastPkts: d.u32('ifInBroadcastPkts'),
      ifInDiscards: d.u32('ifInDiscards'),
      ifInErrors: d.u32('ifInErrors'),
      ifInUnknownProtos: d.u32('ifInUnknownProtos'),
      ifOutOctets: d.u64('ifOutOctets'),
      ifOutUcastPkts: d.u32('ifOutUcastPkts'),
      ifOutMulticastPkts: d.u32('ifOutMulticastPkts'),
      ifOutBroadcastPkts: d.u32('ifOutBroadcastPkts'),
      ifOutDiscards: d.u32('ifOutDiscards'),
      ifOutErrors: d.u32('ifOutErrors'),
      ifPromiscuousMode: d.u32('ifPromiscuousMode'),
    });
  }
}
