import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { Spool } from '../../src/spool/spool.js';
import { ipv4Records, kekBase64, runSealflow, tempDir, testKek } from '../support/spool-fixtures.js';
import { appendRecords } from '../support/spool-records.js';

const KEK = testKek(3);
const ENV = { SEALFLOW_SPOOL_KEK: kekBase64(KEK) };

/** A closed spool with `n` batches (ids 1..n, 20 + i records each). */
async function makeSpool(dir: string, n: number): Promise<void> {
  const spool = await Spool.open({ dir, kek: KEK });
  for (let i = 0; i < n; i++) assert.equal(appendRecords(spool.writer, ipv4Records(20 + i, i)).id, i + 1);
  spool.close();
}

function withDb<T>(dir: string, fn: (db: Database.Database) => T): T {
  const db = new Database(join(dir, 'spool.db'));
  try {
    return fn(db);
  } finally {
    db.close();
  }
}

/** Verify by the library and by `sealflow spool verify` (exit 65); leasing quarantines exactly `bad` and returns the rest. */
async function assertDetected(dir: string, bad: readonly number[], good: readonly number[]): Promise<void> {
  const ro = await Spool.open({ dir, kek: KEK, create: false, readOnly: true });
  const report = ro.inspector.verify();
  ro.close();
  assert.equal(report.ok, false);
  assert.deepEqual(report.failures.map((f) => f.id).sort((a, b) => a - b), [...bad]);
  const cli = runSealflow(['spool', 'verify', '--spool-dir', dir], ENV);
  assert.equal(cli.code, 65, cli.stderr + cli.stdout);
  for (const id of bad) assert.match(cli.stdout, new RegExp(`batch ${id}: authentication failed`));
  const spool = await Spool.open({ dir, kek: KEK });
  const leased = spool.reader.lease(100);
  assert.deepEqual(leased.map((l) => l.id), [...good]);
  const st = spool.inspector.status();
  assert.equal(st.quarantined, bad.length);
  assert.equal(st.parkedByReason.integrity, bad.length);
  spool.close();
}

