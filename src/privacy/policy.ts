import { parsePrefix, type Prefix } from '../flow/cidr.js';
import { ConfigError, ConfigErrorCode } from '../flow/errors.js';
import type { FlowRecord } from '../flow/flow-record.js';

/**
 * The pseudonymisation policy (`privacy.pseudonymize`): an ordered list of rules, each a set
 * of prefixes with an action, first match wins, no match keeps the address (the public
 * internet stays in clear). It applies to the address fields listed in `fields`, the same
 * decision wherever an address appears: a host's address is pseudonymised as a source exactly
 * when it is as a destination, or the clear copy would re-identify the pseudonym.
 *
 * Where a pseudonym goes: inside the prefix that matched (its first `length` bits are kept,
 * Crypto-PAn scrambles the rest prefix-preservingly), and never onto an address the policy
 * decides otherwise: when the pseudonym lands on such an address (a server subnet kept in clear
 * inside a pseudonymised range), Crypto-PAn is applied again until it lands on an address the
 * same prefix entry governs ("cycle walking"), which keeps the map a bijection on that entry's
 * addresses and so reversible. Compile-time checks keep walks short: an entry whose range is
 * covered by earlier entries for more than MAX_CARVED_OUT_FRACTION is refused, as is one that
 * an earlier entry shadows whole.
 */

export type PseudonymizeAction = 'pseudonymize' | 'keep';
/** Address fields by their Fusion record names (docs/FUSION.md). */
export const PSEUDONYMIZE_FIELDS = ['srcip', 'dstip', 'nexthop', 'bgpnexthop'] as const;
export type PseudonymizeField = (typeof PSEUDONYMIZE_FIELDS)[number];

export interface PseudonymizeRuleConfig {
  readonly name?: string | undefined;
  readonly action: PseudonymizeAction;
  readonly prefixes: readonly string[];
}

export interface PseudonymPolicyConfig {
  readonly fields: readonly PseudonymizeField[];
  readonly rules: readonly PseudonymizeRuleConfig[];
}

/** FlowRecord property of each Fusion field name. */
export const FIELD_PROPS: Readonly<Record<PseudonymizeField, AddressProp>> = { srcip: 'srcAddr', dstip: 'dstAddr', nexthop: 'nextHop', bgpnexthop: 'bgpNextHop' };
export type AddressProp = keyof Pick<FlowRecord, 'srcAddr' | 'dstAddr' | 'nextHop' | 'bgpNextHop'>;

/**
 * Earlier entries may carve at most this share out of a pseudonymised prefix: a walk then
 * needs more than n steps with probability ≤ 2^−n (MAX_WALK_STEPS bounds it).
 */
export const MAX_CARVED_OUT_FRACTION = 0.5;
/** A walk longer than this gives up and the address is removed from the record (counted); probability ≤ 2^−64 per address under the check above. */
export const MAX_WALK_STEPS = 64;

/** One prefix of one rule, in policy order. */
export interface PolicyEntry {
  readonly rule: number;
  readonly label: string;
  readonly action: PseudonymizeAction;
  readonly prefix: Prefix;
}

/** The compiled policy: first-match lookups per family, in rule order. */
export class PseudonymPolicy {
  readonly entries: readonly PolicyEntry[];
  readonly props: readonly AddressProp[];
  readonly hasV4: boolean;
  readonly hasV6: boolean;
  /** IPv4 entries as parallel arrays (network, mask, entry index). */
  readonly #v4Net: Uint32Array;
  readonly #v4Mask: Uint32Array;
  readonly #v4Entry: Int32Array;
  readonly #v6: readonly { readonly net: Uint8Array; readonly length: number; readonly entry: number }[];

  constructor(entries: readonly PolicyEntry[], props: readonly AddressProp[]) {
    this.entries = entries;
    this.props = props;
    const v4 = entries.map((e, i) => ({ e, i })).filter((x) => x.e.prefix.family === 4);
    this.#v4Net = Uint32Array.from(v4.map((x) => x.e.prefix.v4Network));
    this.#v4Mask = Uint32Array.from(v4.map((x) => x.e.prefix.v4Mask));
    this.#v4Entry = Int32Array.from(v4.map((x) => x.i));
    this.#v6 = entries.flatMap((e, i) => (e.prefix.family === 6 ? [{ net: e.prefix.v6Network, length: e.prefix.length, entry: i }] : []));
    this.hasV4 = entries.some((e) => e.prefix.family === 4 && e.action === 'pseudonymize');
    this.hasV6 = entries.some((e) => e.prefix.family === 6 && e.action === 'pseudonymize');
  }

