/**
 * The README's first command, `npm ci && npm start`, runs the probe on its embedded defaults:
 * this test runs exactly what `npm start` runs (the compiled `bin/sealflow.js run`) on a fresh
 * data directory, sends IPFIX from loopback over UDP (plain socket), TLS (`openssl s_client`
 * with the generated development exporter certificate) and DTLS (a DTLS 1.2 client over the
 * project's addon, same certificate), checks that every record reaches the embedded Fusion
 * stand-in, and that SIGTERM stops the probe with exit 0 within the shutdown deadline. Then,
 * in the same directory and with no flags or SEALFLOW_* variables, as a user would type them,
 * `sealflow spool status`, `spool verify` and `drain --once` find the same data directory and
 * development key and report the quota the probe ran with.
 * The embedded defaults bind the fixed ports 4739/2055/6343/4740/9180 on 127.0.0.1.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { SAMPLE_RECORDS } from '../../src/commands/sample-messages.js';
import { DecodeService } from '../../src/decode/decode-service.js';
import { DEV_EXPORTER_IDENTITY, devFiles } from '../../src/config/embedded-defaults.js';
import { DtlsTestClient } from '../support/dtls-client.js';
import { ensureBuilt, startProbe } from '../support/probe.js';
import { corpora, repoRoot } from '../support/softflowd.js';
import { until } from '../support/udp-harness.js';

const MESSAGES = ['logstash-codec-netflow/ipfix_test_openbsd_pflow_tpl.dat', 'logstash-codec-netflow/ipfix_test_openbsd_pflow_data.dat'].map((f) =>
  readFileSync(path.join(corpora, f)),
);

/** Records the messages decode to (one session), computed with the decoder rather than assumed. */
function expectedRecords(): number {
  const service = new DecodeService();
  let n = 0;
  for (const payload of MESSAGES) {
    n += service.decode({ payload, exporter: '127.0.0.1', exporterPort: 1, transport: 'udp', sessionKey: 'count', identity: null, receivedAtMs: Date.now() }).records.length;
  }
  return n;
}

function sClient(port: number, caFile: string, certFile: string, keyFile: string, payload: Buffer): Promise<number | null> {
  const child = spawn('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-servername', 'localhost', '-CAfile', caFile, '-verify_return_error', '-cert', certFile, '-key', keyFile, '-quiet', '-no_ign_eof', '-nocommands'], { stdio: ['pipe', 'ignore', 'ignore'] });
  child.stdin.end(payload);
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve(code);
    });
  });
}

