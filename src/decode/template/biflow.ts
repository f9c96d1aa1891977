import type { FieldSpec, FlowRecord } from '../../flow/flow-record.js';
import type { MappingRule, TargetProp } from './mapping-rule.js';

/**
 * Bidirectional flows (RFC 5103). A biflow record carries the forward direction in the usual
 * elements and the reverse direction's non-key values in "reverse" elements: the same element
 * ids under Private Enterprise Number 29305 (RFC 5103 §6.1). sealflow splits such a record
 * into two FlowRecords, one per direction, so that Fusion sees each direction as the
 * unidirectional flow it is:
 *
 * - forward: the ordinary mapping (reverse elements are ignored);
 * - reverse: addresses, ports, interfaces, masks, ASes and VLANs swapped (source of the
 *   reverse flow = destination of the forward one), counters, TCP flags, ToS, ICMP type/code
 *   and next hops only from reverse elements, protocol / IP version / sampling as forward, and
 *   the forward start/end times where no reverse time element is present (RFC 5103 §6.3: the
 *   biflow's times cover both directions).
 *
 * A direction is emitted only when it saw traffic (packets > 0; octets when the template
 * counts no packets): the reverse record only when the reverse side has packets, the
 * forward record unless it is empty while the reverse side is not (a "reverse-only" biflow).
 */
export type Direction = 'forward' | 'reverse';

/** RFC 5103 §6.1: the Reverse Information Element Private Enterprise Number. */
export const REVERSE_ENTERPRISE = 29305;

const SWAPPED: Partial<Record<TargetProp, TargetProp>> = {
  srcAddr: 'dstAddr',
  dstAddr: 'srcAddr',
  srcPort: 'dstPort',
  dstPort: 'srcPort',
  inputIf: 'outputIf',
  outputIf: 'inputIf',
  srcMask: 'dstMask',
  dstMask: 'srcMask',
  srcAs: 'dstAs',
  dstAs: 'srcAs',
  srcVlan: 'dstVlan',
  dstVlan: 'srcVlan',
};

/** Properties both directions share: the forward element fills them in the reverse record too. */
const SHARED: ReadonlySet<TargetProp> = new Set(['protocol', 'ipVersion', 'samplerId', 'samplingInterval']);

/** Rank added to a forward time used in the reverse record, so any reverse time element wins. */
const FORWARD_TIME_PENALTY = 100;

/**
 * The rule a field follows in the reverse record: `fromReverse` for a reverse element (RFC
 * 5103), else a forward element's rule swapped, shared, demoted (times) or dropped (null).
 */
export function reverseTarget(rule: MappingRule, fromReverse: boolean): MappingRule | null {
  if (fromReverse) return rule;
  const swapped = SWAPPED[rule.prop];
  if (swapped !== undefined) return { prop: swapped, kind: rule.kind, rank: rule.rank };
  if (SHARED.has(rule.prop)) return rule;
  if (rule.prop === 'startMs' || rule.prop === 'endMs') return { prop: rule.prop, kind: rule.kind, rank: rule.rank + FORWARD_TIME_PENALTY };
  return null;
}

/** Reverse elements that make a template a biflow: reverse octet or packet counters (RFC 5103 §6.1). */
const REVERSE_COUNTERS: ReadonlySet<number> = new Set([1, 2, 85, 86]);

/** Whether records of this template describe both directions (RFC 5103). */
export function isBiflowTemplate(fields: readonly FieldSpec[], scopeFieldCount: number): boolean {
  return fields.some((f, i) => i >= scopeFieldCount && f.enterprise === REVERSE_ENTERPRISE && REVERSE_COUNTERS.has(f.id));
}

/** What tells whether one direction of a biflow saw traffic. */
export type TrafficMeasure = 'packets' | 'octets' | 'none';

export function trafficMeasure(fields: readonly FieldSpec[], scopeFieldCount: number, enterprise: number): TrafficMeasure {
  const has = (ids: readonly number[]): boolean => fields.some((f, i) => i >= scopeFieldCount && f.enterprise === enterprise && ids.includes(f.id));
  if (has([2, 86])) return 'packets';
  if (has([1, 85])) return 'octets';
  return 'none';
}

export function sawTraffic(r: FlowRecord, m: TrafficMeasure): boolean {
  if (m === 'none') return true;
  const v = m === 'packets' ? r.packets : r.octets;
  return typeof v === 'bigint' ? v > 0n : v > 0;
}
