/**
 * The fused writers' invariant (src/spool/fused-writer.ts): writing IPFIX / NetFlow v9 records
 * straight from their bytes leaves exactly the batch bytes that decoding them into
 * FlowRecords and serializing those (BatchEncoder) would. Checked byte for byte on every
 * IPFIX/v9 capture of ../shared/corpora and on generated templates (every mapped element at
 * every length the mapping accepts, reduced-size encodings, variable-length and enterprise
 * fields, IPv4 0.0.0.0 with an IPv6 fallback, sysUpTime times with and without an uptime
 * anchor, samplers from options data, bigint counters), with NetFlow v5 / sFlow records of
 * the FlowRecord path mixed into the same batch.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { DecodeService, type SetMeta } from '../../src/decode/decode-service.js';
import type { RecordContext } from '../../src/decode/template/record-context.js';
import { BatchEncoder } from '../../src/spool/batch-codec.js';
import { Batcher, type StreamingBatchTarget } from '../../src/spool/batcher.js';
import { fusedWriterSource, FusedSetWriter, type FusedRecordWriter } from '../../src/spool/fused-writer.js';
import type { AppendResult } from '../../src/spool/spool.js';
import type { FlowRecord } from '../../src/flow/flow-record.js';
import { planTemplate } from '../../src/decode/template/field-mapping.js';
import type { ExporterPacket } from '../../src/flow/exporter-packet.js';
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

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const corpora = path.resolve(repoRoot, '../shared/corpora');

/**
 * A streaming target over one BatchEncoder, behind the real Batcher (whose fused loop is under
 * test too); its limits are never reached, so everything lands in one batch.
 */
class EncoderTarget implements StreamingBatchTarget {
  readonly acceptsQueued = true;
  queuedBatchRecords = 0;
  constructor(private readonly e: BatchEncoder) {}
  get queuedBatchBytes(): number {
    return this.e.bytes;
  }
  addQueued(r: FlowRecord): void {
    this.e.add(r);
    this.queuedBatchRecords++;
  }
  addFused(w: FusedRecordWriter, view: DataView, buf: Uint8Array, p: number, end: number, ctx: RecordContext, m: SetMeta): number {
    const q = w(view, buf, p, end, ctx, this.e, m);
    if (q >= 0) this.queuedBatchRecords++;
    return q;
  }
  flushQueued(): void {
    throw new Error('not reached: the batch limits are never hit here');
  }
  append(): AppendResult {
    throw new Error('not reached: the Batcher is queued');
  }
}

function batcherOver(e: BatchEncoder): Batcher {
  return new Batcher(new EncoderTarget(e), { queued: true, maxRecords: 1e9, maxBytes: 1e12, setTimer: () => null, clearTimer: () => undefined });
}

interface BothWays {
  readonly viaRecords: Uint8Array;
  readonly fused: Uint8Array;
  readonly records: number;
  readonly directRecords: number;
  readonly errorsViaRecords: string[];
  readonly errorsFused: string[];
}

/** Decodes `packets` (in order, one DecodeService each way) and serializes the records both ways. */
function bothWays(packets: readonly ExporterPacket[]): BothWays {
  const plain = new DecodeService({}, { rawRecords: false });
  const a = new BatchEncoder(1 << 10);
  a.begin();
  let records = 0;
  const errorsViaRecords: string[] = [];
  for (const p of packets) {
    const o = plain.decode(p);
    assert.equal(o.directRecords, 0);
    for (const r of o.records) a.add(r);
    records += o.records.length;
    errorsViaRecords.push(...o.errors.map((e) => `${e.code}@${e.offset}`));
  }
  const b = new BatchEncoder(1 << 10);
  b.begin();
  const batcher = batcherOver(b);
  const fused = new DecodeService({}, { rawRecords: false, direct: new FusedSetWriter(batcher) });
  let directRecords = 0;
  let total = 0;
  const errorsFused: string[] = [];
  for (const p of packets) {
    const o = fused.decode(p);
    directRecords += o.directRecords;
    total += o.directRecords + o.records.length;
    batcher.accept(o.records);
    errorsFused.push(...o.errors.map((e) => `${e.code}@${e.offset}`));
  }
  assert.equal(total, records, 'both ways decode the same number of records');
  assert.equal(fused.stats().records, plain.stats().records);
  return { viaRecords: a.finish().slice(), fused: b.finish().slice(), records, directRecords, errorsViaRecords, errorsFused };
}

function corpusPacket(payload: Uint8Array): ExporterPacket {
  return { payload, exporter: '192.0.2.1', exporterPort: 2055, transport: 'udp', sessionKey: 'corpus', identity: null, receivedAtMs: 1_700_000_000_000 };
}

