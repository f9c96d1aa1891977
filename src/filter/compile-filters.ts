import { parsePrefix, prefixContains, type Prefix } from '../flow/cidr.js';
import { ConfigError, ConfigErrorCode } from '../flow/errors.js';
import type { FlowRecord, IpAddr } from '../flow/flow-record.js';
import { parseIp } from '../flow/ip.js';
import { protocolNumber } from '../flow/protocols.js';

/**
 * Flow filters ("data governance" rules applied before anything is spooled): an ordered list
 * of rules, first match wins, else the default action — like firewall rules.
 *
 * Semantics (the contract the property test checks against a brute-force matcher):
 * - Within a rule, every field present must match (AND); within a field, any value may match
 *   (OR). A rule with no match fields matches every record.
 * - A record field that is absent (null, e.g. no ports for ICMP, no AS numbers from this
 *   exporter) does not match a rule that constrains that field.
 * - IPv4 prefixes match only IPv4 addresses and IPv6 prefixes only IPv6 addresses (an
 *   IPv4-mapped IPv6 address is IPv6 here; decoders emit IPv4 as IPv4).
 * - `exporters` matches FlowRecord.exporter: the UDP/TLS/DTLS peer, or sFlow's agent address.
 *
 * The input is plain data so the config schema can embed it; compileFilters() validates it
 * and throws ConfigError naming the exact setting (`filters.rules[2].srcports[1]`).
 */

export type FilterAction = 'accept' | 'drop';

export interface FilterRuleConfig {
  readonly name?: string | undefined;
  readonly action: FilterAction;
  readonly srcnets?: readonly string[] | undefined;
  readonly dstnets?: readonly string[] | undefined;
  /** Port numbers or "lo-hi" ranges (inclusive), e.g. [53, "1000-2000"]. */
  readonly srcports?: readonly (number | string)[] | undefined;
  readonly dstports?: readonly (number | string)[] | undefined;
  /** Protocol keywords ("tcp", "udp", "icmp", ...) or numbers 0..255. */
  readonly protocols?: readonly (string | number)[] | undefined;
  readonly srcasns?: readonly number[] | undefined;
  readonly dstasns?: readonly number[] | undefined;
  /** Exporter addresses or CIDR prefixes. */
  readonly exporters?: readonly string[] | undefined;
}

export interface FiltersConfig {
  readonly default: FilterAction;
  readonly rules: readonly FilterRuleConfig[];
}

/** The fields a rule may constrain, in the order the matcher evaluates them (cheapest first). */
const MATCH_FIELDS = ['protocols', 'dstports', 'srcports', 'srcnets', 'dstnets', 'srcasns', 'dstasns', 'exporters'] as const;
const RULE_KEYS: ReadonlySet<string> = new Set(['name', 'action', ...MATCH_FIELDS]);
const TOP_KEYS: ReadonlySet<string> = new Set(['default', 'rules']);

/** What a rule can look at: these fields of a FlowRecord (or of a record a fused writer is about to write, ingest-worker/fused-writer.ts). */
export type FilterFields = Pick<FlowRecord, 'protocol' | 'srcPort' | 'dstPort' | 'srcAddr' | 'dstAddr' | 'srcAs' | 'dstAs' | 'exporter'>;
/** FilterFields as a reusable object a fused writer fills per record. */
export type WritableFilterFields = { -readonly [K in keyof FilterFields]: FilterFields[K] };

/** Upper bound on rules: far beyond any sane policy, low enough that a typo'd generator cannot stall ingest. */
export const MAX_FILTER_RULES = 10_000;
/** Upper bound on values in one field (prefix lists are scanned linearly per record). */
export const MAX_FIELD_VALUES = 10_000;
/** AS numbers are 32-bit (RFC 6793). */
const MAX_ASN = 0xffffffff;
const MAX_PORT = 0xffff;
/**
 * Exporter match decisions are cached per exporter address text (exporters are few and
 * repeat on every record; parsing text per record would allocate). Cleared when full so a
 * source-address flood cannot grow memory.
 */
const EXPORTER_CACHE_MAX = 4096;

