/**
 * ENOSPC at each SQLite step of the spool, on a real full filesystem: a tmpfs of a few MiB the
 * test mounts (test/support/small-filesystem.ts), filled with a ballast file right before the
 * step, so the kernel answers ENOSPC exactly as a full disk does (SQLite: SQLITE_FULL, or an
 * SQLITE_IOERR_* for the write that hit it). At each step the spool must not throw where it
 * promises not to (append, group commit, checkpoint, lease, ack, shred, close), must say what it
 * lost (an append's result: disk-full) and must lose no committed batch: once the ballast is
 * removed everything works again and every batch committed and not acknowledged (or evicted,
 * counted) reads back with exactly its records.
 *
 * better-sqlite3 offers no VFS hook from JavaScript, so a real small filesystem is the fault
 * injector: it exercises SQLite's own error paths (WAL append, WAL sync, checkpoint into the
 * database file, -shm) as they run on a machine whose disk fills.
 */
import assert from 'node:assert/strict';
import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import { describe, test, type TestContext } from 'node:test';
import type { AppendResult } from '../../src/flow/pipeline.js';
import { Spool, SPOOL_RESERVE_FILE, type SpoolOptions } from '../../src/spool/spool.js';
import { smallFilesystem, type SmallFilesystem } from '../support/small-filesystem.js';
import { ipv4Records, testKek } from '../support/spool-fixtures.js';
import { appendRecords, enqueueRecords, leaseRecords } from '../support/spool-records.js';
import { testLogger } from '../support/udp-harness.js';

const KEK = testKek(41);
const NEW_KEK = testKek(42);
/** Room for the database, its WAL and -shm, and a few dozen batches. */
const FS_BYTES = 4 * 1024 * 1024;
const RECORDS_PER_BATCH = 200;
/** The space reserve where a test uses one (the setting's default, 8 MiB, is twice this filesystem). */
const RESERVE_BYTES = 512 * 1024;

/**
 * What the test committed: batch id → the seed of its records (ipv4Records(RECORDS_PER_BATCH,
 * seed)). Acknowledged and evicted batches leave it; what is left must read back exactly.
 */
class Committed {
  readonly batches = new Map<number, number>();
  private seed = 0;

  /** Appends one batch and books its result: committed (kept), dropped or evicting older ones (their ids leave). */
  append(spool: Spool): AppendResult {
    const seed = ++this.seed;
    const r = appendRecords(spool.writer, ipv4Records(RECORDS_PER_BATCH, seed));
    this.book(spool, r, seed);
    return r;
  }

  book(spool: Spool, r: AppendResult, seed: number): void {
    if (r.evictedBatches > 0) this.forgetEvicted(spool);
    if (r.id !== null) this.batches.set(r.id, seed);
  }

  nextSeed(): number {
    return ++this.seed;
  }

  /** Evicted batches are the oldest: the ids below the spool's first remaining one. */
  private forgetEvicted(spool: Spool): void {
    const first = Math.min(...spool.reader.lease(1).map((b) => b.id));
    for (const l of spool.reader.leasedIds()) spool.reader.release(l);
    for (const id of this.batches.keys()) if (id < first) this.batches.delete(id);
  }

  /** Every committed batch still in the spool, with exactly its records, and nothing else; the chain and the file verify. */
  check(spool: Spool): void {
    const report = spool.inspector.verify();
    assert.equal(report.ok, true, JSON.stringify(report.failures));
    assert.equal(spool.inspector.integrityCheck(), 'ok');
    const leased = leaseRecords(spool.reader, 10_000);
    assert.deepEqual(leased.map((b) => b.id), [...this.batches.keys()].sort((a, b) => a - b), 'the committed batches, no more, no fewer');
    for (const b of leased) {
      assert.deepEqual(b.records, ipv4Records(RECORDS_PER_BATCH, this.batches.get(b.id)), `batch ${b.id} reads back exactly`);
      spool.reader.release(b.id);
    }
    assert.equal(spool.inspector.status().records, this.batches.size * RECORDS_PER_BATCH);
  }
}

