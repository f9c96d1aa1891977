import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { newFlowRecord } from '../../src/flow/flow-record.js';
import { bitsOf, counterToJson, FusionJsonWriter, fusionRecordJson, toFusionRecord } from '../../src/flow/fusion-record.js';
import type { FlowRecord } from '../../src/flow/flow-record.js';
import { arbRecord } from '../support/record-arbitrary.js';
import { edgeRecords, ipv4Records } from '../support/spool-fixtures.js';

test('64-bit counters: numbers while safe, decimal strings beyond, never rounded', () => {
  assert.equal(counterToJson(2 ** 53 - 1), 2 ** 53 - 1);
  assert.equal(counterToJson(2n ** 53n), '9007199254740992');
  assert.equal(counterToJson(2n ** 64n - 1n), '18446744073709551615');
  assert.equal(bitsOf(2 ** 49), 2 ** 52);
  assert.equal(bitsOf(2 ** 50), 2n ** 53n, 'octets × 8 leaves the safe range: exact bigint');
  const r = newFlowRecord('netflow', 10, 'udp', '192.0.2.1', null, 0, 0);
  r.octets = 2n ** 61n + 1n;
  r.packets = 2n ** 63n + 5n;
  const json = JSON.parse(JSON.stringify(toFusionRecord(r))) as { bits: string; packets: string };
  assert.equal(json.bits, ((2n ** 61n + 1n) * 8n).toString());
  assert.equal(json.packets, (2n ** 63n + 5n).toString());
});

/** The generic path (toFusionRecord + JSON.stringify): the reference the writer must match byte for byte. */
function viaObject(r: FlowRecord): string {
  return JSON.stringify(toFusionRecord(r));
}

test('fusionRecordJson is JSON.stringify(toFusionRecord(r)) byte for byte (fixtures)', () => {
  for (const r of [...ipv4Records(2000, 5), ...edgeRecords()]) assert.equal(fusionRecordJson(r), viaObject(r));
});

test('property: fusionRecordJson matches the object path on any record', () => {
  // Protocol numbers near the ICMP cases and the keyword table, any exporter text (quotes,
  // control characters, astral symbols must be escaped exactly as JSON.stringify does).
  const protocol = fc.oneof(fc.constantFrom(null, 0, 1, 6, 17, 58, 255, 256, -1, 1.5, Number.NaN), fc.integer({ min: 0, max: 300 }));
  const exporter = fc.oneof(fc.constantFrom('192.0.2.1', '2001:db8::1'), fc.string({ unit: 'binary', maxLength: 12 }));
  fc.assert(
    fc.property(arbRecord(exporter), protocol, fc.boolean(), (r, p, setProtocol) => {
      if (setProtocol) r.protocol = p;
      let expected: string;
      try {
        expected = viaObject(r);
      } catch (err) {
        // Both paths must refuse the same records (e.g. octets that are not an integer).
        assert.throws(() => fusionRecordJson(r), { message: (err as Error).message });
        return;
      }
      assert.equal(fusionRecordJson(r), expected);
    }),
    { numRuns: 5000 },
  );
});

test('rates and ratios: the writer\'s six-decimal text is the engine\'s shortest round-trip text', () => {
  const w = new FusionJsonWriter(0);
  const check = (y: number): void => {
    w.reset();
    w.rounded6(y);
    assert.equal(w.take(0).toString('latin1'), JSON.stringify(Math.round(y * 1e6) / 1e6), `y = ${y}`);
  };
  // Boundaries of the digit path (values near 4e9), trailing zeros, tiny and negative values.
  for (const y of [0, -0, 1e-7, -4e-7, 5e-7, 0.000054, 0.1, 0.5, 1, 10.25, 123456.000001, 3999999999.999999, 4e9, 4e9 + 0.5, 4294967296.123, 1e21, -2.5, Number.NaN, Infinity]) check(y);
  fc.assert(
    fc.property(fc.oneof(fc.double({ min: -5e9, max: 5e9, noNaN: true }), fc.integer({ min: -4e15, max: 4e15 }).map((k) => k / 1e6), fc.double()), (y) => check(y)),
    { numRuns: 20_000 },
  );
});

test('the writer grows from a tiny buffer over many records and keeps its output exact', () => {
  const records = [...ipv4Records(3000, 11), ...edgeRecords(), ...ipv4Records(50, 12)];
  const expected = records.map((r) => viaObject(r) + '\n').join('');
  const w = new FusionJsonWriter(0);
  assert.equal(w.ndjson(records).toString('utf8'), expected);
  // Reused: a second, shorter run starts afresh; discard() keeps what follows.
  assert.equal(w.ndjson(records.slice(0, 3)).toString('utf8'), records.slice(0, 3).map((r) => viaObject(r) + '\n').join(''));
  const first = Buffer.byteLength(viaObject(records[0] ?? records[1]!) + '\n');
  w.discard(first);
  assert.equal(w.take(0).toString('utf8'), records.slice(1, 3).map((r) => viaObject(r) + '\n').join(''));
});
