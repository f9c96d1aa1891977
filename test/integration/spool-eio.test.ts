/**
 * EIO at each SQLite step of the spool: a child process runs the spool with
 * test/support/eio-shim.c preloaded, which makes the writes or the syncs (fsync, fdatasync) of
 * files in the spool directory fail with EIO while a control file says so — what a failing disk
 * answers. better-sqlite3 has no VFS hook from JavaScript; SQLite's unix VFS calls libc through
 * the dynamic linker, so the preloaded library sees every call. (ENOSPC is in
 * spool-disk-full.test.ts, on a real full filesystem.)
 *
 * Each step must report, not throw: an append with failing writes or syncs, and a group commit,
 * is dropped (reason io: the loss ledger's io_error); a checkpoint fails, logged, and is retried;
 * a failed ack keeps the delivered batch out of later leases and is retried. Once the faults
 * stop every step works again; the parent reopens the spool without the shim and finds every
 * batch committed and not acknowledged, with exactly its records.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import { Spool } from '../../src/spool/spool.js';
import { ipv4Records, kekBase64, repoRoot, testKek } from '../support/spool-fixtures.js';
import { leaseRecords } from '../support/spool-records.js';

const KEK = testKek(43);
const RECORDS = 100;

interface ChildReport {
  readonly steps: Record<string, unknown>;
  readonly committed: Record<string, number>;
  readonly acked: number[];
}

describe('spool on a failing disk (EIO at each SQLite step)', () => {
  test('writes and syncs failing with EIO: appends and group commits dropped (io), checkpoints retried, acks kept pending; nothing committed lost', { timeout: 120_000 }, async (t) => {
    const work = mkdtempSync(path.join(tmpdir(), 'sealflow-eio-'));
    try {
      const shim = path.join(work, 'eio-shim.so');
      const cc = spawnSync('cc', ['-shared', '-fPIC', '-O1', '-o', shim, path.join(repoRoot, 'test/support/eio-shim.c'), '-ldl'], { encoding: 'utf8' });
      if (cc.error !== undefined || cc.status !== 0) {
        if (process.env.CI !== undefined) assert.fail(`cannot build the EIO shim: ${cc.stderr || String(cc.error)}`);
        t.skip(`no C compiler: ${cc.stderr || String(cc.error)}`);
        return;
      }
      const dir = path.join(work, 'spool');
      const control = path.join(work, 'fault');
      const count = path.join(work, 'injected');
      const child = spawnSync(process.execPath, ['--import', 'tsx', 'test/support/spool-eio-child.ts', dir, control, String(RECORDS), kekBase64(KEK)], {
        cwd: repoRoot,
        env: { PATH: process.env.PATH ?? '', LD_PRELOAD: shim, SEALFLOW_EIO_DIR: `${dir}/`, SEALFLOW_EIO_CONTROL: control, SEALFLOW_EIO_COUNT: count },
        encoding: 'utf8',
        timeout: 90_000,
      });
      assert.equal(child.status, 0, `child: ${child.stderr.slice(-3000)}`);
      const report = JSON.parse(child.stdout.trim().split('\n').at(-1) ?? '{}') as ChildReport;
      const injected = existsSync(count) ? readFileSync(count, 'utf8') : '';
      t.diagnostic(`steps ${JSON.stringify(report.steps)}; faults injected: ${injected.split('w').length - 1} writes, ${injected.split('s').length - 1} syncs`);
      assert.ok(injected.includes('w') && injected.includes('s'), 'the shim injected write and sync faults');

      const s = report.steps;
      assert.equal(s.appendWrite, 'io', 'append, writes failing: dropped, reason io');
      assert.equal(s.appendSync, 'io', 'append, syncs failing: dropped, reason io');
      assert.deepEqual(s.groupWrite, ['io', 'io', 'io'], 'group commit, writes failing: each batch dropped, reason io');
      for (const calls of ['write', 'sync']) {
        const c = s[`checkpoint_${calls}`] as { failed: number; walBytes: number };
        assert.ok(c.failed > 0, `checkpoint, ${calls}s failing: reported`);
        assert.ok(c.walBytes > 0, `checkpoint, ${calls}s failing: the commits stay in the WAL`);
      }
      const ack = s.ackWrite as { pendingAcks: number; batches: number };
      assert.equal(ack.pendingAcks, 2, 'ack, writes failing: both acks pending');
      const after = s.ackAfter as { pendingAcks: number; batches: number; leasedAgain: number };
      assert.equal(after.leasedAgain, 0, 'the delivered batches were not leased again');
      assert.equal(after.pendingAcks, 0, 'the pending acks went through once the faults stopped');
      assert.equal(after.batches, ack.batches - 2);
      assert.equal(s.appendAfter, null, 'appends commit again');
      assert.equal(s.walAfter, 0, 'the checkpoint completes again (WAL truncated)');

      // Every batch committed and not acknowledged, with exactly its records.
      const expected = Object.entries(report.committed).map(([id, seed]) => [Number(id), seed] as const).filter(([id]) => !report.acked.includes(id));
      const spool = await Spool.open({ dir, kek: KEK, create: false });
      try {
        const v = spool.inspector.verify();
        assert.equal(v.ok, true, JSON.stringify(v.failures));
        assert.equal(spool.inspector.integrityCheck(), 'ok');
        const leased = leaseRecords(spool.reader, 1000);
        assert.deepEqual(leased.map((b) => b.id), expected.map(([id]) => id));
        for (const b of leased) assert.deepEqual(b.records, ipv4Records(RECORDS, expected.find(([id]) => id === b.id)?.[1]), `batch ${b.id}`);
      } finally {
        spool.close();
      }
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  });
});
