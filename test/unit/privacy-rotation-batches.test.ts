import { test } from 'node:test';
import assert from 'node:assert/strict';
import { batchKeyStamp, decodeBatch } from '../../src/batch/decoder.js';
import { DecodeService } from '../../src/decode/decode-service.js';
import type { IpAddr } from '../../src/flow/flow-record.js';
import { ipToString } from '../../src/flow/ip.js';
import type { PrivacyEvent } from '../../src/flow/privacy.js';
import { Batcher } from '../../src/ingest-worker/batcher.js';
import { PacketFrameBuilder } from '../../src/ingest-worker/packet-frame.js';
import { PacketLoop } from '../../src/ingest-worker/packet-loop.js';
import { silentLogger } from '../../src/observability/logger.js';
import { RateLimitedLog } from '../../src/observability/rate-limited-log.js';
import { periodKey } from '../../src/privacy/key-schedule.js';
import { compilePseudonymPolicy } from '../../src/privacy/policy.js';
import { Pseudonymizer } from '../../src/privacy/pseudonymizer.js';
import { cryptoPanAt, reversePseudonym } from '../../src/privacy/reverse.js';
import { CapturedBatches } from '../support/batch-capture.js';
import { dataSet, exporterPacket, ipfixMessage, ipfixTemplateSet, type FieldDef } from '../support/ipfix-builder.js';
import { datagram, flowSample, sampledIpv4Record } from '../support/sflow-builder.js';

/*
 * The key in force per batch, through the ingest worker's PacketLoop with an injected clock: a
 * daily key period that ends between two frames closes the open batch before the key rotates,
 * so every batch holds the pseudonyms of one key only, on the fused path (IPFIX) and the
 * FlowRecord path (sFlow) alike, and its header names that key's period; each batch's
 * addresses re-identify with its own period's key and not with the other's.
 */

const KEY = Uint8Array.from({ length: 32 }, (_, i) => (i * 29 + 3) & 0xff);
const POLICY = compilePseudonymPolicy({ fields: ['srcip', 'dstip', 'nexthop', 'bgpnexthop'], rules: [{ action: 'pseudonymize', prefixes: ['10.0.0.0/8'] }] });
const V4: FieldDef[] = [{ id: 8, length: 4 }, { id: 12, length: 4 }, { id: 7, length: 2 }, { id: 11, length: 2 }, { id: 4, length: 1 }, { id: 1, length: 8 }, { id: 2, length: 8 }];
const CLIENT = '10.1.2.3';
const DAY_S = 86_400;

test('rotation: a period that ends between frames closes the open batch first; each batch holds one key\'s pseudonyms and names it', () => {
  const beforeMidnight = Date.UTC(2026, 11, 8, 23, 59, 30);
  let now = beforeMidnight;
  const events: PrivacyEvent[] = [];
  const pz = new Pseudonymizer({ policy: POLICY, masterKey: KEY, rotation: 'daily', epochSeconds: 3600, cacheEntries: 1024, events: (e) => events.push(e) }, now);
  const sink = new CapturedBatches();
  // No size or age cut: only the rotation may close a batch before the final flush.
  const batcher = new Batcher(sink, { queued: true, maxRecords: 1e9, maxBytes: 1e12, setTimer: () => null, clearTimer: () => undefined, keyStamp: () => pz.stamp });
  const loop = new PacketLoop({
    decode: new DecodeService({}, { rawRecords: false }),
    batcher,
    filters: { default: 'accept', rules: [] },
    stdoutRecords: false,
    decodeLog: new RateLimitedLog(silentLogger()),
    pseudonymizer: pz,
    clock: () => now,
  });
  const frame = (withTemplate: boolean, sequence: number): void => {
    const frames = new PacketFrameBuilder();
    const sets = [dataSet(256, V4, [[CLIENT, '198.51.100.7', 50000 + sequence, 443, 6, 1500n, 3n]])];
    frames.add(exporterPacket(ipfixMessage({ sequence, exportTime: Math.floor(now / 1000) }, withTemplate ? [ipfixTemplateSet([{ id: 256, fields: V4 }]), ...sets] : sets), { receivedAtMs: now }));
    const sflow = datagram({ agent: '192.0.2.11', sequence, samples: [flowSample({ sequence, records: [sampledIpv4Record({ length: 600, protocol: 6, src: CLIENT, dst: '198.51.100.8', srcPort: 60000 + sequence, dstPort: 80, tcpFlags: 0x18, tos: 0 })] })] });
    frames.add(exporterPacket(sflow, { exporter: '192.0.2.11', receivedAtMs: now }));
    loop.frame(frames.take());
  };

  frame(true, 0);
  now += 10_000; // still the same UTC day
  frame(false, 1);
  assert.equal(sink.batches.length, 0, 'no batch closed within the period');
  now += 30_000; // past midnight
  frame(false, 2);
  batcher.flush();

  assert.equal(sink.batches.length, 2, 'the day-1 batch was closed before the key rotated');
  const [day1, day2] = sink.batches.map((b) => ({ stamp: batchKeyStamp(b), records: decodeBatch(b) }));
  assert.ok(day1 !== undefined && day2 !== undefined);
  const day1Start = Math.floor(beforeMidnight / 1000 / DAY_S) * DAY_S;
  assert.equal(day1.stamp?.startS, day1Start);
  assert.equal(day2.stamp?.startS, day1Start + DAY_S);
  assert.equal(day1.records.length, 4, 'two frames, an IPFIX (fused path) and an sFlow (FlowRecord path) record each');
  assert.equal(day2.records.length, 2);

  const pseudonymsOf = (records: readonly { srcAddr: IpAddr | null }[]): Set<string> => new Set(records.map((r) => ipToString(r.srcAddr ?? 0)));
  const p1 = pseudonymsOf(day1.records);
  const p2 = pseudonymsOf(day2.records);
  assert.equal(p1.size, 1, 'one pseudonym per period for the client, on both paths');
  assert.equal(p2.size, 1);
  assert.ok(!p1.has(CLIENT) && !p2.has(CLIENT));
  assert.notDeepEqual([...p1], [...p2], 'unlinkable across periods');
  for (const [batch, ok, other] of [[day1, day1Start, day1Start + DAY_S], [day2, day1Start + DAY_S, day1Start]] as const) {
    const pseudonym = batch.records[0]?.srcAddr ?? 0;
    assert.equal(ipToString(reversePseudonym(POLICY, cryptoPanAt(KEY, 'daily', 3600, ok * 1000).cp, pseudonym) ?? 0), CLIENT, 'its own period\'s key re-identifies it');
    assert.notEqual(ipToString(reversePseudonym(POLICY, cryptoPanAt(KEY, 'daily', 3600, other * 1000).cp, pseudonym) ?? 0), CLIENT);
  }
  assert.notDeepEqual(periodKey(KEY, day1Start, DAY_S), periodKey(KEY, day1Start + DAY_S, DAY_S));
  assert.deepEqual(events.map((e) => e.kind === 'pseudonym_key.in_force' && e.reason), ['start', 'rotation']);
});