/** Prefixes of one family split for a tight loop: IPv4 as parallel mask/network arrays. */
class NetMatcher {
  private readonly v4Mask: Uint32Array;
  private readonly v4Net: Uint32Array;
  private readonly v6: readonly Prefix[];
  constructor(prefixes: readonly Prefix[]) {
    const v4 = prefixes.filter((p) => p.family === 4);
    this.v4Mask = Uint32Array.from(v4, (p) => p.v4Mask);
    this.v4Net = Uint32Array.from(v4, (p) => p.v4Network);
    this.v6 = prefixes.filter((p) => p.family === 6);
  }
  matches(addr: IpAddr): boolean {
    if (typeof addr === 'number') {
      const masks = this.v4Mask;
      const nets = this.v4Net;
      for (let i = 0; i < masks.length; i++) if (((addr & (masks[i] ?? 0)) >>> 0) === nets[i]) return true;
      return false;
    }
    for (const p of this.v6) if (prefixContains(p, addr)) return true;
    return false;
  }
}

/**
 * Port ranges, sorted and merged into disjoint inclusive [lo, hi] pairs in one typed array;
 * a binary search finds the candidate range.
 */
class RangeMatcher {
  private readonly bounds: Float64Array;
  constructor(ranges: readonly (readonly [number, number])[]) {
    const sorted = [...ranges].sort((a, b) => a[0] - b[0] || a[1] - b[1]);
    const merged: [number, number][] = [];
    for (const [lo, hi] of sorted) {
      const last = merged[merged.length - 1];
      if (last !== undefined && lo <= last[1] + 1) last[1] = Math.max(last[1], hi);
      else merged.push([lo, hi]);
    }
    this.bounds = new Float64Array(merged.length * 2);
    merged.forEach(([lo, hi], i) => {
      this.bounds[i * 2] = lo;
      this.bounds[i * 2 + 1] = hi;
    });
  }
  matches(v: number): boolean {
    const b = this.bounds;
    // Find the last range whose lo <= v.
    let lo = 0;
    let hi = (b.length >> 1) - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if ((b[mid * 2] ?? 0) <= v) lo = mid + 1;
      else hi = mid - 1;
    }
    return hi >= 0 && v <= (b[hi * 2 + 1] ?? -1);
  }
}

class ExporterMatcher {
  private readonly nets: NetMatcher;
  private readonly cache = new Map<string, boolean>();
  constructor(prefixes: readonly Prefix[]) {
    this.nets = new NetMatcher(prefixes);
  }
  matches(exporter: string): boolean {
    const hit = this.cache.get(exporter);
    if (hit !== undefined) return hit;
    const addr = parseIp(exporter);
    const result = addr !== null && this.nets.matches(addr);
    if (this.cache.size >= EXPORTER_CACHE_MAX) this.cache.clear();
    this.cache.set(exporter, result);
    return result;
  }
}

/** One compiled rule; a null matcher means the field is unconstrained. Shape is fixed (monomorphic). */
export class CompiledRule {
  constructor(
    readonly index: number,
    /** The configured name, or `#<index>` (used as a bounded metric label). */
    readonly label: string,
    readonly drop: boolean,
    private readonly protocols: Uint8Array | null,
    private readonly srcports: RangeMatcher | null,
    private readonly dstports: RangeMatcher | null,
    private readonly srcnets: NetMatcher | null,
    private readonly dstnets: NetMatcher | null,
    private readonly srcasns: ReadonlySet<number> | null,
    private readonly dstasns: ReadonlySet<number> | null,
    private readonly exporters: ExporterMatcher | null,
  ) {}

  matches(r: FilterFields): boolean {
    if (this.protocols !== null && (r.protocol === null || this.protocols[r.protocol] !== 1)) return false;
    if (this.dstports !== null && (r.dstPort === null || !this.dstports.matches(r.dstPort))) return false;
    if (this.srcports !== null && (r.srcPort === null || !this.srcports.matches(r.srcPort))) return false;
    if (this.srcnets !== null && (r.srcAddr === null || !this.srcnets.matches(r.srcAddr))) return false;
    if (this.dstnets !== null && (r.dstAddr === null || !this.dstnets.matches(r.dstAddr))) return false;
    if (this.srcasns !== null && (r.srcAs === null || !this.srcasns.has(r.srcAs))) return false;
    if (this.dstasns !== null && (r.dstAs === null || !this.dstasns.has(r.dstAs))) return false;
    if (this.exporters !== null && !this.exporters.matches(r.exporter)) return false;
    return true;
  }
}

