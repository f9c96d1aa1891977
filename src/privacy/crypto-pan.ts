import { createCipheriv, type Cipher } from 'node:crypto';

/**
 * Crypto-PAn: prefix-preserving, keyed pseudonymisation of IPv4 and IPv6 addresses (J. Xu,
 * J. Fan, M. Ammar, S. Moon, "Prefix-Preserving IP Address Anonymization", ICNP 2002), with
 * AES-128 (node:crypto) as its pseudorandom function, bit-compatible with the reference
 * implementation and its ports (test/fixtures/crypto-pan holds their published vectors).
 *
 * Key: 32 bytes. The first 16 are the AES key; the last 16, encrypted once with it, are the
 * pad. For an address a of n bits (32 or 128), output bit i is
 *     a_i XOR msb(AES(a_0 … a_{i−1} ‖ pad_i … pad_127))
 * so output bit i depends on input bits 0 … i only: two addresses sharing exactly a k-bit
 * prefix map to outputs sharing exactly a k-bit prefix, and the map is a bijection on each
 * family.
 *
 * `fixedBits` (k) leaves the first k bits unchanged (no flips at positions < k): the address
 * is pseudonymised inside its k-bit prefix, still prefix-preserving and bijective there. With
 * k = 0 it is the published algorithm.
 *
 * Cost: the n − k PRF inputs depend only on the input address, so they are encrypted in one
 * AES-ECB call (512 bytes for an IPv4 address, 2 KiB for IPv6); the caller caches results
 * (pseudonymizer.ts). Reversal (`decrypt*`) needs the input prefix bit by bit: one block per
 * bit, for re-identification on site only.
 */

export const CRYPTO_PAN_KEY_BYTES = 32;
const BLOCK = 16;

export class CryptoPan {
  readonly #cipher: Cipher;
  /** The pad (AES of the key's second half) as it prefixes every PRF input. */
  readonly #pad = new Uint8Array(BLOCK);
  readonly #padWords = new Uint32Array(this.#pad.buffer);
  /** PRF inputs of one address: up to 128 blocks. */
  readonly #in = new Uint8Array(128 * BLOCK);
  readonly #in32 = new Uint32Array(this.#in.buffer);
  /** The running PRF input (pad with the address's leading bits copied over it), as words for copying. */
  readonly #state = new Uint8Array(BLOCK);
  readonly #state32 = new Uint32Array(this.#state.buffer);

  constructor(key: Uint8Array) {
    if (key.length !== CRYPTO_PAN_KEY_BYTES) throw new RangeError(`a Crypto-PAn key is ${CRYPTO_PAN_KEY_BYTES} bytes, got ${key.length}`);
    this.#cipher = createCipheriv('aes-128-ecb', key.subarray(0, BLOCK), null);
    this.#cipher.setAutoPadding(false);
    this.#pad.set(this.#cipher.update(key.subarray(BLOCK, 2 * BLOCK)));
  }

  /** The pseudonym of IPv4 address `a` (uint32), its first `fixedBits` bits unchanged. */
  encryptV4(a: number, fixedBits = 0): number {
    const n = 32 - fixedBits;
    if (n <= 0) return a >>> 0;
    const pad = this.#pad;
    // The first word of each input is built big-endian in `w` (address bits above `pos`, pad
    // bits from `pos` on); the other twelve bytes are the pad's, copied as words.
    const pad0 = ((pad[0] ?? 0) << 24) | ((pad[1] ?? 0) << 16) | ((pad[2] ?? 0) << 8) | (pad[3] ?? 0);
    const p32 = this.#padWords;
    const p1 = p32[1] ?? 0;
    const p2 = p32[2] ?? 0;
    const p3 = p32[3] ?? 0;
    const in8 = this.#in;
    const in32 = this.#in32;
    for (let i = 0; i < n; i++) {
      const pos = fixedBits + i;
      const w = pos === 0 ? pad0 : (a & (0xffffffff << (32 - pos))) | (pad0 & (0xffffffff >>> pos));
      const o = i * BLOCK;
      in8[o] = w >>> 24;
      in8[o + 1] = w >>> 16;
      in8[o + 2] = w >>> 8;
      in8[o + 3] = w;
      in32[i * 4 + 1] = p1;
      in32[i * 4 + 2] = p2;
      in32[i * 4 + 3] = p3;
    }
    const out = this.#cipher.update(in8.subarray(0, n * BLOCK));
    let flips = 0;
    for (let i = 0; i < n; i++) flips |= ((out[i * BLOCK] ?? 0) >>> 7) << (31 - fixedBits - i);
    return (a ^ flips) >>> 0;
  }

  /** The address whose pseudonym is `p` (IPv4): the inverse of encryptV4 with the same `fixedBits`. */
  decryptV4(p: number, fixedBits = 0): number {
    let a = p >>> 0;
    for (let pos = fixedBits; pos < 32; pos++) {
      // The flip at `pos` depends on the original bits above it, already recovered in `a`.
      const f = this.encryptV4(a, pos) ^ a;
      a = (a ^ (f & (1 << (31 - pos)))) >>> 0;
    }
    return a;
  }

  /** Writes the pseudonym of IPv6 address `a` (16 bytes) to `out` (16 bytes), its first `fixedBits` bits unchanged. */
  encryptV6(a: Uint8Array, out: Uint8Array, fixedBits = 0): void {
    const n = 128 - fixedBits;
    out.set(a.subarray(0, BLOCK));
    if (n <= 0) return;
    const st = this.#state;
    const s32 = this.#state32;
    const in32 = this.#in32;
    // state = the address's first `fixedBits` bits, then the pad's.
    st.set(this.#pad);
    for (let b = 0; b < fixedBits; b++) setBit(st, b, bitOf(a, b));
    for (let i = 0; i < n; i++) {
      const w = i * 4;
      in32[w] = s32[0] ?? 0;
      in32[w + 1] = s32[1] ?? 0;
      in32[w + 2] = s32[2] ?? 0;
      in32[w + 3] = s32[3] ?? 0;
      // The next input carries one more address bit.
      const pos = fixedBits + i;
      setBit(st, pos, bitOf(a, pos));
    }
    const res = this.#cipher.update(this.#in.subarray(0, n * BLOCK));
    for (let i = 0; i < n; i++) {
      if (((res[i * BLOCK] ?? 0) & 0x80) !== 0) {
        const pos = fixedBits + i;
        out[pos >>> 3] = (out[pos >>> 3] ?? 0) ^ (0x80 >>> (pos & 7));
      }
    }
  }

  /** The address whose pseudonym is `p` (IPv6), written to `out`: the inverse of encryptV6 with the same `fixedBits`. */
  decryptV6(p: Uint8Array, out: Uint8Array, fixedBits = 0): void {
    const a = Uint8Array.from(p.subarray(0, BLOCK));
    const tmp = new Uint8Array(BLOCK);
    for (let pos = fixedBits; pos < 128; pos++) {
      this.encryptV6(a, tmp, pos);
      // tmp differs from a at `pos` exactly when the PRF flips that bit.
      if (bitOf(tmp, pos) !== bitOf(a, pos)) setBit(a, pos, bitOf(a, pos) ^ 1);
    }
    out.set(a);
  }
}

function bitOf(b: Uint8Array, pos: number): number {
  return ((b[pos >>> 3] ?? 0) >>> (7 - (pos & 7))) & 1;
}

function setBit(b: Uint8Array, pos: number, v: number): void {
  const m = 0x80 >>> (pos & 7);
  const i = pos >>> 3;
  b[i] = v !== 0 ? (b[i] ?? 0) | m : (b[i] ?? 0) & ~m;
}
