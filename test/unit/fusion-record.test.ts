import { test } from 'node:test';
import assert from 'node:assert/strict';
import { newFlowRecord } from '../../src/flow/flow-record.js';
import { bitsOf, counterToJson, toFusionRecord } from '../../src/flow/fusion-record.js';

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
