import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ExporterPacket } from '../../src/flow/exporter-packet.js';
import { PacketFrameBuilder, unpackFrame } from '../../src/pipeline/packet-frame.js';
import { IngestChannel, type IngestChannelOptions } from '../../src/pipeline/ingest-channel.js';
import type { MainToWorker } from '../../src/pipeline/ingest-protocol.js';

function packet(i: number, overrides: Partial<ExporterPacket> = {}): ExporterPacket {
  const payload = new Uint8Array(20 + (i % 7));
  payload.fill(i & 0xff);
  return {
    payload,
    exporter: i % 2 === 0 ? '192.0.2.1' : '2001:db8::1',
    exporterPort: 1000 + i,
    transport: i % 3 === 0 ? 'tls' : 'udp',
    sessionKey: `s${i % 4}`,
    identity: i % 3 === 0 ? 'router1.example.net' : null,
    receivedAtMs: 1_700_000_000_000 + i * 1_000_003,
    ...overrides,
  };
}

test('packets survive packing into a frame and unpacking, in order', () => {
  const b = new PacketFrameBuilder(16, 2); // tiny initial sizes force both buffers to grow
  const sent = Array.from({ length: 50 }, (_, i) => packet(i));
  for (const p of sent) b.add(p);
  const frame = b.take();
  assert.equal(frame.count, 50);
  assert.ok(frame.strings.length < 50, 'repeated strings are sent once per frame');
  const got = [...unpackFrame(frame)];
  assert.equal(got.length, sent.length);
  got.forEach((g, i) => {
    const s = sent[i]!;
    assert.deepEqual(Buffer.from(g.payload), Buffer.from(s.payload));
    assert.equal(g.exporter, s.exporter);
    assert.equal(g.exporterPort, s.exporterPort);
    assert.equal(g.transport, s.transport);
    assert.equal(g.sessionKey, s.sessionKey);
    assert.equal(g.identity, s.identity);
    assert.equal(g.receivedAtMs, s.receivedAtMs);
  });
  assert.equal(b.packets, 0, 'take() resets the builder');
  assert.equal([...unpackFrame(b.take())].length, 0);
});

test('the channel signals backpressure above high water, resumes below low water, and drops above the hard limit', () => {
  const posted: MainToWorker[] = [];
  const opts: IngestChannelOptions = { maxFramePackets: 1, maxFrameBytes: 1 << 20, maxFrameDelayMs: 5, highWaterBytes: 100, lowWaterBytes: 30, hardLimitBytes: 200 };
  const ch = new IngestChannel((m) => posted.push(m), opts);
  let resumed = 0;
  ch.onDrain(() => resumed++);
  const p = (n: number): ExporterPacket => packet(0, { payload: new Uint8Array(n) });
  assert.equal(ch.submit(p(50)), true);
  assert.equal(ch.submit(p(60)), false, 'over high water');
  assert.equal(ch.submit(p(80)), false);
  assert.equal(ch.submit(p(80)), false, 'dropped: over the hard limit');
  assert.equal(ch.stats().droppedPackets, 1);
  assert.equal(ch.stats().droppedBytes, 80);
  const ids = posted.flatMap((m) => (m.type === 'frame' ? [m.id] : []));
  assert.equal(ids.length, 3);
  ch.acknowledge(ids[0]!);
  ch.acknowledge(ids[1]!);
  assert.equal(resumed, 0, 'still above low water (80 bytes in flight)');
  ch.acknowledge(ids[2]!);
  assert.equal(resumed, 1);
  ch.acknowledge(ids[2]!);
  assert.equal(ch.stats().inFlightBytes, 0, 'a duplicate ack changes nothing');
  ch.endSession('s1');
  assert.deepEqual(posted.at(-1), { type: 'end-session', sessionKey: 's1' });
  ch.close();
  assert.equal(ch.submit(p(1)), false, 'closed channel drops');
});
