import { chmod, copyFile, mkdir, rm } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join, resolve } from 'node:path';
import { isExporterName } from './exporter-policy.js';
import { OpensslCa } from './openssl-ca.js';

/**
 * A development PKI for trying sealflow's TLS/DTLS listeners: a CA, a collector certificate
 * and exporter client certificates, made with the openssl CLI. FOR DEVELOPMENT ONLY: the CA
 * key sits next to the certificates, unprotected. certs/README.md says how to use a real PKI.
 *
 * Layout of `dir` (stable; the daemon's embedded default and `sealflow pki` both use it):
 *   ca.crt.pem            CA certificate        → listeners.tls.caFile
 *   ca.crl.pem            CRL (empty at first)   → listeners.tls.crlFiles
 *   collector.crt.pem     collector certificate  → listeners.tls.certFile
 *   collector.key.pem     its key (0600)         → listeners.tls.keyFile
 *   exporters/<name>.crt.pem, exporters/<name>.key.pem   one per exporter (clientAuth, SAN DNS:<name>)
 *   ca/                   the CA's own state (key, database); keep it private
 */
export interface DevPkiOptions {
  /** Exporter names (become the certificates' SAN dNSName and CN). Default: ['exporter1.sealflow.test']. */
  readonly exporters?: readonly string[];
  /** Extra collector DNS names besides localhost and this host's name. */
  readonly collectorNames?: readonly string[];
  /** Extra collector IP addresses besides 127.0.0.1 and ::1. */
  readonly collectorAddresses?: readonly string[];
  /** Certificate lifetime in days (default 825). */
  readonly days?: number;
  /** The openssl binary (default 'openssl' on PATH). */
  readonly openssl?: string;
}

export interface DevPkiExporter {
  readonly name: string;
  readonly certFile: string;
  readonly keyFile: string;
}

export interface DevPkiPaths {
  readonly dir: string;
  readonly caFile: string;
  readonly crlFile: string;
  readonly collectorCertFile: string;
  readonly collectorKeyFile: string;
  readonly exporters: readonly DevPkiExporter[];
}

export const DEFAULT_DEV_EXPORTER = 'exporter1.sealflow.test';
const DEV_CA_NAME = 'sealflow development CA';
export const DEV_PKI_WARNING = 'DEVELOPMENT PKI ONLY: the CA key is stored unprotected next to the certificates; do not use it in production (see certs/README.md)';

/** Creates the development PKI in `dir` (created if needed; existing files are replaced). */
export async function createDevPki(dir: string, options: DevPkiOptions = {}): Promise<DevPkiPaths> {
  const names = unique(options.exporters ?? [DEFAULT_DEV_EXPORTER]);
  for (const n of [...names, ...unique(options.collectorNames ?? [])]) {
    if (!isExporterName(n)) throw new RangeError(`${JSON.stringify(n)} is not a DNS name (letters, digits, '-', '.'; no wildcard)`);
  }
  const root = resolve(dir);
  await mkdir(join(root, 'exporters'), { recursive: true, mode: 0o700 });
  const caDir = join(root, 'ca');
  await rm(caDir, { recursive: true, force: true });
  const ca = await OpensslCa.create(caDir, { commonName: DEV_CA_NAME, ...(options.openssl === undefined ? {} : { openssl: options.openssl }) });
  const days = options.days === undefined ? {} : { days: options.days };

  const host = hostname().toLowerCase();
  const collectorDns = unique(['localhost', ...(/^[a-z0-9.-]+$/.test(host) ? [host] : []), ...(options.collectorNames ?? [])]);
  const collector = await ca.issue({
    fileName: 'collector',
    commonName: collectorDns[0] ?? 'localhost',
    dnsNames: collectorDns,
    ipAddresses: unique(['127.0.0.1', '::1', ...(options.collectorAddresses ?? [])]),
    usage: 'server',
    ...days,
  });

  const paths = {
    dir: root,
    caFile: join(root, 'ca.crt.pem'),
    crlFile: join(root, 'ca.crl.pem'),
    collectorCertFile: join(root, 'collector.crt.pem'),
    collectorKeyFile: join(root, 'collector.key.pem'),
  };
  await copyFile(ca.certFile, paths.caFile);
  await copyFile(ca.crlFile, paths.crlFile);
  await copyFile(collector.chainFile, paths.collectorCertFile);
  await copyFile(collector.keyFile, paths.collectorKeyFile);
  await chmod(paths.collectorKeyFile, 0o600);

  const exporters: DevPkiExporter[] = [];
  for (const name of names) {
    const issued = await ca.issue({ fileName: `exporter-${name}`, commonName: name, dnsNames: [name], usage: 'client', ...days });
    const e = { name, certFile: join(root, 'exporters', `${name}.crt.pem`), keyFile: join(root, 'exporters', `${name}.key.pem`) };
    await copyFile(issued.chainFile, e.certFile);
    await copyFile(issued.keyFile, e.keyFile);
    await chmod(e.keyFile, 0o600);
    exporters.push(e);
  }
  return { ...paths, exporters };
}

function unique(values: readonly string[]): string[] {
  return [...new Set(values.map((v) => v.toLowerCase()))];
}
