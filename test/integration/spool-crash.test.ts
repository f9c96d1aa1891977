import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runCrashRounds } from '../support/spool-crash-harness.js';
import { tempDir } from '../support/spool-fixtures.js';

// ≥ 20 SIGKILLs in CI; scripts/spool-crash-soak.ts runs many more by hand.
const ROUNDS = Number(process.env.SEALFLOW_SPOOL_CRASH_ROUNDS ?? '20');

test(`SIGKILL at random moments (${ROUNDS} rounds): every committed batch survives and verifies`, async (t) => {
  const { dir, cleanup } = tempDir();
  const seed = Number(process.env.SEALFLOW_SPOOL_CRASH_SEED ?? Date.now() % 1_000_000);
  t.diagnostic(`seed ${seed} (rerun with SEALFLOW_SPOOL_CRASH_SEED=${seed})`);
  let committed = 0;
  let rounds = 0;
  try {
    await runCrashRounds({
      dir,
      rounds: ROUNDS,
      seed,
      onRound: (r) => {
        rounds++;
        committed = r.totalCommitted;
      },
    });
  } finally {
    cleanup();
  }
  assert.equal(rounds, ROUNDS);
  // The kills must land while batches are being written, or the test proves nothing.
  assert.ok(committed >= ROUNDS, `only ${committed} batches committed over ${ROUNDS} rounds`);
  t.diagnostic(`${committed} batches committed across ${ROUNDS} kills`);
});

test('SIGKILL at random moments, queued appends (group commits: under overload, and compressed with synchronous full): every reported batch survives', async (t) => {
  const seed = Number(process.env.SEALFLOW_SPOOL_CRASH_SEED ?? Date.now() % 1_000_000);
  t.diagnostic(`seed ${seed} (rerun with SEALFLOW_SPOOL_CRASH_SEED=${seed})`);
  for (const [mode, synchronous] of [['--queued-bypass', 'full'], ['--queued-bypass', 'normal'], ['--queued-compressed', 'full']] as const) {
    const { dir, cleanup } = tempDir();
    let committed = 0;
    let rounds = 0;
    try {
      await runCrashRounds({
        dir,
        rounds: 6,
        seed: seed + (synchronous === 'full' ? 1 : 0) + (mode === '--queued-compressed' ? 2 : 0),
        childArgs: [mode],
        synchronous,
        onRound: (r) => {
          rounds++;
          committed = r.totalCommitted;
        },
      });
    } finally {
      cleanup();
    }
    assert.equal(rounds, 6);
    assert.ok(committed >= 6, `${mode} ${synchronous}: only ${committed} batches committed over 6 rounds`);
    t.diagnostic(`${mode} ${synchronous}: ${committed} batches committed across 6 kills`);
  }
});
