/**
 * Why an exporter was not accepted on a secure transport (TLS or DTLS). RFC 7011 §11.6 asks
 * the collector to log and count every failed authentication; these codes are the bounded,
 * stable label set for that counter and the `reason` field of the audit log line. Never
 * reword a published code: dashboards and alerts key on it.
 */
export const AUTH_FAILURE_REASONS = [
  /** The peer completed (or aborted) the handshake without presenting a certificate. */
  'no_certificate',
  /** The chain does not lead to a CA in the configured bundle (other CA, self-signed, missing intermediate). */
  'unknown_ca',
  'expired',
  'not_yet_valid',
  /** Listed on a configured CRL (RFC 5280 §5). */
  'revoked',
  /**
   * The certificate verified but is unfit for an exporter: bad signature, wrong extended key
   * usage (no clientAuth), revocation status unknown because the issuer has no CRL loaded, …
   */
  'bad_certificate',
  /** Chain verified, but no presented identity (DNS-ID, or CN without DNS-IDs) is on the allowlist. */
  'name_not_allowed',
  /** Allowed identity, but connecting from an address outside the identity's bound prefixes. */
  'source_not_bound',
  /** Allowed identity, but a message claimed an observation domain the identity is not bound to. */
  'domain_not_bound',
  /** Client offered only protocol versions below the minimum (TLS 1.2 / DTLS 1.2). */
  'protocol_version',
  /** Handshake did not complete within the handshake timeout (slow-loris). */
  'handshake_timeout',
  /** Any other handshake failure: not TLS at all (plain TCP bytes), no shared cipher, alert, reset. */
  'handshake_failed',
] as const;

export type AuthFailureReason = (typeof AUTH_FAILURE_REASONS)[number];

/** A counter per reason, every reason present (so metrics export zeroes too). */
export function emptyAuthFailureCounts(): Record<AuthFailureReason, number> {
  const out = {} as Record<AuthFailureReason, number>;
  for (const r of AUTH_FAILURE_REASONS) out[r] = 0;
  return out;
}

/**
 * OpenSSL X509_V_ERR_* names as node reports them (`tlsSocket.authorizationError`, the short
 * form without the prefix) mapped to a reason. Anything unlisted is `bad_certificate`: a
 * verification error we did not anticipate still rejects the peer, it only gets the generic label.
 */
const VERIFY_ERROR_REASONS: Readonly<Record<string, AuthFailureReason>> = {
  CERT_HAS_EXPIRED: 'expired',
  CERT_NOT_YET_VALID: 'not_yet_valid',
  CERT_REVOKED: 'revoked',
  UNABLE_TO_GET_ISSUER_CERT: 'unknown_ca',
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: 'unknown_ca',
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'unknown_ca',
  SELF_SIGNED_CERT_IN_CHAIN: 'unknown_ca',
  DEPTH_ZERO_SELF_SIGNED_CERT: 'unknown_ca',
  CERT_UNTRUSTED: 'unknown_ca',
  CERT_CHAIN_TOO_LONG: 'unknown_ca',
  // Revocation status cannot be established: with CRLs configured, OpenSSL needs the issuer's CRL.
  CRL_HAS_EXPIRED: 'bad_certificate',
  CRL_NOT_YET_VALID: 'bad_certificate',
  UNABLE_TO_GET_CRL: 'bad_certificate',
  CERT_SIGNATURE_FAILURE: 'bad_certificate',
  INVALID_PURPOSE: 'bad_certificate',
  CERT_REJECTED: 'bad_certificate',
};

/**
 * Maps an OpenSSL verification error to a reason. Accepts node's short code
 * ('CERT_HAS_EXPIRED'), the full OpenSSL name ('X509_V_ERR_CERT_HAS_EXPIRED'), the numeric
 * X509_V_ERR value (as a DTLS addon might report it) or the text OpenSSL prints
 * ('certificate has expired').
 */
