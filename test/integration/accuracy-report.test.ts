/**
 * The accuracy report (`npm run accuracy`, scripts/accuracy.ts) as a test: every capture in
 * test/fixtures/corpora decoded by sealflow agrees with tshark and with nfdump (nfcapd over
 * loopback UDP), except the differences scripts/accuracy/known-differences.ts lists and
 * explains. A new disagreement fails here, naming the capture, field and values.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { requireTool } from '../support/softflowd.js';
import { haveTshark } from '../support/tshark-fields.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

test('npm run accuracy: every capture agrees with tshark and nfdump except the documented, explained differences', (t) => {
  if (!requireTool(t, haveTshark() && spawnSync('nfcapd', ['-V'], { stdio: 'ignore' }).status === 0, 'tshark and nfdump')) return;
  const run = spawnSync(process.execPath, ['--import', 'tsx', 'scripts/accuracy.ts', '--json'], { cwd: repoRoot, encoding: 'utf8', timeout: 300_000, maxBuffer: 64 * 1024 * 1024 });
  const out = JSON.parse(run.stdout) as { table: { capture: string; records: number; tshark: { agree: number; records: number; unexplained: number } | null; nfdump: { agree: number; unexplained: number } | null }[]; disagreements: { capture: string; reference: string; field: string; sealflow: string; theirs: string; reason: string | null }[] };
  const unexplained = out.disagreements.filter((d) => d.reason === null);
  assert.deepEqual(unexplained, [], 'every disagreement is documented');
  assert.equal(run.status, 0, run.stderr);
  // The report covers the corpora (NetFlow v5/v9, IPFIX, sFlow) and most records agree outright.
  assert.ok(out.table.length >= 45, `${out.table.length} captures`);
  const records = out.table.reduce((n, c) => n + (c.tshark?.records ?? 0), 0);
  const agree = out.table.reduce((n, c) => n + (c.tshark?.agree ?? 0), 0);
  assert.ok(records > 4000 && agree / records > 0.99, `tshark: ${agree}/${records}`);
  // The YAF and softflowd biflows are split (RFC 5103): their reverse records are the documented difference.
  assert.equal(out.disagreements.filter((d) => d.field === 'biflow' && d.reference === 'tshark').length, 6);
});
