/**
 * A throwaway PKI for tests, made with the openssl CLI in a temp dir: one CA and any number
 * of leaf certificates (server and/or client) signed by it. EC P-256 keys (fast to make).
 * Everything lives under `dir` and is removed by `cleanup()`; nothing here is a product key.
 *
 * Typical use:
 *   const pki = await createTestPki();
 *   const server = await pki.issue({ name: 'server', dns: ['localhost'], ips: ['127.0.0.1'] });
 *   ... new https.Server({ cert: server.certPem, key: server.keyPem }) ...
 *   await pki.cleanup();
 */
import { execFile } from 'node:child_process';
import { createHash, X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** Validity of test certificates; short, they live for one test run. */
const TEST_CERT_DAYS = 2;

export interface IssuedCert {
  readonly name: string;
  readonly certPath: string;
  readonly keyPath: string;
  readonly certPem: string;
  readonly keyPem: string;
  /** base64 SHA-256 of the certificate's DER SubjectPublicKeyInfo (the HPKP/"pin-sha256" form). */
  readonly spkiSha256: string;
}

export interface IssueOptions {
  /** File stem, unique within this PKI. */
  readonly name: string;
  readonly cn?: string;
  readonly dns?: readonly string[];
  readonly ips?: readonly string[];
  /** 'server' (default), 'client', or 'both' extended key usage. */
  readonly usage?: 'server' | 'client' | 'both';
  /** Issue an already-expired certificate (notAfter in the past). */
  readonly expired?: boolean;
}

export interface TestPki {
  readonly dir: string;
  readonly ca: IssuedCert;
  issue(options: IssueOptions): Promise<IssuedCert>;
  cleanup(): Promise<void>;
}

export class OpensslMissingError extends Error {}

/** True when the openssl CLI can be run. */
export async function opensslAvailable(): Promise<boolean> {
  try {
    await run('openssl', ['version']);
    return true;
  } catch {
    return false;
  }
}

export function spkiSha256OfPem(certPem: string): string {
  const der = new X509Certificate(certPem).publicKey.export({ type: 'spki', format: 'der' });
  return createHash('sha256').update(der).digest('base64');
}

async function load(name: string, certPath: string, keyPath: string): Promise<IssuedCert> {
  const certPem = await readFile(certPath, 'utf8');
  const keyPem = await readFile(keyPath, 'utf8');
  return { name, certPath, keyPath, certPem, keyPem, spkiSha256: spkiSha256OfPem(certPem) };
}

const EC_KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];

export async function createTestPki(caName = 'sealflow test CA'): Promise<TestPki> {
  if (!(await opensslAvailable())) throw new OpensslMissingError('the openssl CLI is not installed');
  const dir = await mkdtemp(join(tmpdir(), 'sealflow-pki-'));
  const caCert = join(dir, 'ca.crt');
  const caKey = join(dir, 'ca.key');
  await run('openssl', [
    'req', '-x509', ...EC_KEY, '-keyout', caKey, '-out', caCert, '-days', String(TEST_CERT_DAYS),
    '-subj', `/CN=${caName}`,
    '-addext', 'basicConstraints=critical,CA:TRUE',
    '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  const ca = await load('ca', caCert, caKey);
  let serial = 1;

  const issue = async (o: IssueOptions): Promise<IssuedCert> => {
    const key = join(dir, `${o.name}.key`);
    const csr = join(dir, `${o.name}.csr`);
    const crt = join(dir, `${o.name}.crt`);
    const ext = join(dir, `${o.name}.ext`);
    const san = [...(o.dns ?? []).map((d) => `DNS:${d}`), ...(o.ips ?? []).map((i) => `IP:${i}`)];
    const usage = o.usage ?? 'server';
    const eku = usage === 'server' ? 'serverAuth' : usage === 'client' ? 'clientAuth' : 'serverAuth,clientAuth';
    const lines = ['basicConstraints=CA:FALSE', 'keyUsage=critical,digitalSignature,keyEncipherment', `extendedKeyUsage=${eku}`];
    if (san.length > 0) lines.push(`subjectAltName=${san.join(',')}`);
    await writeFile(ext, lines.join('\n') + '\n');
    await run('openssl', ['req', '-new', ...EC_KEY, '-keyout', key, '-out', csr, '-subj', `/CN=${o.cn ?? o.name}`]);
    const validity = o.expired === true
      // `openssl x509 -req` has no -not_after in 3.0; a negative -days gives notAfter < now.
      ? ['-days', '-1']
      : ['-days', String(TEST_CERT_DAYS)];
    await run('openssl', [
      'x509', '-req', '-in', csr, '-CA', caCert, '-CAkey', caKey, '-set_serial', String(++serial),
      ...validity, '-out', crt, '-extfile', ext, '-sha256',
    ]);
    return load(o.name, crt, key);
  };

  return {
    dir,
    ca,
    issue,
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
}
