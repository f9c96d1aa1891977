/**
 * The drain with upload worker threads (drain.uploadWorkers > 0): the same guarantees as on
 * the drain's own thread — order of leasing, exactly-once storage with dedup after a lost
 * response, delivered chunks of a split batch not resent, 401 renewal, parking, and a forced
 * stop that releases what the workers were uploading.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { drainFor, fillSpool, openTempSpool, receivedSeq, startTestSim, waitFor, type SimEnv, type TempSpool } from '../support/drain-fixtures.js';

const seq = (n: number): number[] => Array.from({ length: n }, (_, i) => i);
const half = (): number => 0.5;
const sorted = (a: number[]): number[] => [...a].sort((x, y) => x - y);

async function withEnv(fn: (env: SimEnv, t: TempSpool) => Promise<void>): Promise<void> {
  const env = await startTestSim();
  const t = await openTempSpool();
  try {
    await fn(env, t);
  } finally {
    await t.cleanup();
    await env.cleanup();
  }
}

test('workers deliver a real spool once; concurrency 1 keeps the order', () =>
  withEnv(async (env, t) => {
    fillSpool(t.spool, 8, 700);
    const res = await drainFor(env, t.spool.reader, { uploadWorkers: 2, concurrency: 1, encoder: { maxRecordsPerRequest: 300 } }, { random: half }).drainOnce();
    assert.equal(res.complete, true);
    assert.deepEqual(receivedSeq(env.sim), seq(5600));
    assert.equal(res.stats.deliveredRecords, 5600);
    assert.equal(res.stats.requests, 24);
    assert.equal(t.spool.inspector.status().batches, 0);
    fillSpool(t.spool, 8, 700, 5600);
    const par = await drainFor(env, t.spool.reader, { uploadWorkers: 2, concurrency: 4 }, { random: half }).drainOnce();
    assert.equal(par.complete, true);
    assert.deepEqual(sorted(receivedSeq(env.sim)), seq(11_200));
  }));

test('workers: lost response deduplicated, split batch resends only the failed chunk, 422 parks', () =>
  withEnv(async (env, t) => {
    fillSpool(t.spool, 2, 500);
    await env.sim.setFault({ kind: 'reset-after-body', count: 1 });
    const a = await drainFor(env, t.spool.reader, { uploadWorkers: 1, concurrency: 1 }, { random: half }).drainOnce();
    assert.equal(a.complete, true);
    assert.equal(env.sim.stats.duplicates, 1);
    assert.deepEqual(receivedSeq(env.sim), seq(1000));

    fillSpool(t.spool, 1, 500, 1000);
    await env.sim.setFault({ kind: 'status', status: 503, count: 1, after: 2 });
    const b = await drainFor(env, t.spool.reader, { uploadWorkers: 1, concurrency: 1, encoder: { maxRecordsPerRequest: 100 } }, { random: half }).drainOnce();
    assert.equal(b.complete, true);
    assert.equal(b.stats.chunksSkipped, 2);
    assert.equal(b.stats.requests, 6);
    assert.deepEqual(receivedSeq(env.sim), seq(1500));

    fillSpool(t.spool, 2, 10, 1500);
    await env.sim.setFault({ kind: 'status', status: 422, count: 1 });
    const c = await drainFor(env, t.spool.reader, { uploadWorkers: 1, concurrency: 1 }, { random: half }).drainOnce();
    assert.equal(c.stats.parkedBatches, 1);
    assert.equal(t.spool.inspector.status().parkedBatches, 1);
    assert.deepEqual(receivedSeq(env.sim), [...seq(1500), ...seq(10).map((i) => 1510 + i)]);
  }));

test('workers: an expired token (401) is renewed and the batch resent without its delivered chunks', () =>
  withEnv(async (env, t) => {
    fillSpool(t.spool, 1, 10);
    const drain = drainFor(env, t.spool.reader, { uploadWorkers: 1, concurrency: 1 }, { random: half });
    drain.start();
    try {
      assert.ok(await waitFor(() => t.spool.inspector.status().batches === 0, 10_000));
      await env.sim.setFault({ kind: 'expire-tokens' });
      fillSpool(t.spool, 1, 10, 10);
      drain.notify();
      assert.ok(await waitFor(() => t.spool.inspector.status().batches === 0, 10_000));
      assert.equal(env.sim.stats.unauthorized, 1);
      assert.equal(env.sim.stats.tokensIssued, 2);
      assert.equal(drain.stats().retries.auth, 0);
      assert.equal(drain.stats().retries.worker, 0, 'the resent job had intact batch bytes');
      assert.equal(drain.stats().consecutiveFailures, 0);
      assert.deepEqual(receivedSeq(env.sim), seq(20));
    } finally {
      await drain.close(1000);
    }
  }));

test('workers: a forced stop terminates the threads and releases their batches', () =>
  withEnv(async (env, t) => {
    fillSpool(t.spool, 3, 50);
    await env.sim.setFault({ kind: 'slow', delayMs: 3000 });
    const drain = drainFor(env, t.spool.reader, { uploadWorkers: 2, concurrency: 2 }, { random: half });
    drain.start();
    assert.ok(await waitFor(() => env.sim.stats.uploadRequests >= 2, 10_000));
    const t0 = Date.now();
    await drain.close(200);
    assert.ok(Date.now() - t0 < 2000);
    assert.equal(t.spool.inspector.status().leased, 0);
    assert.equal(t.spool.inspector.status().batches, 3);
    await env.sim.setFault(null);
    const res = await drainFor(env, t.spool.reader, { uploadWorkers: 1, concurrency: 1 }, { random: half }).drainOnce();
    assert.equal(res.complete, true);
    await new Promise((r) => setTimeout(r, 3200));
    const got = receivedSeq(env.sim);
    assert.equal(got.length, 150, 'held uploads that completed late were deduplicated');
    assert.deepEqual(sorted(got), seq(150));
  }));

test('adaptive gzip: a fast uplink steps the level down, a slow one raises it again', async () => {
  // Loopback with a stand-in that only counts: compressing a 2000-record batch at gzip 9
  // takes several times longer than uploading it, so the drain trades bytes for CPU.
  const env = await startTestSim({ validate: 'none', keepRecords: false });
  const t = await openTempSpool();
  try {
    for (const workers of [1, 0]) {
      const drain = drainFor(env, t.spool.reader, { uploadWorkers: workers, concurrency: 1, encoder: { gzipLevel: 9 } }, { random: half });
      drain.start();
      try {
        // The lowest level seen over the whole backlog: on a machine busy with other tests the
        // stand-in's answers can lag behind the compression for a few batches, so one reading
        // at the end is not enough (30 batches give the control plenty of observations).
        fillSpool(t.spool, 30, 2000);
        drain.notify();
        let fast = 9;
        assert.ok(
          await waitFor(() => {
            fast = Math.min(fast, drain.stats().gzipLevel ?? 9);
            return t.spool.inspector.status().batches === 0;
          }, 60_000),
          'fast batches delivered',
        );
        assert.ok(fast < 9, `${workers} workers: level ${fast} at the lowest over compression-bound batches`);
        const before = drain.stats().gzipLevel ?? 9;
        // Now every upload waits 1 s at the stand-in: the network dominates (small batches
        // keep compression at a few ms of CPU).
        await env.sim.setFault({ kind: 'slow', delayMs: 1000, scope: 'upload' });
        fillSpool(t.spool, 8, 500, 100_000);
        drain.notify();
        assert.ok(await waitFor(() => t.spool.inspector.status().batches === 0, 60_000), 'slow batches delivered');
        const slow = drain.stats().gzipLevel ?? 0;
        if (workers === 0) {
          assert.equal(slow, 9, 'in-thread: back at the ceiling');
        } else {
          // The upload worker compresses at the lowest scheduling priority: on a busy machine
          // its wall time per batch grows, so only the direction is certain (and none is left
          // when the level had already climbed back to the ceiling before the slow batches).
          assert.ok(slow > before || (before === 9 && slow === 9), `worker: level ${slow} after network-bound batches, ${before} before`);
        }
        await env.sim.setFault(null);
      } finally {
        await drain.close();
      }
    }
    const fixed = drainFor(env, t.spool.reader, { uploadWorkers: 1, concurrency: 1, encoder: { gzipLevel: 6, adaptiveGzip: false } }, { random: half });
    fillSpool(t.spool, 6, 2000, 40_000);
    const res = await fixed.drainOnce();
    assert.equal(res.stats.gzipLevel, 6, 'adaptiveGzip false keeps the configured level');
  } finally {
    await t.cleanup();
    await env.cleanup();
  }
});

/** Nice values of this process's threads (Linux /proc; field 19 of each task's stat). */
function threadNiceValues(): number[] {
  const out: number[] = [];
  for (const tid of readdirSync('/proc/self/task')) {
    let stat: string;
    try {
      stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
    } catch {
      continue; // the thread ended meanwhile
    }
    // After "pid (comm)" come the fields from 3 (state) on: nice is field 19.
    const nice = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]);
    if (Number.isInteger(nice)) out.push(nice);
  }
  return out;
}

