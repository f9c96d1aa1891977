import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { Spool } from '../../src/spool/spool.js';
import { SpoolError } from '../../src/flow/errors.js';
import { ipv4Records, kekBase64, runSealflow, tempDir, testKek } from '../support/spool-fixtures.js';
import { appendRecords } from '../support/spool-records.js';

const KEK = testKek(5);
const OTHER = testKek(6);

/** Every file's bytes, to prove a failed start changed nothing. */
function snapshot(dir: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const f of readdirSync(dir)) if (statSync(join(dir, f)).isFile()) m.set(f, readFileSync(join(dir, f)).toString('base64'));
  return m;
}

async function makeSpool(dir: string, epochs: number): Promise<number> {
  let now = 1_763_800_000_000;
  const spool = await Spool.open({ dir, kek: KEK, epochMs: 60_000, clock: () => now });
  let records = 0;
  for (let e = 0; e < epochs; e++) {
    appendRecords(spool.writer, ipv4Records(30 + e, e));
    records += 30 + e;
    now += 61_000;
  }
  spool.close();
  return records;
}

async function assertIntact(dir: string, records: number, kek = KEK): Promise<void> {
  const spool = await Spool.open({ dir, kek, create: false });
  const v = spool.inspector.verify();
  assert.equal(v.ok, true, JSON.stringify(v));
  assert.equal(v.records, records);
  spool.close();
}

