import { createCipheriv, createDecipheriv, getCiphers, randomFillSync } from 'node:crypto';
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
 *
 * Batches (seal/open) are libsodium's crypto_aead_xchacha20poly1305_ietf, which is two steps
 * (draft-irtf-cfrg-xchacha-03 §2.3, and libsodium's own implementation): HChaCha20 turns
 * (key, nonce[0..16]) into a one-batch subkey, then ChaCha20-Poly1305 (RFC 8439 §2.8) runs
 * under that subkey with the nonce 0x00000000 ‖ nonce[16..24]. Where the OpenSSL that Node
 * links provides ChaCha20-Poly1305 and passes the known-answer check against libsodium in
 * sodiumReady(), the first step is hchacha20() below (one 64-byte block per batch) and the
 * second, all of the per-byte work, is OpenSSL's (≈4–5× libsodium.js's WebAssembly here:
 * ~1.3 GB/s against ~250 MB/s); else libsodium does both. The bytes are the same either
 * way (tests compare both engines and the draft's test vector), so a spool written by one is
 * read by the other. Small blobs (wrapped keys, decoder state) always use libsodium.
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

const HCHACHA_INPUT_BYTES = 16;
const IETF_NONCE_BYTES = 12;
const OPENSSL_CIPHER = 'chacha20-poly1305';

/** What computes the batches' ChaCha20-Poly1305 step (see the header). */
export type BatchAeadEngine = 'openssl' | 'libsodium';
let engine: BatchAeadEngine = 'libsodium';
/** The known-answer check's verdict, made once per thread (every Spool.open calls sodiumReady()). */
let opensslChecked: boolean | null = null;

export async function sodiumReady(): Promise<typeof sodium> {
  await sodium.ready;
  opensslChecked ??= opensslMatchesLibsodium();
  engine = opensslChecked ? 'openssl' : 'libsodium';
  return sodium;
}

/** The engine in use for batches (after sodiumReady()). */
export function batchAeadEngine(): BatchAeadEngine {
  return engine;
}

/** For tests: forces an engine ('openssl' only where the check passed). */
export function useBatchAeadEngine(e: BatchAeadEngine): void {
  if (e === 'openssl' && !(opensslChecked ??= opensslMatchesLibsodium())) throw new Error('OpenSSL ChaCha20-Poly1305 is not available or does not match libsodium');
  engine = e;
}

/**
 * Known-answer check of the OpenSSL step against libsodium: a 200-byte batch under a fixed
 * key, nonce and associated data must seal to the same bytes and open in both directions.
 * False where Node's OpenSSL lacks the cipher (e.g. a FIPS-only build).
 */
function opensslMatchesLibsodium(): boolean {
  if (!getCiphers().includes(OPENSSL_CIPHER)) return false;
  try {
    const key = Uint8Array.from({ length: KEY_BYTES }, (_, i) => 0x80 + i);
    const nonce = Uint8Array.from({ length: NONCE_BYTES }, (_, i) => 0x40 + i);
    const ad = Uint8Array.from({ length: 29 }, (_, i) => i * 7);
    const msg = Uint8Array.from({ length: 200 }, (_, i) => (i * 31 + 5) & 0xff);
    const ref = sodium.crypto_aead_xchacha20poly1305_ietf_encrypt_detached(msg, ad, null, nonce, key);
    const got = sealOpenssl(key, nonce, msg, ad);
    const back = openOpenssl(key, nonce, ref.ciphertext, ref.mac, ad);
    return equalBytes(got.ciphertext, ref.ciphertext) && equalBytes(got.tag, ref.mac) && back !== null && equalBytes(back, msg);
  } catch {
    return false;
  }
}

/**
 * HChaCha20 (draft-irtf-cfrg-xchacha-03 §2.2): the ChaCha20 state built from the key and a
 * 16-byte input in place of counter ‖ nonce, 20 rounds, and no final addition of the input;
 * the subkey is words 0–3 and 12–15, little-endian. libsodium.js's standard build does not
 * export crypto_core_hchacha20, hence this; the test vector of §2.2.1 and the byte-for-byte
 * comparison with libsodium's AEAD check it.
 */
export function hchacha20(key: Uint8Array, input: Uint8Array): Uint8Array {
  if (key.length !== KEY_BYTES || input.length !== HCHACHA_INPUT_BYTES) throw new RangeError('HChaCha20 takes a 32-byte key and a 16-byte input');
  const kv = new DataView(key.buffer, key.byteOffset, KEY_BYTES);
  const iv = new DataView(input.buffer, input.byteOffset, HCHACHA_INPUT_BYTES);
  const x = new Uint32Array(16);
  x[0] = 0x61707865; x[1] = 0x3320646e; x[2] = 0x79622d32; x[3] = 0x6b206574; // "expand 32-byte k"
  for (let i = 0; i < 8; i++) x[4 + i] = kv.getUint32(i * 4, true);
  for (let i = 0; i < 4; i++) x[12 + i] = iv.getUint32(i * 4, true);
  const qr = (a: number, b: number, c: number, d: number): void => {
    // RFC 8439 §2.1 quarter round; Uint32Array stores wrap every sum to 32 bits.
    x[a] = (x[a] ?? 0) + (x[b] ?? 0); x[d] = rotl((x[d] ?? 0) ^ (x[a] ?? 0), 16);
    x[c] = (x[c] ?? 0) + (x[d] ?? 0); x[b] = rotl((x[b] ?? 0) ^ (x[c] ?? 0), 12);
    x[a] = (x[a] ?? 0) + (x[b] ?? 0); x[d] = rotl((x[d] ?? 0) ^ (x[a] ?? 0), 8);
    x[c] = (x[c] ?? 0) + (x[d] ?? 0); x[b] = rotl((x[b] ?? 0) ^ (x[c] ?? 0), 7);
  };
  for (let round = 0; round < 10; round++) {
    qr(0, 4, 8, 12); qr(1, 5, 9, 13); qr(2, 6, 10, 14); qr(3, 7, 11, 15); // columns
    qr(0, 5, 10, 15); qr(1, 6, 11, 12); qr(2, 7, 8, 13); qr(3, 4, 9, 14); // diagonals
  }
  const out = new Uint8Array(KEY_BYTES);
  const ov = new DataView(out.buffer);
  for (let i = 0; i < 4; i++) {
    ov.setUint32(i * 4, x[i] ?? 0, true);
    ov.setUint32(16 + i * 4, x[12 + i] ?? 0, true);
  }
  x.fill(0);
  return out;
}

function rotl(v: number, n: number): number {
  return ((v << n) | (v >>> (32 - n))) >>> 0;
}

/** The XChaCha20 step: the subkey (caller wipes it) and the 12-byte IETF nonce for the ChaCha20-Poly1305 step. */
function xchachaSubkey(key: Uint8Array, nonce: Uint8Array): { subkey: Uint8Array; ietfNonce: Uint8Array } {
  const sub = hchacha20(key, nonce.subarray(0, HCHACHA_INPUT_BYTES));
  const ietfNonce = new Uint8Array(IETF_NONCE_BYTES);
  ietfNonce.set(nonce.subarray(HCHACHA_INPUT_BYTES), IETF_NONCE_BYTES - (NONCE_BYTES - HCHACHA_INPUT_BYTES));
  return { subkey: sub, ietfNonce };
}

// The subkey's JavaScript copy is wiped after use; OpenSSL's copy in the cipher context is
// cleansed when the context is freed, which Node does when the Cipher object is collected.
function sealOpenssl(key: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array, ad: Uint8Array): { ciphertext: Uint8Array; tag: Uint8Array } {
  const { subkey: sub, ietfNonce } = xchachaSubkey(key, nonce);
  try {
    const c = createCipheriv(OPENSSL_CIPHER, sub, ietfNonce, { authTagLength: TAG_BYTES });
    c.setAAD(ad, { plaintextLength: plaintext.length });
    const head = c.update(plaintext);
    const tail = c.final(); // empty for a stream cipher; concatenated anyway rather than assumed
    return { ciphertext: plainArray(tail.length === 0 ? head : Buffer.concat([head, tail])), tag: plainArray(c.getAuthTag()) };
  } finally {
    wipe(sub);
  }
}

/** Null when authentication fails; no plaintext is returned before the tag has been checked (final()). */
function openOpenssl(key: Uint8Array, nonce: Uint8Array, ciphertext: Uint8Array, tag: Uint8Array, ad: Uint8Array): Uint8Array | null {
  const { subkey: sub, ietfNonce } = xchachaSubkey(key, nonce);
  try {
    const d = createDecipheriv(OPENSSL_CIPHER, sub, ietfNonce, { authTagLength: TAG_BYTES });
    d.setAAD(ad, { plaintextLength: ciphertext.length });
    d.setAuthTag(tag);
    const head = d.update(ciphertext);
    let tail: Buffer;
    try {
      tail = d.final();
    } catch {
      head.fill(0);
      return null;
    }
    return plainArray(tail.length === 0 ? head : Buffer.concat([head, tail]));
  } finally {
    wipe(sub);
  }
}

/** The same bytes as a plain Uint8Array, as libsodium returns them (Buffer's slice() is a view, not a copy). */
function plainArray(b: Buffer): Uint8Array {
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}

export function subkey(key: Uint8Array, purpose: { readonly id: number; readonly ctx: string }): Uint8Array {
  return sodium.crypto_kdf_derive_from_key(KEY_BYTES, purpose.id, purpose.ctx, key);
}

/**
 * Random bytes from Node's CSPRNG (OpenSSL RAND_bytes, seeded from the kernel). Not
 * libsodium.js's randombytes_buf: that crosses into WebAssembly and back to the same source at
 * ~75 µs per call, which at hundreds of batches per second is a visible part of the append cost.
 */
/** Writes `v` (a non-negative safe integer: an id) as 8 bytes big-endian at out[pos], for associated data and MAC messages. */
export function u64be(out: Uint8Array, pos: number, v: number): void {
  new DataView(out.buffer, out.byteOffset, out.byteLength).setBigUint64(pos, BigInt(v), false);
}

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
  if (key.length !== KEY_BYTES || nonce.length !== NONCE_BYTES) throw new RangeError(`a batch key is ${KEY_BYTES} bytes and its nonce ${NONCE_BYTES}`);
  if (engine === 'openssl') return sealOpenssl(key, nonce, plaintext, ad);
  const r = sodium.crypto_aead_xchacha20poly1305_ietf_encrypt_detached(plaintext, ad, null, nonce, key);
  return { ciphertext: r.ciphertext, tag: r.mac };
}

/** Opens a detached seal; null when authentication fails. */
export function open(key: Uint8Array, nonce: Uint8Array, ciphertext: Uint8Array, tag: Uint8Array, ad: Uint8Array): Uint8Array | null {
  if (key.length !== KEY_BYTES || nonce.length !== NONCE_BYTES || tag.length !== TAG_BYTES) return null;
  if (engine === 'openssl') return openOpenssl(key, nonce, ciphertext, tag, ad);
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
