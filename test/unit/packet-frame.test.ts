import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ExporterPacket } from '../../src/flow/exporter-packet.js';
import { PacketFrameBuilder, unpackFrame } from '../../src/ingest-worker/packet-frame.js';
import { IngestChannel, type IngestChannelOptions } from '../../src/ingest-worker/ingest-channel.js';
import type { MainToWorker } from '../../src/ingest-worker/messages.js';

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

test('a well-filled frame hands over the builder buffer, which recycle() brings back; sparse frames are exact copies', () => {
  const b = new PacketFrameBuilder(1024, 16);
  const fill = (n: number, seed: number): ExporterPacket[] => Array.from({ length: n }, (_, i) => packet(seed + i, { payload: new Uint8Array(100).fill((seed + i) & 0xff) }));

  const first = fill(6, 0); // 600 of 1024 bytes: at least half full
  for (const p of first) b.add(p);
  const f1 = b.take();
  assert.equal(f1.payloads.byteLength, 1024, 'the builder buffer itself, not a copy');
  b.recycle(f1.payloads);

  for (const p of fill(6, 20)) b.add(p); // fills the buffer take() started after f1
  const f2 = b.take();
  assert.notEqual(f2.payloads, f1.payloads);

  const third = fill(7, 50); // now in f1's buffer again, over its stale bytes
  for (const p of third) b.add(p);
  const f3 = b.take();
  assert.equal(f3.payloads, f1.payloads, 'the recycled buffer is reused');
  const got = [...unpackFrame(f3)];
  assert.equal(got.length, 7);
  got.forEach((g, i) => assert.deepEqual(Buffer.from(g.payload), Buffer.from(third[i]!.payload), `packet ${i}`));

  for (const p of fill(2, 90)) b.add(p); // 200 of 1024 bytes: sparse
  const f4 = b.take();
  assert.equal(f4.payloads.byteLength, 200, 'a sparse frame is copied to its exact size');

  b.recycle(new ArrayBuffer(16)); // too small to be worth keeping
  for (const p of fill(6, 120)) b.add(p);
  assert.equal(b.take().payloads.byteLength, 1024);
});

test('the channel counts payload bytes in flight and recycles buffers given back with acknowledgements', () => {
  const posted: MainToWorker[] = [];
  const opts: IngestChannelOptions = { maxFramePackets: 4, maxFrameBytes: 100_000, maxFrameDelayMs: 5, highWaterBytes: 1_000_000, lowWaterBytes: 10, hardLimitBytes: 2_000_000 };
  const ch = new IngestChannel((m) => posted.push(m), opts);
  for (let i = 0; i < 4; i++) ch.submit(packet(i, { payload: new Uint8Array(25_000) }));
  assert.equal(ch.stats().inFlightBytes, 100_000, 'payload bytes, not buffer capacity');
  const m1 = posted[0];
  assert.ok(m1?.type === 'frame');
  ch.acknowledge(m1.id, m1.frame.payloads);
  assert.equal(ch.stats().inFlightBytes, 0);
  for (let k = 0; k < 2; k++) for (let i = 0; i < 4; i++) ch.submit(packet(i, { payload: new Uint8Array(25_000) }));
  const m3 = posted[2];
  assert.ok(m3?.type === 'frame');
  assert.equal(m3.frame.payloads, m1.frame.payloads, 'the acknowledged buffer carries a later frame');
  ch.close();
});
