import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { Spool } from '../../src/spool/spool.js';
import { ipv4Records, tempDir, testKek } from '../support/spool-fixtures.js';
import { appendRecords, enqueueRecords, leaseRecords } from '../support/spool-records.js';

const KEK = testKek(11);

describe('spool quota', () => {
  test('drop-oldest: filling past the quota evicts the oldest batches; counts exact; keeps running', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const quotaBytes = 200_000;
      const spool = await Spool.open({ dir, kek: KEK, quotaBytes });
      let appended = 0;
      let evictedRecords = 0;
      let evictedBatches = 0;
      const ids: number[] = [];
      for (let i = 0; i < 60; i++) {
        const n = 100 + (i % 7) * 30;
        const r = appendRecords(spool.writer, ipv4Records(n, i));
        assert.notEqual(r.id, null);
        ids.push(r.id!);
        appended += n;
        evictedRecords += r.evictedRecords;
        evictedBatches += r.evictedBatches;
        const st = spool.inspector.status();
        assert.ok(st.bytes <= quotaBytes, `bytes ${st.bytes} over quota`);
      }
      const st = spool.inspector.status();
      assert.ok(evictedBatches > 0, 'the quota was never reached: test sizes are wrong');
      assert.equal(st.evictedBatches, evictedBatches);
      assert.equal(st.evictedRecords, evictedRecords);
      assert.equal(st.records + st.evictedRecords, appended);
      assert.equal(st.batches + st.evictedBatches, 60);
      // What remains are exactly the newest batches, and they still verify.
      const leased = leaseRecords(spool.reader, 1000);
      assert.deepEqual(leased.map((l) => l.id), ids.slice(60 - st.batches));
      assert.equal(leased.reduce((s, l) => s + l.records.length, 0), st.records);
      const v = spool.inspector.verify();
      assert.equal(v.ok, true, JSON.stringify(v));
      spool.close();
    } finally {
      cleanup();
    }
  });

  test('a batch leased by the drain and evicted by the appender (another instance): ack is a counted no-op', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const appender = await Spool.open({ dir, kek: KEK, quotaBytes: 30_000 });
      appendRecords(appender.writer, ipv4Records(300, 1));
      const drain = await Spool.open({ dir, kek: KEK, create: false });
      const [leased] = drain.reader.lease(1);
      assert.equal(leased?.id, 1);
      let evicted = 0;
      for (let i = 0; i < 20 && evicted === 0; i++) evicted += appendRecords(appender.writer, ipv4Records(300, i + 2)).evictedBatches;
      assert.ok(evicted > 0);
      drain.reader.ack(1);
      assert.equal(drain.inspector.status().ackMisses, 1);
      assert.equal(drain.inspector.verify().ok, true);
      // The drain continues with what is left, oldest first.
      const next = drain.reader.lease(1);
      assert.ok(next.length === 1 && next[0]!.id > 1);
      appender.close();
      drain.close();
    } finally {
      cleanup();
    }
  });

  test('drop-newest: new batches are dropped and said so in their result (the loss ledger counts them)', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const spool = await Spool.open({ dir, kek: KEK, quotaBytes: 100_000, fullPolicy: 'drop-newest' });
      let kept = 0;
      let dropped = 0;
      for (let i = 0; i < 30; i++) {
        const r = appendRecords(spool.writer, ipv4Records(200, i));
        if (r.id === null) {
          assert.equal(r.dropReason, 'quota');
          dropped += r.droppedRecords;
        } else kept += 200;
      }
      const st = spool.inspector.status();
      assert.ok(dropped > 0);
      assert.equal(st.records, kept);
      assert.equal(st.records + dropped, 30 * 200, 'every record stored or reported dropped');
      assert.equal(st.evictedBatches, 0);
      // Once space frees up, appends succeed again.
      for (const b of spool.reader.lease(3)) spool.reader.ack(b.id);
      assert.notEqual(appendRecords(spool.writer, ipv4Records(200, 99)).id, null);
      spool.close();
    } finally {
      cleanup();
    }
  });

  test('a batch larger than the whole quota is dropped, and its result says so', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const spool = await Spool.open({ dir, kek: KEK, quotaBytes: 5_000 });
      const r = appendRecords(spool.writer, ipv4Records(2000));
      assert.equal(r.id, null);
      assert.equal(r.dropReason, 'oversize');
      assert.equal(r.droppedRecords, 2000);
      assert.equal(spool.inspector.status().records, 0);
      spool.close();
    } finally {
      cleanup();
    }
  });

  test('disk full (database size cap): drop-oldest evicts and retries; drop-newest drops; the process keeps running', async () => {
    for (const fullPolicy of ['drop-oldest', 'drop-newest'] as const) {
      const { dir, cleanup } = tempDir();
      try {
        const spool = await Spool.open({ dir, kek: KEK, maxDbBytes: 300_000, fullPolicy });
        let ok = 0;
        let failed = 0;
        let evicted = 0;
        for (let i = 0; i < 60; i++) {
          const r = appendRecords(spool.writer, ipv4Records(300, i));
          if (r.id !== null) ok++;
          else {
            assert.equal(r.dropReason, 'disk-full');
            failed++;
          }
          evicted += r.evictedBatches;
          // The quota (1 GiB) is never near: every eviction made room on the full "disk".
          assert.equal(r.evictedDiskFullRecords, r.evictedRecords);
        }
        const st = spool.inspector.status();
        if (fullPolicy === 'drop-oldest') {
          assert.ok(evicted > 0, 'never hit the cap');
          assert.equal(ok + failed, 60);
        } else {
          assert.ok(failed > 0, 'never hit the cap');
          assert.ok(st.ioErrors >= failed);
        }
        assert.equal(st.batches, ok - evicted);
        assert.equal(spool.inspector.verify().ok, true);
        assert.equal(spool.inspector.integrityCheck(), 'ok');
        spool.close();
      } finally {
        cleanup();
      }
    }
  });
  test('a rolled-back append forgets the epoch it created: a second spool instance on the file cannot make it seal with a stale key', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const opts = { dir, kek: KEK, maxDbBytes: 300_000, fullPolicy: 'drop-newest' as const };
      const filler = await Spool.open(opts);
      for (let i = 0; i < 1000; i++) if (appendRecords(filler.writer, ipv4Records(300, i)).dropReason !== null) break;
      filler.close(); // ends its epoch: the next append must create one
      const a = await Spool.open(opts);
      const b = await Spool.open(opts);
      try {
        // A's appends fail on the full disk (rolled back, new epoch included), as a group under overload.
        a.writer.setCompressionBypass(true);
        const results: (string | null)[] = [];
        for (let k = 0; k < 3; k++) {
          enqueueRecords(a.writer, ipv4Records(300, 50 + k), (err, r) => results.push(err !== null && err !== undefined ? 'error' : (r?.dropReason ?? null)));
        }
        await a.writer.settled();
        assert.deepEqual(results, ['disk-full', 'disk-full', 'disk-full']);
        // B then creates the next epoch id with its own key; A, appending after it, must not reuse a key for that id.
        assert.ok(appendRecords(b.writer, ipv4Records(1, 900)).id !== null);
        assert.ok(appendRecords(a.writer, ipv4Records(1, 901)).id !== null);
        const report = b.inspector.verify();
        assert.equal(report.ok, true, JSON.stringify(report.failures));
      } finally {
        a.close();
        b.close();
      }
    } finally {
      cleanup();
    }
  });
});
