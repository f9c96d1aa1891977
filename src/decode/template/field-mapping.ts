import type { FieldSpec } from '../../flow/flow-record.js';
import { reverseTarget, REVERSE_ENTERPRISE, type Direction } from './biflow.js';
import { DEFAULT_LAYER_POLICY, layerExclusions, type LayerPolicy } from './layer-policy.js';
import type { MappingRule, ReadKind, TargetProp } from './mapping-rule.js';

export type { MappingRule, ReadKind, TargetProp } from './mapping-rule.js';

/**
 * Which FlowRecord property an Information Element fills, and how its bytes are read.
 * Applies to IPFIX IEs with enterprise 0 and to NetFlow v9 field types, which share the IANA
 * numbers for everything mapped here (RFC 3954 §8, RFC 7012 §5.1).
 */

/** Variable-length marker in a template field length (RFC 7011 §7). */
export const VARIABLE_LENGTH = 0xffff;
/** RFC 7011 §7: a first length byte of 255 means the real length follows in 2 bytes. */
const LONG_LENGTH_MARK = 255;

/**
 * Reads the length prefix of a variable-length field at `q` (RFC 7011 §7: 1 byte, or 255 then
 * 2 bytes). Returns length × 4 + prefix bytes (1 or 3), or -1 when the prefix or the value
 * would run past `end`. Packed into one number so the hot loops allocate nothing.
 */
export function readVarLength(view: DataView, q: number, end: number): number {
  if (q >= end) return -1;
  let n = view.getUint8(q);
  let prefix = 1;
  if (n === LONG_LENGTH_MARK) {
    if (q + 3 > end) return -1;
    n = view.getUint16(q + 1);
    prefix = 3;
  }
  return q + prefix + n > end ? -1 : n * 4 + prefix;
}

/**
 * IE id → rule. Ranks encode the preferences: delta counters over total counters
 * (octetDeltaCount 1 over octetTotalCount 85), IEEE VLAN ids over dot1q ids, millisecond
 * timestamps over coarser or relative ones, IPv4 over IPv6 (IPv6 stays a fallback, below).
 */
