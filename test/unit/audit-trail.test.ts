import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { canonicalJson } from '../../src/audit/canonical-json.js';
import { DeviceKey, publicKeyPem, parsePublicKey, verifySignature } from '../../src/audit/device-key.js';
import { databaseSource, exportFileSource, writeExport } from '../../src/audit/export.js';
import { AuditNotary } from '../../src/audit/notary.js';
import { AuditTrail } from '../../src/audit/trail.js';
import { verifyTrail } from '../../src/audit/verify.js';
import { writeFileSync } from 'node:fs';
import { Writable } from 'node:stream';
import { parseSeedText } from '../../src/audit/signing-key-source.js';
import { main as keygen } from '../../src/commands/keygen.js';

/** A spool-shaped database (the meta row the notary reads) with a trail on two connections, and a settable clock. */
function fixture(t: { after: (fn: () => void) => void }): { a: AuditTrail; b: AuditTrail; db: Database.Database; clock: { now: number }; dir: string } {
  const dir = mkdtempSync(path.join(tmpdir(), 'sealflow-trail-'));
  const file = path.join(dir, 'spool.db');
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  db.exec('CREATE TABLE meta (id INTEGER PRIMARY KEY, spool_id BLOB)');
  db.prepare('INSERT INTO meta VALUES (1, ?)').run(randomBytes(16));
  const db2 = new Database(file);
  const clock = { now: 1_800_000_000_000 };
  const a = new AuditTrail(db, () => clock.now);
  const b = new AuditTrail(db2, () => clock.now);
  t.after(() => {
    db.close();
    db2.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return { a, b, db, clock, dir };
}

test('two connections append to one chain; digests sign it; verify passes; the canonical form is stable', async (t) => {
  const { a, b, db, clock } = fixture(t);
  const key = await DeviceKey.fromSeed(randomBytes(32));
  const notary = new AuditNotary(a, key, () => clock.now);
  for (let i = 0; i < 10; i++) {
    (i % 2 === 0 ? a : b).record({ kind: 'batch.dropped', records: i, reason: 'quota' });
    clock.now += 1000;
  }
  notary.sign('test');
  b.record({ kind: 'probe.stopped', reason: 'x' });
  const report = verifyTrail(databaseSource(db), key.publicKey);
  assert.equal(report.ok, true, JSON.stringify(report.failures));
  assert.equal(report.events, 11);
  assert.equal(report.signedThroughSeq, 10);
  assert.deepEqual(report.gaps.map((g) => g.kind), ['unsigned-tail']);
  assert.equal(canonicalJson({ b: [1, 'x', null], a: { d: true, c: -2.5 } }), '{"a":{"c":-2.5,"d":true},"b":[1,"x",null]}');
  // The PEM form round-trips, and a digest signature verifies against the canonical body.
  assert.deepEqual(parsePublicKey(publicKeyPem(key.publicKey)), key.publicKey);
  const row = db.prepare('SELECT body, signature FROM audit_digests').get() as { body: string; signature: Uint8Array };
  assert.equal(verifySignature(key.publicKey, row.body, row.signature), true);
  assert.equal(verifySignature(key.publicKey, row.body.replace('"events":10', '"events":9'), row.signature), false);
});

test('retention removes only signed events from the front; the rest still verifies, the cut shows as a gap; --since anchors on a digest', async (t) => {
  const { a, db, clock, dir } = fixture(t);
  const key = await DeviceKey.fromSeed(randomBytes(32));
  const notary = new AuditNotary(a, key, () => clock.now);
  const HOUR = 3_600_000;
  for (let h = 0; h < 5; h++) {
    for (let i = 0; i < 3; i++) a.record({ kind: 'batch.dropped', records: h * 10 + i, reason: 'oversize' });
    clock.now += HOUR;
    notary.sign('periodic');
  }
  a.record({ kind: 'probe.stopped', reason: 'late' });
  // Events of the first two hours are older than the cutoff; the unsigned last one stays regardless.
  const removed = notary.prune(clock.now - 3 * HOUR);
  assert.equal(removed, 6);
  const report = verifyTrail(databaseSource(db), key.publicKey);
  assert.equal(report.ok, true, JSON.stringify(report.failures));
  assert.equal(report.firstEventSeq, 7);
  assert.ok(report.gaps.some((g) => g.kind === 'pruned'));

  // An export of the pruned trail verifies too, and --since skips what comes before its anchor.
  const file = path.join(dir, 'trail.jsonl');
  const lines: string[] = [];
  writeExport(db, notary, (l) => lines.push(l), () => clock.now);
  writeFileSync(file, lines.join('\n') + '\n');
  const full = verifyTrail(exportFileSource(file), key.publicKey);
  assert.equal(full.ok, true, JSON.stringify(full.failures));
  const since = verifyTrail(exportFileSource(file), key.publicKey, { sinceMs: clock.now - HOUR - 1 });
  assert.equal(since.ok, true, JSON.stringify(since.failures));
  assert.ok(since.events < full.events, `${since.events} < ${full.events}`);
  assert.ok(since.gaps.some((g) => g.kind === 'before-since'));

  // A digest silence longer than the interval while running is a gap.
  clock.now += 5 * HOUR;
  notary.sign('periodic');
  const late = verifyTrail(databaseSource(db), key.publicKey);
  assert.ok(late.gaps.some((g) => g.kind === 'no-digest'), JSON.stringify(late.gaps));
});

test('a deleted digest or a digest from another key breaks the digest chain', async (t) => {
  const { a, db, clock } = fixture(t);
  const key = await DeviceKey.fromSeed(randomBytes(32));
  const notary = new AuditNotary(a, key, () => clock.now);
  for (let i = 0; i < 3; i++) {
    a.record({ kind: 'batch.dropped', records: i, reason: 'quota' });
    notary.sign('periodic');
  }
  db.prepare('DELETE FROM audit_digests WHERE seq = 2').run();
  const report = verifyTrail(databaseSource(db), key.publicKey);
  assert.equal(report.ok, false);
  assert.ok(report.failures.some((f) => f.code === 'digest-chain'), JSON.stringify(report.failures));
});

test('sealflow keygen --purpose audit prints a signing key the loader takes; banners skipped, anything else refused', async () => {
  let out = '';
  let err = '';
  const stdout = new Writable({ write: (c: Buffer, _e, cb) => ((out += c.toString()), cb()) });
  const stderr = new Writable({ write: (c: Buffer, _e, cb) => ((err += c.toString()), cb()) });
  assert.equal(await keygen(['--purpose', 'audit'], { stdout, stderr, env: {} }), 0);
  const seed = parseSeedText(`# a banner line\n${out}`);
  assert.ok(seed !== null && seed.length === 32, out);
  assert.match(err, /device signing key/);
  const key = await DeviceKey.fromSeed(seed);
  assert.ok(verifySignature(key.publicKey, 'x', key.sign('x')));
  key.destroy();
  assert.equal(parseSeedText(randomBytes(31).toString('base64')), null);
  assert.equal(parseSeedText(`${out.trim()}!`), null);
});
