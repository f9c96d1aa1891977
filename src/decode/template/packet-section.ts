import type { FieldSpec, FlowRecord } from '../../flow/flow-record.js';
import { readUnsignedN } from '../byte-reader.js';
import type { SampledHeaderInfo } from '../packet/header-parser.js';
import { emptyHeaderInfo, parseEthernet, parseIpPacket } from '../packet/header-parser.js';
import { readVarLength, VARIABLE_LENGTH, type FieldPlan } from './field-mapping.js';
import type { LayerPolicy } from './layer-policy.js';

/**
 * Packet sections (RFC 5477 §8.2 / RFC 7133 §4.7 and the IANA registry): some exporters send,
 * instead of or besides flow keys, the leading bytes of a packet — Juniper inline-jflow drop
 * reports, SRv6 and MPLS exporters, ipfixprobe, PSAMP packet reports. They are parsed with
 * the same header parser as sFlow's sampled headers (packet/header-parser.ts), under the same
 * layer policy, and fill what the template's own elements left empty:
 *
 * - dataLinkFrameSection (315): the frame from its L2 header (Ethernet);
 * - ipHeaderPacketSection (313): the packet from its IP header;
 * - addresses, IP version, protocol, ports, ToS, TCP flags and ICMP come from the section as
 *   one unit, and only when the template carries no address of its own (never mixed);
 * - the VLAN (the customer tag under QinQ) when the template has none;
 * - octets, when the template counts none: ipTotalLength (224), else the section's IP
 *   length, else dataLinkFrameSize (312) — the IP-length convention of docs/decoding.md;
 * - packets, when the template counts none: 1 (a section describes one packet).
 */
export interface SectionPlan {
  /** Index of the section field in the template. */
  readonly index: number;
  readonly kind: 'datalink' | 'ip';
  /** Index of ipTotalLength (224) / dataLinkFrameSize (312), -1 when absent. */
  readonly ipTotalLengthIndex: number;
  readonly frameSizeIndex: number;
  readonly mapsOctets: boolean;
  readonly mapsPackets: boolean;
  readonly policy: LayerPolicy;
}

const IE_IP_TOTAL_LENGTH = 224;
const IE_DATA_LINK_FRAME_SIZE = 312;
const IE_IP_HEADER_PACKET_SECTION = 313;
const IE_DATA_LINK_FRAME_SECTION = 315;

export function planSection(fields: readonly FieldSpec[], scopeFieldCount: number, plans: readonly FieldPlan[], policy: LayerPolicy): SectionPlan | null {
  const find = (id: number): number => fields.findIndex((f, i) => i >= scopeFieldCount && f.enterprise === 0 && f.id === id);
  const datalink = find(IE_DATA_LINK_FRAME_SECTION);
  const ip = find(IE_IP_HEADER_PACKET_SECTION);
  if (datalink < 0 && ip < 0) return null;
  const maps = (prop: string): boolean => plans.some((p) => p.targets.some((t) => t.prop === prop));
  return {
    index: datalink >= 0 ? datalink : ip,
    kind: datalink >= 0 ? 'datalink' : 'ip',
    ipTotalLengthIndex: find(IE_IP_TOTAL_LENGTH),
    frameSizeIndex: find(IE_DATA_LINK_FRAME_SIZE),
    mapsOctets: maps('octets'),
    mapsPackets: maps('packets'),
    policy,
  };
}

/**
 * Fills `r` from the packet section of the record at [p, end) (already decoded by the
 * template's decoder, so every length was checked). Never throws: a short or unparsable
 * section leaves the record as the template's elements made it.
 */
export function applySection(plan: SectionPlan, fields: readonly FieldSpec[], view: DataView, buf: Uint8Array, p: number, end: number, r: FlowRecord): void {
  let section: Uint8Array | null = null;
  let ipTotalLength = -1;
  let frameSize = -1;
  let q = p;
  for (let i = 0; i < fields.length; i++) {
    let n = fields[i]?.length ?? 0;
    if (n === VARIABLE_LENGTH) {
      const v = readVarLength(view, q, end);
      if (v < 0) return;
      n = v >>> 2;
      q += v & 3;
    }
    if (q + n > end) return;
    if (i === plan.index) section = buf.subarray(q, q + n);
    else if (i === plan.ipTotalLengthIndex && n <= 8) ipTotalLength = Number(readUnsignedN(view, q, n));
    else if (i === plan.frameSizeIndex && n <= 8) frameSize = Number(readUnsignedN(view, q, n));
    q += n;
  }
  if (section === null) return;
  const h: SampledHeaderInfo = emptyHeaderInfo();
  const walk = { policy: plan.policy, depth: 0 };
  if (plan.kind === 'datalink') parseEthernet(section, h, 0, walk);
  else parseIpPacket(section, 0, h, walk);
  if (r.srcAddr === null && r.dstAddr === null && h.ipVersion !== 0) {
    r.ipVersion = h.ipVersion;
    r.srcAddr = h.srcAddr;
    r.dstAddr = h.dstAddr;
    r.protocol = h.protocol;
    r.tos = h.tos;
    r.srcPort = h.srcPort;
    r.dstPort = h.dstPort;
    r.tcpFlags = h.tcpFlags;
    r.icmpType = h.icmpType;
    r.icmpCode = h.icmpCode;
  }
  const customer = h.vlans[h.vlans.length - 1];
  if (r.srcVlan === null && customer !== undefined && customer !== 0) r.srcVlan = customer;
  if (!plan.mapsOctets) {
    if (ipTotalLength >= 0) r.octets = ipTotalLength;
    else if (h.ipLength !== null) r.octets = h.ipLength;
    else if (frameSize >= 0) r.octets = frameSize;
  }
  if (!plan.mapsPackets) r.packets = 1;
}