  /** Index of the first entry containing IPv4 address `a`, or −1. */
  matchV4(a: number): number {
    const net = this.#v4Net;
    const mask = this.#v4Mask;
    for (let i = 0; i < net.length; i++) if (((a & (mask[i] ?? 0)) >>> 0) === net[i]) return this.#v4Entry[i] ?? -1;
    return -1;
  }

  /** Index of the first entry containing IPv6 address `a` (16 bytes), or −1. */
  matchV6(a: Uint8Array): number {
    for (const p of this.#v6) if (v6Within(a, p.net, p.length)) return p.entry;
    return -1;
  }

  /** The entry index that pseudonymises `a`, or −1 when the policy keeps it in clear. */
  pseudonymizingEntryV4(a: number): number {
    const e = this.matchV4(a);
    return e >= 0 && this.entries[e]?.action === 'pseudonymize' ? e : -1;
  }

  pseudonymizingEntryV6(a: Uint8Array): number {
    const e = this.matchV6(a);
    return e >= 0 && this.entries[e]?.action === 'pseudonymize' ? e : -1;
  }
}

function v6Within(a: Uint8Array, net: Uint8Array, length: number): boolean {
  const full = length >> 3;
  for (let i = 0; i < full; i++) if (a[i] !== net[i]) return false;
  const rem = length & 7;
  if (rem === 0) return true;
  const m = (0xff << (8 - rem)) & 0xff;
  return ((a[full] ?? 0) & m) === net[full];
}

/** Whether prefix `inner` lies inside prefix `outer` (same family, outer no longer than inner). */
function within(inner: Prefix, outer: Prefix): boolean {
  if (inner.family !== outer.family || inner.length < outer.length) return false;
  if (inner.family === 4) return ((inner.v4Network & outer.v4Mask) >>> 0) === outer.v4Network;
  return v6Within(inner.v6Network, outer.v6Network, outer.length);
}

function policyError(setting: string, message: string): ConfigError {
  return new ConfigError(ConfigErrorCode.Invalid, setting, `${setting}: ${message}`);
}

/** Validates and compiles the policy; throws ConfigError naming the exact setting (`privacy.pseudonymize.rules[1].prefixes[0]`). */
export function compilePseudonymPolicy(config: PseudonymPolicyConfig, setting = 'privacy.pseudonymize'): PseudonymPolicy {
  const entries: PolicyEntry[] = [];
  config.rules.forEach((rule, r) => {
    const label = rule.name ?? `rule ${r}`;
    if (rule.prefixes.length === 0) throw policyError(`${setting}.rules[${r}].prefixes`, 'is empty; list at least one prefix');
    rule.prefixes.forEach((text, i) => {
      const prefix = parsePrefix(text);
      if (prefix === null) throw policyError(`${setting}.rules[${r}].prefixes[${i}]`, `must be an IP address or CIDR prefix (e.g. 10.0.0.0/8, 2001:db8:100::/40); got ${JSON.stringify(text)}`);
      entries.push({ rule: r, label, action: rule.action, prefix });
    });
  });
  entries.forEach((e, i) => {
    if (e.action !== 'pseudonymize') return;
    const where = `${setting}.rules[${e.rule}].prefixes[${config.rules[e.rule]?.prefixes.indexOf(e.prefix.text) ?? 0}]`;
    let carved = 0;
    for (let j = 0; j < i; j++) {
      const earlier = entries[j];
      if (earlier === undefined) continue;
      if (within(e.prefix, earlier.prefix)) {
        throw policyError(where, `${e.prefix.text} never applies: the earlier ${earlier.label} prefix ${earlier.prefix.text} covers it (first match wins); reorder the rules`);
      }
      if (within(earlier.prefix, e.prefix)) carved += 2 ** -(earlier.prefix.length - e.prefix.length);
    }
    if (carved > MAX_CARVED_OUT_FRACTION) {
      throw policyError(
        where,
        `earlier rules carve ${Math.round(carved * 100)} % out of ${e.prefix.text}; pseudonyms must stay inside what is left (at most ${MAX_CARVED_OUT_FRACTION * 100} % may be carved out): pseudonymise smaller prefixes instead`,
      );
    }
  });
  if (config.fields.length === 0) throw policyError(`${setting}.fields`, 'is empty; list the address fields to pseudonymise (srcip, dstip, nexthop, bgpnexthop)');
  const props = [...new Set(config.fields)].map((f) => FIELD_PROPS[f]);
  return new PseudonymPolicy(entries, props);
}