interface Setup {
  readonly fs: SmallFilesystem;
  readonly dir: string;
  readonly options: SpoolOptions;
  readonly logs: ReturnType<typeof testLogger>;
}

/** A spool on a fresh small tmpfs (null: the test was skipped, not root). Periodic checkpoints are the test's to run. */
function setup(t: TestContext, extra: Partial<SpoolOptions> = {}): Setup | null {
  const fs = smallFilesystem(t, FS_BYTES);
  if (fs === null) return null;
  t.after(() => fs.remove());
  const dir = path.join(fs.dir, 'data');
  const logs = testLogger();
  const options: SpoolOptions = {
    dir,
    kek: KEK,
    fullPolicy: 'drop-newest',
    logger: logs.logger,
    checkpointIntervalMs: 3_600_000,
    setInterval: () => null,
    clearInterval: () => undefined,
    // No space reserve unless the test asks for one: the steps as they run once it is spent.
    reserveBytes: 0,
    ...extra,
  };
  return { fs, dir, options, logs };
}

const walBytes = (dir: string): number => statSync(path.join(dir, 'spool.db-wal'), { throwIfNoEntry: false })?.size ?? 0;

/** A spool on a small tmpfs holding `batches` committed batches, checkpointed (the WAL empty): the disk is the test's to fill. */
async function started(t: TestContext, batches: number, extra: Partial<SpoolOptions> = {}): Promise<{ s: Setup; spool: Spool; book: Committed } | null> {
  const s = setup(t, extra);
  if (s === null) return null;
  const spool = await Spool.open(s.options);
  const book = new Committed();
  for (let i = 0; i < batches; i++) assert.notEqual(book.append(spool).id, null);
  spool.checkpoints.checkpoint(true);
  return { s, spool, book };
}

