import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import Database from 'better-sqlite3';
import { Spool } from '../../src/spool/spool.js';
import { WalCheckpointer } from '../../src/spool/wal-checkpointer.js';
import { ipv4Records, tempDir, testKek } from '../support/spool-fixtures.js';

const KEK = testKek(3);

/** Polls `cond` every 20 ms for at most `ms`. */
async function until(cond: () => boolean, what: string, ms = 10_000): Promise<void> {
  for (let waited = 0; !cond(); waited += 20) {
    if (waited >= ms) assert.fail(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

/**
 * A spool whose own checkpoints never run during the test (interval of a day, no idle tick):
 * appends stay in the WAL until someone else checkpoints. 10 batches of 2000 records are
 * ~0.5 MB, far below SQLite's automatic checkpoint (1000 pages of 16 KiB).
 */
async function quietSpool(dir: string): Promise<Spool> {
  return Spool.open({ dir, kek: KEK, checkpointIntervalMs: 86_400_000, synchronous: 'normal', setInterval: () => null, clearInterval: () => undefined });
}

describe('background WAL checkpointer', () => {
  test('copies committed batches into the database file while the appender keeps its connection; stop() ends it for good', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const spool = await quietSpool(dir);
      const dbPath = join(dir, 'spool.db');
      const before = statSync(dbPath).size;
      for (let i = 0; i < 10; i++) assert.equal(spool.append(ipv4Records(2000, i + 1)).droppedRecords, 0);
      const batchBytes = spool.status().bytes;
      assert.ok(batchBytes > 100_000, `batches hold ${batchBytes} bytes`);

      // Control: nobody checkpoints, so the database file does not grow (the test can fail).
      await sleep(200);
      assert.equal(statSync(dbPath).size, before, 'without a checkpointer the batches stay in the WAL');

      const errors: string[] = [];
      const cp = await WalCheckpointer.start(dbPath, (m) => errors.push(m), { intervalMs: 20 });
      await until(() => cp.stats().checkpoints >= 2, 'two checkpoints');
      assert.ok(statSync(dbPath).size >= before + batchBytes, `database file grew from ${before} by at least ${batchBytes} bytes (now ${statSync(dbPath).size})`);
      const s = cp.stats();
      assert.equal(s.failures, 0);
      assert.deepEqual(errors, []);

      // Appending goes on alongside it; a later checkpoint takes the new batches too.
      const grown = statSync(dbPath).size;
      spool.append(ipv4Records(2000, 99));
      await until(() => statSync(dbPath).size > grown, 'the new batch in the database file');

      await cp.stop();
      await cp.stop(); // idempotent, resolves at once after the thread ended
      const after = cp.stats().checkpoints;
      await sleep(100);
      assert.equal(cp.stats().checkpoints, after, 'no checkpoint after stop()');

      // The spool's own connection is untouched: it still appends, verifies and reopens.
      spool.append(ipv4Records(10, 100));
      assert.equal(spool.status().batches, 12);
      spool.close();
      const again = await Spool.open({ dir, kek: KEK });
      try {
        assert.equal(again.lease(100).length, 12);
        const db = new Database(dbPath, { readonly: true });
        try {
          assert.equal(db.pragma('integrity_check', { simple: true }), 'ok');
        } finally {
          db.close();
        }
      } finally {
        again.close();
      }
    } finally {
      cleanup();
    }
  });

  test('a missing database is refused at start-up (the thread never creates one) and the thread ends', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const missing = join(dir, 'nope.db');
      await assert.rejects(WalCheckpointer.start(missing, () => undefined), (err: unknown) => {
        assert.match((err as Error).message, /WAL checkpointer could not open .*nope\.db/);
        return true;
      });
      assert.equal(existsSync(missing), false);
    } finally {
      cleanup();
    }
  });
});