test('upload workers run at the lowest scheduling priority (a backlog never takes CPU from live ingest)', { skip: process.platform !== 'linux' }, async () => {
  const env = await startTestSim();
  const t = await openTempSpool();
  const drain = drainFor(env, t.spool.reader, { uploadWorkers: 2 });
  // The runner may itself run under nice: the main thread keeps the priority it started with.
  const own = Number(readFileSync('/proc/self/stat', 'utf8').split(') ')[1]?.split(' ')[16]);
  try {
    assert.ok(Number.isInteger(own) && own < 19, `the test needs a main thread below nice 19 (it has ${own})`);
    assert.ok(!threadNiceValues().includes(19), 'no thread at nice 19 before the workers start');
    assert.ok(await waitFor(() => threadNiceValues().filter((n) => n === 19).length === 2, 20_000), `thread nice values: ${threadNiceValues().join(' ')}`);
    assert.ok(threadNiceValues().includes(own), 'the main thread keeps its priority');
    // They still deliver (gzip on the worker threads themselves).
    fillSpool(t.spool, 2, 300);
    const res = await drain.drainOnce();
    assert.equal(res.stats.deliveredRecords, 600);
    // Two workers, two batches in flight: arrival order is theirs.
    assert.deepEqual(sorted(receivedSeq(env.sim)), seq(600));
  } finally {
    await drain.close();
    await t.cleanup();
    await env.cleanup();
  }
});
