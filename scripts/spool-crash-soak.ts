/**
 * The long crash soak for the encrypted spool, run by hand:
 *   node --import tsx scripts/spool-crash-soak.ts [--rounds 500] [--seed N] [--dir DIR] [--max-kill-ms 1500]
 * Same checks as test/integration/spool-crash.test.ts (SIGKILL, reopen, integrity_check,
 * verify, every committed batch present), many more rounds and wider kill windows.
 * Exits 0 when every round passed, 1 on the first violation (the spool is kept for inspection).
 */
import { parseArgs } from 'node:util';
import { runCrashRounds } from '../test/support/spool-crash-harness.js';
import { tempDir } from '../test/support/spool-fixtures.js';

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '500' },
    seed: { type: 'string' },
    dir: { type: 'string' },
    'max-kill-ms': { type: 'string', default: '1500' },
  },
});
const rounds = Number(values.rounds);
const seed = values.seed !== undefined ? Number(values.seed) : Date.now() % 1_000_000;
const tmp = values.dir === undefined ? tempDir('sealflow-crash-soak-') : null;
const dir = values.dir ?? tmp?.dir ?? '';
process.stdout.write(`spool crash soak: ${rounds} rounds, seed ${seed}, dir ${dir}\n`);
const started = Date.now();
try {
  await runCrashRounds({
    dir,
    rounds,
    seed,
    maxKillMs: Number(values['max-kill-ms']),
    onRound: (r) => {
      if (r.round % 10 === 0 || r.round === rounds) {
        process.stdout.write(`round ${r.round}: ${r.totalCommitted} batches committed so far, ${r.presentBatches} present, last kill after ${r.killAfterMs} ms\n`);
      }
    },
  });
  process.stdout.write(`spool crash soak: all ${rounds} rounds passed in ${((Date.now() - started) / 1000).toFixed(0)} s\n`);
  tmp?.cleanup();
} catch (err) {
  process.stderr.write(`spool crash soak FAILED (seed ${seed}; spool kept in ${dir}): ${(err as Error).message}\n`);
  process.exitCode = 1;
}
