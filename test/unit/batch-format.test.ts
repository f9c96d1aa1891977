import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { newFlowRecord, type FlowRecord } from '../../src/flow/flow-record.js';
import { BATCH_FORMAT_VERSION } from '../../src/batch/format.js';
import { BatchEncoder, encodeBatch } from '../../src/batch/encoder.js';
import { decodeBatch } from '../../src/batch/decoder.js';
import { SpoolError } from '../../src/flow/errors.js';
import { arbRecord } from '../support/record-arbitrary.js';
import { edgeRecords, ipv4Records } from '../support/spool-fixtures.js';

/** Deep equality that also tells -0 from 0 and bigint from number (assert.deepStrictEqual uses Object.is for primitives). */
function assertSameRecords(actual: FlowRecord[], expected: readonly FlowRecord[]): void {
  assert.equal(actual.length, expected.length);
  for (let i = 0; i < expected.length; i++) {
    const want = { ...expected[i]!, raw: null };
    assert.deepStrictEqual(actual[i], want, `record ${i}`);
    for (const k of Object.keys(want) as (keyof FlowRecord)[]) assert.equal(typeof actual[i]![k], typeof want[k], `record ${i} ${k} type`);
  }
}

test('edge records round-trip exactly: IPv6, 64-bit counters beyond 2^53, nulls, -0, fractions, identities', () => {
  const records = edgeRecords();
  const out = decodeBatch(encodeBatch(records));
  assertSameRecords(out, records);
  assert.equal(out[0]!.octets, 18446744073709551615n);
  assert.equal(out[0]!.packets, 9007199254740993n);
  assert.equal(out[2]!.packets, 18446744073709551615n);
  assert.equal(out[2]!.octets, 2 ** 53);
  assert.ok(Object.is(out[2]!.uptimeMs, -0));
  assert.deepEqual([...(out[0]!.srcAddr as Uint8Array)], [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
  assert.equal(out[1]!.exporter, 'ünïcode-exporter');
});

test('raw is not stored and comes back null', () => {
  const r = newFlowRecord('netflow', 10, 'udp', '10.0.0.1', null, 7, 100);
  r.raw = { fields: [{ id: 8, enterprise: 0, length: 4 }], bytes: new Uint8Array([1, 2, 3, 4]) };
  const [out] = decodeBatch(encodeBatch([r]));
  assert.equal(out!.raw, null);
  assert.equal(out!.observationDomainId, 7);
});

test('realistic IPv4 batch round-trips and stays compact; the encoder is reusable', () => {
  const records = ipv4Records(5000, 42);
  const enc = new BatchEncoder(1024);
  const first = enc.encode(records).slice();
  assert.equal(first[0], BATCH_FORMAT_VERSION);
  assertSameRecords(decodeBatch(first), records);
  // Per-batch interning: the exporter string is stored once.
  assert.ok(first.length / records.length < 64, `bytes per record ${first.length / records.length}`);
  const second = enc.encode(records.slice(0, 10));
  assertSameRecords(decodeBatch(second), records.slice(0, 10));
  assert.deepEqual(decodeBatch(enc.encode([])), []);
});

test('property: any records round-trip exactly', () => {
  fc.assert(
    fc.property(fc.array(arbRecord(), { maxLength: 30 }), (records) => {
      assertSameRecords(decodeBatch(encodeBatch(records)), records);
    }),
    { numRuns: 1000 },
  );
});

test('malformed batches fail with ERR_SPOOL_FORMAT, never another error', () => {
  const bytes = encodeBatch(edgeRecords());
  for (let len = 0; len < bytes.length; len++) {
    assert.throws(() => decodeBatch(bytes.subarray(0, len)), (e: unknown) => e instanceof SpoolError && e.code === 'ERR_SPOOL_FORMAT', `prefix ${len}`);
  }
  assert.throws(() => decodeBatch(Uint8Array.from([...bytes, 0])), /trailing/);
  const wrongVersion = bytes.slice();
  wrongVersion[0] = 99;
  assert.throws(() => decodeBatch(wrongVersion), /version/);
  // A huge record count is refused before allocating.
  assert.throws(() => decodeBatch(Uint8Array.from([BATCH_FORMAT_VERSION, 0xff, 0xff, 0xff, 0x7f])), /record count/);
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 200 }), (junk) => {
      try {
        decodeBatch(Uint8Array.from([BATCH_FORMAT_VERSION, ...junk]));
      } catch (e) {
        assert.ok(e instanceof SpoolError, String(e));
      }
    }),
    { numRuns: 500 },
  );
});

test('values the format cannot hold are refused at encode time', () => {
  const r = newFlowRecord('netflow', 10, 'udp', 'x', null, 0, 0);
  r.srcAddr = 2 ** 32;
  assert.throws(() => encodeBatch([r]), /IPv4/);
  r.srcAddr = new Uint8Array(4);
  assert.throws(() => encodeBatch([r]), /IPv6/);
  r.srcAddr = null;
  r.octets = 2n ** 64n;
  assert.throws(() => encodeBatch([r]), /64-bit/);
});

test('streaming (begin/add/finish) gives the same canonical bytes as encode(), for any batch size, and the encoder is reusable', () => {
  const streaming = new BatchEncoder(64);
  const whole = new BatchEncoder(64);
  fc.assert(
    fc.property(fc.array(arbRecord(), { maxLength: 300 }), (records) => {
      streaming.begin();
      for (const r of records) streaming.add(r);
      assert.equal(streaming.records, records.length);
      const streamed = streaming.finish().slice();
      assert.deepStrictEqual(streamed, whole.encode(records).slice());
      assertSameRecords(decodeBatch(streamed), records);
    }),
    { numRuns: 150 },
  );
  // Counts around the one- and two-byte varint boundary (127/128) and an abandoned batch before a new one.
  const many = ipv4Records(20_000);
  for (const n of [0, 1, 127, 128, 16_383, 16_384]) {
    streaming.begin();
    for (const r of many.slice(0, 3)) streaming.add(r);
    streaming.begin(n);
    for (const r of many.slice(0, n)) streaming.add(r);
    const bytes = streaming.finish();
    assert.deepStrictEqual(bytes.slice(), encodeBatch(many.slice(0, n)), `n = ${n}`);
    assert.equal(decodeBatch(bytes).length, n);
  }
});