describe('spool on a full disk (ENOSPC at each SQLite step)', { timeout: 120_000 }, () => {
  test('append: dropped with reason disk-full, never thrown; appends commit again once space returns', async (t) => {
    const r0 = await started(t, 5);
    if (r0 === null) return;
    const { s, spool, book } = r0;
    s.fs.fill();
    let dropped = 0;
    for (let i = 0; i < 5; i++) {
      const r = book.append(spool);
      if (r.id === null) {
        assert.equal(r.dropReason, 'disk-full', JSON.stringify(r));
        assert.equal(r.droppedRecords, RECORDS_PER_BATCH);
        dropped++;
      }
    }
    assert.equal(dropped, 5, 'every append on the full disk dropped');
    assert.ok(s.logs.lines.some((l) => l.event === 'spool.append_failed'), 'logged');
    book.check(spool);
    s.fs.free();
    for (let i = 0; i < 5; i++) assert.notEqual(book.append(spool).id, null, 'commits again');
    book.check(spool);
    spool.close();
    const again = await Spool.open(s.options);
    book.check(again);
    again.close();
  });

  test('drop-oldest on a full disk: the oldest batches are evicted to make room (their records reported), or the new one dropped; nothing else lost', async (t) => {
    const r0 = await started(t, 8, { fullPolicy: 'drop-oldest' });
    if (r0 === null) return;
    const { s, spool, book } = r0;
    s.fs.fill();
    let evicted = 0;
    let dropped = 0;
    for (let i = 0; i < 6; i++) {
      const r = book.append(spool);
      assert.equal(r.evictedDiskFullRecords, r.evictedRecords, 'evictions on a full disk are disk_full loss');
      evicted += r.evictedRecords;
      if (r.id === null) {
        assert.equal(r.dropReason, 'disk-full');
        dropped += r.droppedRecords;
      }
    }
    t.diagnostic(`full disk, drop-oldest: evicted ${evicted}, dropped ${dropped} records`);
    assert.ok(evicted + dropped > 0);
    book.check(spool);
    s.fs.free();
    assert.notEqual(book.append(spool).id, null);
    book.check(spool);
    spool.close();
  });

  test('group commit: the group rolls back, its batches are stored one by one and dropped (disk-full); the queue keeps going', async (t) => {
    const r0 = await started(t, 3);
    if (r0 === null) return;
    const { s, spool, book } = r0;
    s.fs.fill();
    spool.writer.setCompressionBypass(true);
    const queue = (n: number): Promise<AppendResult[]> => {
      const results: Promise<AppendResult>[] = [];
      for (let k = 0; k < n; k++) {
        const seed = book.nextSeed();
        results.push(
          new Promise((resolve, reject) =>
            enqueueRecords(spool.writer, ipv4Records(RECORDS_PER_BATCH, seed), (err, r) => {
              if (err !== null && err !== undefined) reject(err instanceof Error ? err : new Error('append failed'));
              else if (r === null) reject(new Error('no result'));
              else {
                book.book(spool, r, seed);
                resolve(r);
              }
            }),
          ),
        );
      }
      return Promise.all(results);
    };
    const full = await queue(4);
    assert.deepEqual(full.map((r) => r.dropReason), ['disk-full', 'disk-full', 'disk-full', 'disk-full']);
    assert.ok(s.logs.lines.some((l) => l.event === 'spool.group_commit_failed' || l.event === 'spool.append_failed'));
    book.check(spool);
    s.fs.free();
    const after = await queue(4);
    assert.deepEqual(after.map((r) => r.dropReason), [null, null, null, null], 'commits again');
    book.check(spool);
    spool.close();
  });

  test('checkpoint: fails without throwing, committed batches stay readable from the WAL, and a crash before the retry loses none', async (t) => {
    const r0 = await started(t, 0);
    if (r0 === null) return;
    const { s, spool, book } = r0;
    // Committed into the WAL; the database file must grow to take them at the next checkpoint.
    for (let i = 0; i < 6; i++) assert.notEqual(book.append(spool).id, null);
    assert.ok(walBytes(s.dir) > 0);
    s.fs.fill();
    const before = spool.checkpoints.stats().inline;
    spool.checkpoints.checkpoint(true);
    assert.equal(spool.checkpoints.stats().inline, before + 1);
    const failed = s.logs.lines.filter((l) => l.event === 'spool.checkpoint_failed');
    t.diagnostic(`checkpoint on a full disk: ${JSON.stringify(failed.map((l) => l.code))}, WAL ${walBytes(s.dir)} bytes`);
    assert.ok(failed.length > 0, 'the checkpoint could not complete on the full disk (and said so)');
    const walBefore = walBytes(s.dir);
    assert.ok(walBefore > 0, 'the commits are still in the WAL');
    book.check(spool);
    // A crash now (no final checkpoint), then space returns: the WAL is replayed at open.
    spool.destroy();
    s.fs.free();
    const again = await Spool.open(s.options);
    book.check(again);
    const failures = (): number => s.logs.lines.filter((l) => l.event === 'spool.checkpoint_failed').length;
    const failuresBefore = failures();
    again.checkpoints.checkpoint(true);
    assert.equal(failures(), failuresBefore, 'the checkpoint completes once space returns');
    assert.equal(again.checkpoints.stats().busy, 0);
    assert.ok(walBytes(s.dir) < walBefore, `the WAL was truncated (${walBytes(s.dir)} bytes, ${walBefore} before)`);
    book.check(again);
    again.close();
  });

  test('lease and ack: lease works; a failed ack keeps the delivered batch out of later leases (never uploaded twice) and is retried before the next lease once space returns', async (t) => {
    const r0 = await started(t, 5);
    if (r0 === null) return;
    const { s, spool, book } = r0;
    s.fs.fill();
    const delivered = leaseRecords(spool.reader, 2).map((b) => b.id);
    assert.equal(delivered.length, 2, 'lease works on a full disk');
    const errorsBefore = spool.inspector.status().ioErrors;
    for (const id of delivered) spool.reader.ack(id);
    const st = spool.inspector.status();
    t.diagnostic(`ack on a full disk: ioErrors ${errorsBefore} → ${st.ioErrors}, ackMisses ${st.ackMisses}, batches ${st.batches}`);
    assert.equal(st.ackMisses, 0, 'a failed ack is not a miss');
    assert.ok(st.ioErrors > errorsBefore, 'counted');
    assert.equal(st.batches, 5, 'the batches stay');
    assert.equal(spool.reader.pendingAcks, 2);
    const others = spool.reader.lease(10).map((b) => b.id);
    assert.deepEqual(others, [...book.batches.keys()].filter((id) => !delivered.includes(id)), 'the delivered batches are not leased again');
    for (const id of others) spool.reader.release(id);
    assert.equal(spool.inspector.status().batches, 5, 'still on the full disk: the retried acks failed again');
    s.fs.free();
    const next = spool.reader.lease(10).map((b) => b.id);
    for (const id of delivered) book.batches.delete(id);
    assert.deepEqual(next, [...book.batches.keys()], 'the pending acks went through first: only the undelivered batches are leased');
    for (const id of next) spool.reader.release(id);
    assert.equal(spool.reader.pendingAcks, 0);
    assert.equal(spool.inspector.status().batches, 3);
    assert.equal(spool.inspector.status().ackMisses, 0);
    book.check(spool);
    spool.close();
  });

  test('a pending ack is retried at close: the delivered batch is gone after a restart once space returned', async (t) => {
    const r0 = await started(t, 3);
    if (r0 === null) return;
    const { s, spool, book } = r0;
    s.fs.fill();
    const [first] = spool.reader.lease(1);
    assert.ok(first !== undefined);
    spool.reader.ack(first.id);
    assert.equal(spool.reader.pendingAcks, 1);
    s.fs.free();
    spool.close();
    book.batches.delete(first.id);
    const again = await Spool.open(s.options);
    book.check(again);
    again.close();
  });

  test('shred: the ack that empties an ended epoch fails as a whole (batch and key stay); once space returns the retried ack destroys the key and the WAL is truncated', async (t) => {
    let now = 1_765_000_000_000;
    const r0 = await started(t, 3, { epochMs: 60_000, clock: () => now });
    if (r0 === null) return;
    const { s, spool, book } = r0;
    now += 10 * 60_000; // the epoch ended, past the shredding grace
    const later = book.append(spool); // a new epoch
    assert.notEqual(later.id, null);
    spool.checkpoints.checkpoint(true);
    s.fs.fill();
    const first = leaseRecords(spool.reader, 3).map((b) => b.id);
    for (const id of first) spool.reader.ack(id);
    assert.equal(spool.inspector.status().shreddedEpochs, 0, 'not shredded on the full disk');
    assert.equal(spool.inspector.status().batches, 4, 'batches and key stay');
    assert.equal(spool.reader.pendingAcks, 3);
    s.fs.free();
    // What the next lease does first.
    spool.reader.retryAcks();
    for (const id of first) book.batches.delete(id);
    assert.equal(spool.reader.pendingAcks, 0);
    assert.equal(spool.inspector.status().shreddedEpochs, 1, 'the ended, empty epoch is shredded');
    assert.equal(walBytes(s.dir), 0, 'and its key\'s old pages left the WAL (TRUNCATE checkpoint)');
    book.check(spool);
    spool.close();
  });

  test('rekey: rewrapping on a full disk fails with a storage error and changes nothing; it succeeds once space returns', async (t) => {
    const r0 = await started(t, 3);
    if (r0 === null) return;
    const { s, spool, book } = r0;
    spool.close();
    const rotating = await Spool.open({ ...s.options, kek: NEW_KEK, previousKeks: [KEK] });
    s.fs.fill();
    let threw: unknown = null;
    try {
      rotating.inspector.rewrapAll();
    } catch (err) {
      threw = err;
    }
    t.diagnostic(`rekey on a full disk: ${threw === null ? 'completed' : String((threw as { code?: string }).code)}`);
    rotating.close();
    s.fs.free();
    // Whatever happened on the full disk, the spool opens with the keys it had, and nothing is lost.
    const old = await Spool.open({ ...s.options, kek: NEW_KEK, previousKeks: [KEK] });
    book.check(old);
    old.inspector.rewrapAll();
    old.close();
    const rekeyed = await Spool.open({ ...s.options, kek: NEW_KEK });
    book.check(rekeyed);
    rekeyed.close();
  });

  test('close and reopen on a full disk: close does not throw; reopening works or fails naming the file; nothing lost once space returns', async (t) => {
    const r0 = await started(t, 4);
    if (r0 === null) return;
    const { s, spool, book } = r0;
    s.fs.fill();
    spool.close();
    let reopened: Spool | null = null;
    try {
      reopened = await Spool.open(s.options);
    } catch (err) {
      t.diagnostic(`reopen on a full disk: ${(err as Error).message}`);
      assert.match((err as Error).message, /spool\.db/);
    }
    if (reopened !== null) {
      book.check(reopened);
      assert.equal(book.append(reopened).dropReason, 'disk-full');
      reopened.close();
    }
    s.fs.free();
    const again = await Spool.open(s.options);
    book.check(again);
    assert.notEqual(book.append(again).id, null);
    book.check(again);
    again.close();
  });
  test('with a space reserve, drop-oldest on a full disk evicts the oldest batches and keeps the newest; the reserve is spent and taken again', async (t) => {
    const r0 = await started(t, 8, { fullPolicy: 'drop-oldest', reserveBytes: RESERVE_BYTES });
    if (r0 === null) return;
    const { s, spool, book } = r0;
    const reserve = path.join(s.dir, SPOOL_RESERVE_FILE);
    assert.ok(existsSync(reserve), 'made at open');
    s.fs.fill();
    let evicted = 0;
    for (let i = 0; i < 6; i++) {
      const r = book.append(spool);
      assert.notEqual(r.id, null, `append ${i} committed on the full disk: ${JSON.stringify(r)}`);
      assert.equal(r.evictedDiskFullRecords, r.evictedRecords);
      evicted += r.evictedRecords;
      spool.checkpoints.checkpoint(false);
    }
    t.diagnostic(`full disk with a reserve, drop-oldest: evicted ${evicted} records, the 6 new batches kept`);
    assert.ok(evicted > 0);
    assert.ok(s.logs.lines.some((l) => l.event === 'spool.reserve_released'), 'the reserve was spent (logged)');
    assert.ok(existsSync(reserve), 'and taken again: the evicted pages took the new batches, the checkpoint returned the WAL\'s space');
    book.check(spool);
    s.fs.free();
    book.check(spool);
    spool.close();
  });

  test('with a space reserve, the ack of a delivered batch on a full disk goes through: the reserve is given back, the checkpoint completes and the WAL\'s space returns', async (t) => {
    const r0 = await started(t, 5, { reserveBytes: RESERVE_BYTES });
    if (r0 === null) return;
    const { s, spool, book } = r0;
    s.fs.fill();
    const delivered = spool.reader.lease(5).map((b) => b.id);
    for (const id of delivered) {
      spool.reader.ack(id);
      book.batches.delete(id);
      spool.checkpoints.checkpoint(false);
    }
    assert.equal(spool.reader.pendingAcks, 0, 'every ack went through');
    assert.equal(spool.inspector.status().batches, 0);
    spool.checkpoints.checkpoint(true);
    assert.equal(walBytes(s.dir), 0, 'the WAL truncated on the full disk');
    assert.ok(s.fs.available() > 0, 'the filesystem has room again (the reserve and the WAL)');
    assert.notEqual(book.append(spool).id, null, 'the room the drain made takes new batches, the ballast still there');
    book.check(spool);
    spool.close();
  });
});
