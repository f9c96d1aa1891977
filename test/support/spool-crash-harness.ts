/**
 * The SIGKILL crash harness shared by test/integration/spool-crash.test.ts (≥ 20 rounds in CI)
 * and scripts/spool-crash-soak.ts (as many rounds as you like, by hand).
 *
 * Each round starts test/support/spool-child.ts, lets it append (and ack some) batches,
 * SIGKILLs it at a random moment, then reopens the spool like a restarting daemon and checks:
 * PRAGMA integrity_check is ok; verify() finds no failure, gap or anchor problem; every batch
 * the child reported committed (it reports only after the commit) is present with its record
 * count, except batches it had started to ack; ids only grow.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { Spool } from '../../src/spool/spool.js';
import { kekBase64, prng, repoRoot, testKek } from './spool-fixtures.js';

export interface CrashRoundResult {
  readonly round: number;
  readonly killAfterMs: number;
  readonly committedThisRound: number;
  readonly totalCommitted: number;
  readonly presentBatches: number;
}

export interface CrashOptions {
  readonly dir: string;
  readonly rounds: number;
  readonly seed: number;
  /** Kill between min and max ms after the child reported it opened the spool. */
  readonly minKillMs?: number;
  readonly maxKillMs?: number;
  /** Child arguments besides --dir and --synchronous. */
  readonly childArgs?: readonly string[];
  /** The child's synchronous mode in every round; default: alternating normal and full. */
  readonly synchronous?: 'full' | 'normal';
  readonly onRound?: (r: CrashRoundResult) => void;
}

export const CRASH_KEK = testKek(42);

interface ChildRun {
  readonly lines: string[];
  readonly exitSignal: NodeJS.Signals | null;
  readonly stderr: string;
}

async function runAndKill(dir: string, killAfterMs: number, childArgs: readonly string[]): Promise<ChildRun> {
  const child = spawn(process.execPath, ['--import', 'tsx', join(repoRoot, 'test/support/spool-child.ts'), '--dir', dir, ...childArgs], {
    cwd: repoRoot,
    env: { PATH: process.env.PATH ?? '', SEALFLOW_SPOOL_KEK: kekBase64(CRASH_KEK) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  let partial = '';
  let stderr = '';
  const state: { timer: NodeJS.Timeout | null } = { timer: null };
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  child.stdout.setEncoding('utf8').on('data', (d: string) => {
    const parts = (partial + d).split('\n');
    partial = parts.pop() ?? '';
    for (const line of parts) {
      lines.push(line);
      if (state.timer === null && line.startsWith('opened')) state.timer = setTimeout(() => child.kill('SIGKILL'), killAfterMs);
    }
  });
  // A child that never opens is killed too (and the round then fails on its stderr).
  const guard = setTimeout(() => child.kill('SIGKILL'), 60_000);
  const exitSignal = await new Promise<NodeJS.Signals | null>((resolve) => child.once('close', (_code, signal) => resolve(signal)));
  clearTimeout(guard);
  if (state.timer !== null) clearTimeout(state.timer);
  return { lines, exitSignal, stderr };
}

/** Runs the rounds; throws an Error describing the first violated invariant. */
export async function runCrashRounds(options: CrashOptions): Promise<void> {
  const rand = prng(options.seed);
  const minKill = options.minKillMs ?? 30;
  const maxKill = options.maxKillMs ?? 400;
  const committed = new Map<number, number>();
  const ackStarted = new Set<number>();
  let maxId = 0;
  for (let round = 1; round <= options.rounds; round++) {
    const killAfterMs = Math.floor(minKill + rand() * (maxKill - minKill));
    // Unless one is asked for, alternate the two synchronous modes: both must keep every commit across a process crash.
    const sync = options.synchronous ?? (round % 2 === 0 ? 'full' : 'normal');
    const run = await runAndKill(options.dir, killAfterMs, [...(options.childArgs ?? ['--ack-every', '5']), '--synchronous', sync]);
    if (run.exitSignal !== 'SIGKILL') throw new Error(`round ${round}: child ended without being killed (${String(run.exitSignal)}): ${run.stderr}`);
    let thisRound = 0;
    for (const line of run.lines) {
      const [what, idText, nText] = line.split(' ');
      const id = Number(idText);
      if (what === 'committed') {
        if (id <= maxId) throw new Error(`round ${round}: batch id ${id} reused or out of order (max so far ${maxId})`);
        maxId = id;
        committed.set(id, Number(nText));
        thisRound++;
      } else if (what === 'acking') ackStarted.add(id);
    }
    // Restart: open like the daemon, then check.
    const spool = await Spool.open({ dir: options.dir, kek: CRASH_KEK });
    try {
      const integrity = spool.inspector.integrityCheck();
      if (integrity !== 'ok') throw new Error(`round ${round}: integrity_check: ${integrity}`);
      const v = spool.inspector.verify();
      if (v.failures.length > 0 || v.gaps.length > 0 || !v.anchorOk || v.rollback !== null) {
        throw new Error(`round ${round}: verify: ${JSON.stringify({ failures: v.failures, gaps: v.gaps, anchorOk: v.anchorOk, rollback: v.rollback })}`);
      }
      const db = new Database(join(options.dir, 'spool.db'), { readonly: true });
      let present = 0;
      try {
        const rows = new Map((db.prepare('SELECT id, records, state FROM batches').all() as { id: number; records: number; state: number }[]).map((r) => [r.id, r]));
        for (const [id, n] of committed) {
          if (ackStarted.has(id)) continue;
          const row = rows.get(id);
          if (row === undefined || row.state === 2) throw new Error(`round ${round}: committed batch ${id} is missing after SIGKILL`);
          if (row.records !== n) throw new Error(`round ${round}: batch ${id} has ${row.records} records, child committed ${n}`);
          present++;
        }
      } finally {
        db.close();
      }
      options.onRound?.({ round, killAfterMs, committedThisRound: thisRound, totalCommitted: committed.size, presentBatches: present });
    } finally {
      spool.close();
    }
  }
}
