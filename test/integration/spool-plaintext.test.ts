import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { deflateRawSync } from 'node:zlib';
import { pino } from 'pino';
import { Spool } from '../../src/spool/spool.js';
import { encodeBatch } from '../../src/batch/encoder.js';
import { CANARY, canaryRecords, kekBase64, repoRoot, runSealflow, tempDir, testKek } from '../support/spool-fixtures.js';
import { appendRecords } from '../support/spool-records.js';

const KEK = testKek(21);
const BATCH = 400;

/** Every encoding in which a canary flow could leak. */
function needles(): { name: string; bytes: Buffer }[] {
  const out: { name: string; bytes: Buffer }[] = [];
  const text = (name: string, s: string): void => {
    out.push({ name: `${name} (utf8)`, bytes: Buffer.from(s, 'utf8') });
    out.push({ name: `${name} (utf16le)`, bytes: Buffer.from(s, 'utf16le') });
  };
  text('IPv4 dotted', CANARY.srcV4Text);
  text('IPv6 text', CANARY.dstV6Text);
  text('exporter name', CANARY.exporter);
  text('address:port', `${CANARY.srcV4Text}:${CANARY.srcPort}`);
  const be = Buffer.alloc(4);
  be.writeUInt32BE(CANARY.srcV4);
  out.push({ name: 'IPv4 4-byte BE', bytes: be });
  out.push({ name: 'IPv4 4-byte LE', bytes: Buffer.from(be).reverse() });
  out.push({ name: 'IPv6 16-byte', bytes: Buffer.from(CANARY.dstV6) });
  const ports = Buffer.alloc(4);
  ports.writeUInt16BE(CANARY.srcPort, 0);
  ports.writeUInt16BE(CANARY.dstPort, 2);
  out.push({ name: 'ports BE in context', bytes: ports });
  // The serialized and the compressed plaintext batch, as the spool would have written them unsealed.
  const plain = Buffer.from(encodeBatch(canaryRecords(BATCH)));
  const at = plain.indexOf(be);
  out.push({ name: 'serialized record around the address (ports in context)', bytes: plain.subarray(at - 6, at + 14) });
  const deflated = deflateRawSync(plain, { level: 1 });
  for (const off of [0, 24, 48]) out.push({ name: `deflated batch @${off}`, bytes: deflated.subarray(off, off + 16) });
  // The key-encryption key never touches the spool's disk (nor the logs), raw or as its base64 text.
  out.push({ name: 'KEK raw', bytes: Buffer.from(KEK) });
  out.push({ name: 'KEK base64 (utf8)', bytes: Buffer.from(kekBase64(KEK), 'utf8') });
  return out;
}

const NEEDLES = needles();

function filesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...filesUnder(p));
    else out.push(p);
  }
  return out;
}

/** Asserts that no file under `dir` and no captured text holds any canary encoding; returns the files scanned. */
function assertNoCanary(where: string, dir: string, texts: readonly string[] = []): string[] {
  const files = filesUnder(dir);
  for (const f of files) {
    const data = readFileSync(f);
    for (const n of NEEDLES) assert.equal(data.indexOf(n.bytes), -1, `${where}: ${n.name} found in ${f}`);
  }
  for (const [i, t] of texts.entries()) {
    const data = Buffer.from(t, 'utf8');
    for (const n of NEEDLES) assert.equal(data.indexOf(n.bytes), -1, `${where}: ${n.name} found in log ${i}`);
  }
  return files;
}

function captureLogger(): { logger: pino.Logger; lines: string[] } {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      lines.push(chunk.toString('utf8'));
      cb();
    },
  });
  return { logger: pino({ level: 'trace' }, stream), lines };
}

describe('no plaintext at rest', () => {
  test('the needles are real: they are found in an unsealed batch (control)', () => {
    const plain = Buffer.concat([Buffer.from(encodeBatch(canaryRecords(BATCH))), deflateRawSync(encodeBatch(canaryRecords(BATCH)), { level: 1 })]);
    const binary = NEEDLES.filter((n) => !n.name.includes('utf') && !n.name.includes('BE in context') && !n.name.includes('LE') && !n.name.startsWith('KEK'));
    for (const n of binary) assert.notEqual(plain.indexOf(n.bytes), -1, n.name);
  });

  test('after normal operation, quota eviction, out-of-order acks, decoder state and VACUUM', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const { logger, lines } = captureLogger();
      const spool = await Spool.open({ dir, kek: KEK, quotaBytes: 60_000, logger, checkpointIntervalMs: 3_600_000 });
      for (let i = 0; i < 40; i++) appendRecords(spool.writer, canaryRecords(BATCH));
      const st = spool.inspector.status();
      assert.ok(st.evictedBatches > 0, 'quota eviction did not happen');
      const leased = spool.reader.lease(4);
      spool.reader.ack(leased[2]!.id);
      spool.reader.ack(leased[0]!.id);
      spool.reader.park(leased[1]!.id, 'test');
      spool.decoderState.save(Buffer.from(`template from ${CANARY.srcV4Text} ${CANARY.exporter}`));
      // While open, with the WAL full of fresh pages (no checkpoint yet).
      const files = assertNoCanary('open, WAL not checkpointed', dir, lines);
      assert.ok(files.some((f) => f.endsWith('spool.db-wal')), `no WAL to scan: ${files.join(', ')}`);
      spool.inspector.vacuum();
      assertNoCanary('after VACUUM', dir, lines);
      spool.close();
      assertNoCanary('after close', dir, lines);
      // The export command prints the canaries (it decrypts) but writes nothing to disk.
      const r = runSealflow(['spool', 'export', '--format', 'ndjson', '--spool-dir', dir], { SEALFLOW_SPOOL_KEK: kekBase64(KEK) });
      assert.equal(r.code, 0, r.stderr);
      assert.ok(r.stdout.includes(CANARY.srcV4Text) && r.stdout.includes(CANARY.dstV6Text));
      assertNoCanary('after export', dir, [r.stderr]);
      for (const sub of ['status', 'verify']) {
        const out = runSealflow(['spool', sub, '--spool-dir', dir], { SEALFLOW_SPOOL_KEK: kekBase64(KEK) });
        assertNoCanary(`spool ${sub} output`, dir, [out.stdout, out.stderr]);
      }
    } finally {
      cleanup();
    }
  });

  test('after SIGKILL in the middle of writing', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const child = spawn(process.execPath, ['--import', 'tsx', join(repoRoot, 'test/support/spool-child.ts'), '--dir', dir, '--canary', '--ack-every', '3', '--batch-records', String(BATCH)], {
        cwd: repoRoot,
        env: { PATH: process.env.PATH ?? '', SEALFLOW_SPOOL_KEK: kekBase64(KEK) },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let out = '';
      let err = '';
      child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
      const committed = new Promise<void>((resolve) => {
        child.stdout.setEncoding('utf8').on('data', (d: string) => {
          out += d;
          if ((out.match(/^committed /gm) ?? []).length >= 20) resolve();
        });
      });
      const guard = setTimeout(() => child.kill('SIGKILL'), 30_000);
      await committed;
      child.kill('SIGKILL');
      await new Promise((resolve) => child.once('close', resolve));
      clearTimeout(guard);
      assertNoCanary('after SIGKILL', dir, [out, err]);
      const spool = await Spool.open({ dir, kek: KEK });
      assert.equal(spool.inspector.verify().ok, true);
      spool.close();
      assertNoCanary('after restart', dir);
    } finally {
      cleanup();
    }
  });
});
