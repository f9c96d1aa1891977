import { test } from 'node:test';
import assert from 'node:assert/strict';
import { gunzipSync } from 'node:zlib';
import fc from 'fast-check';
import { equalJitterMs, fullJitterMs, parseRetryAfterMs, RateMeter, TokenBucket } from '../../src/drain/backoff.js';
import { idempotencyKey, UploadEncoder, DEFAULT_ENCODER_SETTINGS } from '../../src/drain/upload-encoder.js';
import { resolveDrainSettings } from '../../src/drain/drain.js';
import { ConfigError } from '../../src/flow/errors.js';
import { toFusionRecord } from '../../src/flow/fusion-record.js';
import { edgeRecords, ipv4Records } from '../support/spool-fixtures.js';
import { numberedRecords } from '../support/drain-fixtures.js';

test('full jitter stays within [0, min(cap, base·2^(n-1))] and reaches the cap', () => {
  const s = { baseMs: 1000, capMs: 300_000 };
  fc.assert(fc.property(fc.integer({ min: 1, max: 200 }), fc.double({ min: 0, max: 0.999999, noNaN: true }), (n, r) => {
    const d = fullJitterMs(n, s, () => r);
    const ceil = Math.min(s.capMs, s.baseMs * 2 ** (n - 1));
    return d >= 0 && d <= ceil && Number.isInteger(d);
  }));
  assert.equal(fullJitterMs(1, s, () => 0.999), 999);
  assert.equal(fullJitterMs(30, s, () => 0.5), 150_000);
  assert.equal(equalJitterMs(3, s, () => 0), 2000, 'equal jitter keeps half the ceiling');
});

test('Retry-After: delay-seconds and HTTP-date (RFC 9110 §10.2.3)', () => {
  const now = Date.parse('Sun, 22 Nov 2026 12:00:00 GMT');
  assert.equal(parseRetryAfterMs('120', now), 120_000);
  assert.equal(parseRetryAfterMs(['5'], now), 5000);
  assert.equal(parseRetryAfterMs('Sun, 22 Nov 2026 12:00:30 GMT', now), 30_000);
  assert.equal(parseRetryAfterMs('Sun, 22 Nov 2026 11:00:00 GMT', now), 0);
  assert.equal(parseRetryAfterMs('soon', now), null);
  assert.equal(parseRetryAfterMs(undefined, now), null);
});

test('token bucket: the long-run rate never exceeds the cap, bursts go into debt', () => {
  const b = new TokenBucket(1000, 0);
  let t = 0;
  let sent = 0;
  for (let i = 0; i < 100; i++) {
    t += b.take(250, t);
    sent += 250;
  }
  // 25 000 units at 1000/s with a 1 s burst: ≥ 24 s.
  assert.ok(t >= 24_000 && t <= 25_100, String(t));
  const big = new TokenBucket(100, 0);
  assert.equal(big.take(50, 0), 0);
  assert.equal(big.take(250, 0), 2000);
  assert.equal(sent, 25_000);
});

test('rate meter converges to a steady rate and decays when idle', () => {
  const m = new RateMeter(5);
  for (let s = 0; s < 60; s++) for (let k = 0; k < 10; k++) m.add(100, s * 1000 + k * 100);
  const r = m.rate(60_000);
  assert.ok(r > 950 && r <= 1000, String(r));
  assert.ok(m.rate(120_000) < 10);
});

test('encoder: chunks by record count and bytes, NDJSON and JSON array, gzip round trip', async () => {
  const recs = [...numberedRecords(0, 450), ...edgeRecords()];
  const enc = new UploadEncoder({ ...DEFAULT_ENCODER_SETTINGS, maxRecordsPerRequest: 200 });
  const chunks = await enc.encode(recs);
  assert.deepEqual(chunks.map((c) => [c.first, c.end]), [[0, 200], [200, 400], [400, recs.length]]);
  const lines = chunks.flatMap((c) => gunzipSync(c.body).toString().split('\n').filter((l) => l !== ''));
  assert.equal(lines.length, recs.length);
  const parsed = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.equal(parsed[7]?.input, 7);
  const huge = parsed.find((p) => typeof p.bits === 'string');
  assert.equal(huge?.bits, (18446744073709551615n * 8n).toString(), 'counters beyond 2^53 stay exact');
  assert.equal(chunks[0]?.headers['content-encoding'], 'gzip');
  assert.equal(chunks[0].headers['content-type'], 'application/x-ndjson');

  const arr = new UploadEncoder({ ...DEFAULT_ENCODER_SETTINGS, framing: 'json-array', compression: 'none', maxBytesPerRequest: 20_000 });
  const ac = await arr.encode(recs);
  assert.ok(ac.length > 3);
  let total = 0;
  for (const c of ac) {
    assert.ok(c.rawBytes <= 20_000 || c.recordCount === 1);
    const a = JSON.parse(c.body.toString()) as unknown[];
    total += a.length;
    assert.equal(c.headers['content-encoding'], undefined);
  }
  assert.equal(total, recs.length);
});

