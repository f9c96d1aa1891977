import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

/**
 * A small certificate authority driven through the openssl CLI (`openssl ca` keeps the issued
 * and revoked database that CRLs are generated from). It makes development and test PKIs:
 * never production ones, whose keys belong in an HSM or a real CA. Keys are ECDSA P-256,
 * written with mode 0600 and never passed on a command line (no passphrases are used).
 */
const execFileAsync = promisify(execFile);

/** What an issued certificate is for; decides basicConstraints, keyUsage and extendedKeyUsage. */
export type CertificateUsage = 'server' | 'client' | 'server+client' | 'none';

export interface CertificateSpec {
  /** File base name in the CA directory: <name>.crt.pem, <name>.key.pem. Letters, digits, '.', '_', '-'. */
  readonly fileName: string;
  /** Subject common name. */
  readonly commonName: string;
  /** subjectAltName dNSName entries; none → the certificate carries no DNS-ID. */
  readonly dnsNames?: readonly string[];
  /** subjectAltName iPAddress entries. */
  readonly ipAddresses?: readonly string[];
  readonly usage: CertificateUsage;
  /** Validity start; default: one hour ago (tolerates small clock skew between hosts). */
  readonly notBefore?: Date;
  /** Validity end; default: notBefore + `days`. */
  readonly notAfter?: Date;
  /** Default 825 (the CA/Browser Forum's former maximum, harmless for a private PKI). */
  readonly days?: number;
}

export interface IssuedCertificate {
  readonly certFile: string;
  readonly keyFile: string;
  /** Leaf followed by the issuing intermediates (not the root): what a client should present. */
  readonly chainFile: string;
  readonly commonName: string;
}

export interface CaSpec {
  readonly commonName: string;
  readonly days?: number;
  /** Issuer for an intermediate CA; absent for a self-signed root. */
  readonly issuer?: OpensslCa;
  readonly openssl?: string;
}

const DEFAULT_DAYS = 825;
const DEFAULT_CA_DAYS = 3650;
const DEFAULT_CRL_DAYS = 30;
/** Back-date notBefore so a peer whose clock is slightly behind still accepts a fresh certificate. */
const CLOCK_SKEW_MS = 3_600_000;
const MS_PER_DAY = 86_400_000;
const SAFE_FILE_NAME = /^[A-Za-z0-9._-]{1,64}$/;
const SAFE_NAME = /^[A-Za-z0-9 .:_*-]{1,64}$/;

/** openssl ca -startdate/-enddate take ASN.1 GeneralizedTime "YYYYMMDDHHMMSSZ". */
function asn1Time(d: Date): string {
  return d.toISOString().replace(/[-:T]/g, '').replace(/\.\d{3}Z$/, 'Z');
}

export async function runOpenssl(openssl: string, args: readonly string[], cwd: string): Promise<string> {
  try {
    const { stdout } = await execFileAsync(openssl, [...args], { cwd, maxBuffer: 4 * 1024 * 1024 });
    return stdout;
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: string };
    if (e.code === 'ENOENT') throw new Error(`the openssl command (${openssl}) is not installed or not on PATH; install the openssl package`, { cause: err });
    throw new Error(`openssl ${args[0] ?? ''} failed: ${(e.stderr ?? e.message).trim()}`, { cause: err });
  }
}

function caConfig(dir: string): string {
  return [
    '[ ca ]',
    'default_ca = sealflow_ca',
    '[ sealflow_ca ]',
    `dir = ${dir}`,
    'database = $dir/index.txt',
    'new_certs_dir = $dir/issued',
    'serial = $dir/serial',
    'crlnumber = $dir/crlnumber',
    'certificate = $dir/ca.crt.pem',
    'private_key = $dir/ca.key.pem',
    'default_md = sha256',
    `default_days = ${DEFAULT_DAYS}`,
    `default_crl_days = ${DEFAULT_CRL_DAYS}`,
    'policy = policy_any',
    'unique_subject = no',
    'copy_extensions = none',
    'email_in_dn = no',
    '[ policy_any ]',
    'commonName = supplied',
    '[ req ]',
    'distinguished_name = req_dn',
    'prompt = no',
    '[ req_dn ]',
    'CN = placeholder',
    '[ root_ca ]',
    'basicConstraints = critical, CA:TRUE',
    'keyUsage = critical, keyCertSign, cRLSign',
    'subjectKeyIdentifier = hash',
    '[ crl_ext ]',
    'authorityKeyIdentifier = keyid:always',
    '',
  ].join('\n');
}