const RULES = new Map<number, readonly MappingRule[]>([
  [1, [{ prop: 'octets', kind: 'counter', rank: 0 }]],
  [85, [{ prop: 'octets', kind: 'counter', rank: 1 }]],
  [2, [{ prop: 'packets', kind: 'counter', rank: 0 }]],
  [86, [{ prop: 'packets', kind: 'counter', rank: 1 }]],
  [4, [{ prop: 'protocol', kind: 'uint', rank: 0 }]],
  [5, [{ prop: 'tos', kind: 'uint', rank: 0 }]],
  [6, [{ prop: 'tcpFlags', kind: 'uint', rank: 0 }]],
  [7, [{ prop: 'srcPort', kind: 'uint', rank: 0 }]],
  [11, [{ prop: 'dstPort', kind: 'uint', rank: 0 }]],
  [8, [{ prop: 'srcAddr', kind: 'ipv4', rank: 0 }]],
  [27, [{ prop: 'srcAddr', kind: 'ipv6', rank: 1 }]],
  [12, [{ prop: 'dstAddr', kind: 'ipv4', rank: 0 }]],
  [28, [{ prop: 'dstAddr', kind: 'ipv6', rank: 1 }]],
  [9, [{ prop: 'srcMask', kind: 'uint', rank: 0 }]],
  [29, [{ prop: 'srcMask', kind: 'uint', rank: 1 }]],
  [13, [{ prop: 'dstMask', kind: 'uint', rank: 0 }]],
  [30, [{ prop: 'dstMask', kind: 'uint', rank: 1 }]],
  [10, [{ prop: 'inputIf', kind: 'uint', rank: 0 }]],
  [252, [{ prop: 'inputIf', kind: 'uint', rank: 1 }]],
  [14, [{ prop: 'outputIf', kind: 'uint', rank: 0 }]],
  [253, [{ prop: 'outputIf', kind: 'uint', rank: 1 }]],
  [15, [{ prop: 'nextHop', kind: 'ipv4', rank: 0 }]],
  [62, [{ prop: 'nextHop', kind: 'ipv6', rank: 1 }]],
  [18, [{ prop: 'bgpNextHop', kind: 'ipv4', rank: 0 }]],
  [63, [{ prop: 'bgpNextHop', kind: 'ipv6', rank: 1 }]],
  [16, [{ prop: 'srcAs', kind: 'uint', rank: 0 }]],
  [17, [{ prop: 'dstAs', kind: 'uint', rank: 0 }]],
  [58, [{ prop: 'srcVlan', kind: 'uint', rank: 0 }]],
  [243, [{ prop: 'srcVlan', kind: 'uint', rank: 1 }]],
  [59, [{ prop: 'dstVlan', kind: 'uint', rank: 0 }]],
  [254, [{ prop: 'dstVlan', kind: 'uint', rank: 1 }]],
  [32, [{ prop: 'icmpType', kind: 'icmpTypeCode', rank: 0 }, { prop: 'icmpCode', kind: 'icmpTypeCode', rank: 0 }]],
  [176, [{ prop: 'icmpType', kind: 'uint', rank: 1 }]],
  [177, [{ prop: 'icmpCode', kind: 'uint', rank: 1 }]],
  [139, [{ prop: 'icmpType', kind: 'icmpTypeCode', rank: 2 }, { prop: 'icmpCode', kind: 'icmpTypeCode', rank: 2 }]],
  [178, [{ prop: 'icmpType', kind: 'uint', rank: 3 }]],
  [179, [{ prop: 'icmpCode', kind: 'uint', rank: 3 }]],
  [152, [{ prop: 'startMs', kind: 'millis', rank: 0 }]],
  [153, [{ prop: 'endMs', kind: 'millis', rank: 0 }]],
  [154, [{ prop: 'startMs', kind: 'ntp', rank: 1 }]],
  [155, [{ prop: 'endMs', kind: 'ntp', rank: 1 }]],
  [156, [{ prop: 'startMs', kind: 'ntp', rank: 2 }]],
  [157, [{ prop: 'endMs', kind: 'ntp', rank: 2 }]],
  [150, [{ prop: 'startMs', kind: 'seconds', rank: 3 }]],
  [151, [{ prop: 'endMs', kind: 'seconds', rank: 3 }]],
  [22, [{ prop: 'startMs', kind: 'sysUpTime', rank: 4 }]],
  [21, [{ prop: 'endMs', kind: 'sysUpTime', rank: 4 }]],
  [158, [{ prop: 'startMs', kind: 'deltaMicros', rank: 5 }]],
  [159, [{ prop: 'endMs', kind: 'deltaMicros', rank: 5 }]],
  [60, [{ prop: 'ipVersion', kind: 'uint', rank: 0 }]],
  [160, [{ prop: 'sysInit', kind: 'millis', rank: 0 }]],
  [48, [{ prop: 'samplerId', kind: 'uint', rank: 0 }]],
  [302, [{ prop: 'samplerId', kind: 'uint', rank: 1 }]],
  [34, [{ prop: 'samplingInterval', kind: 'uint', rank: 0 }]],
  [50, [{ prop: 'samplingInterval', kind: 'uint', rank: 1 }]],
  [305, [{ prop: 'samplingPacketInterval', kind: 'uint', rank: 0 }]],
  [306, [{ prop: 'samplingPacketSpace', kind: 'uint', rank: 0 }]],
]);

/** Properties whose IPv6 candidate is used when the IPv4 one is absent or 0.0.0.0 (dual-stack templates). */
export const ADDRESS_PROPS: ReadonlySet<TargetProp> = new Set(['srcAddr', 'dstAddr', 'nextHop', 'bgpNextHop']);

