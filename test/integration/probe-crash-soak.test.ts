/**
 * The crash-consistency soak of the real probe (test/support/probe-crash-soak.ts), short: the
 * full run is `npm run soak -- crash` (≥ 1000 kills). Also shows the soak can fail: a spool
 * that loses committed batches is caught as committed-lost, a probe that cannot start again
 * as a crash loop.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crashSoakProblems, formatCrashSoakReport, runCrashSoak, type CrashSoakOptions } from '../support/probe-crash-soak.js';

async function soak(o: Omit<CrashSoakOptions, 'dir'>): Promise<Awaited<ReturnType<typeof runCrashSoak>>> {
  const dir = mkdtempSync(join(tmpdir(), 'sealflow-crash-soak-'));
  try {
    return await runCrashSoak({ ...o, dir });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('20 SIGKILLs of `sealflow run` under traffic, drain and rekeys: no committed record lost, no crash loop', { timeout: 300_000 }, async () => {
  const r = await soak({ kills: 20, seed: 25, rekeyProbability: 0.4, runMs: 2000 });
  const table = formatCrashSoakReport(r);
  assert.deepEqual(crashSoakProblems(r), [], table);
  assert.equal(r.committedLost, 0, table);
  assert.equal(r.crashLoops, 0, table);
  assert.ok(r.committed > 0 && r.delivered === r.committed, table);
  assert.ok(r.sent >= r.committed + r.lostWhileDown, table);
  assert.ok(r.rekeys.attempted > 0, table);
  // The audit trail survives the kills (crashSoakProblems checks it verifies) and records them.
  assert.ok(r.crashRecoveries > 0, table);
});

test('the soak fails when the spool loses committed records (spool removed after a kill)', { timeout: 120_000 }, async () => {
  const r = await soak({
    kills: 2,
    seed: 7,
    startupKillShare: 0,
    rekeyProbability: 0,
    // Nothing is delivered before the sabotage, so the removed spool held committed records.
    refuseUploadsUntilFinal: true,
    afterKill: ({ dataDir }) => rmSync(join(dataDir, 'spool'), { recursive: true, force: true }),
  });
  assert.ok(r.committedLost > 0, formatCrashSoakReport(r));
  assert.ok(crashSoakProblems(r).some((p) => p.includes('committed records never delivered')));
});

test('the soak fails when the probe cannot start again (KEK files overwritten after a kill)', { timeout: 120_000 }, async () => {
  const r = await soak({
    kills: 2,
    seed: 8,
    startupKillShare: 0,
    rekeyProbability: 0,
    readyTimeoutMs: 10_000,
    afterKill: ({ kekFiles }) => {
      for (const f of kekFiles) writeFileSync(f, Buffer.alloc(32, 7).toString('base64'));
    },
  });
  assert.ok(r.crashLoops > 0, formatCrashSoakReport(r));
  assert.ok(crashSoakProblems(r).some((p) => p.includes('crash loops')));
});