export function reasonFromVerifyError(error: string | number | null | undefined): AuthFailureReason {
  if (error === null || error === undefined) return 'bad_certificate';
  if (typeof error === 'number') return VERIFY_ERROR_NUMBERS.get(error) ?? 'bad_certificate';
  const code = error.startsWith('X509_V_ERR_') ? error.slice('X509_V_ERR_'.length) : error;
  const direct = Object.hasOwn(VERIFY_ERROR_REASONS, code) ? VERIFY_ERROR_REASONS[code] : undefined;
  if (direct !== undefined) return direct;
  const text = error.toLowerCase();
  if (text.includes('no certificate') || text.includes('peer did not return a certificate')) return 'no_certificate';
  if (text.includes('expired')) return 'expired';
  if (text.includes('not yet valid')) return 'not_yet_valid';
  if (text.includes('revoked')) return 'revoked';
  if (text.includes('issuer') || text.includes('self-signed') || text.includes('self signed') || text.includes('unknown ca')) {
    return 'unknown_ca';
  }
  return 'bad_certificate';
}

/** X509_V_ERR_* numeric values (include/openssl/x509_vfy.h, stable across OpenSSL 1.1–3.x). */
const VERIFY_ERROR_NUMBERS: ReadonlyMap<number, AuthFailureReason> = new Map<number, AuthFailureReason>([
  [2, 'unknown_ca'], // UNABLE_TO_GET_ISSUER_CERT
  [3, 'bad_certificate'], // UNABLE_TO_GET_CRL
  [7, 'bad_certificate'], // CERT_SIGNATURE_FAILURE
  [9, 'not_yet_valid'], // CERT_NOT_YET_VALID
  [10, 'expired'], // CERT_HAS_EXPIRED
  [11, 'bad_certificate'], // CRL_NOT_YET_VALID
  [12, 'bad_certificate'], // CRL_HAS_EXPIRED
  [18, 'unknown_ca'], // DEPTH_ZERO_SELF_SIGNED_CERT
  [19, 'unknown_ca'], // SELF_SIGNED_CERT_IN_CHAIN
  [20, 'unknown_ca'], // UNABLE_TO_GET_ISSUER_CERT_LOCALLY
  [21, 'unknown_ca'], // UNABLE_TO_VERIFY_LEAF_SIGNATURE
  [22, 'unknown_ca'], // CERT_CHAIN_TOO_LONG
  [23, 'revoked'], // CERT_REVOKED
  [26, 'bad_certificate'], // INVALID_PURPOSE
  [27, 'unknown_ca'], // CERT_UNTRUSTED
  [28, 'bad_certificate'], // CERT_REJECTED
]);

/**
 * Maps a handshake-level error (node's `tlsClientError`, or a DTLS addon's OpenSSL error
 * string) to a reason. OpenSSL reason strings are matched because node's `err.code` for them
 * is derived from the OpenSSL reason ('ERR_SSL_UNSUPPORTED_PROTOCOL').
 */
export function reasonFromHandshakeError(err: { readonly code?: unknown; readonly message?: unknown } | null | undefined): AuthFailureReason {
  const code = typeof err?.code === 'string' ? err.code : '';
  const message = typeof err?.message === 'string' ? err.message.toLowerCase() : '';
  if (code === 'ERR_TLS_HANDSHAKE_TIMEOUT' || message.includes('handshake timeout')) return 'handshake_timeout';
  const text = `${code.toLowerCase()} ${message}`;
  if (
    text.includes('unsupported_protocol') ||
    text.includes('unsupported protocol') ||
    text.includes('version_too_low') ||
    text.includes('version too low') ||
    text.includes('protocol_version') ||
    text.includes('protocol version')
  ) {
    return 'protocol_version';
  }
  if (text.includes('peer_did_not_return_a_certificate') || text.includes('peer did not return a certificate')) return 'no_certificate';
  if (text.includes('certificate_verify_failed') || text.includes('certificate verify failed')) return 'bad_certificate';
  if (text.includes('unknown_ca') || text.includes('unknown ca')) return 'unknown_ca';
  if (text.includes('certificate_expired') || text.includes('certificate expired')) return 'expired';
  if (text.includes('certificate_revoked') || text.includes('certificate revoked')) return 'revoked';
  return 'handshake_failed';
}
