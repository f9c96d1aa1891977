import { execFile } from 'node:child_process';
import { createHash, X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** Lifetime of the stand-in's throwaway certificate. */
const DEV_CERT_DAYS = 30;

export interface DevCertificate {
  readonly certPem: string;
  readonly keyPem: string;
  /** base64 SHA-256 of the SubjectPublicKeyInfo, for drain.fusion.pinSha256. */
  readonly spkiSha256: string;
}

/**
 * A self-signed EC P-256 server certificate for the stand-in (development only), valid for
 * localhost, 127.0.0.1 and ::1 plus `extraNames`. Made with the openssl CLI in a private temp
 * dir that is removed before returning; the key only lives in memory afterwards. The client
 * trusts it by giving the certificate itself as the extra CA (drain.fusion.caFile).
 */
export async function createDevCertificate(extraNames: readonly string[] = []): Promise<DevCertificate> {
  const dir = await mkdtemp(join(tmpdir(), 'sealflow-sim-cert-'));
  try {
    const key = join(dir, 'key.pem');
    const crt = join(dir, 'cert.pem');
    const cnf = join(dir, 'req.cnf');
    const san = ['DNS:localhost', 'IP:127.0.0.1', 'IP:::1', ...extraNames.map((n) => (/^[0-9.:]+$/.test(n) ? `IP:${n}` : `DNS:${n}`))];
    await writeFile(cnf, [
      '[req]', 'distinguished_name=dn', 'x509_extensions=ext', 'prompt=no',
      '[dn]', 'CN=sealflow fusion-sim (development only)',
      '[ext]', 'basicConstraints=critical,CA:TRUE', 'keyUsage=critical,digitalSignature,keyCertSign',
      'extendedKeyUsage=serverAuth', `subjectAltName=${san.join(',')}`,
    ].join('\n') + '\n', { mode: 0o600 });
    await run('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', crt,
      '-days', String(DEV_CERT_DAYS), '-config', cnf]);
    const certPem = await readFile(crt, 'utf8');
    const keyPem = await readFile(key, 'utf8');
    const der = new X509Certificate(certPem).publicKey.export({ type: 'spki', format: 'der' });
    return { certPem, keyPem, spkiSha256: createHash('sha256').update(der).digest('base64') };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