/** An immutable compiled filter set. */
export class CompiledFilters {
  constructor(
    readonly rules: readonly CompiledRule[],
    readonly defaultDrop: boolean,
  ) {}

  /** Index of the first matching rule, or -1 when the default action applies. */
  firstMatch(r: FilterFields): number {
    const rules = this.rules;
    for (let i = 0; i < rules.length; i++) if (rules[i]?.matches(r) === true) return i;
    return -1;
  }

  /** Whether the record is dropped. */
  drops(r: FilterFields): boolean {
    const i = this.firstMatch(r);
    return this.rules[i]?.drop ?? this.defaultDrop;
  }
}

function invalid(setting: string, message: string): ConfigError {
  return new ConfigError(ConfigErrorCode.Invalid, setting, `${setting}: ${message}`);
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function checkAction(v: unknown, setting: string): FilterAction {
  if (v === 'accept' || v === 'drop') return v;
  throw invalid(setting, `must be "accept" or "drop", got ${JSON.stringify(v)}`);
}

/** Returns the list, or null when the field is absent; rejects non-lists and empty lists. */
function listOf(rule: Record<string, unknown>, field: string, setting: string): readonly unknown[] | null {
  const v = rule[field];
  if (v === undefined) return null;
  if (!Array.isArray(v)) throw invalid(setting, `must be a list, got ${JSON.stringify(v)}`);
  if (v.length === 0) {
    // An empty OR matches nothing, which is almost certainly not what was meant.
    throw invalid(setting, 'is an empty list, which would match nothing; remove the field to match any value');
  }
  if (v.length > MAX_FIELD_VALUES) throw invalid(setting, `has ${v.length} values; at most ${MAX_FIELD_VALUES} are allowed`);
  return v as readonly unknown[];
}

function compileNets(values: readonly unknown[], setting: string): Prefix[] {
  return values.map((v, i) => {
    const p = typeof v === 'string' ? parsePrefix(v) : null;
    if (p === null) {
      throw invalid(`${setting}[${i}]`, `${JSON.stringify(v)} is not an IPv4/IPv6 address or CIDR prefix (e.g. "10.0.0.0/8", "2001:db8::/32")`);
    }
    return p;
  });
}

const PORT_RANGE = /^\s*(\d{1,5})\s*-\s*(\d{1,5})\s*$/;
const PORT_SINGLE = /^\s*(\d{1,5})\s*$/;

function compilePorts(values: readonly unknown[], setting: string): RangeMatcher {
  const ranges = values.map((v, i): [number, number] => {
    const s = `${setting}[${i}]`;
    if (typeof v === 'number') {
      if (!Number.isInteger(v) || v < 0 || v > MAX_PORT) throw invalid(s, `port ${v} must be an integer 0..${MAX_PORT}`);
      return [v, v];
    }
    if (typeof v === 'string') {
      const single = PORT_SINGLE.exec(v);
      const range = PORT_RANGE.exec(v);
      const lo = Number(single?.[1] ?? range?.[1] ?? NaN);
      const hi = Number(single?.[1] ?? range?.[2] ?? NaN);
      if (Number.isNaN(lo)) throw invalid(s, `${JSON.stringify(v)} is not a port or a "low-high" port range (e.g. 443 or "1000-2000")`);
      if (lo > MAX_PORT || hi > MAX_PORT) throw invalid(s, `${JSON.stringify(v)}: ports must be 0..${MAX_PORT}`);
      if (lo > hi) throw invalid(s, `${JSON.stringify(v)}: range start is greater than its end`);
      return [lo, hi];
    }
    throw invalid(s, `${JSON.stringify(v)} is not a port number or "low-high" range`);
  });
  return new RangeMatcher(ranges);
}

function compileProtocols(values: readonly unknown[], setting: string): Uint8Array {
  const table = new Uint8Array(256);
  values.forEach((v, i) => {
    const n = typeof v === 'number' ? (Number.isInteger(v) && v >= 0 && v <= 255 ? v : null) : typeof v === 'string' ? protocolNumber(v) : null;
    if (n === null) {
      throw invalid(`${setting}[${i}]`, `${JSON.stringify(v)} is not a protocol number 0..255 or a known keyword (tcp, udp, icmp, ipv6-icmp, gre, esp, sctp, ...)`);
    }
    table[n] = 1;
  });
  return table;
}

function compileAsns(values: readonly unknown[], setting: string): ReadonlySet<number> {
  return new Set(
    values.map((v, i) => {
      if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > MAX_ASN) {
        throw invalid(`${setting}[${i}]`, `${JSON.stringify(v)} is not an AS number (integer 0..${MAX_ASN})`);
      }
      return v;
    }),
  );
}

