import { readFileSync } from 'node:fs';
import { X509Certificate, createPrivateKey, type KeyObject } from 'node:crypto';
import { createSecureContext } from 'node:tls';
import { ConfigError, ConfigErrorCode } from '../../flow/errors.js';

/**
 * The certificate material of a secure listener (TLS or DTLS), read and checked once so a bad
 * file fails at start (or reload) with a message that names the setting, instead of as an
 * opaque handshake failure later. Private key text lives only in `keyPem`; it is never put in
 * an error, a log line or argv.
 */
export interface TrustFiles {
  /** PEM bundle of the CA certificate(s) that issue exporter certificates (roots and/or intermediates). */
  readonly caFile: string;
  /** PEM CRLs (RFC 5280 §5). With any CRL configured, OpenSSL needs a CRL from the leaf's issuer. */
  readonly crlFiles?: readonly string[];
  /** PEM certificate of this collector, leaf first, optionally followed by its intermediates. */
  readonly certFile: string;
  /** PEM private key (unencrypted PKCS#8, PKCS#1 or SEC1) matching `certFile`. */
  readonly keyFile: string;
}

export interface TrustMaterial {
  readonly caPem: string;
  readonly caCertificates: readonly X509Certificate[];
  /** One PEM text per CRL file, in configuration order. */
  readonly crlPems: readonly string[];
  /** Collector certificate chain as PEM, leaf first. */
  readonly certPem: string;
  readonly serverCertificate: X509Certificate;
  /** Secret. Never log. */
  readonly keyPem: string;
  /** Every file read, for change watching. */
  readonly files: readonly string[];
}

const CERT_BLOCK = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;
const CRL_BLOCK = /-----BEGIN X509 CRL-----[\s\S]+?-----END X509 CRL-----/g;
const KEY_BEGIN = /-----BEGIN (?:RSA |EC |ENCRYPTED )?PRIVATE KEY-----/;

function fail(setting: string, file: string, what: string, fix: string, cause?: unknown): ConfigError {
  return new ConfigError(ConfigErrorCode.Certificate, setting, `${setting} (${file}): ${what}; ${fix}`, { file }, cause === undefined ? undefined : { cause });
}

