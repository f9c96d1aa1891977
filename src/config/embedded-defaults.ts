import { join } from 'node:path';
import { IPFIX_PORT, IPFIXS_PORT, NETFLOW_PORT, SFLOW_PORT, type ConfigInput } from './schema.js';

/**
 * The configuration `npm start` (`sealflow run` with no config file) runs with: everything on
 * loopback, so a fresh checkout works with no setup and exposes nothing. The development PKI
 * and KEK named here do not exist on a fresh data directory: `sealflow run` creates them on
 * first start because `development.generatePki/generateKek` are set, and logs loudly that they
 * are for development only. The drain goes to an in-process Fusion stand-in, so no Fusion
 * credentials are needed. It is a layer like a config file: SEALFLOW_* variables and flags
 * still apply on top of it.
 */

/** The exporter identity the development PKI's exporter certificate carries (RFC 2606 reserves .test). */
export const DEV_EXPORTER_IDENTITY = 'exporter.sealflow.test';
/** Loopback in both families: the only exporters the embedded configuration accepts. */
export const LOOPBACK_ALLOWLIST: readonly string[] = ['127.0.0.0/8', '::1'];
const LOOPBACK = '127.0.0.1';

/** Where the development PKI and key live under a data directory. */
export function devFiles(dataDir: string): { readonly pkiDir: string; readonly caFile: string; readonly certFile: string; readonly keyFile: string; readonly kekFile: string; readonly signingKeyFile: string } {
  const pkiDir = join(dataDir, 'pki');
  return {
    pkiDir,
    // The names createDevPki (src/ingest/trust/dev-pki.ts) writes.
    caFile: join(pkiDir, 'ca.crt.pem'),
    certFile: join(pkiDir, 'collector.crt.pem'),
    keyFile: join(pkiDir, 'collector.key.pem'),
    kekFile: join(dataDir, 'dev-kek'),
    signingKeyFile: join(dataDir, 'dev-audit-signing-key'),
  };
}

/** The embedded `npm start` configuration layer for a data directory (absolute path recommended). */
export function embeddedDefaults(dataDir: string): ConfigInput {
  const f = devFiles(dataDir);
  const identities = [{ name: DEV_EXPORTER_IDENTITY, sources: [...LOOPBACK_ALLOWLIST] }];
  return {
    dataDir,
    listeners: {
      allowlist: [...LOOPBACK_ALLOWLIST],
      udp: [
        { name: 'ipfix', address: LOOPBACK, port: IPFIX_PORT },
        { name: 'netflow', address: LOOPBACK, port: NETFLOW_PORT },
        { name: 'sflow', address: LOOPBACK, port: SFLOW_PORT },
      ],
      tls: { enabled: true, address: LOOPBACK, port: IPFIXS_PORT, certFile: f.certFile, keyFile: f.keyFile, caFile: f.caFile, identities },
      // DTLS inherits certFile/keyFile/caFile/identities from TLS.
      dtls: { enabled: true, address: LOOPBACK, port: IPFIXS_PORT },
    },
    spool: { kek: { file: f.kekFile } },
    drain: { enabled: true, fusion: { embeddedSim: true } },
    admin: { enabled: true, address: LOOPBACK },
    audit: { signingKey: { file: f.signingKeyFile } },
    // A demo wants feedback sooner than the production minute.
    stats: { intervalSeconds: 10 },
    development: { generatePki: true, generateKek: true, generateSigningKey: true },
  };
}
