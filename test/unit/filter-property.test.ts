import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { compileFilters, type FilterRuleConfig, type FiltersConfig } from '../../src/filter/compile-filters.js';
import { FlowFilter } from '../../src/filter/flow-filter.js';
import { newFlowRecord, type FlowRecord, type IpAddr } from '../../src/flow/flow-record.js';
import { ipToString, parseIp } from '../../src/flow/ip.js';
import type { RecordSink } from '../../src/flow/pipeline.js';

/*
 * Property: the compiled matcher and the FlowFilter agree with a deliberately naive matcher
 * written straight from the documented semantics (first matching rule wins; fields ANDed,
 * values ORed; absent record field never matches a constrained field; prefixes compared bit
 * by bit as strings). Values are drawn from small pools so rules and records collide often.
 */

const V4_POOL = ['10.0.0.1', '10.0.1.7', '10.1.2.3', '192.0.2.1', '192.0.2.200', '0.0.0.0', '255.255.255.255', '172.16.5.4'];
const V6_POOL = ['2001:db8::1', '2001:db8::ff', '2001:db8:1::1', 'fe80::1', '::1', '::', '2001:db8:ffff::8000:1', '::ffff:10.0.0.1'];
const PROTO_NAMES = ['tcp', 'udp', 'icmp', 'TCP', 'Udp', 'gre', 'ipv6-icmp', 'icmpv6', 'esp'];
const PROTO_NUMS = [1, 6, 17, 47, 50, 58, 0, 255];

// ---- the brute-force reference --------------------------------------------------------
function bits(a: IpAddr): string {
  if (typeof a === 'number') return a.toString(2).padStart(32, '0');
  return [...a].map((b) => b.toString(2).padStart(8, '0')).join('');
}
function netMatches(prefix: string, a: IpAddr | null): boolean {
  if (a === null) return false;
  const [addrText, lenText] = prefix.split('/');
  const p = parseIp(addrText ?? '');
  if (p === null) throw new Error(`bad test prefix ${prefix}`);
  if (typeof p !== typeof a) return false;
  const pb = bits(p);
  const len = lenText === undefined ? pb.length : Number(lenText);
  return bits(a).slice(0, len) === pb.slice(0, len);
}
function portMatches(spec: number | string, v: number | null): boolean {
  if (v === null) return false;
  if (typeof spec === 'number') return spec === v;
  const [lo, hi] = spec.includes('-') ? spec.split('-').map(Number) : [Number(spec), Number(spec)];
  return v >= (lo ?? NaN) && v <= (hi ?? NaN);
}
const NAME_TO_NUM: Record<string, number> = { tcp: 6, udp: 17, icmp: 1, gre: 47, 'ipv6-icmp': 58, icmpv6: 58, esp: 50 };
function protoMatches(spec: string | number, v: number | null): boolean {
  if (v === null) return false;
  return (typeof spec === 'number' ? spec : NAME_TO_NUM[spec.toLowerCase()]) === v;
}
function ruleMatches(rule: FilterRuleConfig, r: FlowRecord): boolean {
  const any = <T>(vals: readonly T[] | undefined, f: (v: T) => boolean): boolean => vals === undefined || vals.some(f);
  return (
    any(rule.srcnets, (p) => netMatches(p, r.srcAddr)) &&
    any(rule.dstnets, (p) => netMatches(p, r.dstAddr)) &&
    any(rule.srcports, (p) => portMatches(p, r.srcPort)) &&
    any(rule.dstports, (p) => portMatches(p, r.dstPort)) &&
    any(rule.protocols, (p) => protoMatches(p, r.protocol)) &&
    any(rule.srcasns, (n) => r.srcAs !== null && n === r.srcAs) &&
    any(rule.dstasns, (n) => r.dstAs !== null && n === r.dstAs) &&
    any(rule.exporters, (p) => netMatches(p, parseIp(r.exporter)))
  );
}
function bruteFirst(cfg: FiltersConfig, r: FlowRecord): number {
  return cfg.rules.findIndex((rule) => ruleMatches(rule, r));
}

