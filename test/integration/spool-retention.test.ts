import { test } from 'node:test';
import assert from 'node:assert/strict';
import Database from 'better-sqlite3';
import { join } from 'node:path';
import { Spool } from '../../src/spool/spool.js';
import { SPOOL_DB_FILE } from '../../src/spool/store.js';
import { ipv4Records, kekBase64, runSealflow, tempDir, testKek } from '../support/spool-fixtures.js';
import { appendRecords, leaseRecords } from '../support/spool-records.js';

/*
 * Retention (spool.maxAgeSeconds) on a real SQLite spool with an injected clock: expired
 * batches are removed from the front whether leased or not, counted, never leased afterwards
 * (also by a second connection, the drain's), their epoch keys are destroyed once the epoch is
 * empty, the chain still verifies, and `sealflow spool status` shows the oldest age against
 * the recorded limit. A spool created before the retention columns is migrated in place.
 */

const KEK = testKek(23);
const MIN = 60_000;
const DAY = 86_400_000;

test('retention: batches past maxAgeSeconds are shredded, never leased again, counted; epochs shredded; chain verifies', async () => {
  const { dir, cleanup } = tempDir();
  let now = Date.UTC(2026, 11, 1, 0, 0, 0);
  const clock = (): number => now;
  try {
    const writer = await Spool.open({ dir, kek: KEK, clock, epochMs: 3_600_000, maxAgeSeconds: 86_400 });
    // Day 0: 5 batches; 25 h later: 3 batches (a new epoch: the old one has ended).
    const old: number[] = [];
    for (let i = 0; i < 5; i++) old.push(appendRecords(writer.writer, ipv4Records(100, i)).id ?? -1);
    now += 25 * 3_600_000;
    const young: number[] = [];
    for (let i = 0; i < 3; i++) young.push(appendRecords(writer.writer, ipv4Records(50, 10 + i)).id ?? -1);
    assert.equal(writer.inspector.status().maxAgeMs, DAY);

    // The drain's connection (the limit is read from the spool, not configured there) no longer leases the old ones.
    const drain = await Spool.open({ dir, kek: KEK, clock, create: false });
    assert.deepEqual(leaseRecords(drain.reader, 100).map((b) => b.id), young, 'expired batches are never leased');
    for (const id of young) drain.reader.release(id);

    const before = writer.inspector.status();
    assert.equal(before.batches, 8);
    assert.ok((before.oldestAgeMs ?? 0) > DAY);
    const r = writer.retention.expire(now);
    assert.deepEqual(r, { batches: 5, records: 500 });
    const after = writer.inspector.status();
    assert.equal(after.batches, 3);
    assert.equal(after.records, 150);
    assert.equal(after.expiredBatches, 5);
    assert.equal(after.expiredRecords, 500);
    assert.equal(after.evictedBatches, 0, 'expiry is not counted as quota eviction');
    assert.ok(after.shreddedEpochs >= 1, 'the emptied epoch key was destroyed');
    assert.ok(writer.inspector.verify().ok, 'the chain still verifies from its new anchor');
    assert.deepEqual(writer.retention.expire(now), { batches: 0, records: 0 }, 'idempotent');

    // A day later the young ones expire too, even while leased (leases do not protect from retention).
    assert.equal(leaseRecords(drain.reader, 100).length, 3);
    now += DAY + MIN;
    assert.deepEqual(writer.retention.expire(now), { batches: 3, records: 150 });
    assert.equal(writer.inspector.status().batches, 0);
    drain.close();
    writer.close();

    // The CLI shows the limit and the counts.
    const st = runSealflow(['spool', 'status', '--spool-dir', dir], { SEALFLOW_SPOOL_KEK: kekBase64(KEK) });
    assert.equal(st.code, 0, st.stderr);
    assert.match(st.stdout, /oldest batch {4}- \(minute resolution\), limit 24 h 0 min \(spool\.maxAgeSeconds\)/);
    const json = runSealflow(['spool', 'status', '--json', '--spool-dir', dir], { SEALFLOW_SPOOL_KEK: kekBase64(KEK) });
    const status = JSON.parse(json.stdout) as { expiredBatches: number; expiredRecords: number; maxAgeMs: number };
    assert.deepEqual([status.expiredBatches, status.expiredRecords, status.maxAgeMs], [8, 650, DAY]);
  } finally {
    cleanup();
  }
});

test('retention: no limit keeps everything; removing the limit is recorded; a batch is kept until the end of its minute is past the limit', async () => {
  const { dir, cleanup } = tempDir();
  let now = Date.UTC(2026, 11, 1, 0, 0, 30);
  const clock = (): number => now;
  try {
    const s = await Spool.open({ dir, kek: KEK, clock, maxAgeSeconds: 3600 });
    appendRecords(s.writer, ipv4Records(10, 1));
    now += 3_600_000; // 1 h after, but the end of its creation minute is not yet 1 h ago
    assert.deepEqual(s.retention.expire(now), { batches: 0, records: 0 });
    now += 30_000;
    assert.deepEqual(s.retention.expire(now), { batches: 1, records: 10 });
    appendRecords(s.writer, ipv4Records(10, 2));
    s.close();
    const unlimited = await Spool.open({ dir, kek: KEK, clock, maxAgeSeconds: null });
    now += 30 * DAY;
    assert.deepEqual(unlimited.retention.expire(now), { batches: 0, records: 0 });
    assert.equal(unlimited.inspector.status().maxAgeMs, null);
    assert.equal(unlimited.inspector.status().batches, 1);
    unlimited.close();
  } finally {
    cleanup();
  }
});

test('retention: a spool created before the retention columns is migrated in place and keeps its batches', async () => {
  const { dir, cleanup } = tempDir();
  try {
    const s = await Spool.open({ dir, kek: KEK });
    appendRecords(s.writer, ipv4Records(20, 3));
    s.close();
    // Make it look like a spool of the previous release: without the three columns.
    const db = new Database(join(dir, SPOOL_DB_FILE));
    for (const c of ['expired_batches', 'expired_records', 'max_age_s']) db.exec(`ALTER TABLE meta DROP COLUMN ${c}`);
    db.close();
    const readOnly = await Spool.open({ dir, kek: KEK, create: false, readOnly: true });
    assert.equal(readOnly.inspector.status().expiredBatches, 0);
    assert.equal(readOnly.inspector.status().maxAgeMs, null);
    readOnly.close();
    const migrated = await Spool.open({ dir, kek: KEK, maxAgeSeconds: 600 });
    assert.equal(migrated.inspector.status().maxAgeMs, 600_000);
    assert.equal(migrated.inspector.status().records, 20);
    assert.ok(migrated.inspector.verify().ok);
    migrated.close();
  } finally {
    cleanup();
  }
});
