/**
 * Drain lifecycle and pacing against the stand-in with a real spool: close() with uploads in
 * flight releases what it leased (nothing lost, nothing acked twice), so does destroy() at once, the bandwidth and record
 * caps hold the rate, stats report rate and time to empty, device registration.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { drainFor, fillSpool, openTempSpool, receivedSeq, startTestSim, waitFor } from '../support/drain-fixtures.js';

const half = (): number => 0.5;

test('close(grace) with uploads stuck in flight: aborted at the deadline, leased batches released, then delivered by a new drain', async () => {
  const env = await startTestSim();
  const t = await openTempSpool();
  try {
    fillSpool(t.spool, 4, 50);
    await env.sim.setFault({ kind: 'slow', delayMs: 3000 });
    const drain = drainFor(env, t.spool.reader, { concurrency: 2 }, { random: half });
    drain.start();
    assert.ok(await waitFor(() => env.sim.stats.uploadRequests >= 2, 5000));
    assert.equal(drain.stats().inFlightBatches, 2);
    const t0 = Date.now();
    await drain.close(300);
    const took = Date.now() - t0;
    assert.ok(took < 2000, `close honoured its deadline: ${took} ms`);
    assert.equal(drain.stats().state, 'stopped');
    assert.equal(drain.stats().inFlightBatches, 0);
    assert.equal(t.spool.inspector.status().leased, 0, 'everything leased was released');
    assert.equal(t.spool.inspector.status().batches, 4);
    await drain.close(); // idempotent
    await env.sim.setFault(null);
    const res = await drainFor(env, t.spool.reader, { concurrency: 1 }, { random: half }).drainOnce();
    assert.equal(res.complete, true);
    // The stuck uploads may complete on the stand-in's side later: dedup keeps one copy each.
    await new Promise((r) => setTimeout(r, 3200));
    const got = receivedSeq(env.sim);
    assert.equal(got.length, 200);
    assert.deepEqual([...got].sort((a, b) => a - b), Array.from({ length: 200 }, (_, i) => i));
  } finally {
    await t.cleanup();
    await env.cleanup();
  }
});

test('destroy() with uploads stuck in flight: aborted at once, leased batches released and never acked; idempotent, close() after it returns', async () => {
  const env = await startTestSim();
  const t = await openTempSpool();
  try {
    fillSpool(t.spool, 4, 50);
    await env.sim.setFault({ kind: 'slow', delayMs: 5000 });
    const drain = drainFor(env, t.spool.reader, { concurrency: 2 }, { random: half });
    drain.start();
    assert.ok(await waitFor(() => env.sim.stats.uploadRequests >= 2, 5000));
    const t0 = Date.now();
    await drain.destroy();
    const took = Date.now() - t0;
    assert.ok(took < 2500, `destroy did not wait for the 5 s uploads: ${took} ms`);
    assert.equal(drain.stats().state, 'stopped');
    assert.equal(drain.stats().inFlightBatches, 0);
    assert.equal(drain.stats().deliveredBatches, 0);
    assert.equal(t.spool.inspector.status().leased, 0, 'everything leased was released');
    assert.equal(t.spool.inspector.status().batches, 4, 'nothing was acked');
    await drain.destroy();
    await drain.close();
  } finally {
    await env.sim.setFault(null);
    await t.cleanup();
    await env.cleanup();
  }
});

test('close() while idle and while backing off returns promptly', async () => {
  const env = await startTestSim();
  const t = await openTempSpool();
  try {
    const idle = drainFor(env, t.spool.reader, { idlePollMs: 60_000 });
    idle.start();
    await new Promise((r) => setTimeout(r, 50));
    let t0 = Date.now();
    await idle.close(5000);
    assert.ok(Date.now() - t0 < 1500);

    await env.sim.setFault({ kind: 'status', status: 503 });
    fillSpool(t.spool, 1, 10);
    const backing = drainFor(env, t.spool.reader, { backoff: { baseMs: 60_000, capMs: 60_000 } }, { random: () => 0.99 });
    backing.start();
    assert.ok(await waitFor(() => backing.stats().backoffRemainingMs > 10_000, 5000));
    t0 = Date.now();
    await backing.close(5000);
    assert.ok(Date.now() - t0 < 1500, 'not held by the 60 s backoff');
    assert.equal(t.spool.inspector.status().leased, 0);
  } finally {
    await t.cleanup();
    await env.cleanup();
  }
});

test('bandwidth cap (compressed bytes/s) and record-rate cap hold the drain rate', async () => {
  const env = await startTestSim();
  const t = await openTempSpool();
  try {
    fillSpool(t.spool, 10, 200);
    const rateCap = 4000; // records/s: 2000 records take ≥ ~0.25 s after the 1 s burst
    const t0 = Date.now();
    const res = await drainFor(env, t.spool.reader, { concurrency: 4, maxRecordsPerSecond: rateCap }).drainOnce();
    const secs = (Date.now() - t0) / 1000;
    assert.equal(res.stats.deliveredRecords, 2000);
    // Burst of one second's worth (4000) covers it all: now force a real limit.
    fillSpool(t.spool, 10, 200, 2000);
    const t1 = Date.now();
    const res2 = await drainFor(env, t.spool.reader, { concurrency: 4, maxRecordsPerSecond: 1000 }).drainOnce();
    const secs2 = (Date.now() - t1) / 1000;
    assert.equal(res2.stats.deliveredRecords, 2000);
    // 2000 records at 1000/s with a 1000-record burst: ≥ ~1 s (the last chunk pays the debt only for the next).
    assert.ok(secs2 >= 0.75, `records cap: ${secs2} s (uncapped-ish run took ${secs} s)`);

    fillSpool(t.spool, 6, 200, 4000);
    const bytesPerBatch = res2.stats.deliveredBytes / 10;
    const cap = Math.round(bytesPerBatch * 2); // ~2 batches per second
    const t2 = Date.now();
    const res3 = await drainFor(env, t.spool.reader, { concurrency: 4, maxBytesPerSecond: cap }).drainOnce();
    const secs3 = (Date.now() - t2) / 1000;
    assert.equal(res3.stats.deliveredRecords, 1200);
    // 6 batches at 2/s with a 2-batch burst: ≥ ~1.5 s.
    assert.ok(secs3 >= 1.2, `bytes cap: ${secs3} s`);
    assert.ok(res3.stats.deliveredBytes / secs3 <= cap * 1.6, `average ${res3.stats.deliveredBytes / secs3} B/s vs cap ${cap}`);
  } finally {
    await t.cleanup();
    await env.cleanup();
  }
});

test('stats: drain rate and estimated time to empty from the spool status', async () => {
  const env = await startTestSim();
  const t = await openTempSpool();
  try {
    fillSpool(t.spool, 20, 100);
    const drain = drainFor(env, t.spool.reader, { concurrency: 1, maxRecordsPerSecond: 500 });
    drain.start();
    try {
      await new Promise((r) => setTimeout(r, 2600));
      const s = drain.stats();
      // EWMA with τ = 10 s is still rising after 2.6 s; bounded above by the cap (plus burst).
      assert.ok(s.recordsPerSec > 20 && s.recordsPerSec < 800, `rate ${s.recordsPerSec}`);
      assert.ok(s.bytesPerSec > 0);
      assert.ok(s.spool !== null && s.spool.records > 0);
      assert.ok(s.etaMs !== null && s.etaMs > 0, `eta ${String(s.etaMs)}`);
      // ETA ≈ records left / rate.
      const expect = (s.spool.records / s.recordsPerSec) * 1000;
      assert.ok(Math.abs(s.etaMs - expect) < 5, `${s.etaMs} vs ${expect}`);
      assert.ok(s.lastSuccessAtMs !== null);
    } finally {
      await drain.close(1000);
    }
  } finally {
    await t.cleanup();
    await env.cleanup();
  }
});

test('device registration: off by default; on, it POSTs {name, ips, samplerate} once per exporter', async () => {
  const env = await startTestSim();
  const t = await openTempSpool();
  try {
    const off = drainFor(env, t.spool.reader);
    assert.equal(await off.registerDevice({ name: 'r1', ips: ['192.0.2.1/32'], samplerate: 1 }), 'disabled');
    await off.close();
    const on = drainFor(env, t.spool.reader, { registerDevices: true });
    assert.equal(await on.registerDevice({ name: 'r1', ips: ['192.0.2.1/32'], samplerate: 100, tags: ['branch'] }), 'registered');
    assert.equal(await on.registerDevice({ name: 'r1', ips: ['192.0.2.1/32'], samplerate: 100 }), 'exists');
    assert.deepEqual(env.sim.devices, [{ name: 'r1', ips: ['192.0.2.1/32'], samplerate: 100, tags: ['branch'] }]);
    await assert.rejects(on.registerDevice({ name: 'r2', ips: ['not-an-ip'], samplerate: 1 }), /device.ips/);
    await assert.rejects(on.registerDevice({ name: 'r2', ips: ['192.0.2.2/32'], samplerate: 0 }), /device.samplerate/);
    assert.equal(on.stats().devicesRegistered, 1);
    await on.close();
  } finally {
    await t.cleanup();
    await env.cleanup();
  }
});