function readText(setting: string, file: string): string {
  if (file.trim() === '') throw fail(setting, file, 'no file configured', 'set it to the path of a PEM file');
  let data: Buffer;
  try {
    data = readFileSync(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const what = code === 'ENOENT' ? 'file not found' : code === 'EACCES' ? 'permission denied' : code === 'EISDIR' ? 'is a directory' : `cannot be read (${code ?? 'error'})`;
    throw fail(setting, file, what, 'check the path and that the sealflow user can read it', err);
  }
  return data.toString('latin1');
}

function parseCertificates(setting: string, file: string, text: string): X509Certificate[] {
  const blocks = text.match(CERT_BLOCK);
  if (blocks === null) {
    throw fail(setting, file, 'not a PEM certificate file (no "-----BEGIN CERTIFICATE-----" block)', 'convert DER with `openssl x509 -inform der -in FILE -out FILE.pem`');
  }
  return blocks.map((b, i) => {
    try {
      return new X509Certificate(b);
    } catch (err) {
      throw fail(setting, file, `certificate #${i + 1} is not a valid X.509 certificate`, 'replace the file with an intact PEM certificate', err);
    }
  });
}

/** Parses an X509Certificate validity time ("Nov 22 13:00:00 2026 GMT") to Unix ms. */
export function certificateTimeMs(text: string): number {
  return Date.parse(text);
}

/** Whether the certificate is inside its validity period at `nowMs`: 'ok' or which end it is outside. */
export function validityAt(cert: X509Certificate, nowMs: number): 'ok' | 'expired' | 'not_yet_valid' {
  if (nowMs < certificateTimeMs(cert.validFrom)) return 'not_yet_valid';
  if (nowMs > certificateTimeMs(cert.validTo)) return 'expired';
  return 'ok';
}

/**
 * Reads and checks the files. `settingPrefix` is the configuration path of the listener
 * (e.g. 'listeners.tls'); errors name `<prefix>.caFile`, `<prefix>.crlFiles[i]`,
 * `<prefix>.certFile` or `<prefix>.keyFile`. Throws ConfigError (code ERR_CONFIG_CERT).
 */
export function loadTrustMaterial(files: TrustFiles, settingPrefix: string, nowMs: number = Date.now()): TrustMaterial {
  const caSetting = `${settingPrefix}.caFile`;
  const caPem = readText(caSetting, files.caFile);
  const caCertificates = parseCertificates(caSetting, files.caFile, caPem);
  caCertificates.forEach((c, i) => {
    if (!c.ca) {
      throw fail(caSetting, files.caFile, `certificate #${i + 1} (${c.subject.replace(/\n/g, ', ')}) is not a CA certificate (basicConstraints CA:TRUE missing)`, 'list only the CA certificates that issue exporter certificates');
    }
  });

  const crlPems: string[] = [];
  (files.crlFiles ?? []).forEach((crlFile, i) => {
    const setting = `${settingPrefix}.crlFiles[${i}]`;
    const text = readText(setting, crlFile);
    const blocks = text.match(CRL_BLOCK);
    if (blocks === null) {
      throw fail(setting, crlFile, 'not a PEM CRL (no "-----BEGIN X509 CRL-----" block)', 'convert DER with `openssl crl -inform der -in FILE -out FILE.pem`');
    }
    try {
      createSecureContext({ crl: blocks.join('\n') });
    } catch (err) {
      throw fail(setting, crlFile, 'OpenSSL cannot parse the CRL', 'replace the file with an intact PEM CRL from the issuing CA', err);
    }
    crlPems.push(blocks.join('\n') + '\n');
  });

  const certSetting = `${settingPrefix}.certFile`;
  const certText = readText(certSetting, files.certFile);
  const chain = parseCertificates(certSetting, files.certFile, certText);
  const serverCertificate = chain[0];
  if (serverCertificate === undefined) throw fail(certSetting, files.certFile, 'no certificate', 'put the collector certificate first');
  const validity = validityAt(serverCertificate, nowMs);
  if (validity === 'expired') {
    throw fail(certSetting, files.certFile, `the collector certificate expired on ${serverCertificate.validTo}`, 'issue a new collector certificate');
  }
  if (validity === 'not_yet_valid') {
    throw fail(certSetting, files.certFile, `the collector certificate is not valid before ${serverCertificate.validFrom}`, 'check the system clock or reissue the certificate');
  }
  const certPem = (certText.match(CERT_BLOCK) ?? []).join('\n') + '\n';

  const keySetting = `${settingPrefix}.keyFile`;
  const keyText = readText(keySetting, files.keyFile);
  if (!KEY_BEGIN.test(keyText)) {
    throw fail(keySetting, files.keyFile, 'not a PEM private key (no "-----BEGIN ... PRIVATE KEY-----" block)', 'point it at the PEM private key of certFile');
  }
  if (keyText.includes('-----BEGIN ENCRYPTED PRIVATE KEY-----') || keyText.includes('Proc-Type: 4,ENCRYPTED')) {
    throw fail(keySetting, files.keyFile, 'the private key is passphrase-protected', 'store it unencrypted with mode 0600 (`openssl pkey -in KEY -out KEY.plain`)');
  }
  let key: KeyObject;
  try {
    key = createPrivateKey(keyText);
  } catch (err) {
    // The cause is OpenSSL's decoder error; it never quotes key material.
    throw fail(keySetting, files.keyFile, 'the private key cannot be parsed', 'replace it with an intact PEM private key', err);
  }
  if (!serverCertificate.checkPrivateKey(key)) {
    throw fail(keySetting, files.keyFile, `the private key does not match ${certSetting} (${files.certFile})`, 'configure the key that belongs to the collector certificate');
  }

  return Object.freeze({
    caPem,
    caCertificates: Object.freeze(caCertificates),
    crlPems: Object.freeze(crlPems),
    certPem,
    serverCertificate,
    keyPem: keyText,
    files: Object.freeze([files.caFile, ...(files.crlFiles ?? []), files.certFile, files.keyFile]),
  });
}