describe('spool keys', () => {
  test('wrong KEK: clear error naming the setting, exit 78, nothing changed, data intact', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const records = await makeSpool(dir, 2);
      const before = snapshot(dir);
      await assert.rejects(Spool.open({ dir, kek: OTHER }), (e: unknown) => e instanceof SpoolError && e.code === 'ERR_SPOOL_KEY' && e.message.includes('SEALFLOW_SPOOL_KEK'));
      for (const sub of ['status', 'verify']) {
        const r = runSealflow(['spool', sub, '--spool-dir', dir], { SEALFLOW_SPOOL_KEK: kekBase64(OTHER) });
        assert.equal(r.code, 78, r.stderr);
        assert.match(r.stderr, /key-encryption key does not match/);
        assert.equal(r.stderr.includes(kekBase64(OTHER)), false);
      }
      assert.deepEqual(snapshot(dir), before);
      await assertIntact(dir, records);
    } finally {
      cleanup();
    }
  });

  test('missing or malformed KEK: exit 78 naming the variable', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const records = await makeSpool(dir, 1);
      let r = runSealflow(['spool', 'status', '--spool-dir', dir], {});
      assert.equal(r.code, 78);
      assert.match(r.stderr, /spool\.kek: no key-encryption key configured: .*SEALFLOW_SPOOL_KEK\[_FILE\|_COMMAND\]/);
      r = runSealflow(['spool', 'status', '--spool-dir', dir], { SEALFLOW_SPOOL_KEK: 'bm90IGEga2V5' });
      assert.equal(r.code, 78);
      assert.match(r.stderr, /spool\.kek \(from SEALFLOW_SPOOL_KEK\): not a valid key-encryption key; expected 32 bytes as base64/);
      r = runSealflow(['spool', 'status', '--spool-dir', dir], { SEALFLOW_SPOOL_KEK_FILE: join(dir, 'nope.key') });
      assert.equal(r.code, 78);
      assert.match(r.stderr, /spool\.kek \(from SEALFLOW_SPOOL_KEK_FILE\): secret file .*nope\.key does not exist/);
      r = runSealflow(['spool', 'status', '--spool-dir', dir], { SEALFLOW_SPOOL_KEK_COMMAND: 'false' });
      assert.equal(r.code, 78);
      assert.match(r.stderr, /spool\.kek \(from SEALFLOW_SPOOL_KEK_COMMAND\): secret command false exited with status 1/);
      // The same key through a file and through a command works.
      writeFileSync(join(dir, 'kek.b64'), `${kekBase64(KEK)}\n`, { mode: 0o600 });
      r = runSealflow(['spool', 'status', '--json', '--spool-dir', dir], { SEALFLOW_SPOOL_KEK_FILE: join(dir, 'kek.b64') });
      assert.equal(r.code, 0, r.stderr);
      assert.equal((JSON.parse(r.stdout) as { records: number }).records, records);
      r = runSealflow(['spool', 'status', '--json', '--spool-dir', dir], { SEALFLOW_SPOOL_KEK_COMMAND: JSON.stringify(['cat', join(dir, 'kek.b64')]) });
      assert.equal(r.code, 0, r.stderr);
      await assertIntact(dir, records);
    } finally {
      cleanup();
    }
  });

  for (const which of ['spool key', 'epoch key'] as const) {
    test(`corrupted wrapped ${which}: clear error, exit 78, no data loss`, async () => {
      const { dir, cleanup } = tempDir();
      try {
        const records = await makeSpool(dir, 2);
        const db = new Database(join(dir, 'spool.db'));
        const sel = which === 'spool key' ? 'SELECT spool_key AS w FROM meta' : 'SELECT wrapped AS w FROM epochs WHERE id = 2';
        const original = (db.prepare(sel).get() as { w: Buffer }).w;
        const bad = Buffer.from(original);
        bad[bad.length - 3]! ^= 0x40;
        const upd = which === 'spool key' ? 'UPDATE meta SET spool_key = ?' : 'UPDATE epochs SET wrapped = ? WHERE id = 2';
        db.prepare(upd).run(bad);
        db.close();
        await assert.rejects(Spool.open({ dir, kek: KEK }), (e: unknown) => e instanceof SpoolError && e.code === 'ERR_SPOOL_KEY' && e.message.includes('corrupted'));
        const r = runSealflow(['spool', 'verify', '--spool-dir', dir], { SEALFLOW_SPOOL_KEK: kekBase64(KEK) });
        assert.equal(r.code, 78, r.stderr);
        assert.match(r.stderr, which === 'spool key' ? /wrapped spool key .* is corrupted/ : /wrapped data key of epoch 2 .* is corrupted/);
        // Nothing was deleted: putting the key row back restores everything.
        const db2 = new Database(join(dir, 'spool.db'));
        db2.prepare(upd).run(original);
        db2.close();
        await assertIntact(dir, records);
      } finally {
        cleanup();
      }
    });
  }

  test('KEK rotation: open with new + previous, rekey command rewraps, then the old KEK is refused', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const records = await makeSpool(dir, 3);
      // The daemon runs with the new KEK as current and the old as previous: both old and new epochs work.
      let spool = await Spool.open({ dir, kek: OTHER, previousKeks: [KEK] });
      appendRecords(spool.writer, ipv4Records(7));
      assert.equal(spool.reader.lease(10).length, 4);
      spool.close();
      // Without the previous KEK the old epochs cannot be unwrapped: refused, naming the fix.
      await assert.rejects(Spool.open({ dir, kek: OTHER }), /wrapped by a key-encryption key that is not configured/);
      writeFileSync(join(dir, 'new.kek'), kekBase64(OTHER), { mode: 0o600 });
      const r = runSealflow(['rekey', '--new-kek-file', join(dir, 'new.kek'), '--spool-dir', dir], { SEALFLOW_SPOOL_KEK: kekBase64(KEK) });
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, /spool key and 4 epoch keys rewrapped/);
      await assertIntact(dir, records + 7, OTHER);
      await assert.rejects(Spool.open({ dir, kek: KEK }), /does not match/);
      // rekey with the wrong current KEK changes nothing.
      const r2 = runSealflow(['rekey', '--spool-dir', dir], { SEALFLOW_SPOOL_KEK: kekBase64(testKek(77)), SEALFLOW_SPOOL_NEW_KEK: kekBase64(testKek(78)) });
      assert.equal(r2.code, 78);
      spool = await Spool.open({ dir, kek: OTHER });
      assert.equal(spool.inspector.verify().ok, true);
      spool.close();
    } finally {
      cleanup();
    }
  });

  test('a file that is not a spool database: clear error, left untouched', async () => {
    const { dir, cleanup } = tempDir();
    try {
      writeFileSync(join(dir, 'spool.db'), 'this is not an SQLite database, just some text that is long enough to look like a header......');
      const before = snapshot(dir);
      await assert.rejects(Spool.open({ dir, kek: KEK }), (e: unknown) => e instanceof SpoolError && e.code === 'ERR_SPOOL_FORMAT' && e.message.includes('not a usable spool database (SQLITE_NOTADB)'));
      const r = runSealflow(['spool', 'status', '--spool-dir', dir], { SEALFLOW_SPOOL_KEK: kekBase64(KEK) });
      assert.equal(r.code, 65, r.stderr);
      assert.match(r.stderr, /not a usable spool database/);
      assert.deepEqual(snapshot(dir), before);
    } finally {
      cleanup();
    }
  });

  test('a directory without a spool is not created by inspection commands', () => {
    const { dir, cleanup } = tempDir();
    try {
      const r = runSealflow(['spool', 'status', '--spool-dir', join(dir, 'none')], { SEALFLOW_SPOOL_KEK: kekBase64(KEK) });
      assert.equal(r.code, 66);
      assert.match(r.stderr, /no spool at/);
      assert.deepEqual(readdirSync(dir), []);
    } finally {
      cleanup();
    }
  });
});
