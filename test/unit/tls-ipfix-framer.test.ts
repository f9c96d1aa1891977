import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import fc from 'fast-check';
import { IpfixFramer, type FramingError } from '../../src/ingest/tls/ipfix-framer.js';
import { corpora } from '../support/corpora.js';


/** An IPFIX message (RFC 7011 §3.1) with one data set of `body` bytes under set ID 256. */
function message(odid: number, seq: number, bodyLength: number): Buffer {
  const setLength = 4 + bodyLength;
  const total = 16 + setLength;
  const b = Buffer.alloc(total);
  b.writeUInt16BE(10, 0);
  b.writeUInt16BE(total, 2);
  b.writeUInt32BE(1_700_000_000, 4);
  b.writeUInt32BE(seq, 8);
  b.writeUInt32BE(odid, 12);
  b.writeUInt16BE(256, 16);
  b.writeUInt16BE(setLength, 18);
  for (let i = 0; i < bodyLength; i++) b[20 + i] = (i * 7 + seq) & 0xff;
  return b;
}

function frameAll(chunks: readonly Buffer[], max?: number): { messages: Buffer[]; error: FramingError | null } {
  const f = new IpfixFramer(max);
  const messages: Buffer[] = [];
  let error: FramingError | null = null;
  for (const c of chunks) {
    error = f.push(c, (m) => messages.push(Buffer.from(m)));
    if (error !== null) break;
  }
  return { messages, error };
}

function splitsOf(stream: Buffer): Buffer[][] {
  const out: Buffer[][] = [];
  for (let i = 0; i <= stream.length; i++) out.push([stream.subarray(0, i), stream.subarray(i)]);
  return out;
}

test('every single split point of a multi-message stream yields the same messages', () => {
  const msgs = [message(1, 1, 0), message(1, 2, 37), message(7, 3, 300), message(7, 4, 1)];
  const stream = Buffer.concat(msgs);
  for (const chunks of splitsOf(stream)) {
    const { messages, error } = frameAll(chunks);
    assert.equal(error, null);
    assert.deepEqual(messages, msgs, `split at ${chunks[0]!.length}`);
  }
});

test('byte-at-a-time and every two-point split of a real capture (3 messages back to back)', () => {
  const stream = readFileSync(resolve(corpora, 'logstash-codec-netflow/ipfix.dat'));
  // The file's messages as cut by their own length fields, read independently here.
  const expected: Buffer[] = [];
  for (let off = 0; off < stream.length; ) {
    const len = stream.readUInt16BE(off + 2);
    expected.push(stream.subarray(off, off + len));
    off += len;
  }
  assert.equal(expected.length, 3);
  const bytes = [...stream].map((b) => Buffer.from([b]));
  assert.deepEqual(frameAll(bytes).messages, expected);
  for (let i = 0; i <= stream.length; i += 3) {
    for (let j = i; j <= stream.length; j += 5) {
      const { messages, error } = frameAll([stream.subarray(0, i), stream.subarray(i, j), stream.subarray(j)]);
      assert.equal(error, null);
      assert.deepEqual(messages, expected, `split at ${i},${j}`);
    }
  }
});

test('a message inside one chunk is handed on without copying', () => {
  const chunk = Buffer.concat([message(1, 1, 10), message(1, 2, 10)]);
  const f = new IpfixFramer();
  const seen: Buffer[] = [];
  assert.equal(f.push(chunk, (m) => seen.push(m)), null);
  assert.equal(seen.length, 2);
  for (const m of seen) assert.equal(m.buffer, chunk.buffer);
  assert.equal(f.bufferedBytes, 0);
});

test('bad headers stop the stream with a reason and the stream offset', () => {
  const good = message(1, 1, 4);
  const badVersion = Buffer.from(message(1, 2, 4));
  badVersion.writeUInt16BE(9, 0);
  const short = Buffer.from(message(1, 3, 4));
  short.writeUInt16BE(15, 2);
  const long = message(1, 4, 200);

  for (const [bad, reason, max] of [
    [badVersion, 'bad_version', undefined],
    [short, 'too_short', undefined],
    [long, 'too_long', 100],
  ] as const) {
    const stream = Buffer.concat([good, bad, good]);
    for (const chunks of splitsOf(stream)) {
      const { messages, error } = frameAll(chunks, max);
      assert.equal(error?.reason, reason);
      assert.equal(error.streamOffset, good.length);
      assert.deepEqual(messages, [good]);
    }
  }
});

test('after an error the framer refuses more input', () => {
  const f = new IpfixFramer();
  const err = f.push(Buffer.from([0, 5, 0, 20]), () => assert.fail('no message expected'));
  assert.equal(err?.reason, 'bad_version');
  assert.equal(f.push(message(1, 1, 0), () => assert.fail('no message expected')), err);
});

test('the size limit is enforced before allocating', () => {
  const f = new IpfixFramer(64);
  const header = message(1, 1, 100).subarray(0, 4);
  const err = f.push(header, () => assert.fail('no message expected'));
  assert.equal(err?.reason, 'too_long');
  assert.equal(err.length, 120);
  assert.equal(f.bufferedBytes, 0);
});

test('property: any message sequence cut into any chunks frames back to the same messages', () => {
  const msgArb = fc.record({ odid: fc.nat(), seq: fc.nat(), body: fc.integer({ min: 0, max: 400 }) });
  fc.assert(
    fc.property(fc.array(msgArb, { maxLength: 8 }), fc.array(fc.integer({ min: 0, max: 5000 }), { maxLength: 12 }), (specs, cuts) => {
      const msgs = specs.map((m) => message(m.odid >>> 0, m.seq >>> 0, m.body));
      const stream = Buffer.concat(msgs);
      const points = [...new Set(cuts.map((c) => c % (stream.length + 1)))].sort((a, b) => a - b);
      const chunks: Buffer[] = [];
      let prev = 0;
      for (const p of [...points, stream.length]) {
        chunks.push(stream.subarray(prev, p));
        prev = p;
      }
      const { messages, error } = frameAll(chunks);
      assert.equal(error, null);
      assert.deepEqual(messages, msgs);
    }),
    { numRuns: 300 },
  );
});
