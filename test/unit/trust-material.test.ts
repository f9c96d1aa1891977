import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crlTimes, loadTrustMaterial, type TrustFiles } from '../../src/ingest/trust/trust-material.js';
import { ExporterTrust } from '../../src/ingest/trust/exporter-trust.js';
import { ConfigError } from '../../src/flow/errors.js';
import { createTestPki, type TestPki } from '../support/test-pki.js';

describe('loadTrustMaterial', () => {
  let pki: TestPki;
  let dir: string;
  let good: TrustFiles;
  before(async () => {
    pki = await createTestPki();
    dir = await mkdtemp(join(tmpdir(), 'sealflow-trust-'));
    good = { caFile: pki.caFile, crlFiles: pki.crlFiles, certFile: pki.collector.certFile, keyFile: pki.collector.keyFile };
  });
  after(async () => {
    await pki.cleanup();
    await rm(dir, { recursive: true, force: true });
  });

  function expectError(files: TrustFiles, setting: string, fragment: RegExp): void {
    assert.throws(
      () => loadTrustMaterial(files, 'listeners.tls'),
      (err: unknown) => {
        assert.ok(err instanceof ConfigError, String(err));
        assert.equal(err.setting, setting);
        assert.equal(err.code, 'ERR_CONFIG_CERT');
        assert.match(err.message, fragment);
        // Never key material (a PEM body line) in the message.
        assert.doesNotMatch(err.message, /-----\n[A-Za-z0-9+/]{16}/);
        return true;
      },
    );
  }

  test('loads a good set', () => {
    const m = loadTrustMaterial(good, 'listeners.tls');
    assert.equal(m.caCertificates.length, 1);
    assert.equal(m.crlPems.length, 2);
    assert.match(m.serverCertificate.subject, /CN=localhost/);
    assert.deepEqual(m.files, [good.caFile, ...pki.crlFiles, good.certFile, good.keyFile]);
  });

  test('every bad file is a ConfigError naming the setting and the problem', async () => {
    const notPem = join(dir, 'not.pem');
    await writeFile(notPem, 'hello\n');
    const wrongKey = pki.exporters.valid.keyFile;
    const encrypted = join(dir, 'enc.key.pem');
    await writeFile(encrypted, '-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n');
    const badCrl = join(dir, 'bad.crl.pem');
    await writeFile(badCrl, '-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n');
    expectError({ ...good, caFile: join(dir, 'missing.pem') }, 'listeners.tls.caFile', /file not found/);
    expectError({ ...good, caFile: notPem }, 'listeners.tls.caFile', /not a PEM certificate/);
    expectError({ ...good, caFile: pki.exporters.valid.certFile }, 'listeners.tls.caFile', /not a CA certificate/);
    expectError({ ...good, crlFiles: [pki.crlFiles[0]!, notPem] }, 'listeners.tls.crlFiles[1]', /not a PEM CRL/);
    expectError({ ...good, crlFiles: [badCrl] }, 'listeners.tls.crlFiles[0]', /cannot parse the CRL/);
    expectError({ ...good, certFile: dir }, 'listeners.tls.certFile', /is a directory/);
    expectError({ ...good, certFile: pki.exporters.expired.certFile, keyFile: pki.exporters.expired.keyFile }, 'listeners.tls.certFile', /expired/);
    expectError({ ...good, certFile: pki.exporters.notYetValid.certFile, keyFile: pki.exporters.notYetValid.keyFile }, 'listeners.tls.certFile', /not valid before/);
    expectError({ ...good, keyFile: notPem }, 'listeners.tls.keyFile', /not a PEM private key/);
    expectError({ ...good, keyFile: encrypted }, 'listeners.tls.keyFile', /passphrase/);
    expectError({ ...good, keyFile: wrongKey }, 'listeners.tls.keyFile', /does not match listeners\.tls\.certFile/);
    expectError({ ...good, keyFile: '' }, 'listeners.tls.keyFile', /no file configured/);
  });

  test('CRL validity: thisUpdate/nextUpdate read from the DER; expired or future CRLs refused', async () => {
    const DAY_MS = 86_400_000;
    const times = crlTimes(await readFile(pki.crlFiles[0]!, 'latin1'));
    assert.ok(times !== null);
    // test-pki CRLs are issued now for 30 days (OpenSSL writes whole seconds).
    assert.ok(Math.abs(times.thisUpdateMs - Date.now()) < 120_000, `thisUpdate ${times.thisUpdateMs}`);
    assert.ok(times.nextUpdateMs !== null && Math.abs(times.nextUpdateMs - times.thisUpdateMs - 30 * DAY_MS) < 1000);
    assert.throws(
      () => loadTrustMaterial(good, 'listeners.tls', Date.now() + 31 * DAY_MS),
      (e: unknown) => e instanceof ConfigError && e.setting === 'listeners.tls.crlFiles[0]' && e.message.includes('CRL expired'),
    );
    assert.throws(
      () => loadTrustMaterial(good, 'listeners.tls', Date.now() - 2 * 3_600_000),
      (e: unknown) => e instanceof ConfigError && e.setting === 'listeners.tls.crlFiles[0]' && e.message.includes('not valid before'),
    );
    assert.equal(crlTimes('-----BEGIN X509 CRL-----\nMAA=\n-----END X509 CRL-----'), null);
  });

  test('a truncated certificate is rejected', async () => {
    const text = await readFile(pki.caFile, 'latin1');
    const lines = text.split('\n');
    const cut = join(dir, 'cut.pem');
    await writeFile(cut, [...lines.slice(0, 4), ...lines.slice(-2)].join('\n'));
    expectError({ ...good, caFile: cut }, 'listeners.tls.caFile', /not a valid X\.509 certificate/);
  });

  test('ExporterTrust.load checks the allowlist and the files', () => {
    const t = ExporterTrust.load({ ...good, exporters: [{ name: 'exporter1.test' }] }, 'listeners.dtls');
    assert.deepEqual(t.policy.names(), ['exporter1.test']);
    assert.throws(() => ExporterTrust.load({ ...good, exporters: [] }, 'listeners.dtls'), (e: unknown) => e instanceof ConfigError && e.setting === 'listeners.dtls.identities');
  });
});