function compileRule(raw: unknown, index: number, base: string): CompiledRule {
  const setting = `${base}.rules[${index}]`;
  if (!isRecord(raw)) throw invalid(setting, 'each rule must be a mapping with an "action" and optional match fields');
  for (const k of Object.keys(raw)) {
    if (!RULE_KEYS.has(k)) throw invalid(`${setting}.${k}`, `unknown field; a rule may have: ${[...RULE_KEYS].join(', ')}`);
  }
  const name = raw.name;
  if (name !== undefined && (typeof name !== 'string' || name.trim() === '')) throw invalid(`${setting}.name`, 'must be a non-empty string');
  const action = checkAction(raw.action, `${setting}.action`);
  const f = (field: string): readonly unknown[] | null => listOf(raw, field, `${setting}.${field}`);
  const protocols = f('protocols');
  const srcports = f('srcports');
  const dstports = f('dstports');
  const srcnets = f('srcnets');
  const dstnets = f('dstnets');
  const srcasns = f('srcasns');
  const dstasns = f('dstasns');
  const exporters = f('exporters');
  return new CompiledRule(
    index,
    name ?? `#${index}`,
    action === 'drop',
    protocols === null ? null : compileProtocols(protocols, `${setting}.protocols`),
    srcports === null ? null : compilePorts(srcports, `${setting}.srcports`),
    dstports === null ? null : compilePorts(dstports, `${setting}.dstports`),
    srcnets === null ? null : new NetMatcher(compileNets(srcnets, `${setting}.srcnets`)),
    dstnets === null ? null : new NetMatcher(compileNets(dstnets, `${setting}.dstnets`)),
    srcasns === null ? null : compileAsns(srcasns, `${setting}.srcasns`),
    dstasns === null ? null : compileAsns(dstasns, `${setting}.dstasns`),
    exporters === null ? null : new ExporterMatcher(compileNets(exporters, `${setting}.exporters`)),
  );
}

/**
 * Validates and compiles the filter configuration (at start and on SIGHUP). `setting` is the
 * configuration path of the filters block, used in error messages.
 * @throws ConfigError naming the offending setting, e.g. `filters.rules[2].srcports[1]`.
 */
export function compileFilters(config: FiltersConfig, setting = 'filters'): CompiledFilters {
  const raw: unknown = config;
  if (!isRecord(raw)) throw invalid(setting, 'must be a mapping with "default" (accept|drop) and "rules"');
  for (const k of Object.keys(raw)) {
    if (!TOP_KEYS.has(k)) throw invalid(`${setting}.${k}`, 'unknown field; filters have "default" and "rules"');
  }
  const defaultAction = checkAction(raw.default, `${setting}.default`);
  const rules = raw.rules ?? [];
  if (!Array.isArray(rules)) throw invalid(`${setting}.rules`, 'must be a list of rules');
  if (rules.length > MAX_FILTER_RULES) throw invalid(`${setting}.rules`, `has ${rules.length} rules; at most ${MAX_FILTER_RULES} are allowed`);
  const compiled = (rules as unknown[]).map((r, i) => compileRule(r, i, setting));
  return new CompiledFilters(compiled, defaultAction === 'drop');
}