function extensions(spec: CertificateSpec | { readonly ca: true }): string {
  const lines = ['[ ext ]', 'subjectKeyIdentifier = hash', 'authorityKeyIdentifier = keyid:always'];
  if ('ca' in spec) {
    lines.push('basicConstraints = critical, CA:TRUE, pathlen:0', 'keyUsage = critical, keyCertSign, cRLSign');
    return lines.join('\n') + '\n';
  }
  lines.push('basicConstraints = critical, CA:FALSE', 'keyUsage = critical, digitalSignature');
  const eku = { server: 'serverAuth', client: 'clientAuth', 'server+client': 'serverAuth, clientAuth', none: '' }[spec.usage];
  if (eku !== '') lines.push(`extendedKeyUsage = ${eku}`);
  const san = [...(spec.dnsNames ?? []).map((n) => `DNS:${n}`), ...(spec.ipAddresses ?? []).map((a) => `IP:${a}`)];
  if (san.length > 0) lines.push(`subjectAltName = ${san.join(', ')}`);
  return lines.join('\n') + '\n';
}

function checkName(what: string, v: string, re: RegExp): void {
  if (!re.test(v)) throw new RangeError(`${what} ${JSON.stringify(v)} has characters the openssl CLI cannot take safely (allowed: ${re.source})`);
}

export class OpensslCa {
  readonly dir: string;
  readonly certFile: string;
  readonly keyFile: string;
  /** PEM of this CA's certificate followed by its issuers' (excluding the root): intermediates for chains. */
  readonly chainPem: string;
  readonly commonName: string;
  readonly crlFile: string;
  private readonly configFile: string;
  private readonly openssl: string;

  private constructor(dir: string, commonName: string, chainPem: string, openssl: string) {
    this.dir = dir;
    this.commonName = commonName;
    this.certFile = join(dir, 'ca.crt.pem');
    this.keyFile = join(dir, 'ca.key.pem');
    this.crlFile = join(dir, 'ca.crl.pem');
    this.configFile = join(dir, 'ca.cnf');
    this.chainPem = chainPem;
    this.openssl = openssl;
  }

  /** Creates a root CA (or, with `issuer`, an intermediate) in `dir` (created if missing). */
  static async create(dir: string, spec: CaSpec): Promise<OpensslCa> {
    checkName('CA common name', spec.commonName, SAFE_NAME);
    const openssl = spec.openssl ?? 'openssl';
    await mkdir(join(dir, 'issued'), { recursive: true, mode: 0o700 });
    await writeFile(join(dir, 'index.txt'), '');
    await writeFile(join(dir, 'serial'), `${randomSerial()}\n`);
    await writeFile(join(dir, 'crlnumber'), '1000\n');
    await writeFile(join(dir, 'ca.cnf'), caConfig(dir));
    const keyFile = join(dir, 'ca.key.pem');
    await generateKey(openssl, keyFile, dir);
    const days = String(spec.days ?? DEFAULT_CA_DAYS);
    const subj = `/CN=${spec.commonName}`;
    let chainPem = '';
    if (spec.issuer === undefined) {
      await runOpenssl(openssl, ['req', '-config', join(dir, 'ca.cnf'), '-new', '-x509', '-sha256', '-key', keyFile, '-subj', subj, '-days', days, '-extensions', 'root_ca', '-out', join(dir, 'ca.crt.pem')], dir);
    } else {
      const csr = join(dir, 'ca.csr.pem');
      await runOpenssl(openssl, ['req', '-config', join(dir, 'ca.cnf'), '-new', '-sha256', '-key', keyFile, '-subj', subj, '-out', csr], dir);
      await spec.issuer.sign(csr, join(dir, 'ca.crt.pem'), extensions({ ca: true }), new Date(Date.now() - CLOCK_SKEW_MS), new Date(Date.now() + Number(days) * MS_PER_DAY));
      chainPem = (await readFile(join(dir, 'ca.crt.pem'), 'latin1')) + spec.issuer.chainPem;
    }
    const ca = new OpensslCa(dir, spec.commonName, chainPem, openssl);
    await ca.writeCrl();
    return ca;
  }

