import { createHash } from 'node:crypto';
import sodium from 'libsodium-wrappers';

/**
 * The device signing key: Ed25519 (libsodium crypto_sign, RFC 8032) from a 32-byte seed that
 * comes from a secret source like the spool KEK (`audit.signingKey`, SEALFLOW_AUDIT_SIGNING_KEY
 * / _FILE / _COMMAND; `sealflow keygen` makes one). It signs the trail's digests, the deletion
 * receipts, the attestation reports and the evidence pack. Only its public key leaves the
 * device (`sealflow audit pubkey`); verification needs nothing else.
 *
 * Key id: the first 16 bytes of SHA-256(public key), hex — short enough to print, long enough
 * that a document signed by another key names a different id.
 */

export const SEED_BYTES = 32;
export const PUBLIC_KEY_BYTES = 32;
export const SIGNATURE_BYTES = 64;
/** DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410 §4): SEQUENCE { AlgorithmIdentifier { id-Ed25519 }, BIT STRING }. */
const ED25519_SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

export async function signingReady(): Promise<void> {
  await sodium.ready;
}

export function keyIdOf(publicKey: Uint8Array): string {
  return createHash('sha256').update(publicKey).digest().subarray(0, 16).toString('hex');
}

/** The public key as PEM (SPKI), for `openssl pkeyutl -verify -pubin -rawin`. */
export function publicKeyPem(publicKey: Uint8Array): string {
  const der = Buffer.concat([ED25519_SPKI_PREFIX, publicKey]);
  const b64 = der.toString('base64');
  return `-----BEGIN PUBLIC KEY-----\n${b64}\n-----END PUBLIC KEY-----\n`;
}

/**
 * Reads a public key: base64 of the 32 raw bytes (as `audit pubkey` prints it), or a PEM
 * SPKI. Null when it is neither.
 */
export function parsePublicKey(text: string): Uint8Array | null {
  const t = text.trim();
  const pem = /-----BEGIN PUBLIC KEY-----([\s\S]*?)-----END PUBLIC KEY-----/.exec(t);
  if (pem !== null) {
    const der = Buffer.from((pem[1] ?? '').replace(/\s+/g, ''), 'base64');
    if (der.length !== ED25519_SPKI_PREFIX.length + PUBLIC_KEY_BYTES || !der.subarray(0, ED25519_SPKI_PREFIX.length).equals(ED25519_SPKI_PREFIX)) return null;
    return new Uint8Array(der.subarray(ED25519_SPKI_PREFIX.length));
  }
  const line = t.split(/\s+/)[0] ?? '';
  if (!/^[A-Za-z0-9+/]{43}=$/.test(line)) return null;
  return new Uint8Array(Buffer.from(line, 'base64'));
}

/** Ed25519 verification (libsodium); false on any malformed input. Call signingReady() first. */
export function verifySignature(publicKey: Uint8Array, message: Uint8Array | string, signature: Uint8Array): boolean {
  if (publicKey.length !== PUBLIC_KEY_BYTES || signature.length !== SIGNATURE_BYTES) return false;
  const m = typeof message === 'string' ? new Uint8Array(Buffer.from(message, 'utf8')) : message;
  try {
    return sodium.crypto_sign_verify_detached(signature, m, publicKey);
  } catch {
    return false;
  }
}

export class DeviceKey {
  readonly publicKey: Uint8Array;
  readonly keyId: string;
  private readonly secretKey: Uint8Array;

  private constructor(seed: Uint8Array) {
    const pair = sodium.crypto_sign_seed_keypair(seed);
    this.publicKey = pair.publicKey;
    this.secretKey = pair.privateKey;
    this.keyId = keyIdOf(this.publicKey);
  }

  /** The key from its 32-byte seed (the seed is not kept; the caller wipes its copy). */
  static async fromSeed(seed: Uint8Array): Promise<DeviceKey> {
    await signingReady();
    if (seed.length !== SEED_BYTES) throw new RangeError(`an Ed25519 seed is ${SEED_BYTES} bytes`);
    return new DeviceKey(seed);
  }

  sign(message: Uint8Array | string): Uint8Array {
    const m = typeof message === 'string' ? new Uint8Array(Buffer.from(message, 'utf8')) : message;
    return sodium.crypto_sign_detached(m, this.secretKey);
  }

  get publicKeyBase64(): string {
    return Buffer.from(this.publicKey).toString('base64');
  }

  /** Wipes the secret key from memory; sign() fails afterwards. */
  destroy(): void {
    sodium.memzero(this.secretKey);
  }
}
