/**
 * The fused writers' invariant (src/ingest-worker/fused-writer.ts): writing IPFIX / NetFlow v9 records
 * straight from their bytes leaves exactly the batch bytes that decoding them into
 * FlowRecords and serializing those (BatchEncoder) would. Checked byte for byte on every
 * IPFIX/v9 capture of test/fixtures/corpora and on generated templates (every mapped element at
 * every length the mapping accepts, reduced-size encodings, variable-length and enterprise
 * fields, IPv4 0.0.0.0 with an IPv6 fallback, sysUpTime times with and without an uptime
 * anchor, samplers from options data, bigint counters), with NetFlow v5 / sFlow records of
 * the FlowRecord path mixed into the same batch. With privacy.pseudonymize, both paths replace
 * the policy's addresses (after the filter saw the real ones) and stamp the batch the same way.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { DecodeService } from '../../src/decode/decode-service.js';
import { BatchEncoder } from '../../src/batch/encoder.js';
import { Batcher } from '../../src/ingest-worker/batcher.js';
import { fusedWriterSource, FusedSetWriter } from '../../src/ingest-worker/fused-writer.js';
import { CapturedBatches } from '../support/batch-capture.js';
import { planTemplate } from '../../src/decode/template/field-mapping.js';
import { isBiflowTemplate, REVERSE_ENTERPRISE } from '../../src/decode/template/biflow.js';
import type { LayerPolicy } from '../../src/decode/template/layer-policy.js';
import type { ExporterPacket } from '../../src/flow/exporter-packet.js';
import { compileFilters, type FilterRuleConfig, type FiltersConfig } from '../../src/filter/compile-filters.js';
import { FlowFilter, type FlowFilterStats } from '../../src/filter/flow-filter.js';
import {
  VARLEN,
  dataSet,
  exporterPacket,
  ipfixMessage,
  ipfixOptionsTemplateSet,
  ipfixTemplateSet,
  v9OptionsTemplateFlowSet,
  v9Packet,
  v9TemplateFlowSet,
  type FieldDef,
  type FieldValue,
} from '../support/ipfix-builder.js';
import { corpora } from '../support/corpora.js';
import { compilePseudonymPolicy, type PseudonymPolicyConfig } from '../../src/privacy/policy.js';
import { PseudonymizeStage, Pseudonymizer, type PseudonymizerStats } from '../../src/privacy/pseudonymizer.js';
import type { RecordSink } from '../../src/flow/pipeline.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** The ingest worker's Batcher with limits never reached: everything lands in one batch, taken by `sink` at flush(). */
function batcherOver(sink: CapturedBatches, pz: Pseudonymizer | null = null): Batcher {
  return new Batcher(sink, { queued: true, maxRecords: 1e9, maxBytes: 1e12, setTimer: () => null, clearTimer: () => undefined, ...(pz === null ? {} : { keyStamp: () => pz.stamp }) });
}

const PZ_KEY = Uint8Array.from({ length: 32 }, (_, i) => i * 7 + 1);
/** A pseudonymiser as the ingest worker builds one (one per path, same key and time). */
function pseudonymizer(policy: PseudonymPolicyConfig): Pseudonymizer {
  return new Pseudonymizer({ policy: compilePseudonymPolicy(policy), masterKey: PZ_KEY, rotation: 'daily', epochSeconds: 3600, cacheEntries: 1024 }, 1_700_000_000_000);
}

interface BothWays {
  readonly viaRecords: Uint8Array;
  readonly fused: Uint8Array;
  readonly records: number;
  readonly fusedRecords: number;
  readonly errorsViaRecords: string[];
  readonly errorsFused: string[];
  /** The FlowFilter's counts each way (rules apply to FlowRecords on one side, inside the fused writers on the other). */
  readonly filterViaRecords: FlowFilterStats;
  readonly filterFused: FlowFilterStats;
  readonly pseudonymizedViaRecords: PseudonymizerStats | null;
  readonly pseudonymizedFused: PseudonymizerStats | null;
}

const ACCEPT_ALL: FiltersConfig = { default: 'accept', rules: [] };