  /** Issues a certificate with a fresh key; returns its files (in this CA's directory). */
  async issue(spec: CertificateSpec): Promise<IssuedCertificate> {
    checkName('file name', spec.fileName, SAFE_FILE_NAME);
    checkName('common name', spec.commonName, SAFE_NAME);
    for (const n of spec.dnsNames ?? []) checkName('DNS name', n, SAFE_NAME);
    for (const a of spec.ipAddresses ?? []) checkName('IP address', a, SAFE_NAME);
    const keyFile = join(this.dir, `${spec.fileName}.key.pem`);
    const certFile = join(this.dir, `${spec.fileName}.crt.pem`);
    const chainFile = join(this.dir, `${spec.fileName}.chain.pem`);
    const csr = join(this.dir, `${spec.fileName}.csr.pem`);
    await generateKey(this.openssl, keyFile, this.dir);
    await runOpenssl(this.openssl, ['req', '-config', this.configFile, '-new', '-sha256', '-key', keyFile, '-subj', `/CN=${spec.commonName}`, '-out', csr], this.dir);
    const notBefore = spec.notBefore ?? new Date(Date.now() - CLOCK_SKEW_MS);
    const notAfter = spec.notAfter ?? new Date(notBefore.getTime() + (spec.days ?? DEFAULT_DAYS) * MS_PER_DAY);
    await this.sign(csr, certFile, extensions(spec), notBefore, notAfter);
    await writeFile(chainFile, (await readFile(certFile, 'latin1')) + this.chainPem);
    return { certFile, keyFile, chainFile, commonName: spec.commonName };
  }

  /** Signs a CSR with `openssl ca`, recording it in the CA database. */
  async sign(csrFile: string, outFile: string, extensionText: string, notBefore: Date, notAfter: Date): Promise<void> {
    const extFile = `${outFile}.ext.cnf`;
    await writeFile(extFile, extensionText);
    await runOpenssl(
      this.openssl,
      ['ca', '-batch', '-notext', '-config', this.configFile, '-in', csrFile, '-out', outFile, '-startdate', asn1Time(notBefore), '-enddate', asn1Time(notAfter), '-extfile', extFile, '-extensions', 'ext'],
      this.dir,
    );
  }

  /** Marks an issued certificate revoked (reason keyCompromise). Call writeCrl() to publish. */
  async revoke(certFile: string): Promise<void> {
    await runOpenssl(this.openssl, ['ca', '-batch', '-config', this.configFile, '-revoke', certFile, '-crl_reason', 'keyCompromise'], this.dir);
  }

  /** Writes the CRL (all revocations so far) to `file` (default `crlFile`); returns the path. */
  async writeCrl(file: string = this.crlFile, days: number = DEFAULT_CRL_DAYS): Promise<string> {
    const tmp = `${file}.tmp`;
    await runOpenssl(this.openssl, ['ca', '-batch', '-config', this.configFile, '-gencrl', '-crldays', String(days), '-crlexts', 'crl_ext', '-out', tmp], this.dir);
    // Rename into place so a watcher never reads a half-written CRL.
    await rename(tmp, file);
    return file;
  }
}

async function generateKey(openssl: string, keyFile: string, cwd: string): Promise<void> {
  await runOpenssl(openssl, ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', keyFile], cwd);
  await chmod(keyFile, 0o600);
}

/** A random positive 64-bit serial in hex (RFC 5280 §4.1.2.2: unique per CA, ≤ 20 octets). */
function randomSerial(): string {
  const hex = randomBytes(8).toString('hex');
  return `1${hex.slice(1)}`;
}
