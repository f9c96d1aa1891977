/**
 * The audit trail from real runs of the daemon (`sealflow run` child processes, real UDP, real
 * SQLite, the Fusion stand-in over HTTPS, the rekey command), then exported and verified
 * offline with only the public key:
 *   run 1  Fusion down (503): batches sealed, the 1 MiB quota evicts the oldest; Fusion back:
 *          delivered (with the stand-in's request ids); SIGTERM (the loss ledger's report of the
 *          evictions is recorded).
 *   rekey  `sealflow rekey` to a new KEK.
 *   run 2  clock +10 min (so run 1's ended epoch is past its shredding grace): Fusion rejects
 *          one upload with 400 (parked), the rest is delivered and run 1's epoch shredded; SIGKILL.
 *   run 3  clock +20 min: the crash is recorded, the parked batch expires (spool.maxAgeSeconds);
 *          SIGTERM; then `sealflow reidentify` (runs 2 and 3 pseudonymise).
 * Every event class must be there, `audit verify` must pass on the export and on the database,
 * and fail — naming what — on an edited, re-hashed, reordered, truncated or re-signed copy.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { stringify } from 'yaml';
import type { CanonicalValue } from '../../src/audit/canonical-json.js';
import { DeviceKey } from '../../src/audit/device-key.js';
import { eventHash } from '../../src/audit/trail.js';
import { createDevCertificate } from '../../src/fusion-sim/dev-certificate.js';
import { startFusionSim } from '../../src/fusion-sim/fusion-sim.js';
import { clockOffsetEnv, readExport, resignAll, sendRandomFlows, trailKinds, writeExportLines, type ExportRecord } from '../support/audit-fixtures.js';
import { freeTcpPort, freeUdpPort, startProbe } from '../support/probe.js';
import { repoRoot } from '../support/softflowd.js';
import { until } from '../support/udp-harness.js';

function cli(args: readonly string[], env: NodeJS.ProcessEnv = {}): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'src/main.ts', ...args], { cwd: repoRoot, env: { ...process.env, ...env }, encoding: 'utf8', timeout: 120_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const MINUTE = 60_000;

test('audit trail: every event class from real runs; verify passes, and fails on edited, reordered, truncated or re-signed copies', { timeout: 600_000 }, async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'sealflow-audit-'));
  const cert = await createDevCertificate();
  // Runs 2 and 3 run 10 and 20 minutes ahead: the stand-in accepts their request JWTs' iat.
  const sim = await startFusionSim({ host: '127.0.0.1', port: 0, certPem: cert.certPem, keyPem: cert.keyPem, keepRecords: false, maxClockSkewSec: 3600 });
  t.after(async () => {
    await sim.close();
    if (process.env.SEALFLOW_TEST_KEEP === undefined) rmSync(dir, { recursive: true, force: true });
    else console.error(`kept ${dir}`);
  });
  const file = (name: string): string => path.join(dir, name);
  writeFileSync(file('ca.pem'), cert.certPem);
  writeFileSync(file('kek'), randomBytes(32).toString('base64'), { mode: 0o600 });
  writeFileSync(file('new.kek'), randomBytes(32).toString('base64'), { mode: 0o600 });
  writeFileSync(file('signing.key'), randomBytes(32).toString('base64'), { mode: 0o600 });
  const pseudonymizeKey = randomBytes(32).toString('base64');
  writeFileSync(file('pseudonymize.key'), pseudonymizeKey, { mode: 0o600 });
  writeFileSync(file('netosecret'), sim.netosecret, { mode: 0o600 });
  const udpPort = await freeUdpPort();
  const adminPort = await freeTcpPort();
  const dataDir = file('data');
  const dbPath = path.join(dataDir, 'spool', 'spool.db');
  const writeConfig = (kek: string, name: string, extra: Record<string, unknown> = {}, spoolExtra: Record<string, unknown> = {}): string => {
    const config = {
      dataDir,
      log: { level: 'info', format: 'json' },
      listeners: { allowlist: ['127.0.0.1'], udp: [{ name: 'flows', address: '127.0.0.1', port: udpPort, receiveBufferBytes: 8 * 1024 * 1024 }] },
      spool: { kek: { file: file(kek) }, quotaBytes: 1024 * 1024, epochSeconds: 60, batch: { maxRecords: 2000, maxAgeMs: 200 }, ...spoolExtra },
      drain: { fusion: { uploadUrl: sim.uploadUrl, caFile: file('ca.pem'), netosecret: { file: file('netosecret') } }, retry: { initialDelayMs: 100, maxDelayMs: 400 } },
      admin: { port: adminPort },
      audit: { signingKey: { file: file('signing.key') } },
      stats: { intervalSeconds: 0 },
      ...extra,
    };
    writeFileSync(file(name), stringify(config));
    return file(name);
  };
  const run1Config = writeConfig('kek', 'run1.yaml');
  // Runs 2 and 3 pseudonymise (their key periods are recorded) and keep batches 5 minutes at most.
  const laterConfig = writeConfig(
    'new.kek',
    'run2.yaml',
    { privacy: { pseudonymize: { key: { file: file('pseudonymize.key') }, rotation: 'epoch', rules: [{ action: 'pseudonymize', prefixes: ['0.0.0.0/0'] }] } } },
    { maxAgeSeconds: 300 },
  );
  const kinds = (): Record<string, number> => trailKinds(dbPath);

  // Run 1: outage → sealed batches pile up past the quota (evicted) → Fusion back → delivered.
  await sim.setFault({ kind: 'status', status: 503 });
  // Compiled, so the clock-offset preload reaches the ingest worker thread too (under tsx it is an eval worker, which preloads skip).
  let probe = await startProbe({ args: ['--config', run1Config], adminPort, compiled: true });
  try {
    const sent = await sendRandomFlows(udpPort, 80_000);
    await until(() => (kinds()['batch.evicted'] ?? 0) > 0, `an eviction while Fusion is down; probe output:\n${probe.output().slice(-3000)}`, 120_000);
    await sim.setFault(null);
    await until(() => (kinds()['batch.delivered'] ?? 0) > 0 && sim.stats.recordsAccepted > 0, 'deliveries once Fusion is back', 60_000);
    const sealedBefore = kinds()['batch.sealed'] ?? 0;
    await until(() => (kinds()['batch.delivered'] ?? 0) + (kinds()['batch.evicted'] ?? 0) > 0 && spoolEmpty(dbPath), 'the spool drained', 60_000);
    assert.ok(sealedBefore > 0);
    assert.equal(await probe.stop('SIGTERM'), 0, probe.output().slice(-3000));
    // No flow data in the trail: none of the sent addresses appears in the database's audit rows.
    const rows = auditText(dbPath);
    for (const a of sent.slice(0, 500)) assert.ok(!rows.includes(`"${a}"`), `address ${a} in the audit trail`);
  } finally {
    await probe.stop('SIGKILL');
  }

  // Rekey to a new KEK (the command records it in the trail).
  const rk = cli(['rekey', '--new-kek-file', file('new.kek'), '--data-dir', dataDir], { SEALFLOW_SPOOL_KEK_FILE: file('kek') });
  assert.equal(rk.code, 0, rk.stderr);

  // Run 2, 10 minutes later: a rejected upload is parked, the rest delivered, run 1's epochs shredded; then killed.
  await sim.setFault({ kind: 'status', status: 400, count: 1, scope: 'upload' });
  probe = await startProbe({ args: ['--config', laterConfig], adminPort, compiled: true, env: clockOffsetEnv(10 * MINUTE) });
  try {
    await sendRandomFlows(udpPort, 6000, Math.floor((Date.now() + 10 * MINUTE) / 1000));
    await until(() => (kinds()['batch.parked'] ?? 0) > 0 && (kinds()['epoch.shredded'] ?? 0) > 0, `a parked batch and a shredded epoch (trail: ${JSON.stringify(kinds())}); probe output:\n${probe.output().slice(-3000)}`, 60_000);
    await until(() => spoolEmpty(dbPath, true), 'run 2 delivered all but the parked batch', 60_000);
    probe.child.kill('SIGKILL');
    await probe.stop('SIGKILL');
  } finally {
    await probe.stop('SIGKILL');
  }

  // Run 3, 20 minutes later: the crash is recorded at start, run 2's parked batch expires; stopped cleanly.
  probe = await startProbe({ args: ['--config', laterConfig], adminPort, compiled: true, env: clockOffsetEnv(20 * MINUTE) });
  try {
    assert.equal(await probe.stop('SIGTERM'), 0, probe.output().slice(-3000));
  } finally {
    await probe.stop('SIGKILL');
  }

  assert.ok(!auditText(dbPath).includes(pseudonymizeKey.slice(0, 24)), 'the pseudonymisation key is not in the trail');
  // A re-identification on site is recorded (the pseudonym, never the address it reverses to).
  const reid = cli(['reidentify', '192.0.2.1', '--config', laterConfig], clockOffsetEnv(20 * MINUTE));
  assert.equal(reid.code, 0, reid.stderr);
  const real = reid.stdout.trim();
  assert.ok(!auditText(dbPath).includes(`"${real}"`), 'the real address is not in the trail');

  const k = kinds();
  for (const kind of ['config.loaded', 'probe.started', 'probe.stopped', 'probe.crash_recovered', 'batch.sealed', 'batch.evicted', 'batch.delivered', 'batch.parked', 'epoch.shredded', 'kek.rotated', 'loss.reported', 'pseudonym_key.in_force', 'pseudonym_key.reidentification', 'batch.expired']) {
    assert.ok((k[kind] ?? 0) > 0, `no ${kind} event in ${JSON.stringify(k)}`);
  }

  // Export and verify with only the public key.
  const pub = cli(['audit', 'pubkey', '--config', laterConfig]);
  assert.equal(pub.code, 0, pub.stderr);
  const publicKey = pub.stdout.split('\n')[0] ?? '';
  const exported = file('trail.jsonl');
  const ex = cli(['audit', 'export', '--config', laterConfig, '--out', exported]);
  assert.equal(ex.code, 0, ex.stderr);
  const records = readExport(exported);
  const events = records.filter((r) => r.type === 'event');
  const delivered = events.find((r) => r.kind === 'batch.delivered');
  assert.match(String((delivered?.fields as { requestId?: unknown }).requestId), /^sim-/);
  assert.deepEqual((events.find((r) => r.kind === 'batch.parked')?.fields as { reason?: unknown }).reason, 'fusion-http-400');
  // The loss ledger's reports: run 1's quota evictions by reason, counted as the spool evicted them.
  const evictedRecords = events.filter((r) => r.kind === 'batch.evicted').reduce((n, r) => n + ((r.fields as { records: number }).records), 0);
  const reportedEvictions = events.filter((r) => r.kind === 'loss.reported').reduce((n, r) => n + ((r.fields as { records: { quota_eviction?: number } }).records.quota_eviction ?? 0), 0);
  assert.equal(reportedEvictions, evictedRecords, 'loss.reported counts the evicted records');
  const receipts = records.filter((r) => r.type === 'receipt');
  assert.equal(receipts.length, k['epoch.shredded'], 'a deletion receipt per shredded epoch');

  const verify = (target: string[]): { code: number | null; report: { ok: boolean; failures: { code: string; message: string }[]; gaps: { kind: string }[] } } => {
    const r = cli(['audit', 'verify', '--pubkey', publicKey, '--json', ...target]);
    return { code: r.code, report: JSON.parse(r.stdout) as { ok: boolean; failures: { code: string; message: string }[]; gaps: { kind: string }[] } };
  };
  const good = verify([exported]);
  assert.equal(good.code, 0, JSON.stringify(good.report.failures));
  assert.ok(good.report.gaps.some((g) => g.kind === 'crash'), 'the crash shows as a gap');
  assert.ok(good.report.gaps.some((g) => g.kind === 'not-running'), 'the stop between runs shows as a gap');
  const fromDb = verify(['--data-dir', dataDir]);
  assert.equal(fromDb.code, 0, JSON.stringify(fromDb.report.failures));

  const failsWith = (name: string, mutated: ExportRecord[], code: string): void => {
    const p = file(`${name}.jsonl`);
    writeExportLines(p, mutated);
    const r = verify([p]);
    assert.equal(r.code, 1, `${name}: verify must fail`);
    assert.ok(r.report.failures.some((f) => f.code === code), `${name}: expected a ${code} failure, got ${JSON.stringify(r.report.failures)}`);
  };
  const sealedIdx = records.findIndex((r) => r.type === 'event' && r.kind === 'batch.sealed');
  // Edited: a record count changed.
  failsWith('edited', records.map((r, i) => (i === sealedIdx ? { ...r, fields: { ...(r.fields as object), records: 1 } } : r)), 'event-hash');
  // Edited and re-hashed from there on (a forger without the key): the signed digest no longer matches.
  failsWith('rehashed', rehashFrom(records, sealedIdx), 'digest-range');
  // Reordered: two events swapped.
  const swapped = [...records];
  const [a, b] = [sealedIdx, sealedIdx + 1];
  [swapped[a], swapped[b]] = [swapped[b]!, swapped[a]!];
  failsWith('reordered', swapped, 'event-link');
  // Truncated: the last lines (the seal and what precedes it) cut off.
  failsWith('truncated', records.slice(0, -3), 'seal');
  // Re-signed with another key, claiming to be the device's key id or not.
  const other = await DeviceKey.fromSeed(randomBytes(32));
  failsWith('resigned', resignAll(records, other, null), 'digest-key');
  const claimed = (records.find((r) => r.type === 'digest')?.body as { keyId: string }).keyId;
  failsWith('resigned-claiming', resignAll(records, other, claimed), 'digest-signature');

  // The database itself, with its newest events deleted (a copy): the last digest's range is short.
  const copy = file('copy.db');
  copyFileSync(dbPath, copy);
  const db = new Database(copy);
  const digestEnd = (db.prepare('SELECT body FROM audit_digests ORDER BY seq DESC LIMIT 1').get() as { body: string }).body;
  db.prepare('DELETE FROM audit_events WHERE seq > ?').run((JSON.parse(digestEnd) as { lastEventSeq: number }).lastEventSeq - 2);
  db.close();
  const copyDir = file('copy-data');
  writeFileSync(file('copy.yaml'), readFileSync(laterConfig, 'utf8').replace(dataDir, copyDir));
  const spoolDir = path.join(copyDir, 'spool');
  spawnSync('mkdir', ['-p', spoolDir]);
  copyFileSync(copy, path.join(spoolDir, 'spool.db'));
  const cut = verify(['--data-dir', copyDir]);
  assert.equal(cut.code, 1);
  assert.ok(cut.report.failures.some((f) => f.code === 'digest-range'), JSON.stringify(cut.report.failures));
});

/** Whether the spool holds no ready batch (parked ones too, unless `parkedOk`). */
function spoolEmpty(dbPath: string, parkedOk = false): boolean {
  const db = new Database(dbPath, { readonly: true, fileMustExist: true });
  try {
    db.pragma('busy_timeout = 5000');
    const r = db.prepare(`SELECT count(*) AS n FROM batches WHERE state = 0 ${parkedOk ? '' : 'OR state = 1'}`).get() as { n: number };
    return r.n === 0;
  } finally {
    db.close();
  }
}

function auditText(dbPath: string): string {
  const db = new Database(dbPath, { readonly: true, fileMustExist: true });
  try {
    return (db.prepare('SELECT fields FROM audit_events').all() as { fields: string }[]).map((r) => r.fields).join('\n');
  } finally {
    db.close();
  }
}

/** Recomputes every event hash and link from index `from` on, as someone without the signing key could. */
function rehashFrom(records: readonly ExportRecord[], from: number): ExportRecord[] {
  const out = [...records];
  let prev: string | null = null;
  for (let i = 0; i < out.length; i++) {
    const r = out[i]!;
    if (r.type !== 'event') continue;
    if (i < from) {
      prev = r.hash as string;
      continue;
    }
    const fields = i === from ? { ...(r.fields as object), records: 1 } : (r.fields as object);
    const p: string = prev ?? (r.prev as string);
    const hash: string = Buffer.from(eventHash(r.seq as number, r.atMs as number, r.kind as string, fields as CanonicalValue, Buffer.from(p, 'hex'))).toString('hex');
    out[i] = { ...r, fields, prev: p, hash };
    prev = hash;
  }
  return out;
}