/**
 * Decodes `packets` (in order, one DecodeService each way) and serializes the records both
 * ways, through `filters` as the ingest worker applies them: FlowFilter.accept() on the
 * FlowRecord path, FlowFilter.admit() inside the fused writers (none when it accepts all).
 */
function bothWays(packets: readonly ExporterPacket[], filters: FiltersConfig = ACCEPT_ALL, layerPolicy: LayerPolicy = 'inner', pseudonymize: PseudonymPolicyConfig | null = null): BothWays {
  const plain = new DecodeService({}, { rawRecords: false, layerPolicy });
  const a = new BatchEncoder(1 << 10);
  const pzA = pseudonymize === null ? null : pseudonymizer(pseudonymize);
  a.begin(0, pzA?.stamp ?? null);
  const encode: RecordSink = { accept: (rs) => { for (const r of rs) a.add(r); } };
  const filterA = new FlowFilter(compileFilters(filters), pzA === null ? encode : new PseudonymizeStage(pzA, encode));
  let records = 0;
  const errorsViaRecords: string[] = [];
  for (const p of packets) {
    const o = plain.decode(p);
    assert.equal(o.fusedRecords, 0);
    filterA.accept(o.records);
    records += o.records.length;
    errorsViaRecords.push(...o.errors.map((e) => `${e.code}@${e.offset}`));
  }
  const b = new CapturedBatches();
  const pzB = pseudonymize === null ? null : pseudonymizer(pseudonymize);
  const batcher = batcherOver(b, pzB);
  const filterB = new FlowFilter(compileFilters(filters), pzB === null ? batcher : new PseudonymizeStage(pzB, batcher));
  const fused = new DecodeService({}, { rawRecords: false, layerPolicy, fused: new FusedSetWriter(batcher, filterB.acceptsAll ? null : filterB, pzB) });
  let fusedRecords = 0;
  let total = 0;
  const errorsFused: string[] = [];
  for (const p of packets) {
    const o = fused.decode(p);
    fusedRecords += o.fusedRecords;
    total += o.fusedRecords + o.records.length;
    if (filterB.acceptsAll) filterB.passedUnseen(o.fusedRecords);
    filterB.accept(o.records);
    errorsFused.push(...o.errors.map((e) => `${e.code}@${e.offset}`));
  }
  assert.equal(total, records, 'both ways decode the same number of records');
  assert.equal(fused.stats().records, plain.stats().records);
  // No records: the Batcher writes no batch at all (CapturedBatches then shows an empty unstamped one).
  if (a.records === 0) a.begin();
  return {
    viaRecords: a.finish().slice(), fused: (batcher.flush(), b.single()), records, fusedRecords, errorsViaRecords, errorsFused,
    filterViaRecords: filterA.stats(), filterFused: filterB.stats(),
    pseudonymizedViaRecords: pzA?.stats() ?? null, pseudonymizedFused: pzB?.stats() ?? null,
  };
}

function corpusPacket(payload: Uint8Array): ExporterPacket {
  return { payload, exporter: '192.0.2.1', exporterPort: 2055, transport: 'udp', sessionKey: 'corpus', identity: null, receivedAtMs: 1_700_000_000_000 };
}