// ---- generators -----------------------------------------------------------------------
const addrText = fc.oneof(fc.constantFrom(...V4_POOL), fc.constantFrom(...V6_POOL));
const prefixText = addrText.chain((a) =>
  fc.oneof(
    fc.constant(a),
    fc.integer({ min: 0, max: a.includes(':') ? 128 : 32 }).map((n) => `${a}/${n}`),
  ),
);
const portSpec = fc.oneof(
  fc.integer({ min: 0, max: 70 }),
  fc.integer({ min: 0, max: 70 }).map(String),
  fc.tuple(fc.integer({ min: 0, max: 70 }), fc.integer({ min: 0, max: 30 })).map(([lo, span]) => `${lo}-${lo + span}`),
  fc.constantFrom(65535, '65535', '0-65535', '65000-65535'),
);
const list = <T>(arb: fc.Arbitrary<T>): fc.Arbitrary<T[]> => fc.array(arb, { minLength: 1, maxLength: 4 });
const ruleArb: fc.Arbitrary<FilterRuleConfig> = fc.record(
  {
    action: fc.constantFrom('accept' as const, 'drop' as const),
    srcnets: list(prefixText),
    dstnets: list(prefixText),
    srcports: list(portSpec),
    dstports: list(portSpec),
    protocols: list(fc.oneof(fc.constantFrom(...PROTO_NAMES), fc.constantFrom(...PROTO_NUMS))),
    srcasns: list(fc.integer({ min: 0, max: 5 })),
    dstasns: list(fc.constantFrom(0, 1, 2, 4294967295)),
    exporters: list(prefixText),
  },
  { requiredKeys: ['action'] },
);
const configArb: fc.Arbitrary<FiltersConfig> = fc.record({
  default: fc.constantFrom('accept' as const, 'drop' as const),
  rules: fc.array(ruleArb, { maxLength: 6 }),
});
const ipArb: fc.Arbitrary<IpAddr | null> = fc.oneof(
  fc.constant(null),
  addrText.map((t) => parseIp(t)),
  fc.integer({ min: 0, max: 0xffffffff }),
);
const recordArb: fc.Arbitrary<FlowRecord> = fc
  .record({
    exporter: addrText,
    src: ipArb,
    dst: ipArb,
    sport: fc.option(fc.oneof(fc.integer({ min: 0, max: 100 }), fc.constantFrom(65535, 65000)), { nil: null }),
    dport: fc.option(fc.integer({ min: 0, max: 100 }), { nil: null }),
    proto: fc.option(fc.constantFrom(...PROTO_NUMS, 2, 132), { nil: null }),
    sas: fc.option(fc.integer({ min: 0, max: 6 }), { nil: null }),
    das: fc.option(fc.constantFrom(0, 1, 3, 4294967295), { nil: null }),
  })
  .map((x) => {
    const r = newFlowRecord('netflow', 10, 'udp', ipToString(parseIp(x.exporter) ?? 0), null, 0, 0);
    r.srcAddr = x.src;
    r.dstAddr = x.dst;
    r.srcPort = x.sport;
    r.dstPort = x.dport;
    r.protocol = x.proto;
    r.srcAs = x.sas;
    r.dstAs = x.das;
    return r;
  });

test('compiled filters pick the same first rule as a brute-force matcher', () => {
  fc.assert(
    fc.property(configArb, fc.array(recordArb, { maxLength: 40 }), (cfg, records) => {
      const compiled = compileFilters(cfg);
      for (const r of records) assert.equal(compiled.firstMatch(r), bruteFirst(cfg, r));
    }),
    { numRuns: 3000 },
  );
});

test('FlowFilter passes exactly the accepted records downstream and counts each rule exactly', () => {
  fc.assert(
    fc.property(configArb, fc.array(fc.array(recordArb, { maxLength: 20 }), { maxLength: 5 }), (cfg, batches) => {
      const got: FlowRecord[] = [];
      const sink: RecordSink = { accept: (rs) => void got.push(...rs) };
      const filter = new FlowFilter(compileFilters(cfg), sink);
      const want: FlowRecord[] = [];
      const perRule = new Array<number>(cfg.rules.length).fill(0);
      let defaults = 0;
      let dropped = 0;
      for (const batch of batches) {
        filter.accept(batch);
        for (const r of batch) {
          const i = bruteFirst(cfg, r);
          if (i >= 0) perRule[i] = (perRule[i] ?? 0) + 1;
          else defaults++;
          const action = i >= 0 ? cfg.rules[i]?.action : cfg.default;
          if (action === 'accept') want.push(r);
          else dropped++;
        }
      }
      assert.deepEqual(got, want);
      const stats = filter.stats();
      assert.deepEqual(
        stats.rules.map((s) => s.matched),
        perRule,
      );
      assert.equal(stats.defaultMatched, defaults);
      assert.equal(stats.dropped, dropped);
      assert.equal(stats.accepted, want.length);
      assert.ok(got.every((r, i) => r === want[i]), 'records are passed on by identity, not copied');
    }),
    { numRuns: 1500 },
  );
});
