/**
 * Long-running soaks, run by hand (CI runs short versions from the test suite):
 *
 *   npm run soak -- crash [--kills 1000] [--minutes M] [--seed N] [--dir DIR] [--rate 2000] [--run-ms 2500]
 *                         [--rekey 0.3] [--startup-share 0.15] [--upload-delay-ms 40]
 *
 * `crash`: SIGKILLs the real probe (`sealflow run`, compiled) --kills times at random moments
 * while a UDP sender with unique record ids runs and the drain delivers to the Fusion stand-in
 * (test/support/probe-crash-soak.ts says how and what is checked). Prints the figures; exits 1
 * when a committed record was lost, a start crash-looped, or an export or rekey failed.
 * Sockets are on 127.0.0.1 with free ports; on a shared machine run it in its own network
 * namespace: `unshare -n sh -c 'ip link set lo up && npm run soak -- crash'`.
 *
 * The spool-only crash soak (in-process spool, many more rounds a minute) is
 * scripts/spool-crash-soak.ts.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { crashSoakProblems, formatCrashSoakReport, runCrashSoak } from '../test/support/probe-crash-soak.js';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    kills: { type: 'string', default: '1000' },
    seed: { type: 'string' },
    dir: { type: 'string' },
    rate: { type: 'string', default: '2000' },
    'run-ms': { type: 'string', default: '2500' },
    rekey: { type: 'string', default: '0.3' },
    'startup-share': { type: 'string', default: '0.15' },
    'upload-delay-ms': { type: 'string', default: '40' },
    minutes: { type: 'string' },
  },
});

if (positionals[0] !== 'crash') {
  process.stderr.write('usage: npm run soak -- crash [--kills N] [--minutes M] [--seed N] [--dir DIR] [--rate N] [--run-ms N] [--rekey P] [--startup-share P] [--upload-delay-ms N]\n');
  process.exit(64);
}

const kills = Number(values.kills);
// A time budget, and SIGINT/SIGTERM, end the kill cycles early: the final drain, the checks and
// the figures for the kills done still follow.
const deadline = values.minutes !== undefined ? Date.now() + Number(values.minutes) * 60_000 : Infinity;
let interrupted = false;
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    interrupted = true;
    process.stdout.write(`crash soak: ${sig}: no more kills; draining and checking\n`);
  });
}
const seed = values.seed !== undefined ? Number(values.seed) : Date.now() % 1_000_000;
const dir = values.dir ?? mkdtempSync(join(tmpdir(), 'sealflow-crash-soak-'));
const load = (): string => loadavg().map((l) => l.toFixed(2)).join(' ');
process.stdout.write(`crash soak: ${kills} kills, seed ${seed}, dir ${dir}, load average ${load()}\n`);
const report = await runCrashSoak({
  dir,
  kills,
  seed,
  recordsPerSecond: Number(values.rate),
  runMs: Number(values['run-ms']),
  rekeyProbability: Number(values.rekey),
  startupKillShare: Number(values['startup-share']),
  uploadDelayMs: Number(values['upload-delay-ms']),
  stopRequested: () => interrupted || Date.now() > deadline,
  onCycle: (c) => {
    if (c.cycle % 25 === 0 || c.cycle === kills) {
      process.stdout.write(`kill ${c.cycle}: ${c.sent} sent, ${c.delivered} delivered, ${c.committedInSpool} committed in the spool, last kill ${c.killAfterMs} ms after start (${c.phase}); load ${load()}\n`);
    }
  },
});
process.stdout.write(formatCrashSoakReport(report));
process.stdout.write(`load average at the end: ${load()}\n`);
const problems = crashSoakProblems(report);
if (problems.length > 0) {
  process.stderr.write(`crash soak FAILED (seed ${seed}; files kept in ${dir}):\n  ${problems.join('\n  ')}\n`);
  process.exitCode = 1;
} else if (values.dir === undefined) {
  rmSync(dir, { recursive: true, force: true });
}