describe('fused writers', () => {
  /** Every IPFIX/v9 capture of the corpora as one session each, by name; the ipfixcol2 file (many IPFIX messages) and goflow2's v9 captures too. */
  function corpusSessions(): Map<string, ExporterPacket[]> {
    const expected = JSON.parse(readFileSync(path.join(corpora, 'expected.json'), 'utf8')) as { captures: Record<string, { feed_in_order: string[] }> };
    const sessions = new Map<string, ExporterPacket[]>();
    for (const [name, capture] of Object.entries(expected.captures)) sessions.set(name, capture.feed_in_order.map((f) => corpusPacket(readFileSync(path.join(corpora, f)))));
    const file = readFileSync(path.join(corpora, 'ipfixcol2/example_flows.ipfix'));
    const messages: ExporterPacket[] = [];
    for (let off = 0; off + 4 <= file.length; off += file.readUInt16BE(off + 2)) messages.push(corpusPacket(file.subarray(off, off + file.readUInt16BE(off + 2))));
    sessions.set('ipfixcol2/example_flows.ipfix', messages);
    sessions.set(
      'goflow2',
      readdirSync(path.join(corpora, 'goflow2'))
        .sort()
        .map((f) => corpusPacket(readFileSync(path.join(corpora, 'goflow2', f)))),
    );
    return sessions;
  }

  test('every IPFIX / NetFlow v9 capture of the corpora: the same batch bytes as FlowRecord → BatchEncoder', () => {
    let direct = 0;
    const sessions = corpusSessions();
    for (const [name, packets] of sessions) {
      const r = bothWays(packets);
      assert.deepEqual(r.fused, r.viaRecords, `${name}: fused bytes differ`);
      assert.deepEqual(r.errorsFused, r.errorsViaRecords, `${name}: errors differ`);
      direct += r.fusedRecords;
    }
    assert.ok(sessions.size >= 22, `${sessions.size} sessions`);
    assert.ok(direct > 1000, `the fused path took ${direct} records`);
  });

  test('flow filters inside the fused writers (corpora): the same bytes and the same per-rule counts as on FlowRecords', () => {
    const configs: FiltersConfig[] = [
      { default: 'accept', rules: [{ action: 'drop', protocols: ['udp'], dstports: [53] }, { action: 'drop', srcnets: ['10.0.0.0/8', '2001:db8::/32'] }] },
      { default: 'drop', rules: [{ action: 'accept', protocols: ['tcp'] }, { action: 'accept', dstnets: ['192.168.0.0/16'], srcports: ['1024-65535'] }] },
      { default: 'accept', rules: [{ name: 'as', action: 'drop', srcasns: [0] }, { action: 'drop', exporters: ['192.0.2.0/24'], dstasns: [0] }] },
      { default: 'drop', rules: [] },
    ];
    let dropped = 0;
    let kept = 0;
    for (const filters of configs) {
      for (const [name, packets] of corpusSessions()) {
        const r = bothWays(packets, filters);
        assert.deepEqual(r.fused, r.viaRecords, `${name} ${JSON.stringify(filters)}: bytes differ`);
        assert.deepEqual(r.filterFused, r.filterViaRecords, `${name} ${JSON.stringify(filters)}: filter counts differ`);
        assert.deepEqual(r.errorsFused, r.errorsViaRecords);
        dropped += r.filterFused.dropped;
        kept += r.filterFused.accepted;
      }
    }
    // The configurations do keep some records and drop others (else the comparison proves little).
    assert.ok(dropped > 1000 && kept > 1000, `dropped ${dropped}, kept ${kept}`);
  });

  /** Pseudonymises nearly everything (standard Crypto-PAn from /0) except a carve-out, so the corpora's addresses are mostly replaced. */
  const PZ_EVERYTHING: PseudonymPolicyConfig = {
    fields: ['srcip', 'dstip', 'nexthop', 'bgpnexthop'],
    rules: [{ action: 'keep', prefixes: ['192.168.0.0/16', '2001:db8:ffff::/48'] }, { action: 'pseudonymize', prefixes: ['0.0.0.0/0', '::/0'] }],
  };
  /** Pseudonymises inside ranges, with a carve-out and with an address field left out. */
  const PZ_RANGES: PseudonymPolicyConfig = {
    fields: ['srcip', 'dstip', 'nexthop'],
    rules: [{ action: 'keep', prefixes: ['192.0.2.77/32', '10.1.0.0/16'] }, { action: 'pseudonymize', prefixes: ['10.0.0.0/8', '192.0.2.0/24', '2001:db8::/32', '::ffff:0:0/96'] }],
  };

  test('pseudonymisation in the fused writers (corpora, with and without filters): the same bytes, stamps and counts as on FlowRecords', () => {
    const filterConfigs: FiltersConfig[] = [ACCEPT_ALL, { default: 'accept', rules: [{ action: 'drop', protocols: ['udp'], dstports: [53] }, { action: 'drop', srcnets: ['10.0.0.0/8', '2001:db8::/32'] }] }];
    let pseudonymized = 0;
    let kept = 0;
    for (const policy of [PZ_EVERYTHING, PZ_RANGES]) {
      for (const filters of filterConfigs) {
        for (const [name, packets] of corpusSessions()) {
          const r = bothWays(packets, filters, 'inner', policy);
          assert.deepEqual(r.fused, r.viaRecords, `${name}: bytes differ`);
          assert.deepEqual(r.filterFused, r.filterViaRecords, `${name}: filter counts differ`);
          const { cacheHits: _h, cacheMisses: _m, ...countsFused } = r.pseudonymizedFused ?? ({} as PseudonymizerStats);
          const { cacheHits: _h2, cacheMisses: _m2, ...countsViaRecords } = r.pseudonymizedViaRecords ?? ({} as PseudonymizerStats);
          assert.deepEqual(countsFused, countsViaRecords, `${name}: pseudonymisation counts differ`);
          pseudonymized += r.pseudonymizedFused?.pseudonymized ?? 0;
          kept += r.pseudonymizedFused?.kept ?? 0;
          if (r.filterFused.accepted > 0) assert.equal(r.fused[0], 2, `${name}: a pseudonymised batch carries the key stamp (format version 2)`);
        }
      }
    }
    assert.ok(pseudonymized > 1000 && kept > 0, `pseudonymized ${pseudonymized}, kept ${kept}`);
  });

  /** Mapped elements with the lengths the mapping accepts (see field-mapping.ts), plus unmapped and enterprise ones. */
  const ELEMENTS: readonly { id: number; lengths: readonly number[]; kind: 'uint' | 'v4' | 'v6' | 'opaque' }[] = [
    ...[1, 2, 85, 86].map((id) => ({ id, lengths: [1, 2, 3, 4, 5, 6, 7, 8], kind: 'uint' as const })),
    ...[4, 5, 6, 7, 11, 9, 13, 29, 30, 10, 14, 252, 253, 16, 17, 58, 59, 243, 254, 176, 177, 178, 179, 60, 48, 302, 34, 50, 305, 306].map((id) => ({ id, lengths: [1, 2, 3, 4, 5, 6, 7, 8], kind: 'uint' as const })),
    ...[8, 12, 15, 18].map((id) => ({ id, lengths: [4], kind: 'v4' as const })),
    ...[27, 28, 62, 63].map((id) => ({ id, lengths: [16], kind: 'v6' as const })),
    ...[32, 139].map((id) => ({ id, lengths: [2], kind: 'uint' as const })),
    ...[152, 153, 154, 155, 156, 157, 160].map((id) => ({ id, lengths: [8], kind: 'uint' as const })),
    ...[150, 151, 22, 21, 158, 159].map((id) => ({ id, lengths: [4], kind: 'uint' as const })),
    { id: 82, lengths: [VARLEN, 4], kind: 'opaque' },
    { id: 95, lengths: [VARLEN], kind: 'opaque' },
  ];

  const arbField = fc
    .record({ e: fc.constantFrom(...ELEMENTS), li: fc.nat(), enterprise: fc.constantFrom(0, 0, 9, REVERSE_ENTERPRISE) })
    .map(({ e, li, enterprise }) => ({ def: { id: e.id, length: e.lengths[li % e.lengths.length] ?? 4, ...(enterprise !== 0 && e.kind === 'uint' ? { enterprise } : {}) }, kind: e.kind }));

  /** Biflow templates (RFC 5103: a reverse counter) make two records of one wire record and take the FlowRecord path. */
  const isBiflow = (defs: readonly FieldDef[]): boolean => isBiflowTemplate(defs.map((d) => ({ id: d.id, length: d.length, enterprise: d.enterprise ?? 0 })), 0);

  /** A value for `f`: often an edge (0, all ones, 0.0.0.0), so fallbacks, bigints and overflows are exercised. */
  function arbValue(f: FieldDef, kind: string): fc.Arbitrary<FieldValue> {
    if (kind === 'v4') return fc.constantFrom('0.0.0.0', '10.1.2.3', '255.255.255.255', '192.0.2.77');
    if (kind === 'v6') return fc.constantFrom('::', '2001:db8::1', 'fe80::1', '::ffff:10.0.0.1');
    if (kind === 'opaque') return fc.uint8Array({ maxLength: f.length === VARLEN ? 300 : f.length, minLength: f.length === VARLEN ? 0 : f.length });
    const max = 2n ** BigInt(8 * f.length) - 1n;
    return fc.oneof(fc.constantFrom(0n, 1n, max, max >> 1n), fc.bigInt({ min: 0n, max }));
  }

  test('generated templates (IPFIX and v9, options data, var-length, edge values): the same bytes both ways', () => {
    fc.assert(
      fc.property(
        fc.array(arbField, { minLength: 1, maxLength: 14 }).chain((fields) =>
          fc.record({
            fields: fc.constant(fields),
            rows: fc.array(fc.tuple(...fields.map((f) => arbValue(f.def, f.kind))), { minLength: 1, maxLength: 6 }),
            v9: fc.boolean(),
            options: fc.constantFrom('none', 'sampler', 'sysInit', 'future-sysInit'),
            transport: fc.constantFrom('udp' as const, 'tls' as const),
            uptimeMs: fc.constantFrom(0, 5000, 4_000_000_000),
            exportS: fc.constantFrom(1_700_000_000, 0, 4_000_000_000),
          }),
        ),
        ({ fields, rows, v9, options, transport, uptimeMs, exportS }) => {
          const defs = fields.map((f) => f.def);
          if (v9 && defs.some((d) => d.length === VARLEN || d.enterprise !== undefined)) return; // v9 has neither (RFC 3954)
          const data = dataSet(256, defs, rows);
          const optFields: FieldDef[] = options === 'sampler' ? [{ id: 48, length: 2 }, { id: 34, length: 4 }] : [{ id: 149, length: 4 }, { id: 160, length: 8 }];
          const optRow: FieldValue[] = options === 'sampler' ? [7, 100] : [1, options === 'future-sysInit' ? BigInt(exportS + 10) * 1000n : BigInt(Math.max(0, exportS * 1000 - 123_456))];
          const sets = [v9 ? v9TemplateFlowSet([{ id: 256, fields: defs }]) : ipfixTemplateSet([{ id: 256, fields: defs }])];
          if (options !== 'none') {
            sets.push(v9 ? v9OptionsTemplateFlowSet([{ id: 300, fields: optFields, scopeCount: 1 }]) : ipfixOptionsTemplateSet([{ id: 300, fields: optFields, scopeCount: 1 }]));
            sets.push(dataSet(300, optFields, [optRow]));
          }
          const first = v9 ? v9Packet({ uptimeMs, unixSecs: exportS }, [...sets, data]) : ipfixMessage({ sequence: 0, exportTime: exportS }, [...sets, data]);
          const second = v9 ? v9Packet({ uptimeMs: uptimeMs + 1000, unixSecs: exportS + 1, sequence: 1 }, [data]) : ipfixMessage({ sequence: rows.length, exportTime: exportS + 1 }, [data]);
          const packets = [exporterPacket(first, { transport }), exporterPacket(second, { transport }), exporterPacket(second, { transport: 'udp', exporter: '192.0.2.99' })];
          const r = bothWays(packets);
          assert.deepEqual(r.fused, r.viaRecords, fusedWriterSource(planTemplate(defs.map((d) => ({ id: d.id, length: d.length, enterprise: d.enterprise ?? 0 })), 0)));
          assert.deepEqual(r.errorsFused, r.errorsViaRecords);
          assert.equal(r.fusedRecords, isBiflow(defs) ? 0 : r.records, 'every record of a one-direction template took the fused path');
        },
      ),
      { numRuns: 400, seed: 20261203 },
    );
  });

  /** IP header elements as exporters repeat them per layer of a tunnelled flow (layer-policy.ts). */
  const HEADER_FIELDS: readonly { def: FieldDef; kind: 'uint' | 'v4' | 'v6' }[] = [
    { def: { id: 8, length: 4 }, kind: 'v4' },
    { def: { id: 12, length: 4 }, kind: 'v4' },
    { def: { id: 27, length: 16 }, kind: 'v6' },
    { def: { id: 28, length: 16 }, kind: 'v6' },
    { def: { id: 4, length: 1 }, kind: 'uint' },
    { def: { id: 5, length: 1 }, kind: 'uint' },
    { def: { id: 6, length: 2 }, kind: 'uint' },
    { def: { id: 7, length: 2 }, kind: 'uint' },
    { def: { id: 11, length: 2 }, kind: 'uint' },
    { def: { id: 32, length: 2 }, kind: 'uint' },
    { def: { id: 60, length: 1 }, kind: 'uint' },
  ];
  /** Directional values with their RFC 5103 reverse counterparts, and in-record boot time with sysUpTime times. */
  const BIFLOW_FIELDS: readonly { def: FieldDef; kind: 'uint' }[] = [
    ...[1, 2, 6, 152, 153].flatMap((id) => [0, REVERSE_ENTERPRISE].map((enterprise) => ({ def: { id, length: id >= 152 ? 8 : 4, ...(enterprise === 0 ? {} : { enterprise }) }, kind: 'uint' as const }))),
    ...[10, 14, 58, 59, 16, 17].map((id) => ({ def: { id, length: 4 }, kind: 'uint' as const })),
    { def: { id: 160, length: 8 }, kind: 'uint' },
    { def: { id: 22, length: 4 }, kind: 'uint' },
    { def: { id: 21, length: 4 }, kind: 'uint' },
  ];

  test('tunnelled (repeated header elements) and biflow (RFC 5103) templates, both layer policies: the same bytes both ways', () => {
    let reverseSplits = 0;
    fc.assert(
      fc.property(
        fc
          .tuple(fc.subarray([...HEADER_FIELDS], { minLength: 1 }), fc.subarray([...HEADER_FIELDS], { minLength: 1 }), fc.subarray([...BIFLOW_FIELDS]), fc.boolean())
          .map(([outer, inner, rest, paired]) => (paired ? [...outer.flatMap((f) => [f, f]), ...inner, ...rest] : [...outer, ...inner, ...rest]))
          .chain((fields) =>
            fc.record({
              fields: fc.constant(fields),
              rows: fc.array(fc.tuple(...fields.map((f) => arbValue(f.def, f.kind))), { minLength: 1, maxLength: 5 }),
              policy: fc.constantFrom<LayerPolicy>('inner', 'outer'),
            }),
          ),
        ({ fields, rows, policy }) => {
          const defs = fields.map((f) => f.def);
          const msg = ipfixMessage({ sequence: 0, exportTime: 1_700_000_000 }, [ipfixTemplateSet([{ id: 256, fields: defs }]), dataSet(256, defs, rows)]);
          const r = bothWays([exporterPacket(msg)], ACCEPT_ALL, policy);
          assert.deepEqual(r.fused, r.viaRecords);
          assert.deepEqual(r.errorsFused, r.errorsViaRecords);
          assert.equal(r.fusedRecords, isBiflow(defs) ? 0 : r.records);
          if (r.records > rows.length) reverseSplits++;
        },
      ),
      { numRuns: 300, seed: 20261205 },
    );
    assert.ok(reverseSplits > 20, `biflows split into two records in ${reverseSplits} runs`);
  });

  // Each field constrained in one rule of four: rules that constrain many fields at once almost never match.
  const pick = <T>(values: readonly T[]): fc.Arbitrary<T[] | undefined> =>
    fc.oneof({ arbitrary: fc.constant(undefined), weight: 3 }, { arbitrary: fc.subarray([...values], { minLength: 1 }), weight: 1 });
  const arbRule: fc.Arbitrary<FilterRuleConfig> = fc
    .record({
      action: fc.constantFrom('accept' as const, 'drop' as const),
      protocols: pick<string | number>([0, 1, 'tcp', 17, 255]),
      srcports: pick<string | number>([0, 80, 443, '1000-2000', '0-65535', 65535]),
      dstports: pick<string | number>([0, 80, '1-1023', 65535]),
      srcnets: pick(['10.0.0.0/8', '192.0.2.0/24', '0.0.0.0/0', '255.255.255.255/32', '2001:db8::/32', '::/0', '10.1.2.3/32']),
      dstnets: pick(['0.0.0.0/32', '192.0.2.77/32', 'fe80::/10', '::ffff:0:0/96', '0.0.0.0/1']),
      srcasns: pick([0, 1, 4294967295, 64512]),
      dstasns: pick([0, 255, 65535]),
      exporters: pick(['192.0.2.10', '192.0.2.99', '192.0.2.0/24', '2001:db8::1']),
    })
    .map((r) => Object.fromEntries(Object.entries(r).filter(([, v]) => v !== undefined)) as unknown as FilterRuleConfig);

  /** Fields the rules look at, at the lengths exporters use, so that most generated templates carry several of them. */
  const FILTERED_FIELDS: readonly { def: FieldDef; kind: 'uint' | 'v4' | 'v6' }[] = [
    { def: { id: 4, length: 1 }, kind: 'uint' },
    { def: { id: 7, length: 2 }, kind: 'uint' },
    { def: { id: 11, length: 2 }, kind: 'uint' },
    { def: { id: 8, length: 4 }, kind: 'v4' },
    { def: { id: 12, length: 4 }, kind: 'v4' },
    { def: { id: 27, length: 16 }, kind: 'v6' },
    { def: { id: 28, length: 16 }, kind: 'v6' },
    { def: { id: 16, length: 4 }, kind: 'uint' },
    { def: { id: 17, length: 2 }, kind: 'uint' },
  ];

  test('flow filters and pseudonymisation inside the fused writers (generated templates, rules and policies): the same bytes and counts', () => {
    let dropped = 0;
    let kept = 0;
    fc.assert(
      fc.property(
        fc.tuple(fc.subarray([...FILTERED_FIELDS], { minLength: 1 }), fc.array(arbField, { maxLength: 6 })).map(([a, b]) => [...a, ...b]).chain((fields) =>
          fc.record({
            fields: fc.constant(fields),
            rows: fc.array(fc.tuple(...fields.map((f) => arbValue(f.def, f.kind))), { minLength: 1, maxLength: 6 }),
            v9: fc.boolean(),
            filters: fc.record({ default: fc.constantFrom('accept' as const, 'drop' as const), rules: fc.array(arbRule, { minLength: 1, maxLength: 4 }) }),
            policy: fc.constantFrom(null, PZ_RANGES, PZ_EVERYTHING),
          }),
        ),
        ({ fields, rows, v9, filters, policy }) => {
          const defs = fields.map((f) => f.def);
          if (v9 && defs.some((d) => d.length === VARLEN || d.enterprise !== undefined)) return;
          const data = dataSet(256, defs, rows);
          const tmpl = v9 ? v9TemplateFlowSet([{ id: 256, fields: defs }]) : ipfixTemplateSet([{ id: 256, fields: defs }]);
          const first = v9 ? v9Packet({ uptimeMs: 5000, unixSecs: 1_700_000_000 }, [tmpl, data]) : ipfixMessage({ sequence: 0, exportTime: 1_700_000_000 }, [tmpl, data]);
          const second = v9 ? v9Packet({ uptimeMs: 6000, unixSecs: 1_700_000_001, sequence: 1 }, [data]) : ipfixMessage({ sequence: rows.length, exportTime: 1_700_000_001 }, [data]);
          const r = bothWays([exporterPacket(first), exporterPacket(second, { exporter: '192.0.2.99' })], filters, 'inner', policy);
          const props = policy === null ? [] : compilePseudonymPolicy(policy).props;
          const source = fusedWriterSource(planTemplate(defs.map((d) => ({ id: d.id, length: d.length, enterprise: d.enterprise ?? 0 })), 0), true, props);
          assert.deepEqual(r.fused, r.viaRecords, source);
          assert.deepEqual(r.filterFused, r.filterViaRecords, source);
          assert.equal(r.pseudonymizedFused?.pseudonymized, r.pseudonymizedViaRecords?.pseudonymized, source);
          assert.equal(r.fusedRecords, isBiflow(defs) ? 0 : r.records, 'every record of a one-direction template took the fused path');
          dropped += r.filterFused.dropped;
          kept += r.filterFused.accepted;
        },
      ),
      { numRuns: 300, seed: 20261204 },
    );
    assert.ok(dropped > 100 && kept > 100, `dropped ${dropped}, kept ${kept}`);
  });

  test('IPv6 addresses are not copied out of the packet (no buffer allocated per address), with or without a filter; only a fallback for 0.0.0.0 copies', () => {
    const plans = (defs: FieldDef[]) => planTemplate(defs.map((d) => ({ id: d.id, length: d.length, enterprise: 0 })), 0);
    const v6: FieldDef[] = [{ id: 27, length: 16 }, { id: 28, length: 16 }, { id: 62, length: 16 }, { id: 7, length: 2 }, { id: 82, length: VARLEN }, { id: 63, length: 16 }];
    for (const filtered of [false, true]) assert.doesNotMatch(fusedWriterSource(plans(v6), filtered), /\.slice\(/, `filtered: ${String(filtered)}`);
    assert.match(fusedWriterSource(plans([{ id: 8, length: 4 }, { id: 27, length: 16 }])), /buf\.slice\(fb_srcAddr/);
  });

  test('a variable-length field running past its set: records before it kept, the set counted as malformed, same bytes', () => {
    const fields: FieldDef[] = [{ id: 8, length: 4 }, { id: 82, length: VARLEN }, { id: 7, length: 2 }];
    const good = dataSet(256, fields, [['10.0.0.1', Uint8Array.of(1, 2, 3), 80], ['10.0.0.2', Uint8Array.of(4), 443]]);
    // Cut the second record inside its port, keeping the set header's length consistent with the bytes.
    const cut = good.subarray(0, good.length - 1);
    cut[2] = 0;
    cut[3] = cut.length;
    const msg = ipfixMessage({ sequence: 0 }, [ipfixTemplateSet([{ id: 256, fields }]), cut]);
    const r = bothWays([exporterPacket(msg)]);
    assert.deepEqual(r.fused, r.viaRecords);
    assert.equal(r.records, 1);
    assert.equal(r.errorsFused.length, 1);
    assert.match(r.errorsFused[0] ?? '', /^ERR_DECODE_BAD_VARLEN@/);
    assert.deepEqual(r.errorsFused, r.errorsViaRecords);
  });

  test('without code generation (node --disallow-code-generation-from-strings) every record takes the FlowRecord path, same bytes', () => {
    const child = spawnSync(process.execPath, ['--disallow-code-generation-from-strings', '--import', 'tsx', path.join(repoRoot, 'test/support/fused-no-codegen-child.ts')], { cwd: repoRoot, encoding: 'utf8', timeout: 60_000 });
    assert.equal(child.status, 0, child.stderr);
    const out = JSON.parse(child.stdout) as { fused: number; records: number; errors: string[]; batch: string };
    assert.deepEqual({ fused: out.fused, records: out.records, errors: out.errors }, { fused: 0, records: 2, errors: [] });
    // The same message here, where code generation works, takes the fused path and leaves the same bytes.
    const fields: FieldDef[] = [{ id: 8, length: 4 }, { id: 12, length: 4 }, { id: 7, length: 2 }, { id: 1, length: 8 }];
    const r = bothWays([exporterPacket(ipfixMessage({ sequence: 0 }, [ipfixTemplateSet([{ id: 256, fields }]), dataSet(256, fields, [['10.0.0.1', '192.0.2.1', 80, 1500n], ['10.0.0.2', '192.0.2.2', 443, 40n]])]))]);
    assert.equal(r.fusedRecords, 2);
    assert.equal(Buffer.from(r.fused).toString('hex'), out.batch);
  });
});
