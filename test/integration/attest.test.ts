/**
 * `sealflow attest` as shipped (the CLI, a real ingest worker thread, real SQLite, real files):
 * passes on a correct setup — its signed report verifies, its HTML renders as one page in
 * headless Chromium, the canaries leave the spool with their key epoch — and fails, naming
 * the finding, on a planted plaintext file in the data directory (plain and gzip-compressed),
 * with core dumps on, and with the admin endpoint on 0.0.0.0 without a token.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { stringify } from 'yaml';
import { CANARY_DST_V6, CANARY_SRC_V4, CANARY_SRC_V6 } from '../../src/attest/canary.js';
import { trailKinds } from '../support/audit-fixtures.js';
import { requireTool, repoRoot } from '../support/softflowd.js';

interface Report {
  body: { passed: boolean; findings: { check: string; detail: string }[]; checks: { id: string; status: string }[]; canary: { batches: unknown[]; shreddedEpochs: number[] } };
  signature: string | null;
}

const haveChromium = spawnSync('chromium', ['--version'], { stdio: 'ignore' }).error === undefined;

function setup(): { dir: string; dataDir: string; config: (extra?: Record<string, unknown>) => string } {
  const dir = mkdtempSync(path.join(tmpdir(), 'sealflow-attest-'));
  const keys = path.join(dir, 'keys');
  mkdirSync(keys, { mode: 0o700 });
  writeFileSync(path.join(keys, 'kek'), randomBytes(32).toString('base64'), { mode: 0o600 });
  writeFileSync(path.join(keys, 'signing'), randomBytes(32).toString('base64'), { mode: 0o600 });
  writeFileSync(path.join(keys, 'pseudonymize'), randomBytes(32).toString('base64'), { mode: 0o600 });
  const dataDir = path.join(dir, 'data');
  const config = (extra: Record<string, unknown> = {}): string => {
    const file = path.join(dir, `config-${randomBytes(4).toString('hex')}.yaml`);
    writeFileSync(
      file,
      stringify({
        dataDir,
        log: { level: 'warn', format: 'json' },
        listeners: { allowlist: ['192.0.2.10'], udp: [{ name: 'flows', address: '127.0.0.1', port: 2055 }] },
        spool: { kek: { file: path.join(keys, 'kek') } },
        drain: { enabled: false },
        admin: { address: '127.0.0.1', port: 9180 },
        audit: { signingKey: { file: path.join(keys, 'signing') } },
        ...extra,
      }),
    );
    return file;
  };
  return { dir, dataDir, config };
}

/** Runs the CLI with RLIMIT_CORE set by the shell (`ulimit -c`), as a service manager would. */
function cli(args: readonly string[], core: '0' | 'unlimited' = '0'): { code: number | null; stdout: string; stderr: string } {
  const quoted = ['--import', 'tsx', 'src/main.ts', ...args].map((a) => `'${a.replace(/'/g, "'\\''")}'`).join(' ');
  const r = spawnSync('sh', ['-c', `ulimit -c ${core} && exec '${process.execPath}' ${quoted}`], { cwd: repoRoot, encoding: 'utf8', timeout: 120_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function latestReport(dataDir: string, ext: '.json' | '.html'): string {
  const dir = path.join(dataDir, 'attest');
  const name = readdirSync(dir).filter((f) => f.endsWith(ext)).sort().at(-1);
  assert.ok(name !== undefined, `no ${ext} report in ${dir}`);
  return path.join(dir, name);
}

function finding(dataDir: string, check: string): string {
  const report = JSON.parse(readFileSync(latestReport(dataDir, '.json'), 'utf8')) as Report;
  assert.equal(report.body.passed, false);
  const f = report.body.findings.find((x) => x.check === check);
  assert.ok(f !== undefined, `expected a ${check} finding, got ${JSON.stringify(report.body.findings)}`);
  return f.detail;
}

test('attest passes on a correct setup: signed report, one-page HTML, canaries gone with their epoch', { timeout: 300_000 }, (t) => {
  const { dir, dataDir, config } = setup();
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  // With pseudonymisation on, as a privacy-sensitive site runs: the canaries take the whole path.
  const cfg = config({ privacy: { pseudonymize: { key: { file: path.join(dir, 'keys', 'pseudonymize') }, rules: [{ action: 'pseudonymize', prefixes: ['0.0.0.0/0', '::/0'] }] } } });
  const r = cli(['attest', '--config', cfg]);
  assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
  assert.match(r.stdout, /^sealflow attest: PASSED/);
  const json = latestReport(dataDir, '.json');
  const report = JSON.parse(readFileSync(json, 'utf8')) as Report;
  assert.equal(report.body.passed, true);
  assert.equal(report.body.canary.batches.length, 1);
  assert.equal(report.body.canary.shreddedEpochs.length, 1);
  for (const id of ['core-dumps', 'admin-endpoint', 'udp-allowlist', 'plaintext', 'secrets-on-disk', 'trail-digest', 'canary-shredded', 'secret-argv']) {
    assert.equal(report.body.checks.find((c) => c.id === id)?.status, 'pass', id);
  }
  // The report text never carries a canary value (the next attestation would find it).
  for (const v of [CANARY_SRC_V4, CANARY_SRC_V6, CANARY_DST_V6]) assert.ok(!readFileSync(json, 'utf8').includes(v));

  // Signed with the device key: verifies, and not once altered.
  const pub = cli(['audit', 'pubkey', '--config', cfg]).stdout.split('\n')[0] ?? '';
  assert.equal(cli(['attest', 'verify', '--pubkey', pub, json]).code, 0);
  const altered = path.join(dir, 'altered.json');
  writeFileSync(altered, readFileSync(json, 'utf8').replace('"passed": true', '"passed": false'));
  assert.equal(cli(['attest', 'verify', '--pubkey', pub, altered]).code, 1);

  // The trail saw the canary batch sealed (held), discarded and its epoch shredded, and the run.
  const kinds = trailKinds(path.join(dataDir, 'spool', 'spool.db'));
  for (const k of ['batch.sealed', 'batch.discarded', 'epoch.shredded', 'attest.completed', 'pseudonym_key.in_force']) assert.ok((kinds[k] ?? 0) > 0, `${k} in ${JSON.stringify(kinds)}`);

  // The HTML report renders in headless Chromium, and prints on one page.
  if (!requireTool(t, haveChromium, 'chromium')) return;
  const html = latestReport(dataDir, '.html');
  const flags = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', `--user-data-dir=${path.join(dir, 'chromium')}`];
  const dom = spawnSync('chromium', [...flags, '--dump-dom', `file://${html}`], { encoding: 'utf8', timeout: 60_000 });
  assert.match(dom.stdout, /id="verdict">PASSED</, dom.stderr);
  const pdf = path.join(dir, 'report.pdf');
  spawnSync('chromium', [...flags, '--no-pdf-header-footer', `--print-to-pdf=${pdf}`, `file://${html}`], { timeout: 60_000 });
  assert.ok(existsSync(pdf), 'chromium printed the report');
  const pages = readFileSync(pdf, 'latin1').match(/\/Type\s*\/Page[^s]/g) ?? [];
  assert.equal(pages.length, 1, 'one page');
});

test('attest fails, naming the finding, on a planted plaintext file in the data directory', { timeout: 300_000 }, (t) => {
  const { dir, dataDir, config } = setup();
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const cfg = config();
  // A debug dump someone left behind: one Fusion-style record with the canary's addresses.
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  writeFileSync(path.join(dataDir, 'debug-dump.ndjson'), `${JSON.stringify({ srcip: CANARY_SRC_V6, dstip: CANARY_DST_V6, flowversion: 10 })}\n`);
  let r = cli(['attest', '--config', cfg]);
  assert.equal(r.code, 1, r.stdout);
  assert.match(finding(dataDir, 'plaintext'), /debug-dump\.ndjson at byte \d+: IPv6 source, RFC 5952 text \(UTF-8\)/);
  // The same inside a rotated, gzip-compressed log.
  rmSync(path.join(dataDir, 'debug-dump.ndjson'));
  writeFileSync(path.join(dataDir, 'probe.log.1.gz'), gzipSync(Buffer.from(`some log line\nsrc=${CANARY_SRC_V4}\n`)));
  r = cli(['attest', '--config', cfg]);
  assert.equal(r.code, 1, r.stdout);
  assert.match(finding(dataDir, 'plaintext'), /probe\.log\.1\.gz at byte 0: IPv4 source, dotted text \(UTF-8\) \(inside a gzip stream\)/);
});

test('attest fails, naming the finding, with core dumps on', { timeout: 300_000 }, (t) => {
  const { dir, dataDir, config } = setup();
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const r = cli(['attest', '--config', config()], 'unlimited');
  assert.equal(r.code, 1, r.stdout);
  assert.match(finding(dataDir, 'core-dumps'), /core dumps are enabled \(RLIMIT_CORE this process: unlimited\)/);
});

test('attest fails, naming the finding, with the admin endpoint on 0.0.0.0 without a token', { timeout: 300_000 }, (t) => {
  const { dir, dataDir, config } = setup();
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const r = cli(['attest', '--config', config({ admin: { address: '0.0.0.0', port: 9180 } })]);
  assert.equal(r.code, 1, r.stdout);
  assert.match(finding(dataDir, 'admin-endpoint'), /admin endpoint on 0\.0\.0\.0:9180 \(not loopback\) without a token/);
});
