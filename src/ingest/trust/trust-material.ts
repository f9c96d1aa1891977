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

/** DER tags (X.690 §8): what the CRL walk below needs. */
const DER_INTEGER = 0x02;
const DER_SEQUENCE = 0x30;
const DER_UTC_TIME = 0x17;
const DER_GENERALIZED_TIME = 0x18;

interface DerItem {
  readonly tag: number;
  /** Offset of the contents. */
  readonly start: number;
  /** Offset just past the contents. */
  readonly end: number;
}

/** Reads one DER TLV header at `at` within `[at, limit)`; null when it does not fit. */
function derItem(der: Uint8Array, at: number, limit: number): DerItem | null {
  if (at + 2 > limit) return null;
  const tag = der[at] ?? 0;
  let len = der[at + 1] ?? 0;
  let start = at + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    // Lengths over 4 octets cannot fit any CRL we would load.
    if (n === 0 || n > 4 || start + n > limit) return null;
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + (der[start + i] ?? 0);
    start += n;
  }
  const end = start + len;
  return end > limit ? null : { tag, start, end };
}

/** RFC 5280 §4.1.2.5: UTCTime YYMMDDHHMMSSZ (YY ≥ 50 → 19YY) or GeneralizedTime YYYYMMDDHHMMSSZ. */
function derTimeMs(der: Uint8Array, item: DerItem): number | null {
  const text = Buffer.from(der.subarray(item.start, item.end)).toString('latin1');
  let m: RegExpExecArray | null;
  if (item.tag === DER_UTC_TIME && (m = /^(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(text)) !== null) {
    const yy = Number(m[1]);
    return Date.UTC(yy >= 50 ? 1900 + yy : 2000 + yy, Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6]));
  }
  if (item.tag === DER_GENERALIZED_TIME && (m = /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(text)) !== null) {
    return Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6]));
  }
  return null;
}

/**
 * thisUpdate/nextUpdate of a PEM CRL (RFC 5280 §5.1: CertificateList ::= SEQUENCE { tbsCertList
 * SEQUENCE { version INTEGER OPTIONAL, signature AlgorithmIdentifier, issuer Name, thisUpdate
 * Time, nextUpdate Time OPTIONAL, ... }, ... }). node:crypto has no CRL API. Null when unreadable.
 */
export function crlTimes(pem: string): { thisUpdateMs: number; nextUpdateMs: number | null } | null {
  const body = pem.replace(/-----(BEGIN|END) X509 CRL-----/g, '').replace(/\s+/g, '');
  const der = Buffer.from(body, 'base64');
  const outer = derItem(der, 0, der.length);
  if (outer?.tag !== DER_SEQUENCE) return null;
  const tbs = derItem(der, outer.start, outer.end);
  if (tbs?.tag !== DER_SEQUENCE) return null;
  let item = derItem(der, tbs.start, tbs.end);
  if (item?.tag === DER_INTEGER) item = derItem(der, item.end, tbs.end);
  // signature AlgorithmIdentifier, then issuer Name: both SEQUENCEs.
  for (let i = 0; i < 2; i++) {
    if (item?.tag !== DER_SEQUENCE) return null;
    item = derItem(der, item.end, tbs.end);
  }
  if (item === null) return null;
  const thisUpdateMs = derTimeMs(der, item);
  if (thisUpdateMs === null) return null;
  const next = derItem(der, item.end, tbs.end);
  const nextUpdateMs = next !== null && (next.tag === DER_UTC_TIME || next.tag === DER_GENERALIZED_TIME) ? derTimeMs(der, next) : null;
  return { thisUpdateMs, nextUpdateMs };
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
    for (const block of blocks) {
      const times = crlTimes(block);
      if (times === null) throw fail(setting, crlFile, 'the CRL has no readable thisUpdate/nextUpdate', 'replace the file with an intact PEM CRL from the issuing CA');
      if (nowMs < times.thisUpdateMs) {
        throw fail(setting, crlFile, `the CRL is not valid before ${new Date(times.thisUpdateMs).toISOString()}`, 'check the system clock');
      }
      if (times.nextUpdateMs !== null && nowMs > times.nextUpdateMs) {
        // OpenSSL would reject every exporter of this CA (CRL_HAS_EXPIRED): say so now instead.
        throw fail(setting, crlFile, `the CRL expired (nextUpdate ${new Date(times.nextUpdateMs).toISOString()}); every exporter of its CA would be rejected`, 'fetch a current CRL from the issuing CA');
      }
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