describe('fused writers', () => {
  test('every IPFIX / NetFlow v9 capture of the corpora: the same batch bytes as FlowRecord → BatchEncoder', () => {
    const expected = JSON.parse(readFileSync(path.join(corpora, 'expected.json'), 'utf8')) as { captures: Record<string, { feed_in_order: string[] }> };
    let direct = 0;
    let captures = 0;
    for (const [name, capture] of Object.entries(expected.captures)) {
      const packets = capture.feed_in_order.map((f) => corpusPacket(readFileSync(path.join(corpora, f))));
      const r = bothWays(packets);
      assert.deepEqual(r.fused, r.viaRecords, `${name}: fused bytes differ`);
      assert.deepEqual(r.errorsFused, r.errorsViaRecords, `${name}: errors differ`);
      direct += r.directRecords;
      captures++;
    }
    // The ipfixcol2 file (many IPFIX messages) and goflow2's v9 captures, as one session each.
    const file = readFileSync(path.join(corpora, 'ipfixcol2/example_flows.ipfix'));
    const messages: ExporterPacket[] = [];
    for (let off = 0; off + 4 <= file.length; off += file.readUInt16BE(off + 2)) messages.push(corpusPacket(file.subarray(off, off + file.readUInt16BE(off + 2))));
    const goflow = readdirSync(path.join(corpora, 'goflow2'))
      .sort()
      .map((f) => corpusPacket(readFileSync(path.join(corpora, 'goflow2', f))));
    for (const packets of [messages, goflow]) {
      const r = bothWays(packets);
      assert.deepEqual(r.fused, r.viaRecords);
      direct += r.directRecords;
    }
    assert.ok(captures >= 20, `expected.json lists ${captures} captures`);
    assert.ok(direct > 1000, `the fused path took ${direct} records`);
  });

  /** Mapped elements with the lengths the mapping accepts (see field-mapping.ts), plus unmapped and enterprise ones. */
  const ELEMENTS: readonly { id: number; lengths: readonly number[]; kind: 'uint' | 'v4' | 'v6' | 'opaque' }[] = [
    ...[1, 2, 85, 86].map((id) => ({ id, lengths: [1, 2, 3, 4, 5, 6, 7, 8], kind: 'uint' as const })),
    ...[4, 5, 6, 7, 11, 9, 13, 29, 30, 10, 14, 252, 253, 16, 17, 58, 59, 243, 254, 176, 177, 178, 179, 60, 48, 302, 34, 50].map((id) => ({ id, lengths: [1, 2, 3, 4, 5, 6, 7, 8], kind: 'uint' as const })),
    ...[8, 12, 15, 18].map((id) => ({ id, lengths: [4], kind: 'v4' as const })),
    ...[27, 28, 62, 63].map((id) => ({ id, lengths: [16], kind: 'v6' as const })),
    ...[32, 139].map((id) => ({ id, lengths: [2], kind: 'uint' as const })),
    ...[152, 153, 154, 155, 156, 157].map((id) => ({ id, lengths: [8], kind: 'uint' as const })),
    ...[150, 151, 22, 21, 158, 159].map((id) => ({ id, lengths: [4], kind: 'uint' as const })),
    { id: 82, lengths: [VARLEN, 4], kind: 'opaque' },
    { id: 95, lengths: [VARLEN], kind: 'opaque' },
  ];

  const arbField = fc
    .record({ e: fc.constantFrom(...ELEMENTS), li: fc.nat(), enterprise: fc.boolean() })
    .map(({ e, li, enterprise }) => ({ def: { id: e.id, length: e.lengths[li % e.lengths.length] ?? 4, ...(enterprise && e.kind === 'uint' ? { enterprise: 9 } : {}) }, kind: e.kind }));

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
          assert.equal(r.directRecords, r.records, 'every record took the fused path');
        },
      ),
      { numRuns: 400, seed: 20261203 },
    );
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
    const out = JSON.parse(child.stdout) as { direct: number; records: number; errors: string[]; batch: string };
    assert.deepEqual({ direct: out.direct, records: out.records, errors: out.errors }, { direct: 0, records: 2, errors: [] });
    // The same message here, where code generation works, takes the fused path and leaves the same bytes.
    const fields: FieldDef[] = [{ id: 8, length: 4 }, { id: 12, length: 4 }, { id: 7, length: 2 }, { id: 1, length: 8 }];
    const r = bothWays([exporterPacket(ipfixMessage({ sequence: 0 }, [ipfixTemplateSet([{ id: 256, fields }]), dataSet(256, fields, [['10.0.0.1', '192.0.2.1', 80, 1500n], ['10.0.0.2', '192.0.2.2', 443, 40n]])]))]);
    assert.equal(r.directRecords, 2);
    assert.equal(Buffer.from(r.fused).toString('hex'), out.batch);
  });
});
