/**
 * The drain against each fault the stand-in injects, with a real spool and real HTTPS on
 * loopback: the right retry/park outcome, no hot loop (requests counted over a bounded time),
 * everything delivered once afterwards (duplicates only where a response was lost, deduped).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { drainFor, fillSpool, openTempSpool, receivedSeq, startTestSim, waitFor, type SimEnv, type TempSpool } from '../support/drain-fixtures.js';
import type { Drain } from '../../src/drain/drain.js';
import { appendRecords } from '../support/spool-records.js';

const seq = (n: number): number[] => Array.from({ length: n }, (_, i) => i);
const half = (): number => 0.5;

async function withEnv(fn: (env: SimEnv, t: TempSpool) => Promise<void>, simOptions = {}): Promise<void> {
  const env = await startTestSim(simOptions);
  const t = await openTempSpool();
  try {
    await fn(env, t);
  } finally {
    await t.cleanup();
    await env.cleanup();
  }
}

async function stopped(d: Drain): Promise<void> {
  await d.close(2000);
}

test('outage: refused connections keep the spool; when Fusion is back all is delivered oldest first, each batch once', () =>
  withEnv(async (env, t) => {
    await env.sim.setFault({ kind: 'refuse' });
    fillSpool(t.spool, 6, 100);
    const drain = drainFor(env, t.spool.reader, { concurrency: 1 }, { random: half });
    drain.start();
    try {
      assert.ok(await waitFor(() => drain.stats().auth.failures.refused >= 2, 10_000), 'retried');
      const before = drain.stats().auth.failures.refused;
      await new Promise((r) => setTimeout(r, 800));
      // Backoff 20 ms doubling to a 200 ms cap with jitter 0.5: ~8 attempts in 800 ms, never a loop.
      const attempts = drain.stats().auth.failures.refused - before;
      assert.ok(attempts <= 20, `auth attempts in 800 ms of outage: ${attempts}`);
      assert.equal(env.sim.stats.uploadRequests, 0);
      // Ingest keeps going during the outage: the spool grows.
      fillSpool(t.spool, 4, 100, 600);
      assert.equal(t.spool.inspector.status().batches, 10);
      await env.sim.setFault(null);
      assert.ok(await waitFor(() => t.spool.inspector.status().batches === 0, 10_000), 'spool drained after the outage');
      assert.deepEqual(receivedSeq(env.sim), seq(1000));
      assert.equal(env.sim.stats.duplicates, 0);
      assert.equal(t.spool.inspector.status().ackMisses, 0);
      assert.equal(drain.stats().deliveredBatches, 10);
    } finally {
      await stopped(drain);
    }
  }));

test('lost response (reset after the body was processed): the retry carries the same key and is deduplicated', () =>
  withEnv(async (env, t) => {
    fillSpool(t.spool, 4, 50);
    await env.sim.setFault({ kind: 'reset-after-body', count: 1 });
    const drain = drainFor(env, t.spool.reader, { concurrency: 1 }, { random: half });
    const res = await drain.drainOnce();
    assert.equal(res.complete, true);
    assert.equal(env.sim.stats.duplicates, 1, 'the resent chunk was recognised by its idempotency key');
    assert.deepEqual(receivedSeq(env.sim), seq(200), 'each record stored once, in order');
    assert.ok(res.stats.retries.reset + res.stats.retries.network >= 1);
    const keys = env.sim.uploads.map((u) => u.idempotencyKey);
    assert.equal(keys[0], keys[1], 'the retry repeated the first key');
    assert.equal(t.spool.inspector.status().batches, 0);
  }));

test('reset mid-body: nothing stored, retried, delivered once', () =>
  withEnv(async (env, t) => {
    fillSpool(t.spool, 3, 400);
    await env.sim.setFault({ kind: 'reset-mid-body', count: 2 });
    const res = await drainFor(env, t.spool.reader, { concurrency: 1 }, { random: half }).drainOnce();
    assert.equal(res.complete, true);
    assert.equal(env.sim.stats.duplicates, 0);
    assert.deepEqual(receivedSeq(env.sim), seq(1200));
    assert.ok(res.stats.retries.reset + res.stats.retries.network >= 2, JSON.stringify(res.stats.retries));
  }));

test('a split batch whose later chunk fails resends only the failed chunks', () =>
  withEnv(async (env, t) => {
    fillSpool(t.spool, 1, 500);
    // Chunks of 100: the 1st and 2nd get 200, the 3rd a 503 once.
    await env.sim.setFault({ kind: 'status', status: 503, count: 1, after: 2 });
    const drain = drainFor(env, t.spool.reader, { concurrency: 1, encoder: { maxRecordsPerRequest: 100 } }, { random: half });
    const res = await drain.drainOnce();
    assert.equal(res.complete, true);
    assert.deepEqual(receivedSeq(env.sim), seq(500));
    assert.equal(res.stats.retries['http-5xx'], 1);
    assert.equal(res.stats.chunksSkipped, 2, 'the two delivered chunks were not resent');
    assert.equal(env.sim.stats.uploadRequests, 6, '5 chunks + 1 retry');
    assert.equal(env.sim.stats.duplicates, 0);
    assert.equal(res.stats.deliveredBatches, 1);
  }));

for (const [name, fault, reason] of [
  ['503', { kind: 'status', status: 503 }, 'http-5xx'],
  ['500', { kind: 'status', status: 500 }, 'http-5xx'],
  ['404 (wrong upload URL)', { kind: 'status', status: 404 }, 'endpoint'],
  ['429 without Retry-After', { kind: 'status', status: 429 }, 'http-429'],
] as const) {
  test(`${name}: retried with backoff (bounded requests), nothing parked, delivered when it clears`, () =>
    withEnv(async (env, t) => {
      fillSpool(t.spool, 3, 100);
      await env.sim.setFault(fault);
      const drain = drainFor(env, t.spool.reader, { concurrency: 2 }, { random: half });
      drain.start();
      try {
        // Under a loaded CI box the first handshakes can be slow: wait for the fault to bite,
        // then count requests over a fixed window.
        assert.ok(await waitFor(() => drain.stats().retries[reason] >= 2, 10_000), 'retried');
        const before = env.sim.stats.uploadRequests;
        await new Promise((r) => setTimeout(r, 700));
        const during = env.sim.stats.uploadRequests - before;
        // Backoff 20 ms doubling to 200 ms, jitter 0.5, two lanes: ~7–14 requests in 700 ms.
        assert.ok(during <= 25, `requests in 700 ms of the fault: ${during}`);
        assert.equal(drain.stats().parkedBatches, 0);
        assert.equal(t.spool.inspector.status().batches, 3);
        await env.sim.setFault(null);
        assert.ok(await waitFor(() => t.spool.inspector.status().batches === 0, 10_000));
        assert.equal(env.sim.records.length, 300);
        assert.equal(t.spool.inspector.status().parkedBatches, 0);
      } finally {
        await stopped(drain);
      }
    }));
}

test('429 with Retry-After (seconds and HTTP date) holds the drain back that long', () =>
  withEnv(async (env, t) => {
    fillSpool(t.spool, 2, 10);
    await env.sim.setFault({ kind: 'status', status: 429, retryAfter: '1', count: 1 });
    const res = await drainFor(env, t.spool.reader, { concurrency: 1 }, { random: half }).drainOnce();
    assert.equal(res.complete, true);
    const [first, second] = env.sim.uploads;
    assert.equal(first?.status, 429);
    assert.ok(second !== undefined && second.atMs - first.atMs >= 950, `gap ${String(second?.atMs)} - ${first.atMs}`);

    const date = new Date(Date.now() + 2000).toUTCString();
    fillSpool(t.spool, 1, 10, 100);
    await env.sim.setFault({ kind: 'status', status: 429, retryAfter: date, count: 1 });
    const before = env.sim.uploads.length;
    await drainFor(env, t.spool.reader, { concurrency: 1 }, { random: half }).drainOnce();
    const a = env.sim.uploads[before];
    const b = env.sim.uploads[before + 1];
    assert.equal(a?.status, 429);
    // HTTP dates have 1 s resolution: at least ~1 s of the 2 s remain.
    assert.ok(b !== undefined && b.atMs - a.atMs >= 900, 'waited for the HTTP-date');
  }));

test('non-retryable 4xx parks the batch (kept, counted, visible) and the rest flows; no hot loop', () =>
  withEnv(async (env, t) => {
    fillSpool(t.spool, 4, 20);
    await env.sim.setFault({ kind: 'status', status: 422, count: 1 });
    const drain = drainFor(env, t.spool.reader, { concurrency: 1 }, { random: half });
    const res = await drain.drainOnce();
    assert.equal(res.complete, true);
    assert.equal(res.stats.parkedBatches, 1);
    assert.deepEqual(res.stats.parkedByStatus, { '422': 1 });
    const st = t.spool.inspector.status();
    assert.equal(st.parkedBatches, 1);
    assert.equal(st.parkedRecords, 20);
    assert.deepEqual(receivedSeq(env.sim), seq(80).slice(20));
    assert.equal(env.sim.stats.uploadRequests, 4, 'one request per batch');
  }));

test('a batch with a record Fusion rejects (schema) is parked with the reason', () =>
  withEnv(async (env, t) => {
    fillSpool(t.spool, 1, 10);
    const { numberedRecords } = await import('../support/drain-fixtures.js');
    const bad = numberedRecords(10, 5);
    const victim = bad[2];
    assert.ok(victim !== undefined);
    victim.srcPort = 70_000; // not a port: the stand-in's schema says 0–65535
    appendRecords(t.spool.writer, bad);
    fillSpool(t.spool, 1, 10, 15);
    const res = await drainFor(env, t.spool.reader, { concurrency: 1 }, { random: half }).drainOnce();
    assert.equal(res.stats.parkedBatches, 1);
    assert.match(res.stats.lastError ?? '', /HTTP 400.*srcport/);
    assert.equal(t.spool.inspector.status().parkedBatches, 1);
    assert.deepEqual(receivedSeq(env.sim), [...seq(10), ...Array.from({ length: 10 }, (_, i) => 15 + i)]);
  }));

test('slow responses beyond the headers timeout are retried as timeouts, memory stays bounded', () =>
  withEnv(async (env, t) => {
    fillSpool(t.spool, 2, 50);
    // undici runs the headers timeout on its coarse "fast timer" (~0.5–1 s granularity), so the
    // stand-in stalls well beyond it.
    await env.sim.setFault({ kind: 'slow', delayMs: 2500, count: 2 });
    const drain = drainFor(env, t.spool.reader, { concurrency: 1, tls: { headersTimeoutMs: 300 } }, { random: half });
    const heapBefore = process.memoryUsage().heapUsed;
    const res = await drain.drainOnce({ maxConsecutiveFailures: 10 });
    assert.equal(res.complete, true);
    assert.ok(res.stats.retries.timeout >= 1, JSON.stringify(res.stats.retries));
    assert.equal(t.spool.inspector.status().batches, 0);
    // Slow requests were processed late by the stand-in: the resends were deduplicated.
    assert.deepEqual([...new Set(receivedSeq(env.sim))].sort((a, b) => a - b), seq(100));
    assert.equal(receivedSeq(env.sim).length, 100);
    assert.ok(process.memoryUsage().heapUsed - heapBefore < 64 * 1024 * 1024);
  }));

test('expired token (401 on upload) is renewed once and the chunk resent; tokens renew before expires_in', () =>
  withEnv(
    async (env, t) => {
      fillSpool(t.spool, 2, 10);
      const drain = drainFor(env, t.spool.reader, { concurrency: 1 }, { random: half });
      drain.start();
      try {
        assert.ok(await waitFor(() => t.spool.inspector.status().batches === 0, 5000));
        assert.equal(env.sim.stats.tokensIssued, 1);
        await env.sim.setFault({ kind: 'expire-tokens' });
        fillSpool(t.spool, 1, 10, 20);
        drain.notify();
        assert.ok(await waitFor(() => t.spool.inspector.status().batches === 0, 5000));
        assert.equal(env.sim.stats.unauthorized, 1);
        assert.equal(env.sim.stats.tokensIssued, 2);
        assert.equal(drain.stats().retries.auth, 0, 'renewed and resent at once, not a retry');
        // expires_in is 2 s here: renewal at 80 % (1.6 s) keeps every upload authorised.
        for (let i = 0; i < 8; i++) {
          fillSpool(t.spool, 1, 5, 100 + i * 5);
          drain.notify();
          await new Promise((r) => setTimeout(r, 300));
        }
        assert.ok(await waitFor(() => t.spool.inspector.status().batches === 0, 5000));
        const tokens = tokensIssued(env);
        assert.ok(tokens >= 3, `tokens: ${tokens}`);
        assert.equal(env.sim.stats.unauthorized, 1, 'no upload used an expired token');
        assert.equal(env.sim.records.length, 70);
      } finally {
        await stopped(drain);
      }
    },
    { tokenExpiresInSec: 2 },
  ));

test('a revoked key (401 on auth) is reported as a credential problem and does not hammer the API', () =>
  withEnv(async (env, t) => {
    fillSpool(t.spool, 2, 10);
    await env.sim.setFault({ kind: 'reject-auth' });
    const drain = drainFor(env, t.spool.reader, { concurrency: 2, auth: { backoff: { baseMs: 100, capMs: 1000 } } }, { random: half });
    drain.start();
    try {
      assert.ok(await waitFor(() => env.sim.stats.authRequests >= 2, 10_000), 'auth retried');
      const before = env.sim.stats.authRequests;
      await new Promise((r) => setTimeout(r, 1500));
      const st = drain.stats();
      // Equal jitter at 0.5: waits of 75, 150, 300, 600, 750, 750 ms … → after the first two
      // attempts at most ~4 more in 1.5 s, however many batches wait.
      const more = env.sim.stats.authRequests - before;
      assert.ok(more <= 5, `auth requests in 1.5 s: ${more}`);
      assert.equal(env.sim.stats.uploadRequests, 0);
      assert.ok(st.auth.failures.rejected >= 2);
      assert.match(st.lastError ?? '', /rejected the API key/);
      assert.ok(!(st.lastError ?? '').includes(drainSecret(env)), 'no secret in the error');
      assert.equal(t.spool.inspector.status().batches, 2);
      assert.equal(t.spool.inspector.status().parkedBatches, 0);
    } finally {
      await stopped(drain);
    }
  }));

/** Read through a function: assert.equal above narrowed the property's type to a literal. */
function tokensIssued(env: SimEnv): number {
  return env.sim.stats.tokensIssued;
}

function drainSecret(env: SimEnv): string {
  return env.sim.credentials.sharedsecret;
}
