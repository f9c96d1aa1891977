import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AUTH_FAILURE_REASONS, emptyAuthFailureCounts, reasonFromHandshakeError, reasonFromVerifyError } from '../../src/ingest/trust/auth-failure.js';

test('verify errors map to reasons (node codes, X509_V_ERR names, numbers, text)', () => {
  assert.equal(reasonFromVerifyError('CERT_HAS_EXPIRED'), 'expired');
  assert.equal(reasonFromVerifyError('X509_V_ERR_CERT_HAS_EXPIRED'), 'expired');
  assert.equal(reasonFromVerifyError(10), 'expired');
  assert.equal(reasonFromVerifyError('certificate has expired'), 'expired');
  assert.equal(reasonFromVerifyError('CERT_NOT_YET_VALID'), 'not_yet_valid');
  assert.equal(reasonFromVerifyError('CERT_REVOKED'), 'revoked');
  assert.equal(reasonFromVerifyError(23), 'revoked');
  for (const c of ['UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'SELF_SIGNED_CERT_IN_CHAIN', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'DEPTH_ZERO_SELF_SIGNED_CERT']) {
    assert.equal(reasonFromVerifyError(c), 'unknown_ca', c);
  }
  assert.equal(reasonFromVerifyError('UNABLE_TO_GET_CRL'), 'bad_certificate');
  assert.equal(reasonFromVerifyError('SOMETHING_NEW'), 'bad_certificate');
  assert.equal(reasonFromVerifyError(undefined), 'bad_certificate');
  assert.equal(reasonFromVerifyError(9999), 'bad_certificate');
});

test('handshake errors map to reasons', () => {
  assert.equal(reasonFromHandshakeError({ code: 'ERR_TLS_HANDSHAKE_TIMEOUT', message: 'TLS handshake timeout' }), 'handshake_timeout');
  assert.equal(reasonFromHandshakeError({ code: 'ERR_SSL_UNSUPPORTED_PROTOCOL', message: 'unsupported protocol' }), 'protocol_version');
  assert.equal(reasonFromHandshakeError({ message: 'error:0A000102:SSL routines::unsupported protocol' }), 'protocol_version');
  assert.equal(reasonFromHandshakeError({ code: 'ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE' }), 'no_certificate');
  assert.equal(reasonFromHandshakeError({ code: 'ERR_SSL_WRONG_VERSION_NUMBER', message: 'wrong version number' }), 'handshake_failed');
  assert.equal(reasonFromHandshakeError({ code: 'ECONNRESET' }), 'handshake_failed');
  assert.equal(reasonFromHandshakeError(null), 'handshake_failed');
});

test('the reason set is bounded and every counter starts at zero', () => {
  const counts = emptyAuthFailureCounts();
  assert.deepEqual(Object.keys(counts).sort(), [...AUTH_FAILURE_REASONS].sort());
  assert.ok(Object.values(counts).every((v) => v === 0));
  assert.equal(new Set(AUTH_FAILURE_REASONS).size, AUTH_FAILURE_REASONS.length);
});
