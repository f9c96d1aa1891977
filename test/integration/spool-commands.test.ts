import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { toFusionRecord } from '../../src/flow/fusion-record.js';
import { Spool } from '../../src/spool/spool.js';
import { parseKekText } from '../../src/spool/kek-source.js';
import { edgeRecords, ipv4Records, kekBase64, runSealflow, tempDir } from '../support/spool-fixtures.js';
import { appendRecords } from '../support/spool-records.js';
import { stringify } from 'yaml';

describe('spool commands (child processes)', () => {
  test('keygen prints a fresh 32-byte base64 KEK on stdout and advice on stderr', () => {
    const a = runSealflow(['keygen']);
    const b = runSealflow(['keygen']);
    assert.equal(a.code, 0);
    assert.match(a.stdout, /^[A-Za-z0-9+/]{43}=\n$/);
    assert.notEqual(parseKekText(a.stdout), null);
    assert.notEqual(a.stdout, b.stdout);
    assert.match(a.stderr, /SEALFLOW_SPOOL_KEK_FILE/);
    assert.equal(a.stderr.includes(a.stdout.trim()), false);
    assert.equal(runSealflow(['keygen', '--bogus']).code, 64);
    assert.equal(runSealflow(['keygen', '--help']).code, 0);
  });

  test('a generated key works end to end: status, verify, export (exact NDJSON), usage errors', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const kekText = runSealflow(['keygen']).stdout.trim();
      const kek = parseKekText(kekText)!;
      const records = [...ipv4Records(300, 5), ...edgeRecords()];
      const spool = await Spool.open({ dir, kek });
      appendRecords(spool.writer, records.slice(0, 100));
      appendRecords(spool.writer, records.slice(100));
      spool.reader.park(1, 'rejected: 400 bad record');
      spool.close();
      const env = { SEALFLOW_SPOOL_KEK: kekText };

      const status = runSealflow(['spool', 'status', '--spool-dir', dir], env);
      assert.equal(status.code, 0, status.stderr);
      assert.match(status.stdout, /batches +2 \(303 records\)/);
      assert.match(status.stdout, /parked +1 batches, 100 records \(rejected: 400 bad record: 1\)/);
      const json = JSON.parse(runSealflow(['spool', 'status', '--json', '--spool-dir', dir], env).stdout) as { batches: number; records: number; epochs: number };
      assert.deepEqual([json.batches, json.records, json.epochs], [2, 303, 1]);
      // Locating the spool like the configuration does: spool.dir, else <dataDir>/spool.
      const parent = dirname(dir);
      const asData = join(parent, `data-${basename(dir)}`);
      mkdirSync(asData);
      renameSync(dir, join(asData, 'spool'));
      try {
        for (const [args, extra] of [
          [['--data-dir', asData], {}],
          [['--spool-dir', join(asData, 'spool')], {}],
          [[], { SEALFLOW_DATA_DIR: asData }],
          [[], { SEALFLOW_SPOOL__DIR: join(asData, 'spool') }],
        ] as const) {
          const r = runSealflow(['spool', 'status', '--json', ...args], { ...env, ...extra });
          assert.equal(r.code, 0, `${args.join(' ')} ${JSON.stringify(extra)}: ${r.stderr}`);
          assert.equal((JSON.parse(r.stdout) as { records: number }).records, 303);
        }
        assert.equal(runSealflow(['spool', 'status', '--data-dir', join(asData, 'spool')], env).code, 66);
      } finally {
        renameSync(join(asData, 'spool'), dir);
        rmSync(asData, { recursive: true });
      }

      const verify = runSealflow(['spool', 'verify', '--json', '--spool-dir', dir], env);
      assert.equal(verify.code, 0, verify.stdout);
      const report = JSON.parse(verify.stdout) as { ok: boolean; verified: number; records: number; integrityCheck: string };
      assert.deepEqual([report.ok, report.verified, report.records, report.integrityCheck], [true, 2, 303, 'ok']);

      const exp = runSealflow(['spool', 'export', '--format', 'ndjson', '--spool-dir', dir], env);
      assert.equal(exp.code, 0, exp.stderr);
      const want = records.map((r) => JSON.stringify(toFusionRecord(r)));
      assert.deepEqual(exp.stdout.trimEnd().split('\n'), want);
      assert.match(exp.stdout, /"bits":"147573952589676412920"/); // (2^64 - 1) × 8, exact
      assert.match(exp.stderr, /303 records/);

      assert.equal(runSealflow(['spool', 'export', '--spool-dir', dir], env).code, 64);
      assert.equal(runSealflow(['spool', 'frobnicate', '--spool-dir', dir], env).code, 64);
      assert.equal(runSealflow(['spool', '--help']).code, 0);
      assert.equal(runSealflow(['rekey', '--help']).code, 0);
      const noNew = runSealflow(['rekey', '--spool-dir', dir], env);
      assert.equal(noNew.code, 78);
      assert.match(noNew.stderr, /SEALFLOW_SPOOL_NEW_KEK/);
      assert.equal(kekBase64(kek), kekText);
    } finally {
      cleanup();
    }
  });
  test('spool, rekey and drain read the configuration `run` reads: --config or SEALFLOW_CONFIG (spool.dir, quota, key file), the development key with its banner line', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const kek = new Uint8Array(randomBytes(32));
      // The development key as `npm start` writes it: a warning line, then the key.
      const devKek = join(dir, 'dev-kek');
      writeFileSync(devKek, `# DEVELOPMENT SPOOL KEY generated by \`sealflow run\` (embedded defaults). NOT FOR PRODUCTION\n${kekBase64(kek)}\n`, { mode: 0o600 });
      const spoolDir = join(dir, 'elsewhere');
      const spool = await Spool.open({ dir: spoolDir, kek });
      appendRecords(spool.writer, ipv4Records(10, 1));
      spool.close();
      const records = (r: { stdout: string }): number => (JSON.parse(r.stdout) as { records: number }).records;

      const viaEnv = runSealflow(['spool', 'status', '--json', '--spool-dir', spoolDir], { SEALFLOW_SPOOL_KEK_FILE: devKek });
      assert.equal(viaEnv.code, 0, `SEALFLOW_SPOOL_KEK_FILE at the development key: ${viaEnv.stderr}`);
      assert.equal(records(viaEnv), 10);

      const quota = 2 * 1024 ** 3;
      const config = join(dir, 'sealflow.yaml');
      writeFileSync(config, stringify({ spool: { dir: spoolDir, quotaBytes: quota, kek: { file: devKek } } }));
      for (const [args, env] of [
        [['--config', config], {}],
        [[], { SEALFLOW_CONFIG: config }],
      ] as const) {
        const r = runSealflow(['spool', 'status', '--json', ...args], env);
        assert.equal(r.code, 0, `${args.join(' ')} ${JSON.stringify(env)}: ${r.stderr}`);
        assert.equal(records(r), 10);
        assert.equal((JSON.parse(r.stdout) as { quotaBytes: number }).quotaBytes, quota, 'the configured quota, as `run` uses it');
      }
      assert.equal(runSealflow(['spool', 'verify', '--config', config]).code, 0);
      // The configuration needs no Fusion key to inspect the spool; draining does.
      const drain = runSealflow(['drain', '--once', '--config', config]);
      assert.equal(drain.code, 78, drain.stderr);
      assert.match(drain.stderr, /drain\.fusion\.netosecret/);

      const newKek = join(dir, 'new.kek');
      writeFileSync(newKek, `${kekBase64(new Uint8Array(randomBytes(32)))}\n`, { mode: 0o600 });
      const rekey = runSealflow(['rekey', '--config', config, '--new-kek-file', newKek]);
      assert.equal(rekey.code, 0, rekey.stderr);
      assert.equal(runSealflow(['spool', 'status', '--config', config]).code, 78, 'the old key no longer opens the spool');
      const after = runSealflow(['spool', 'status', '--json', '--config', config], { SEALFLOW_SPOOL_KEK_FILE: newKek });
      assert.equal(after.code, 0, after.stderr);
      assert.equal(records(after), 10);
      const none = runSealflow(['spool', 'status', '--config', config, '--spool-dir', join(dir, 'none')]);
      assert.equal(none.code, 66, none.stderr);
      assert.match(none.stderr, /no spool at .*none/);
    } finally {
      cleanup();
    }
  });
});
