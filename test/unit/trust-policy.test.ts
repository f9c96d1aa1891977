import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { ExporterPolicy, presentedIdentities, canonicalName } from '../../src/ingest/trust/exporter-policy.js';
import { ConfigError } from '../../src/flow/errors.js';
import { createTestPki, type TestPki, type TestCertificate } from '../support/test-pki.js';

function x509(c: TestCertificate): X509Certificate {
  return new X509Certificate(readFileSync(c.certFile));
}

describe('ExporterPolicy', () => {
  let pki: TestPki;
  before(async () => {
    pki = await createTestPki();
  });
  after(async () => {
    await pki.cleanup();
  });

  const policy = (): ExporterPolicy =>
    ExporterPolicy.fromSettings(
      [
        { name: 'Exporter1.TEST.', sources: ['127.0.0.1/32', '2001:db8::/32'], observationDomainIds: [1, 6] },
        { name: 'exporter2.test' },
        { name: 'cnonly.test' },
        { name: 'serveronly.test' },
        { name: 'expired.test' },
        { name: 'future.test' },
      ],
      'listeners.tls.exporters',
    );

  test('presented identities: DNS-IDs, CN only without dNSName SANs', () => {
    assert.deepEqual(presentedIdentities(x509(pki.exporters.valid)), ['exporter1.test']);
    assert.deepEqual(presentedIdentities(x509(pki.exporters.cnOnly)), ['cnonly.test']);
    // The collector has SANs (DNS:localhost, IPs): only the dNSName counts.
    assert.deepEqual(presentedIdentities(x509(pki.collector)), ['localhost']);
    assert.equal(canonicalName('A.B.'), 'a.b');
  });

  test('accepts an allowed name from a bound source, case-insensitively, IPv4-mapped unmapped', () => {
    const p = policy();
    assert.deepEqual(p.checkExporter(x509(pki.exporters.valid), '127.0.0.1'), { ok: true, identity: 'exporter1.test' });
    assert.deepEqual(p.checkExporter(x509(pki.exporters.valid), '::ffff:127.0.0.1'), { ok: true, identity: 'exporter1.test' });
    assert.deepEqual(p.checkExporter(x509(pki.exporters.valid2), '198.51.100.7'), { ok: true, identity: 'exporter2.test' });
    assert.deepEqual(p.checkExporter(x509(pki.exporters.cnOnly), '127.0.0.1'), { ok: true, identity: 'cnonly.test' });
  });

  test('rejects with the right reason', () => {
    const p = policy();
    assert.deepEqual(p.checkExporter(null, '127.0.0.1'), { ok: false, reason: 'no_certificate' });
    assert.deepEqual(p.checkExporter(x509(pki.exporters.valid), '127.0.0.2'), { ok: false, reason: 'source_not_bound' });
    assert.deepEqual(p.checkExporter(x509(pki.exporters.wrongName), '127.0.0.1'), { ok: false, reason: 'name_not_allowed' });
    assert.deepEqual(p.checkExporter(x509(pki.exporters.expired), '127.0.0.1'), { ok: false, reason: 'expired' });
    assert.deepEqual(p.checkExporter(x509(pki.exporters.notYetValid), '127.0.0.1'), { ok: false, reason: 'not_yet_valid' });
    assert.deepEqual(p.checkExporter(x509(pki.exporters.serverOnly), '127.0.0.1'), { ok: false, reason: 'bad_certificate' });
    // The collector certificate is serverAuth only: never an exporter, whatever its name.
    assert.deepEqual(p.checkExporter(x509(pki.collector), '127.0.0.1'), { ok: false, reason: 'bad_certificate' });
  });

  test('CN is ignored when the certificate has a dNSName SAN', async () => {
    const c = await pki.issueExporter('san.test', { commonName: 'exporter2.test', dnsNames: ['san.test'] });
    assert.deepEqual(policy().checkExporter(x509(c), '127.0.0.1'), { ok: false, reason: 'name_not_allowed' });
  });

  test('a wildcard in a certificate matches nothing', async () => {
    const c = await pki.issueExporter('wild', { commonName: 'wild', dnsNames: ['*.test'] });
    assert.deepEqual(policy().checkExporter(x509(c), '127.0.0.1'), { ok: false, reason: 'name_not_allowed' });
  });

  test('observation domain binding', () => {
    const p = policy();
    assert.equal(p.domainAllowed('exporter1.test', 6), true);
    assert.equal(p.domainAllowed('exporter1.test', 7), false);
    assert.equal(p.domainAllowed('exporter2.test', 123456), true);
    assert.equal(p.domainAllowed('nobody.test', 1), false);
  });

  test('bad allowlists are ConfigErrors naming the setting', () => {
    const cases: [Parameters<typeof ExporterPolicy.fromSettings>[0], string][] = [
      [[], 'listeners.tls.exporters'],
      [[{ name: '*.example.net' }], 'listeners.tls.exporters[0].name'],
      [[{ name: 'ok.test' }, { name: 'bad name' }], 'listeners.tls.exporters[1].name'],
      [[{ name: 'a.test' }, { name: 'A.test' }], 'listeners.tls.exporters[1].name'],
      [[{ name: 'a.test', sources: [] }], 'listeners.tls.exporters[0].sources'],
      [[{ name: 'a.test', sources: ['10.0.0.0/8', '10.0.0.0/33'] }], 'listeners.tls.exporters[0].sources[1]'],
      [[{ name: 'a.test', observationDomainIds: [] }], 'listeners.tls.exporters[0].observationDomainIds'],
      [[{ name: 'a.test', observationDomainIds: [1, -1] }], 'listeners.tls.exporters[0].observationDomainIds[1]'],
      [[{ name: 'a.test', observationDomainIds: [2 ** 32] }], 'listeners.tls.exporters[0].observationDomainIds[0]'],
      // A misspelt binding must not be silently ignored.
      [[{ name: 'a.test', observationDomains: [1] } as unknown as { name: string }], 'listeners.tls.exporters[0].observationDomains'],
    ];
    for (const [settings, setting] of cases) {
      assert.throws(
        () => ExporterPolicy.fromSettings(settings, 'listeners.tls.exporters'),
        (err: unknown) => err instanceof ConfigError && err.setting === setting && err.message.startsWith(setting),
        setting,
      );
    }
  });
});
