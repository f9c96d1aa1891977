/**
 * The drain loop's pacing with a virtual clock: against an unreachable Fusion (a closed
 * loopback port) every attempt is preceded by a wait that doubles up to the cap, so a long
 * outage costs a bounded number of attempts; the batch is released each time, never lost.
 * The source is an in-memory BatchSource (the loop is under test here, not the spool).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { Drain, resolveDrainSettings, type DrainClock } from '../../src/drain/drain.js';
import type { BatchSource, LeasedBatch } from '../../src/flow/pipeline.js';
import { encodeNetosecret, parseNetosecret } from '../../src/drain/netosecret.js';
import { numberedRecords } from '../support/drain-fixtures.js';
import { encodeBatch } from '../../src/batch/encoder.js';

class MemorySource implements BatchSource {
  readonly leased = new Set<number>();
  readonly log: string[] = [];
  constructor(private readonly batches: LeasedBatch[]) {}
  lease(max: number): LeasedBatch[] {
    const out = this.batches.filter((b) => !this.leased.has(b.id)).slice(0, max);
    for (const b of out) this.leased.add(b.id);
    return out;
  }
  ack(id: number): void {
    this.log.push(`ack ${id}`);
    this.leased.delete(id);
  }
  release(id: number): void {
    this.log.push(`release ${id}`);
    this.leased.delete(id);
  }
  park(id: number, reason: string): void {
    this.log.push(`park ${id} ${reason}`);
    this.leased.delete(id);
  }
  status(): { batches: number; records: number; bytes: number } {
    return { batches: this.batches.length, records: this.batches.length * 10, bytes: 0 };
  }
}

async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const addr = s.address();
  await new Promise((r) => s.close(r));
  if (addr === null || typeof addr === 'string') throw new Error('no port');
  return addr.port;
}

test('unreachable Fusion: waits double to the cap (virtual clock), bounded attempts, batch always released', async () => {
  const port = await closedPort();
  const url = `https://127.0.0.1:${port}`;
  const credentials = parseNetosecret(encodeNetosecret({ url, shortname: 's', appname: 'a', sharedsecret: 'x', appkey: 'k' }), 't');
  let now = 1_000_000;
  const sleeps: number[] = [];
  const clock: DrainClock = {
    now: () => now,
    sleep: (ms) => {
      sleeps.push(ms);
      now += ms;
      return Promise.resolve();
    },
  };
  const source = new MemorySource([{ id: 1, batch: encodeBatch(numberedRecords(0, 10)), recordCount: 10, createdAtMs: 0, attempts: 0, bytes: 0 }]);
  // Production defaults: uploads 1 s → 5 min, auth 10 s → 30 min; jitter fixed at 0.5.
  const drain = new Drain({ source, credentials, settings: resolveDrainSettings({ uploadUrl: `${url}/api/v1/flows`, uploadWorkers: 0 }), clock, random: () => 0.5 });
  const res = await drain.drainOnce({ maxConsecutiveFailures: 12 });
  assert.equal(res.complete, false);
  assert.equal(res.stats.auth.failures.refused, 12, 'one connection attempt per wait');
  assert.equal(source.log.filter((l) => l === 'release 1').length, 12);
  assert.equal(source.leased.size, 0);
  // Auth backoff, equal jitter at 0.5: 0.75 × 10 s × 2^(n-1), capped at 0.75 × 30 min.
  const want = [7500, 15_000, 30_000, 60_000, 120_000, 240_000, 480_000, 960_000, 1_350_000, 1_350_000, 1_350_000];
  assert.deepEqual(sleeps, want);
  // A day-long outage therefore costs about 24 h / 22.5 min ≈ 64 attempts, not a loop.
  assert.ok(sleeps.every((ms) => ms > 0));
});
