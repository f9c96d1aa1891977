/**
 * The development PKI generators (`createDevPki` / `sealflow pki`, and certs/make-dev-pki.sh)
 * make material the TLS listener loads and whose exporter certificates it accepts.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { statSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { PassThrough } from 'node:stream';
import tls from 'node:tls';
import { main as pkiMain } from '../../src/commands/pki.js';
import { TlsListener } from '../../src/ingest/tls/tls-listener.js';
import { createDevPki, type DevPkiPaths } from '../../src/ingest/trust/dev-pki.js';
import { SessionSink, haveTool } from '../support/tls-harness.js';
import { testLogger, until } from '../support/udp-harness.js';
import { corpora } from '../support/corpora.js';

const repoRoot = resolve(import.meta.dirname, '../..');
const TPL = readFileSync(resolve(corpora, 'logstash-codec-netflow/ipfix_test_openbsd_pflow_tpl.dat'));

/** Starts a listener on the PKI, connects as each exporter, sends a template; returns identities seen. */
async function exercise(p: DevPkiPaths): Promise<string[]> {
  const sink = new SessionSink();
  const listener = new TlsListener(
    {
      host: '127.0.0.1',
      port: 0,
      trust: { caFile: p.caFile, crlFiles: [p.crlFile], certFile: p.collectorCertFile, keyFile: p.collectorKeyFile, exporters: p.exporters.map((e) => ({ name: e.name })) },
      watchFiles: false,
    },
    { sink, logger: testLogger().logger },
  );
  await listener.start();
  try {
    for (const e of p.exporters) {
      const s = tls.connect({
        host: '127.0.0.1',
        port: listener.address().port,
        servername: 'localhost',
        ca: readFileSync(p.caFile),
        cert: readFileSync(e.certFile),
        key: readFileSync(e.keyFile),
      });
      await new Promise<void>((res, rej) => s.once('secureConnect', res).once('error', rej));
      s.end(TPL);
      const n = sink.packets.length;
      await until(() => sink.packets.length === n + 1, `message from ${e.name}`);
    }
    return sink.packets.map((pk) => pk.identity ?? '');
  } finally {
    await listener.close();
  }
}

describe('development PKI', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'sealflow-devpki-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test('createDevPki: listener loads it and accepts each exporter; keys are 0600', async () => {
    const p = await createDevPki(join(dir, 'api'), { exporters: ['r1.lab.test', 'R2.lab.test'] });
    assert.deepEqual(p.exporters.map((e) => e.name), ['r1.lab.test', 'r2.lab.test']);
    for (const f of [p.collectorKeyFile, ...p.exporters.map((e) => e.keyFile)]) assert.equal(statSync(f).mode & 0o777, 0o600, f);
    assert.deepEqual(await exercise(p), ['r1.lab.test', 'r2.lab.test']);
  });

  test('sealflow pki: --help, missing --out, bad --days, and a real run', async () => {
    const run = async (argv: string[]): Promise<{ code: number; out: string; err: string }> => {
      const stdout = new PassThrough();
      const stderr = new PassThrough();
      let out = '';
      let err = '';
      stdout.on('data', (d: Buffer) => (out += d.toString()));
      stderr.on('data', (d: Buffer) => (err += d.toString()));
      const code = await pkiMain(argv, { stdout, stderr, env: {} });
      return { code, out, err };
    };
    assert.equal((await run(['--help'])).code, 0);
    assert.equal((await run([])).code, 64);
    assert.equal((await run(['--out', join(dir, 'x'), '--days', 'soon'])).code, 64);
    assert.equal((await run(['--out', join(dir, 'x'), '--exporter', 'bad name'])).code, 64);
    const r = await run(['--out', join(dir, 'cli'), '--exporter', 'edge1.test']);
    assert.equal(r.code, 0, r.err);
    assert.match(r.err, /DEVELOPMENT PKI ONLY/);
    assert.match(r.out, /identities:\n {6}- name: edge1\.test/);
    assert.ok(statSync(join(dir, 'cli', 'exporters', 'edge1.test.crt.pem')).isFile());
  });

  test('certs/make-dev-pki.sh makes the same layout, accepted by the listener', async (t) => {
    if (!haveTool('openssl')) {
      if (process.env.CI !== undefined) assert.fail('openssl is required in CI');
      t.skip('openssl not installed');
      return;
    }
    const out = join(dir, 'sh');
    const r = spawnSync('sh', [resolve(repoRoot, 'certs/make-dev-pki.sh'), out, 'a.lab.test', 'b.lab.test'], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /DEVELOPMENT PKI ONLY/);
    const p: DevPkiPaths = {
      dir: out,
      caFile: join(out, 'ca.crt.pem'),
      crlFile: join(out, 'ca.crl.pem'),
      collectorCertFile: join(out, 'collector.crt.pem'),
      collectorKeyFile: join(out, 'collector.key.pem'),
      exporters: ['a.lab.test', 'b.lab.test'].map((name) => ({ name, certFile: join(out, 'exporters', `${name}.crt.pem`), keyFile: join(out, 'exporters', `${name}.key.pem`) })),
    };
    for (const f of [p.collectorKeyFile, ...p.exporters.map((e) => e.keyFile)]) assert.equal(statSync(f).mode & 0o777, 0o600, f);
    assert.deepEqual(await exercise(p), ['a.lab.test', 'b.lab.test']);
    assert.equal(spawnSync('sh', [resolve(repoRoot, 'certs/make-dev-pki.sh'), join(dir, 'bad'), 'bad name']).status, 64);
  });
});
