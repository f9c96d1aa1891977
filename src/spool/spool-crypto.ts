import { randomFillSync } from 'node:crypto';
import sodium from 'libsodium-wrappers';

/**
 * The spool's cryptography (libsodium): XChaCha20-Poly1305 IETF for batches, wrapped keys and
 * the decoder state; keyed BLAKE2b for MACs and fingerprints; crypto_kdf only to separate
 * purposes of one key (never to derive data keys: those are random per epoch).
 *
 * Key hierarchy:
 *   KEK (from the environment/file/command, never on disk)
 *     ├─ kdf(1, "sfkekwrp") → wrapping key: wraps the spool key and every epoch data key
 *     └─ kdf(2, "sfkekfpr") → fingerprint key: BLAKE2b(spool id) identifies which KEK wrapped a row
 *   spool key (random, stored wrapped)
 *     ├─ kdf(1, "sfspanch") → MACs of the chain anchor and of tombstones (domain-separated)
 *     ├─ kdf(2, "sfsphwmk") → MAC of the high-water mark file (rollback detection)
 *     └─ kdf(3, "sfspdecs") → encryption key of the decoder state
 *   epoch data keys (random, one per epoch, stored wrapped; destroyed when the epoch is empty)
 */

export const KEY_BYTES = 32;
export const NONCE_BYTES = 24;
export const TAG_BYTES = 16;
export const MAC_BYTES = 32;
export const FINGERPRINT_BYTES = 16;

const KDF_WRAP = { id: 1, ctx: 'sfkekwrp' } as const;
const KDF_FINGERPRINT = { id: 2, ctx: 'sfkekfpr' } as const;
export const KDF_ANCHOR = { id: 1, ctx: 'sfspanch' } as const;
export const KDF_HWM = { id: 2, ctx: 'sfsphwmk' } as const;
export const KDF_DECODER_STATE = { id: 3, ctx: 'sfspdecs' } as const;

export async function sodiumReady(): Promise<typeof sodium> {
  await sodium.ready;
  return sodium;
}

export function subkey(key: Uint8Array, purpose: { readonly id: number; readonly ctx: string }): Uint8Array {
  return sodium.crypto_kdf_derive_from_key(KEY_BYTES, purpose.id, purpose.ctx, key);
}

/**
 * Random bytes from Node's CSPRNG (OpenSSL RAND_bytes, seeded from the kernel). Not
 * libsodium.js's randombytes_buf: that crosses into WebAssembly and back to the same source at
 * ~75 µs per call, which at hundreds of batches per second is a visible part of the append cost.
 */
export function randomBytes(n: number): Uint8Array {
  // Filled in place: a fresh array the caller can wipe, never a slice of Buffer's shared pool.
  return randomFillSync(new Uint8Array(n));
}

export function randomKey(): Uint8Array {
  return randomBytes(KEY_BYTES);
}

export function wipe(bytes: Uint8Array): void {
  sodium.memzero(bytes);
}

export function mac(key: Uint8Array, message: Uint8Array): Uint8Array {
  return sodium.crypto_generichash(MAC_BYTES, message, key);
}

export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && sodium.memcmp(a, b);
}

/** A KEK held with its derived subkeys; `fingerprint` is stored next to what it wraps (not secret). */
export class Kek {
  readonly fingerprint: Uint8Array;
  private readonly wrapKey: Uint8Array;

  constructor(kek: Uint8Array, spoolId: Uint8Array) {
    if (kek.length !== KEY_BYTES) throw new RangeError(`a KEK is ${KEY_BYTES} bytes`);
    this.wrapKey = subkey(kek, KDF_WRAP);
    const fpKey = subkey(kek, KDF_FINGERPRINT);
    this.fingerprint = sodium.crypto_generichash(FINGERPRINT_BYTES, spoolId, fpKey);
    wipe(fpKey);
  }

  /** Wraps a key: nonce ‖ XChaCha20-Poly1305(key, ad). `ad` binds it to its row (spool id, epoch). */
  wrap(key: Uint8Array, ad: Uint8Array): Uint8Array {
    const nonce = randomBytes(NONCE_BYTES);
    const ct = sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(key, ad, null, nonce, this.wrapKey);
    const out = new Uint8Array(NONCE_BYTES + ct.length);
    out.set(nonce, 0);
    out.set(ct, NONCE_BYTES);
    return out;
  }

  /** Unwraps; null when the blob is corrupted or was wrapped by another KEK or for another row. */
  unwrap(wrapped: Uint8Array, ad: Uint8Array): Uint8Array | null {
    if (wrapped.length !== NONCE_BYTES + KEY_BYTES + TAG_BYTES) return null;
    try {
      return sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(null, wrapped.subarray(NONCE_BYTES), ad, wrapped.subarray(0, NONCE_BYTES), this.wrapKey);
    } catch {
      return null;
    }
  }

  destroy(): void {
    wipe(this.wrapKey);
  }
}

/** Seals with a detached tag: returns ciphertext (same length as the plaintext) and the 16-byte tag. */
export function seal(key: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array, ad: Uint8Array): { ciphertext: Uint8Array; tag: Uint8Array } {
  const r = sodium.crypto_aead_xchacha20poly1305_ietf_encrypt_detached(plaintext, ad, null, nonce, key);
  return { ciphertext: r.ciphertext, tag: r.mac };
}

/** Opens a detached seal; null when authentication fails. */
export function open(key: Uint8Array, nonce: Uint8Array, ciphertext: Uint8Array, tag: Uint8Array, ad: Uint8Array): Uint8Array | null {
  if (nonce.length !== NONCE_BYTES || tag.length !== TAG_BYTES) return null;
  try {
    return sodium.crypto_aead_xchacha20poly1305_ietf_decrypt_detached(null, ciphertext, tag, ad, nonce, key);
  } catch {
    return null;
  }
}

/** Encrypts a small blob with an attached tag: nonce ‖ ciphertext ‖ tag. */
export function sealBlob(key: Uint8Array, plaintext: Uint8Array, ad: Uint8Array): Uint8Array {
  const nonce = randomBytes(NONCE_BYTES);
  const ct = sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(plaintext, ad, null, nonce, key);
  const out = new Uint8Array(NONCE_BYTES + ct.length);
  out.set(nonce, 0);
  out.set(ct, NONCE_BYTES);
  return out;
}

export function openBlob(key: Uint8Array, blob: Uint8Array, ad: Uint8Array): Uint8Array | null {
  if (blob.length < NONCE_BYTES + TAG_BYTES) return null;
  try {
    return sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(null, blob.subarray(NONCE_BYTES), ad, blob.subarray(0, NONCE_BYTES), key);
  } catch {
    return null;
  }
}

export function toBase64(bytes: Uint8Array): string {
  return sodium.to_base64(bytes, sodium.base64_variants.ORIGINAL);
}
