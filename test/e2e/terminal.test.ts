/**
 * The probe on a terminal: `sealflow run` under a pseudo-terminal (util-linux `script`), as an
 * operator starts it by hand. Every line of every thread comes through the same pretty
 * logger (no raw JSON line, the ingest worker's included), and the status appears once per
 * interval, as one line. Without a terminal the same lines are JSON.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { devConfigFile } from '../support/dev-config.js';
import { freeTcpPort } from '../support/probe.js';
import { repoRoot, requireTool } from '../support/softflowd.js';

const RUN_MS = 5_500;

/** Runs the probe for RUN_MS (under a pseudo-terminal when `tty`), then SIGTERM; returns its output without colour codes. */
async function runProbe(tty: boolean): Promise<string> {
  const dir = mkdtempSync(path.join(tmpdir(), 'sealflow-terminal-'));
  try {
    const file = await devConfigFile(dir, await freeTcpPort(), 1);
    const argv = [process.execPath, '--import', 'tsx', 'src/main.ts', 'run', '--config', file];
    // script(1) gives the probe a terminal on standard error (and the rest); its output is the terminal's.
    const child = tty
      ? spawn('script', ['-qfec', argv.map((a) => `'${a}'`).join(' '), '/dev/null'], { cwd: repoRoot, stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, TERM: 'xterm' } })
      : spawn(argv[0] ?? process.execPath, argv.slice(1), { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    child.stderr.on('data', (b: Buffer) => (out += b.toString()));
    const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
    // Started (the banner) or failed: then RUN_MS more of stats lines.
    const startBy = Date.now() + 60_000;
    while (!out.includes('sealflow is running.') && Date.now() < startBy) await new Promise((r) => setTimeout(r, 100));
    assert.ok(out.includes('sealflow is running.'), `started:\n${out}`);
    await new Promise((r) => setTimeout(r, RUN_MS));
    const pid = tty ? Number(spawnSync('pgrep', ['-f', '-n', `run --config ${file}`], { encoding: 'utf8' }).stdout.trim()) : child.pid;
    if (pid !== undefined && pid > 0) process.kill(pid, 'SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    await exited;
    clearTimeout(timer);
    // eslint-disable-next-line no-control-regex
    return out.replace(/\u001b\[[0-9;]*m/g, '').replace(/\r/g, '');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('on a terminal: one pretty line per event from every thread, the status once per interval', { timeout: 120_000 }, async (t) => {
  if (!requireTool(t, spawnSync('script', ['--version'], { stdio: 'ignore' }).error === undefined, 'script (util-linux)')) return;
  const out = await runProbe(true);
  const lines = out.split('\n').filter((l) => l.trim() !== '');
  const json = lines.filter((l) => l.trimStart().startsWith('{'));
  assert.deepEqual(json, [], 'no raw JSON line on a terminal');
  // The ingest worker's start-up line, through the main thread's pretty logger.
  assert.ok(lines.some((l) => /^\[\d{4}-\d\d-\d\d [\d:.]+ [+-]\d{4}\] INFO: batches sealed with XChaCha20-Poly1305/.test(l) && l.includes('"component":"ingest-worker"')), `worker line pretty:\n${out}`);
  const status = lines.filter((l) => l.includes('exporters ') && l.includes(' rec/s'));
  assert.ok(status.length >= 3 && status.length <= Math.ceil(RUN_MS / 1000) + 2, `one status line a second for ${RUN_MS} ms, got ${status.length}:\n${status.join('\n')}`);
  for (const l of status) assert.match(l, /INFO: stats: exporters \d+ \| in [\d.]+ rec\/s/, 'each status is one pretty line');
  assert.ok(!lines.some((l) => /^\s+(exporters|recordsPerSecond|drainLagMs):/.test(l)), 'no multi-line object under a log line');
  assert.match(out, /INFO: stopped cleanly/);
});

test('without a terminal: JSON lines, the ingest worker\'s among them', { timeout: 120_000 }, async () => {
  const out = await runProbe(false);
  const logLines = out.split('\n').filter((l) => l.startsWith('{'));
  const parsed = logLines.map((l) => JSON.parse(l) as { component?: string; msg: string });
  assert.ok(parsed.some((p) => p.component === 'ingest-worker' && p.msg.startsWith('batches sealed')), 'the worker line as JSON');
  assert.ok(parsed.filter((p) => p.component === 'stats').length >= 3, 'stats lines as JSON');
});
