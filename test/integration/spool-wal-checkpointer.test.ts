import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import Database from 'better-sqlite3';
import { Spool, type BackgroundCheckpoints } from '../../src/spool/spool.js';
import { WalCheckpointer, type DurableMark } from '../../src/spool/wal-checkpointer.js';
import { ipv4Records, tempDir, testKek } from '../support/spool-fixtures.js';
import { appendRecords } from '../support/spool-records.js';

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

/** The batch id in spool.hwm (layout in high-water-mark.ts: "SFHW1" ‖ spool id (16) ‖ u64 BE ‖ MAC), or null without one. */
function hwmSeq(dir: string): number | null {
  const path = join(dir, 'spool.hwm');
  if (!existsSync(path)) return null;
  return Number(readFileSync(path).readBigUInt64BE(5 + 16));
}

/** The spool's idle tick under the test's control: `tick()` runs it; spread `timers` into the spool options. */
function manualTick(): { tick: () => void; timers: { setInterval: (fn: () => void) => unknown; clearInterval: () => void } } {
  const ticks: (() => void)[] = [];
  return {
    tick: () => {
      for (const t of ticks) t();
    },
    timers: { setInterval: (fn) => ticks.push(fn), clearInterval: () => undefined },
  };
}

/** Starts a read transaction on `reader` and reads, so it holds the current snapshot until COMMIT (a checkpoint cannot copy past it). */
function pinSnapshot(reader: Database.Database): void {
  reader.exec('BEGIN');
  reader.prepare('SELECT count(*) FROM batches').get();
}

/** Size of the spool's WAL file in `dir`. */
function walBytes(dir: string): number {
  return statSync(join(dir, 'spool.db-wal')).size;
}