test('npm start: embedded defaults accept UDP, TLS and DTLS from loopback and deliver to the embedded stand-in; SIGTERM exits 0', { timeout: 240_000 }, async () => {
  ensureBuilt();
  // `npm start` in a directory of the user's: the data directory is ./.sealflow there.
  const cwd = mkdtempSync(path.join(tmpdir(), 'sealflow-start-'));
  const dataDir = path.join(cwd, '.sealflow');
  const probe = await startProbe({ args: [], adminPort: 9180, compiled: true, env: { SEALFLOW_CONFIG: '' }, cwd });
  let code: number | null = null;
  let stopMs = 0;
  let runningQuota = 0;
  try {
    // The banner follows readiness by a moment (the sample message is written first).
    await until(() => probe.output().includes('Development mode:'), 'the start-up banner', 10_000);
    const out = probe.output();
    assert.match(out, /DEVELOPMENT spool key/i, 'the generated dev key is announced loudly');
    assert.match(out, /DEVELOPMENT PKI ONLY/, 'the generated dev PKI is announced loudly');
    assert.match(out, /over UDP: {2}socat -u OPEN:\S+\/samples\/messages\.ipfix UDP:127\.0\.0\.1:4739$/m, 'it says how to send flows');
    const perTransport = expectedRecords();
    assert.ok(perTransport > 0);

    // UDP, from an allowlisted loopback address.
    const udp = createSocket('udp4');
    for (const m of MESSAGES) await new Promise<void>((resolve, reject) => udp.send(m, 4739, '127.0.0.1', (e) => (e ? reject(e) : resolve())));
    udp.close();

    // TLS with the development exporter certificate.
    const pki = devFiles(dataDir).pkiDir;
    const cert = path.join(pki, 'exporters', `${DEV_EXPORTER_IDENTITY}.crt.pem`);
    const key = path.join(pki, 'exporters', `${DEV_EXPORTER_IDENTITY}.key.pem`);
    const ca = path.join(pki, 'ca.crt.pem');
    assert.equal(await sClient(4740, ca, cert, key, Buffer.concat(MESSAGES)), 0, 'openssl s_client');

    // DTLS, one IPFIX message per record (RFC 7011 §10.5).
    const dtls = await DtlsTestClient.connect({ host: '127.0.0.1', port: 4740, certFile: cert, keyFile: key, caFile: ca });
    for (const m of MESSAGES) await dtls.sendAsync(m);
    await dtls.close();

    const want = 3 * perTransport;
    interface Stats {
      fusionSim: { recordsAccepted: number; recordsRejected: number };
      exporters: { transport: string; identity: string | null; records: number }[];
      spool: { quotaBytes: number; walCheckpointer: { checkpoints: number; failures: number } | null } | null;
      decode: { records: number; fusedRecords: number } | null;
    }
    let stats: Stats | null = null;
    await until(async () => {
      stats = (await probe.getJson('/stats')) as Stats;
      return stats.fusionSim.recordsAccepted >= want;
    }, `${want} records at the embedded stand-in`, 60_000);
    const s = stats as unknown as Stats;
    assert.equal(s.fusionSim.recordsAccepted, want);
    assert.equal(s.fusionSim.recordsRejected, 0);
    for (const transport of ['udp', 'tls', 'dtls']) {
      const e = s.exporters.find((x) => x.transport === transport);
      assert.equal(e?.records, perTransport, `${transport} records`);
      if (transport !== 'udp') assert.equal(e.identity, DEV_EXPORTER_IDENTITY);
    }
    // With the default filters (accept all) the IPFIX records take the fused path into the spool.
    assert.equal(s.decode?.fusedRecords, s.decode?.records, `fused path: ${JSON.stringify(s.decode)}`);
    // The compiled build starts the spool's background WAL checkpointer thread (its .js module).
    assert.ok((s.spool?.walCheckpointer?.checkpoints ?? 0) > 0, `background WAL checkpoints ran: ${JSON.stringify(s.spool?.walCheckpointer)}`);
    assert.equal(s.spool?.walCheckpointer?.failures, 0);
    const metrics = await (await fetch(`${probe.adminUrl}/metrics`)).text();
    assert.match(metrics, /^sealflow_/m, 'Prometheus metrics are served');
    assert.match(metrics, /^sealflow_spool_wal_checkpoints_total\{thread="background",result="complete"\} [1-9]\d*/m, 'checkpointer counters are exported');
    assert.match(metrics, /^sealflow_decode_fused_records(_total)? \d+/m, 'fused-path records are exported');

    // The banner's commands, run verbatim by a shell: each sends the sample message, whose records arrive.
    const commands = [...out.matchAll(/^ {2}over (UDP|TLS): {2}(.+)$/gm)].map((m) => ({ transport: String(m[1]), command: String(m[2]) }));
    assert.deepEqual(commands.map((c) => c.transport), ['UDP', 'TLS'], `banner commands:\n${out}`);
    for (const c of commands) {
      const r = spawnSync('sh', ['-c', c.command], { cwd: tmpdir(), encoding: 'utf8', timeout: 20_000 });
      assert.equal(r.status, 0, `${c.transport} command exits 0 by itself: ${c.command}\n${r.stderr}`);
    }
    const withSamples = want + commands.length * SAMPLE_RECORDS;
    await until(async () => ((await probe.getJson('/stats')) as Stats).fusionSim.recordsAccepted >= withSamples, `${withSamples} records with the samples`, 60_000);
    const after = (await probe.getJson('/stats')) as Stats;
    assert.equal(after.fusionSim.recordsAccepted, withSamples);
    assert.equal(after.exporters.find((x) => x.transport === 'tls')?.records, perTransport + SAMPLE_RECORDS, 'the TLS sample, authenticated as the dev exporter');
    runningQuota = s.spool.quotaBytes;
  } finally {
    const started = Date.now();
    code = await probe.stop('SIGTERM', 15_000);
    stopMs = Date.now() - started;
  }
  try {
    assert.equal(code, 0, `exit status after SIGTERM; output:\n${probe.output().slice(-3000)}`);
    assert.ok(stopMs < 10_000, `stopped within the default 10 s deadline (took ${stopMs} ms)`);

    // The commands beside the probe, in the same directory, with no flags and no SEALFLOW_* variables.
    const sealflow = (...args: string[]): { status: number | null; stdout: string; stderr: string } =>
      spawnSync(process.execPath, [path.join(repoRoot, 'bin/sealflow.js'), ...args], { cwd, env: { PATH: process.env.PATH ?? '/usr/bin:/bin' }, encoding: 'utf8' });
    const status = sealflow('spool', 'status', '--json');
    assert.equal(status.status, 0, status.stderr);
    const spool = JSON.parse(status.stdout) as { quotaBytes: number; droppedRecords: number };
    assert.equal(spool.quotaBytes, runningQuota, 'spool status reports the quota the probe ran with');
    assert.equal(spool.quotaBytes, 10 * 1024 ** 3);
    const verify = sealflow('spool', 'verify');
    assert.equal(verify.status, 0, verify.stdout + verify.stderr);
    const drain = sealflow('drain', '--once');
    assert.equal(drain.status, 0, drain.stdout + drain.stderr);
    assert.match(drain.stderr, /EMBEDDED LOCAL FUSION STAND-IN/);
    assert.ok(existsSync(path.join(dataDir, 'dev-kek')));
  } finally {
    rmSync(cwd, { recursive: true, force: true });
  }
});