/** Field lengths each read kind accepts; anything else leaves the field unmapped (still in raw). */
function lengthFits(kind: ReadKind, length: number): boolean {
  switch (kind) {
    case 'uint':
    case 'counter':
      return length >= 1 && length <= 8;
    case 'ipv4':
    case 'seconds':
    case 'sysUpTime':
    case 'deltaMicros':
      return length === 4;
    case 'ipv6':
      return length === 16;
    case 'millis':
    case 'ntp':
      return length === 8;
    case 'icmpTypeCode':
      return length === 2;
  }
}

/** How one template field is used by a record decoder. */
export interface FieldPlan {
  readonly spec: FieldSpec;
  /** Assignments this field makes; empty when the field is only carried in raw. */
  readonly targets: readonly { readonly prop: TargetProp; readonly kind: ReadKind; readonly fallback: boolean }[];
}

/** How a template is planned: which header layer (layer-policy.ts) and which direction of a biflow (biflow.ts). */
export interface PlanOptions {
  readonly layer?: LayerPolicy;
  readonly direction?: Direction;
}

/**
 * Decides, once per template, which field fills which FlowRecord property. For every property
 * the lowest-ranked candidate wins; an IPv6 address candidate that loses to an IPv4 one is
 * kept as a fallback for records whose IPv4 value is 0.0.0.0. Header elements of the layers
 * the policy does not keep are left out; the reverse direction of a biflow maps reverse
 * elements (RFC 5103) and swaps the forward keys (see reverseTarget).
 */
export function planTemplate(fields: readonly FieldSpec[], scopeFieldCount: number, options: PlanOptions = {}): FieldPlan[] {
  const best = new Map<TargetProp, { index: number; rank: number; kind: ReadKind }>();
  const fallback = new Map<TargetProp, { index: number; kind: ReadKind }>();
  const hasV4Address = fields.some((f) => f.enterprise === 0 && (f.id === 8 || f.id === 12));
  const excluded = layerExclusions(fields, scopeFieldCount, options.layer ?? DEFAULT_LAYER_POLICY);
  const reverse = options.direction === 'reverse';
  fields.forEach((f, index) => {
    if (index < scopeFieldCount || f.length === VARIABLE_LENGTH || excluded[index] === true) return;
    if (f.enterprise !== 0 && !(reverse && f.enterprise === REVERSE_ENTERPRISE)) return;
    for (const forwardRule of RULES.get(f.id) ?? []) {
      const rule = reverse ? reverseTarget(forwardRule, f.enterprise === REVERSE_ENTERPRISE) : forwardRule;
      if (rule === null || !lengthFits(rule.kind, f.length)) continue;
      // ICMP: an IPv6-only template prefers the IPv6 type/code elements.
      const rank = !hasV4Address && (f.id === 139 || f.id === 178 || f.id === 179) ? rule.rank - 2 : rule.rank;
      const cur = best.get(rule.prop);
      if (cur === undefined || rank < cur.rank) {
        if (cur !== undefined && ADDRESS_PROPS.has(rule.prop) && cur.kind === 'ipv6') fallback.set(rule.prop, cur);
        best.set(rule.prop, { index, rank, kind: rule.kind });
      } else if (ADDRESS_PROPS.has(rule.prop) && rule.kind === 'ipv6' && cur.kind === 'ipv4' && !fallback.has(rule.prop)) {
        fallback.set(rule.prop, { index, kind: rule.kind });
      }
    }
  });
  return fields.map((spec, index) => {
    const targets: { prop: TargetProp; kind: ReadKind; fallback: boolean }[] = [];
    for (const [prop, b] of best) if (b.index === index) targets.push({ prop, kind: b.kind, fallback: false });
    for (const [prop, b] of fallback) if (b.index === index) targets.push({ prop, kind: b.kind, fallback: true });
    return { spec, targets };
  });
}