describe('background WAL checkpointer', () => {
  test('copies committed batches into the database file while the appender keeps its connection; stop() ends it for good', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const spool = await quietSpool(dir);
      const dbPath = join(dir, 'spool.db');
      const before = statSync(dbPath).size;
      for (let i = 0; i < 10; i++) assert.equal(appendRecords(spool.writer, ipv4Records(2000, i + 1)).droppedRecords, 0);
      const batchBytes = spool.inspector.status().bytes;
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
      appendRecords(spool.writer, ipv4Records(2000, 99));
      await until(() => statSync(dbPath).size > grown, 'the new batch in the database file');

      await cp.close();
      await cp.close(); // idempotent, resolves at once after the thread ended
      const after = cp.stats().checkpoints;
      await sleep(100);
      assert.equal(cp.stats().checkpoints, after, 'no checkpoint after stop()');

      // The spool's own connection is untouched: it still appends, verifies and reopens.
      appendRecords(spool.writer, ipv4Records(10, 100));
      assert.equal(spool.inspector.status().batches, 12);
      spool.close();
      const again = await Spool.open({ dir, kek: KEK });
      try {
        assert.equal(again.reader.lease(100).length, 12);
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

  test('publishes a durable mark only after a checkpoint that copied every frame', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const spool = await quietSpool(dir);
      const dbPath = join(dir, 'spool.db');
      for (let i = 0; i < 3; i++) appendRecords(spool.writer, ipv4Records(500, i + 1));
      const cp = await WalCheckpointer.start(dbPath, () => undefined, { intervalMs: 20 });
      const reader = new Database(dbPath, { readonly: true });
      try {
        await until(() => (cp.durableMark()?.seq ?? -1) >= 3, 'a mark covering batch 3');
        const first = cp.durableMark();
        assert.ok(first !== null && first.atMs <= Date.now(), JSON.stringify(first));

        // A reader holding an old snapshot keeps the checkpoint from copying the new frames:
        // checkpoints go on, partial, and the mark must not claim the new batches.
        pinSnapshot(reader);
        for (let i = 0; i < 3; i++) appendRecords(spool.writer, ipv4Records(500, 10 + i));
        const partialBefore = cp.stats().partial;
        await until(() => cp.stats().partial >= partialBefore + 3, 'three partial checkpoints');
        assert.ok((cp.durableMark()?.seq ?? -1) < 6, `mark while a reader pins the WAL: ${JSON.stringify(cp.durableMark())}`);

        reader.exec('COMMIT');
        await until(() => (cp.durableMark()?.seq ?? -1) >= 6, 'the mark once the reader let go');
        assert.ok((cp.durableMark()?.atMs ?? 0) >= first.atMs);
      } finally {
        reader.close();
        await cp.close();
        spool.close();
      }
    } finally {
      cleanup();
    }
  });

  test('a spool following a background checkpointer: high-water mark from its mark, own checkpoint only when it falls behind', async () => {
    const { dir, cleanup } = tempDir();
    try {
      let now = 1_000_000;
      const { tick, timers } = manualTick();
      const spool = await Spool.open({ dir, kek: KEK, synchronous: 'normal', checkpointIntervalMs: 1000, clock: () => now, ...timers });
      // A source under the test's control (the real one's mark is tested above): the test decides what is durable and when.
      let mark: DurableMark | null = null;
      const source: BackgroundCheckpoints = { durableMark: () => mark };
      try {
        spool.checkpoints.useBackground(source);
        const inline = (): number => spool.checkpoints.stats().inline;
        const base = inline();

        // No mark yet: appends within the interval do not checkpoint; past it, this thread does.
        appendRecords(spool.writer, ipv4Records(10, 1));
        now += 500;
        appendRecords(spool.writer, ipv4Records(10, 2));
        assert.equal(inline(), base, 'no checkpoint inside the interval');
        now += 600;
        appendRecords(spool.writer, ipv4Records(10, 3));
        assert.equal(inline(), base + 1, 'no durable mark for over the interval: checkpointed here');
        const hwmAfterInline = hwmSeq(dir);
        assert.equal(hwmAfterInline, 3);

        // The checkpointer keeps up: its mark moves the checkpoint time, so no own checkpoint,
        // and the high-water mark follows the mark's batch id (not the spool's last id).
        appendRecords(spool.writer, ipv4Records(10, 4));
        mark = { seq: 4, atMs: now + 900 };
        now += 1100;
        appendRecords(spool.writer, ipv4Records(10, 5));
        assert.equal(inline(), base + 1, 'a fresh mark: no checkpoint on this thread');
        assert.equal(hwmSeq(dir), 4, 'high-water mark = the batch the background made durable');

        // A mark that stops moving: after the interval the spool checkpoints on its own again.
        now += 1100;
        appendRecords(spool.writer, ipv4Records(10, 6));
        assert.equal(inline(), base + 2, 'a stale mark: checkpointed here');
        assert.equal(hwmSeq(dir), 6);

        // Idle: the tick does nothing while the mark covers every batch ...
        mark = { seq: 6, atMs: now + 10 };
        now += 1100;
        tick();
        now += 5000;
        tick();
        assert.equal(inline(), base + 2, 'covered by the mark: the idle tick does not checkpoint');
        // ... and checkpoints when one is not covered for over the interval (the checkpointer ran
        // just before the append, so the append itself does not).
        mark = { seq: 6, atMs: now - 50 };
        appendRecords(spool.writer, ipv4Records(10, 7));
        assert.equal(inline(), base + 2, 'a fresh mark: the append does not checkpoint');
        now += 1100;
        tick();
        assert.equal(inline(), base + 3, 'an uncovered batch: the idle tick checkpoints');
        assert.equal(hwmSeq(dir), 7);

        // Detached: the spool checkpoints on its own interval again.
        spool.checkpoints.useBackground(null);
        mark = { seq: 8, atMs: now + 5000 };
        appendRecords(spool.writer, ipv4Records(10, 8));
        now += 1100;
        appendRecords(spool.writer, ipv4Records(10, 9));
        assert.equal(inline(), base + 4);
      } finally {
        spool.close();
      }
      const again = await Spool.open({ dir, kek: KEK });
      try {
        const v = again.inspector.verify();
        assert.equal(v.ok, true, JSON.stringify(v));
        assert.equal(v.batches, 9);
      } finally {
        again.close();
      }
    } finally {
      cleanup();
    }
  });

  test('a checkpoint that finds the WAL busy keeps its reasons and is retried until it completes', async () => {
    const { dir, cleanup } = tempDir();
    try {
      let now = 1_000_000;
      const { tick, timers } = manualTick();
      // busy_timeout 20 ms: a TRUNCATE checkpoint waiting for a reader gives up (busy) quickly.
      const spool = await Spool.open({ dir, kek: KEK, synchronous: 'normal', checkpointIntervalMs: 1000, busyTimeoutMs: 20, clock: () => now, ...timers });
      const reader = new Database(join(dir, 'spool.db'), { readonly: true });
      try {
        appendRecords(spool.writer, ipv4Records(10, 1));
        // A first checkpoint completes (and records that the spool has a high-water mark, a write of its own).
        now += 1100;
        tick();
        assert.equal(hwmSeq(dir), 1);
        // A reader on the snapshot after batch 1 keeps a TRUNCATE checkpoint from completing.
        pinSnapshot(reader);
        appendRecords(spool.writer, ipv4Records(10, 2));
        const before = spool.checkpoints.stats();
        now += 1100;
        tick();
        assert.deepEqual(spool.checkpoints.stats(), { inline: before.inline + 1, busy: before.busy + 1 }, 'tried, busy');
        assert.ok(walBytes(dir) > 0, 'the WAL is not truncated');
        now += 10;
        tick();
        assert.equal(spool.checkpoints.stats().inline, before.inline + 1, 'not again before the retry delay');
        now += 60;
        appendRecords(spool.writer, ipv4Records(10, 3));
        assert.deepEqual(spool.checkpoints.stats(), { inline: before.inline + 2, busy: before.busy + 2 }, 'retried from the next commit, still busy');
        reader.exec('COMMIT');
        now += 60;
        tick();
        assert.equal(spool.checkpoints.stats().inline, before.inline + 2, 'the delay doubles after a second failure (100 ms)');
        now += 50;
        tick();
        assert.deepEqual(spool.checkpoints.stats(), { inline: before.inline + 3, busy: before.busy + 2 }, 'retried from the idle tick: completed');
        assert.equal(walBytes(dir), 0, 'the WAL is truncated');
        assert.equal(hwmSeq(dir), 3, 'the high-water mark follows the completed checkpoint');
        now += 5000;
        tick();
        assert.equal(spool.checkpoints.stats().inline, before.inline + 3, 'nothing left to checkpoint');
      } finally {
        reader.close();
        spool.close();
      }
    } finally {
      cleanup();
    }
  });

  test('a shred whose checkpoint finds the WAL busy is finished by the retry: the destroyed wrapped key leaves every file', async () => {
    const { dir, cleanup } = tempDir();
    try {
      let now = 1_763_800_000_000;
      const { tick, timers } = manualTick();
      const spool = await Spool.open({ dir, kek: KEK, synchronous: 'normal', epochMs: 60_000, checkpointIntervalMs: 1000, busyTimeoutMs: 20, clock: () => now, ...timers });
      const filesHolding = (bytes: Buffer): string[] => readdirSync(dir).filter((f) => readFileSync(join(dir, f)).includes(bytes));
      const reader = new Database(join(dir, 'spool.db'), { readonly: true });
      try {
        appendRecords(spool.writer, ipv4Records(10, 1)); // epoch 1
        now += 61_000;
        appendRecords(spool.writer, ipv4Records(10, 2)); // epoch 2: epoch 1 has ended
        now += 3 * 60_000; // past the shred grace
        tick();
        const wrapped = (reader.prepare('SELECT wrapped FROM epochs ORDER BY id LIMIT 1').get() as { wrapped: Buffer }).wrapped;
        assert.ok(filesHolding(wrapped).length > 0, 'the first epoch\'s wrapped key is on disk');

        // A reader pins an old snapshot; delivering epoch 1's only batch shreds its key, and the checkpoint that must follow is busy.
        pinSnapshot(reader);
        const before = spool.checkpoints.stats();
        const [first] = spool.reader.lease(1);
        assert.ok(first !== undefined);
        spool.reader.ack(first.id);
        assert.equal(spool.inspector.status().epochs, 1, 'epoch 1 shredded');
        assert.equal(spool.checkpoints.stats().busy, before.busy + 1, 'its checkpoint found the WAL busy');
        assert.ok(filesHolding(wrapped).length > 0, 'so an older copy of the key row is still on disk');

        reader.exec('COMMIT');
        now += 60;
        tick(); // no new commit: only the pending shred asks for the retry
        assert.equal(spool.checkpoints.stats().busy, before.busy + 1);
        assert.deepEqual(filesHolding(wrapped), [], 'the retried checkpoint completed: no file holds the destroyed key');
        assert.equal(walBytes(dir), 0);
      } finally {
        reader.close();
        spool.close();
      }
    } finally {
      cleanup();
    }
  });

  test('its own checkpoint gives a reader holding an old snapshot a short wait, not the 5 s busy timeout', async () => {
    const { dir, cleanup } = tempDir();
    try {
      let now = 1_000_000;
      const { tick, timers } = manualTick();
      const spool = await Spool.open({ dir, kek: KEK, synchronous: 'normal', checkpointIntervalMs: 1000, clock: () => now, ...timers });
      const reader = new Database(join(dir, 'spool.db'), { readonly: true });
      try {
        appendRecords(spool.writer, ipv4Records(10, 1));
        pinSnapshot(reader);
        appendRecords(spool.writer, ipv4Records(10, 2));
        now += 1100;
        const t0 = Date.now();
        tick();
        const waited = Date.now() - t0;
        assert.equal(spool.checkpoints.stats().busy, 1);
        // The busy timeout stays 5 s for everything else: 2.5 s tells the two apart on any machine.
        assert.ok(waited < 2500, `waited ${waited} ms`);
        reader.exec('COMMIT');
      } finally {
        reader.close();
        spool.close();
      }
    } finally {
      cleanup();
    }
  });

  test('a database not in WAL mode gets no durable mark (SQLite reports such a checkpoint as log −1, checkpointed −1)', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const dbPath = join(dir, 'rollback-journal.db');
      const db = new Database(dbPath);
      db.pragma('journal_mode = DELETE');
      db.exec('CREATE TABLE batches (id INTEGER PRIMARY KEY AUTOINCREMENT, x INTEGER)');
      db.prepare('INSERT INTO batches (x) VALUES (1)').run();
      db.close();
      const cp = await WalCheckpointer.start(dbPath, () => undefined, { intervalMs: 20 });
      try {
        await until(() => cp.stats().checkpoints >= 3, 'three checkpoint attempts');
        assert.equal(cp.stats().failures, 0);
        assert.equal(cp.durableMark(), null);
      } finally {
        await cp.close();
      }
    } finally {
      cleanup();
    }
  });
});