test('encoder: chunk bodies are exactly the records\' Fusion JSON, cut greedily at both limits', async () => {
  const recs = [...ipv4Records(700, 9), ...edgeRecords()];
  const lines = recs.map((r) => JSON.stringify(toFusionRecord(r)));
  for (const framing of ['ndjson', 'json-array'] as const) {
    for (const maxB of [1024, 5000, 65_536]) {
      for (const maxN of [1, 7, 2000]) {
        const enc = new UploadEncoder({ ...DEFAULT_ENCODER_SETTINGS, framing, compression: 'none', maxBytesPerRequest: maxB, maxRecordsPerRequest: maxN });
        const chunks = await enc.encode(recs);
        let next = 0;
        for (const c of chunks) {
          assert.equal(c.first, next);
          const mine = lines.slice(c.first, c.end);
          assert.equal(c.body.toString('utf8'), framing === 'ndjson' ? mine.join('\n') + '\n' : `[${mine.join(',')}]`);
          const size = mine.reduce((a, l) => a + Buffer.byteLength(l) + 1, 0);
          assert.ok(c.recordCount <= maxN && (size <= maxB || c.recordCount === 1), `${framing} ${maxB} ${maxN}: chunk ${c.first}-${c.end} too large`);
          const following = lines[c.end];
          if (following !== undefined) assert.ok(c.recordCount === maxN || size + Buffer.byteLength(following) + 1 > maxB, `chunk ${c.first}-${c.end} cut early`);
          next = c.end;
        }
        assert.equal(next, recs.length);
      }
    }
  }
});

test('idempotency keys: stable per (scope, batch, created, range), distinct otherwise', () => {
  const k = idempotencyKey('s', 7, 1000, 0, 100);
  assert.equal(k, idempotencyKey('s', 7, 1000, 0, 100));
  const others = [idempotencyKey('t', 7, 1000, 0, 100), idempotencyKey('s', 8, 1000, 0, 100), idempotencyKey('s', 7, 60_000, 0, 100), idempotencyKey('s', 7, 1000, 100, 200)];
  assert.equal(new Set([k, ...others]).size, 5);
  assert.match(k, /^sf1-[A-Za-z0-9_-]{32}$/);
});

test('drain settings: validated once, errors name the setting; zstd refused where Node lacks it', () => {
  const s = resolveDrainSettings({ concurrency: 3 });
  assert.ok(Object.isFrozen(s) && Object.isFrozen(s.encoder));
  assert.equal(s.encoder.maxRecordsPerRequest, 2000);
  const bad: [Parameters<typeof resolveDrainSettings>[0], string][] = [
    [{ uploadUrl: 'http://x.test/' }, 'drain.fusion.uploadUrl'],
    [{ concurrency: 0 }, 'drain.concurrency'],
    [{ backoff: { baseMs: 10, capMs: 5 } }, 'drain.retry'],
    [{ maxBytesPerSecond: -1 }, 'drain.maxBytesPerSecond'],
    [{ auth: { renewFraction: 1.5 } }, 'drain.auth.renewFraction'],
  ];
  for (const [p, setting] of bad) assert.throws(() => resolveDrainSettings(p), (e: unknown) => e instanceof ConfigError && e.setting === setting, setting);
  const hasZstd = typeof (process.versions as Record<string, unknown>).zstd === 'string' || Number(process.versions.node.split('.')[0]) >= 23;
  if (!hasZstd) {
    assert.throws(() => new UploadEncoder({ ...DEFAULT_ENCODER_SETTINGS, compression: 'zstd' }), (e: unknown) => e instanceof ConfigError && e.setting === 'drain.fusion.compression' && e.message.includes('Node'));
  }
  assert.throws(() => new UploadEncoder({ ...DEFAULT_ENCODER_SETTINGS, gzipLevel: 0 }), ConfigError);
});
