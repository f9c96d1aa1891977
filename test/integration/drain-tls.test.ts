/**
 * Certificate failures are refused, not ignored: an unknown CA, a certificate for another host
 * name and an SPKI pin mismatch all stop the drain before any flow data is sent, are counted,
 * and leave the spool intact. The matching pin works.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { until } from '../support/udp-harness.js';
import { createHash } from 'node:crypto';
import { drainFor, fillSpool, openTempSpool, pemPair, startTestSim, testPki } from '../support/drain-fixtures.js';
import { spkiSha256 } from '../../src/drain/fusion-http.js';
import { X509Certificate } from 'node:crypto';

const half = (): number => 0.5;

async function refusedWith(serverPem: { certPem: string; keyPem: string } | null, tls: Record<string, unknown>, expect: (s: ReturnType<ReturnType<typeof drainFor>['stats']>) => void): Promise<void> {
  const env = await startTestSim(serverPem ?? {});
  const t = await openTempSpool();
  try {
    fillSpool(t.spool, 2, 10);
    const drain = drainFor(env, t.spool.reader, { concurrency: 1, tls }, { random: half });
    const res = await drain.drainOnce({ maxConsecutiveFailures: 3 });
    assert.equal(res.complete, false, 'gave up');
    assert.equal(env.sim.stats.authRequests, 0, 'no request reached the server');
    assert.equal(env.sim.stats.uploadRequests, 0);
    assert.equal(t.spool.inspector.status().batches, 2, 'spool intact');
    assert.equal(res.stats.deliveredRecords, 0);
    expect(res.stats);
  } finally {
    await t.cleanup();
    await env.cleanup();
  }
}

test('unknown CA: refused (the drain trusts only Node roots + the configured CA)', async () => {
  const { pki } = await testPki();
  const other = await pki.otherCa.issue({ fileName: 'fusion-other-ca', commonName: 'localhost', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'], usage: 'server' });
  await refusedWith(pemPair(other), {}, (s) => {
    assert.ok(s.auth.failures.tls >= 1, JSON.stringify(s.auth.failures));
    assert.match(s.lastError ?? '', /certificate|CERT|issuer/i);
  });
});

test('wrong host name: a valid certificate for another name is refused', async () => {
  const { pki } = await testPki();
  const wrong = await pki.ca.issue({ fileName: 'fusion-wrong-name', commonName: 'elsewhere.test', dnsNames: ['elsewhere.test'], usage: 'server' });
  await refusedWith(pemPair(wrong), {}, (s) => {
    assert.ok(s.auth.failures.tls >= 1, JSON.stringify(s.auth.failures));
    assert.match(s.lastError ?? '', /ERR_TLS_CERT_ALTNAME_INVALID|altnames|Hostname/i);
  });
});

test('SPKI pin mismatch: refused and counted', async () => {
  const wrongPin = createHash('sha256').update('not the key').digest('base64');
  await refusedWith(null, { pinSha256: [wrongPin] }, (s) => {
    assert.ok(s.auth.failures.pin >= 1, JSON.stringify(s.auth.failures));
    assert.ok(s.tlsPinMismatches >= 1);
  });
});

test('matching SPKI pin (and a CA file): delivered', async () => {
  const env = await startTestSim();
  const t = await openTempSpool();
  try {
    const { pki } = await testPki();
    const pin = spkiSha256(new X509Certificate(env.server.certPem).raw);
    assert.equal(pin, createHash('sha256').update(new X509Certificate(readFileSync(pki.collector.certFile)).publicKey.export({ type: 'spki', format: 'der' })).digest('base64'));
    fillSpool(t.spool, 2, 10);
    const drain = drainFor(env, t.spool.reader, { tls: { caPem: null, caFile: pki.caFile, pinSha256: [pin, createHash('sha256').update('backup').digest('base64')] } }, { random: half });
    const res = await drain.drainOnce();
    assert.equal(res.complete, true);
    assert.equal(env.sim.records.length, 20);
    assert.equal(res.stats.tlsPinMismatches, 0);
  } finally {
    await t.cleanup();
    await env.cleanup();
  }
});

test('an untrusted Fusion certificate names drain.fusion.caFile; the CA file is re-read on reload (SIGHUP) and delivery resumes at once', async () => {
  const env = await startTestSim();
  const t = await openTempSpool();
  const dir = mkdtempSync(path.join(tmpdir(), 'sealflow-cafile-'));
  const caFile = path.join(dir, 'fusion-ca.pem');
  try {
    const { pki } = await testPki();
    // The file first holds another CA's certificate: the stand-in's chain is not trusted.
    copyFileSync(pki.otherCa.certFile, caFile);
    fillSpool(t.spool, 2, 10);
    // Backoff of a minute: only the reload can make the drain deliver within the test's wait.
    const drain = drainFor(env, t.spool.reader, { uploadWorkers: 1, tls: { caPem: null, caFile }, backoff: { baseMs: 60_000, capMs: 60_000 }, auth: { backoff: { baseMs: 60_000, capMs: 60_000 } } }, { random: half });
    drain.start();
    try {
      await until(() => drain.stats().lastError !== null, 'a failed attempt', 10_000);
      const err = drain.stats().lastError ?? '';
      assert.match(err, /drain\.fusion\.caFile/, err);
      assert.match(err, /UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT|SELF_SIGNED/, err);
      assert.equal(env.sim.stats.uploadRequests, 0);

      writeFileSync(caFile, 'not a certificate\n');
      assert.throws(() => drain.reloadCa(caFile), /drain\.fusion\.caFile/);

      copyFileSync(pki.caFile, caFile);
      drain.reloadCa(caFile);
      await until(() => drain.stats().deliveredRecords === 20, 'delivery after the reload', 10_000);
      assert.equal(env.sim.records.length, 20);
    } finally {
      await drain.close(1000);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
    await t.cleanup();
    await env.cleanup();
  }
});