describe('spool tampering is detected by verify and by the reader', () => {
  test('an intact spool verifies (control)', async () => {
    const { dir, cleanup } = tempDir();
    try {
      await makeSpool(dir, 5);
      const cli = runSealflow(['spool', 'verify', '--spool-dir', dir], ENV);
      assert.equal(cli.code, 0, cli.stderr + cli.stdout);
      assert.match(cli.stdout, /verify: OK — 5\/5 batches verified/);
    } finally {
      cleanup();
    }
  });

  test('one flipped ciphertext byte', async () => {
    const { dir, cleanup } = tempDir();
    try {
      await makeSpool(dir, 5);
      withDb(dir, (db) => {
        const { data } = db.prepare('SELECT data FROM payloads WHERE id = 3').get() as { data: Buffer };
        data[Math.floor(data.length / 2)]! ^= 0x01;
        db.prepare('UPDATE payloads SET data = ? WHERE id = 3').run(data);
      });
      // export prints every other batch and names the bad one.
      const exp = runSealflow(['spool', 'export', '--format', 'ndjson', '--spool-dir', dir], ENV);
      assert.equal(exp.code, 65);
      assert.equal(exp.stdout.trimEnd().split('\n').length, 20 + 21 + 23 + 24);
      assert.match(exp.stderr, /batch 3 skipped: authentication failed/);
      await assertDetected(dir, [3], [1, 2, 4, 5]);
    } finally {
      cleanup();
    }
  });

  test('two batches swapped', async () => {
    const { dir, cleanup } = tempDir();
    try {
      await makeSpool(dir, 5);
      withDb(dir, (db) => {
        const get = db.prepare('SELECT nonce, tag, data, records, bytes FROM batches JOIN payloads USING (id) WHERE id = ?');
        const a = get.get(2) as Record<string, unknown>;
        const b = get.get(4) as Record<string, unknown>;
        const put = db.prepare('UPDATE batches SET nonce = @nonce, tag = @tag, records = @records, bytes = @bytes WHERE id = @id');
        const putData = db.prepare('UPDATE payloads SET data = @data WHERE id = @id');
        put.run({ nonce: b.nonce, tag: b.tag, records: b.records, bytes: b.bytes, id: 2 });
        putData.run({ data: b.data, id: 2 });
        put.run({ nonce: a.nonce, tag: a.tag, records: a.records, bytes: a.bytes, id: 4 });
        putData.run({ data: a.data, id: 4 });
      });
      // 2 and 4 fail for their ids; 3 and 5 fail because their predecessors' tags changed.
      await assertDetected(dir, [2, 3, 4, 5], [1]);
    } finally {
      cleanup();
    }
  });

  test('a middle batch deleted', async () => {
    const { dir, cleanup } = tempDir();
    try {
      await makeSpool(dir, 5);
      withDb(dir, (db) => {
        db.prepare('DELETE FROM batches WHERE id = 3').run();
        db.prepare('DELETE FROM payloads WHERE id = 3').run();
      });
      const ro = await Spool.open({ dir, kek: KEK, create: false, readOnly: true });
      assert.deepEqual(ro.inspector.verify().gaps, [{ afterId: 2, beforeId: 4, expectedPrevId: 3 }]);
      ro.close();
      await assertDetected(dir, [4], [1, 2, 5]);
    } finally {
      cleanup();
    }
  });

  test('a batch marked acknowledged without the key (forged tombstone), also once it reaches the front', async () => {
    const { dir, cleanup } = tempDir();
    try {
      await makeSpool(dir, 5);
      withDb(dir, (db) => {
        db.prepare('UPDATE batches SET state = 2 WHERE id = 3').run();
        db.prepare('DELETE FROM payloads WHERE id = 3').run();
      });
      const cli = runSealflow(['spool', 'verify', '--spool-dir', dir], ENV);
      assert.equal(cli.code, 65, cli.stdout);
      assert.match(cli.stdout, /batch 3: marked acknowledged without the key/);
      const spool = await Spool.open({ dir, kek: KEK });
      const leased = spool.reader.lease(10);
      assert.deepEqual(leased.map((l) => l.id), [1, 2, 4, 5]);
      spool.reader.ack(1);
      spool.reader.ack(2);
      // The forged tombstone is not compacted away with the real ones before it.
      const v = spool.inspector.verify();
      assert.deepEqual(v.failures.map((f) => f.id), [3]);
      spool.reader.ack(4);
      spool.reader.ack(5);
      assert.deepEqual(spool.inspector.verify().failures.map((f) => f.id), [3]);
      spool.close();
    } finally {
      cleanup();
    }
  });

  test('the newest batches deleted (and all of them)', async () => {
    const { dir, cleanup } = tempDir();
    try {
      await makeSpool(dir, 5);
      withDb(dir, (db) => {
        db.prepare('DELETE FROM batches WHERE id >= 4').run();
        db.prepare('DELETE FROM payloads WHERE id >= 4').run();
      });
      let ro = await Spool.open({ dir, kek: KEK, create: false, readOnly: true });
      let v = ro.inspector.verify();
      ro.close();
      assert.equal(v.ok, false);
      assert.match(v.failures.map((f) => f.reason).join(), /newest batches 4\.\.5 are missing/);
      withDb(dir, (db) => {
        db.prepare('DELETE FROM batches').run();
        db.prepare('DELETE FROM payloads').run();
      });
      ro = await Spool.open({ dir, kek: KEK, create: false, readOnly: true });
      v = ro.inspector.verify();
      ro.close();
      assert.match(v.failures.map((f) => f.reason).join(), /newest batches 1\.\.5 are missing/);
    } finally {
      cleanup();
    }
  });

  test('batches deleted from the front without the key (anchor not moved)', async () => {
    const { dir, cleanup } = tempDir();
    try {
      await makeSpool(dir, 4);
      withDb(dir, (db) => {
        db.prepare('DELETE FROM batches WHERE id <= 2').run();
        db.prepare('DELETE FROM payloads WHERE id <= 2').run();
      });
      await assertDetected(dir, [3], [4]);
    } finally {
      cleanup();
    }
  });

  test('the high-water mark file removed or altered', async () => {
    const { dir, cleanup } = tempDir();
    try {
      await makeSpool(dir, 3);
      const hwm = readFileSync(join(dir, 'spool.hwm'));
      const altered = Buffer.from(hwm);
      altered[altered.length - 40]! ^= 0x01; // inside the batch id
      writeFileSync(join(dir, 'spool.hwm'), altered);
      let cli = runSealflow(['spool', 'verify', '--spool-dir', dir], ENV);
      assert.equal(cli.code, 65, cli.stdout);
      assert.match(cli.stdout, /high-water mark: MAC does not verify/);
      rmSync(join(dir, 'spool.hwm'));
      cli = runSealflow(['spool', 'verify', '--spool-dir', dir], ENV);
      assert.equal(cli.code, 65, cli.stdout);
      assert.match(cli.stdout, /high-water mark: missing/);
      // The daemon rewrites it at its next checkpoint, after which verify passes again.
      const spool = await Spool.open({ dir, kek: KEK });
      appendRecords(spool.writer, ipv4Records(3));
      spool.close();
      assert.equal(runSealflow(['spool', 'verify', '--spool-dir', dir], ENV).code, 0);
    } finally {
      cleanup();
    }
  });

  test('an older copy of the database restored (rollback)', async () => {
    const { dir, cleanup } = tempDir();
    try {
      await makeSpool(dir, 3);
      copyFileSync(join(dir, 'spool.db'), join(dir, 'old.db.bak'));
      let spool = await Spool.open({ dir, kek: KEK });
      appendRecords(spool.writer, ipv4Records(5));
      appendRecords(spool.writer, ipv4Records(6));
      for (const b of spool.reader.lease(2)) spool.reader.ack(b.id);
      spool.close();
      // Restore the older file (closed cleanly: no WAL) in place.
      for (const f of ['spool.db-wal', 'spool.db-shm']) rmSync(join(dir, f), { force: true });
      copyFileSync(join(dir, 'old.db.bak'), join(dir, 'spool.db'));
      rmSync(join(dir, 'old.db.bak'));
      const cli = runSealflow(['spool', 'verify', '--spool-dir', dir], ENV);
      assert.equal(cli.code, 65, cli.stdout + cli.stderr);
      assert.match(cli.stdout, /rollback: the database is older than its high-water mark \(expected batch id ≥ 5, found 3\)/);
      const status = runSealflow(['spool', 'status', '--json', '--spool-dir', dir], ENV);
      assert.deepEqual((JSON.parse(status.stdout) as { rollback: unknown }).rollback, { expectedAtLeast: 5, found: 3 });
      // The reader (read-write open) reports it, records it, and never reuses the lost ids.
      spool = await Spool.open({ dir, kek: KEK });
      assert.deepEqual(spool.inspector.status().rollback, { expectedAtLeast: 5, found: 3 });
      assert.equal(appendRecords(spool.writer, ipv4Records(2)).id, 6);
      spool.close();
      spool = await Spool.open({ dir, kek: KEK });
      assert.deepEqual(spool.inspector.status().rollback, { expectedAtLeast: 5, found: 3 });
      assert.equal(spool.inspector.verify().ok, false);
      assert.equal(spool.inspector.verify().failures.length, 0); // every batch present still authenticates
      spool.close();
    } finally {
      cleanup();
    }
  });
});
