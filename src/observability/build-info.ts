/**
 * What this process is: sealflow's version (kept equal to package.json's by a unit test), and
 * the Node.js and OpenSSL it runs on (the TLS/DTLS stack and the AEAD engine are OpenSSL's).
 * Exported as sealflow_build_info and shown on the status page.
 */
export const SEALFLOW_VERSION = '0.1.0';

export interface BuildInfo {
  readonly version: string;
  readonly node: string;
  readonly openssl: string;
}

export function buildInfo(): BuildInfo {
  return { version: SEALFLOW_VERSION, node: process.versions.node, openssl: process.versions.openssl };
}
