import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';

/**
 * Certificate not-after dates for monitoring (sealflow_certificate_not_after_timestamp_seconds
 * and the status page): for each configured certificate file, the earliest not-after of the
 * certificates in it, labelled by the setting that names the file. Read at start and on
 * SIGHUP; a file that cannot be read or parsed is left out here (the listener or the drain
 * that uses it reports the error, naming the setting).
 */
export interface CertificateExpiry {
  /** Configuration path of the file, e.g. "listeners.tls.certFile". */
  readonly setting: string;
  readonly file: string;
  readonly subject: string;
  readonly notAfterMs: number;
}

const CERT_BLOCK = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

export function certificateExpiry(setting: string, file: string): CertificateExpiry | null {
  let text: string;
  try {
    text = readFileSync(file, 'latin1');
  } catch {
    return null;
  }
  let earliest: CertificateExpiry | null = null;
  for (const block of text.match(CERT_BLOCK) ?? []) {
    let cert: X509Certificate;
    try {
      cert = new X509Certificate(block);
    } catch {
      continue;
    }
    const notAfterMs = Date.parse(cert.validTo);
    if (Number.isNaN(notAfterMs)) continue;
    if (earliest === null || notAfterMs < earliest.notAfterMs) earliest = { setting, file, subject: cert.subject.replace(/\n/g, ', '), notAfterMs };
  }
  return earliest;
}

/** The expiry of every file in `files` (setting → path; undefined paths are skipped), in that order. */
export function certificateExpiries(files: Readonly<Record<string, string | null | undefined>>): CertificateExpiry[] {
  const out: CertificateExpiry[] = [];
  for (const [setting, file] of Object.entries(files)) {
    if (file === null || file === undefined || file === '') continue;
    const e = certificateExpiry(setting, file);
    if (e !== null) out.push(e);
  }
  return out;
}
