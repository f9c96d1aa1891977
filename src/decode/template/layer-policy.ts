import type { FieldSpec } from '../../flow/flow-record.js';
import { DEFAULTS } from '../../config/defaults.js';

/**
 * One layer per record. A template of a tunnelled flow (IP-in-IP, IPv6-in-IPv6, GRE, VXLAN,
 * SRv6/MPLS encapsulation) repeats the IP header elements: the same element id appears once
 * per header. RFC 7011 §3.4.1 keeps repeated elements in template order, and exporters list the
 * headers in packet order, outer first. Every header field of a record must come from ONE
 * of those headers, or the record pairs, say, the inner addresses with the outer ports.
 *
 * Which header a field belongs to:
 * - an element that appears in every layer (as often as the most repeated header element):
 *   its k-th occurrence is layer k (outer = 0);
 * - an element that appears less often (IP-in-IP carries ports only inside): the layer of the
 *   nearest such "every layer" field before it, or after it when none comes before.
 *
 * `inner` (the default, as pmacct and akvorado decode) keeps the last layer, `outer` the
 * first. Fields of the other layers stay in the raw record, unmapped.
 */
export type LayerPolicy = 'inner' | 'outer';

/** The decode.tunnelLayer setting's default. */
export const DEFAULT_LAYER_POLICY: LayerPolicy = DEFAULTS.decode.tunnelLayer;

/** IPFIX/v9 elements that describe one IP header and what it carries (addresses, protocol, ports, ToS, flags, ICMP, IP version, flow label). */
const HEADER_ELEMENTS: ReadonlySet<number> = new Set([4, 5, 6, 7, 8, 11, 12, 27, 28, 31, 32, 60, 139, 176, 177, 178, 179, 180, 181, 182, 183, 192]);

export function isHeaderElement(f: FieldSpec): boolean {
  return f.enterprise === 0 && HEADER_ELEMENTS.has(f.id);
}

/**
 * For each field, whether the layer policy leaves it out of the mapping (false for every
 * non-header field, and for every field of a template with one layer).
 */
export function layerExclusions(fields: readonly FieldSpec[], scopeFieldCount: number, policy: LayerPolicy): boolean[] {
  const excluded = fields.map(() => false);
  const counts = new Map<number, number>();
  fields.forEach((f, i) => {
    if (i >= scopeFieldCount && isHeaderElement(f)) counts.set(f.id, (counts.get(f.id) ?? 0) + 1);
  });
  let layers = 0;
  for (const n of counts.values()) layers = Math.max(layers, n);
  if (layers <= 1) return excluded;
  const layerOf = fields.map(() => -1);
  const seen = new Map<number, number>();
  fields.forEach((f, i) => {
    if (i < scopeFieldCount || !isHeaderElement(f) || counts.get(f.id) !== layers) return;
    const k = seen.get(f.id) ?? 0;
    seen.set(f.id, k + 1);
    layerOf[i] = k;
  });
  let last = -1;
  fields.forEach((f, i) => {
    if (i < scopeFieldCount || !isHeaderElement(f)) return;
    const own = layerOf[i] ?? -1;
    if (own >= 0) {
      last = own;
      return;
    }
    if (last >= 0) {
      layerOf[i] = last;
      return;
    }
    // Before any field that is in every layer: the layer of the next such field.
    for (let j = i + 1; j < fields.length; j++) {
      const next = layerOf[j] ?? -1;
      if (next >= 0) {
        layerOf[i] = next;
        return;
      }
    }
  });
  const chosen = policy === 'inner' ? layers - 1 : 0;
  fields.forEach((f, i) => {
    if (i >= scopeFieldCount && isHeaderElement(f)) excluded[i] = layerOf[i] !== chosen;
  });
  return excluded;
}
