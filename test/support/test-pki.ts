/**
 * A throwaway PKI for tests (TLS, DTLS, drain): created in a fresh temp dir with the openssl
 * CLI, removed by cleanup(). Nothing here is committed; every run makes new keys.
 *
 *   const pki = await createTestPki();
 *   try { ... pki.exporters.valid.certFile ... } finally { await pki.cleanup(); }
 *
 * The main CA issues the collector certificate and the exporters below. All exporter
 * certificates carry the clientAuth EKU unless stated otherwise.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { OpensslCa, type CertificateSpec, type IssuedCertificate } from '../../src/ingest/trust/openssl-ca.js';

export interface TestCertificate extends IssuedCertificate {
  /** The name the certificate presents for identity matching (DNS-ID, or CN for cnOnly). */
  readonly name: string;
}

export interface TestPki {
  readonly dir: string;
  /** Root CA: certFile is what listeners put in caFile. */
  readonly ca: OpensslCa;
  /** An intermediate CA under `ca` (its certificates' chainFile includes it). */
  readonly intermediate: OpensslCa;
  /** An unrelated root CA: its certificates must be rejected as unknown_ca. */
  readonly otherCa: OpensslCa;
  /** Collector (server) certificate for localhost, 127.0.0.1 and ::1 (serverAuth). */
  readonly collector: TestCertificate;
  /** caFile content: root only. */
  readonly caFile: string;
  /** CRL files a listener should load: the root's and the intermediate's (OpenSSL needs the leaf issuer's CRL). */
  readonly crlFiles: readonly string[];
  readonly exporters: {
    /** exporter1.test, valid, SAN DNS:exporter1.test. */
    readonly valid: TestCertificate;
    /** exporter2.test, valid; a second allowed exporter (e.g. to revoke during a reload test). */
    readonly valid2: TestCertificate;
    /** exporter3.test issued by the intermediate (present chainFile as the client chain). */
    readonly viaIntermediate: TestCertificate;
    /** expired.test, validity ended yesterday. */
    readonly expired: TestCertificate;
    /** future.test, valid from tomorrow. */
    readonly notYetValid: TestCertificate;
    /** revoked.test, listed on the root CRL (reason keyCompromise). */
    readonly revoked: TestCertificate;
    /** stranger.test, valid chain, a name that is not on the test allowlist. */
    readonly wrongName: TestCertificate;
    /** cnonly.test: no subjectAltName at all, the name is only in the subject CN. */
    readonly cnOnly: TestCertificate;
    /** serveronly.test: valid chain but EKU serverAuth only (unfit as an exporter). */
    readonly serverOnly: TestCertificate;
    /** exporter1.test issued by otherCa (same name, wrong CA). */
    readonly otherCa: TestCertificate;
  };
  /** Issues another exporter certificate from the root CA (SAN DNS:<name>, clientAuth). */
  issueExporter(name: string, spec?: Partial<CertificateSpec>): Promise<TestCertificate>;
  /** Revokes `cert` (issued by the root CA) and rewrites the root CRL file in place. */
  revoke(cert: TestCertificate): Promise<void>;
  cleanup(): Promise<void>;
}

const DAY_MS = 86_400_000;
let fileCounter = 0;

export async function createTestPki(): Promise<TestPki> {
  const dir = await mkdtemp(join(tmpdir(), 'sealflow-pki-'));
  try {
    const ca = await OpensslCa.create(join(dir, 'root'), { commonName: 'sealflow test root CA' });
    const intermediate = await OpensslCa.create(join(dir, 'intermediate'), { commonName: 'sealflow test intermediate CA', issuer: ca });
    const otherCa = await OpensslCa.create(join(dir, 'other'), { commonName: 'sealflow other CA' });
    const client = async (from: OpensslCa, name: string, spec: Partial<CertificateSpec> = {}): Promise<TestCertificate> => {
      const issued = await from.issue({ fileName: `c${++fileCounter}-${name}`, commonName: name, dnsNames: [name], usage: 'client', ...spec });
      return { ...issued, name };
    };
    const now = Date.now();
    const collector = await client(ca, 'localhost', { dnsNames: ['localhost'], ipAddresses: ['127.0.0.1', '::1'], usage: 'server' });
    const revoked = await client(ca, 'revoked.test');
    const exporters = {
      valid: await client(ca, 'exporter1.test'),
      valid2: await client(ca, 'exporter2.test'),
      viaIntermediate: await client(intermediate, 'exporter3.test'),
      expired: await client(ca, 'expired.test', { notBefore: new Date(now - 30 * DAY_MS), notAfter: new Date(now - DAY_MS) }),
      notYetValid: await client(ca, 'future.test', { notBefore: new Date(now + DAY_MS), notAfter: new Date(now + 30 * DAY_MS) }),
      revoked,
      wrongName: await client(ca, 'stranger.test'),
      cnOnly: await client(ca, 'cnonly.test', { dnsNames: [] }),
      serverOnly: await client(ca, 'serveronly.test', { usage: 'server' }),
      otherCa: await client(otherCa, 'exporter1.test'),
    };
    await ca.revoke(revoked.certFile);
    await ca.writeCrl();
    return {
      dir,
      ca,
      intermediate,
      otherCa,
      collector,
      caFile: ca.certFile,
      crlFiles: [ca.crlFile, intermediate.crlFile],
      exporters,
      issueExporter: (name, spec) => client(ca, name, spec),
      revoke: async (cert) => {
        await ca.revoke(cert.certFile);
        await ca.writeCrl();
      },
      cleanup: () => rm(dir, { recursive: true, force: true }),
    };
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}
