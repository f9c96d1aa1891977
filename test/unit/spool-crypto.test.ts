import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { getCiphers, randomBytes as nodeRandomBytes } from 'node:crypto';
import sodium from 'libsodium-wrappers';
import {
  batchAeadEngine, hchacha20, NONCE_BYTES, open, seal, sodiumReady, TAG_BYTES, useBatchAeadEngine, type BatchAeadEngine,
} from '../../src/spool/spool-crypto.js';

/**
 * The batch AEAD has two engines (spool-crypto.ts): libsodium alone, or libsodium's HChaCha20
 * followed by OpenSSL's ChaCha20-Poly1305. Both must be libsodium's
 * crypto_aead_xchacha20poly1305_ietf to the byte, or spools written by one would not open
 * with the other.
 */

const ENGINES: readonly BatchAeadEngine[] = ['libsodium', 'openssl'];
const hex = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s.replace(/\s/g, ''), 'hex'));
const toHex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

function withEngine<T>(e: BatchAeadEngine, fn: () => T): T {
  const was = batchAeadEngine();
  useBatchAeadEngine(e);
  try {
    return fn();
  } finally {
    useBatchAeadEngine(was);
  }
}

describe('batch AEAD (XChaCha20-Poly1305 IETF)', () => {
  let initial: BatchAeadEngine;
  before(async () => {
    await sodiumReady();
    initial = batchAeadEngine();
  });
  after(() => {
    useBatchAeadEngine(initial);
  });

  test('sodiumReady() picks OpenSSL where Node provides ChaCha20-Poly1305, else libsodium', () => {
    assert.equal(initial, getCiphers().includes('chacha20-poly1305') ? 'openssl' : 'libsodium');
  });

  test('HChaCha20: draft-irtf-cfrg-xchacha-03 §2.2.1 test vector; wrong sizes refused', () => {
    const key = Uint8Array.from({ length: 32 }, (_, i) => i);
    assert.equal(toHex(hchacha20(key, hex('000000090000004a0000000031415927'))), '82413b4227b27bfed30e42508a877d73a0f9e4d58a74a853c12ec41326d3ecdc');
    // A view into a larger buffer at an odd offset reads the same bytes.
    const big = new Uint8Array(64);
    big.set(key, 3);
    assert.equal(toHex(hchacha20(big.subarray(3, 35), hex('000000090000004a0000000031415927'))), '82413b4227b27bfed30e42508a877d73a0f9e4d58a74a853c12ec41326d3ecdc');
    assert.throws(() => hchacha20(key.subarray(1), new Uint8Array(16)), RangeError);
    assert.throws(() => hchacha20(key, new Uint8Array(24)), RangeError);
  });

  test('draft-irtf-cfrg-xchacha-03 §A.3.1 test vector, both engines', () => {
    const plaintext = new TextEncoder().encode("Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.");
    const ad = hex('50515253c0c1c2c3c4c5c6c7');
    const key = Uint8Array.from({ length: 32 }, (_, i) => 0x80 + i);
    const nonce = Uint8Array.from({ length: 24 }, (_, i) => 0x40 + i);
    const ciphertext = 'bd6d179d3e83d43b9576579493c0e939572a1700252bfaccbed2902c21396cbb731c7f1b0b4aa6440bf3a82f4eda7e39ae64c6708c54c216cb96b72e1213b4522f8c9ba40db5d945b11b69b982c1bb9e3f3fac2bc369488f76b2383565d3fff921f9664c97637da9768812f615c68b13b52e';
    const tag = 'c0875924c1c7987947deafd8780acf49';
    for (const e of ENGINES) {
      withEngine(e, () => {
        const s = seal(key, nonce, plaintext, ad);
        assert.equal(toHex(s.ciphertext), ciphertext, e);
        assert.equal(toHex(s.tag), tag, e);
        const back = open(key, nonce, hex(ciphertext), hex(tag), ad);
        assert.ok(back !== null, e);
        assert.equal(toHex(back), toHex(plaintext), e);
      });
    }
  });

  test('the engines agree byte for byte and open each other\'s seals (lengths around the 16- and 64-byte block edges)', () => {
    for (const len of [0, 1, 15, 16, 17, 63, 64, 65, 255, 4096, 100_003]) {
      for (const adLen of [0, 1, 61]) {
        const key = nodeRandomBytes(32);
        const nonce = nodeRandomBytes(NONCE_BYTES);
        const msg = nodeRandomBytes(len);
        const ad = nodeRandomBytes(adLen);
        const ref = sodium.crypto_aead_xchacha20poly1305_ietf_encrypt_detached(msg, ad, null, nonce, key);
        const by = new Map(ENGINES.map((e) => [e, withEngine(e, () => seal(key, nonce, msg, ad))]));
        for (const e of ENGINES) {
          const s = by.get(e)!;
          assert.equal(toHex(s.ciphertext), toHex(ref.ciphertext), `${e} ciphertext, ${len} bytes, ad ${adLen}`);
          assert.equal(toHex(s.tag), toHex(ref.mac), `${e} tag, ${len} bytes, ad ${adLen}`);
          for (const reader of ENGINES) {
            const back = withEngine(reader, () => open(key, nonce, s.ciphertext, s.tag, ad));
            assert.ok(back !== null, `${reader} opens ${e}'s seal`);
            assert.equal(toHex(back), toHex(msg));
          }
        }
      }
    }
  });

  test('any altered byte of ciphertext, tag, associated data, nonce or key fails to open, on both engines', () => {
    const key = nodeRandomBytes(32);
    const nonce = nodeRandomBytes(NONCE_BYTES);
    const msg = nodeRandomBytes(300);
    const ad = nodeRandomBytes(40);
    const s = withEngine('libsodium', () => seal(key, nonce, msg, ad));
    const flip = (b: Uint8Array, i: number): Uint8Array => {
      const c = Uint8Array.from(b);
      c[i] = (c[i] ?? 0) ^ 0x01;
      return c;
    };
    for (const e of ENGINES) {
      withEngine(e, () => {
        for (const i of [0, 150, 299]) assert.equal(open(key, nonce, flip(s.ciphertext, i), s.tag, ad), null, `${e} ciphertext[${i}]`);
        for (const i of [0, TAG_BYTES - 1]) assert.equal(open(key, nonce, s.ciphertext, flip(s.tag, i), ad), null, `${e} tag[${i}]`);
        assert.equal(open(key, nonce, s.ciphertext, s.tag, flip(ad, 39)), null, `${e} ad`);
        // Byte 3 goes to HChaCha20 (the subkey), byte 20 to the ChaCha20-Poly1305 nonce.
        for (const i of [3, 20]) assert.equal(open(key, flip(nonce, i), s.ciphertext, s.tag, ad), null, `${e} nonce[${i}]`);
        assert.equal(open(flip(key, 31), nonce, s.ciphertext, s.tag, ad), null, `${e} key`);
        assert.equal(open(key, nonce, s.ciphertext.subarray(1), s.tag, ad), null, `${e} truncated`);
        assert.equal(open(key, nonce.subarray(1), s.ciphertext, s.tag, ad), null, `${e} short nonce`);
        const back = open(key, nonce, s.ciphertext, s.tag, ad);
        assert.ok(back !== null, `${e} untouched`);
        assert.equal(toHex(back), toHex(msg));
      });
    }
  });

  test('a wrong key or nonce length: seal throws RangeError, open returns null, on both engines', () => {
    const key = nodeRandomBytes(32);
    const nonce = nodeRandomBytes(NONCE_BYTES);
    const s = withEngine('libsodium', () => seal(key, nonce, new Uint8Array(5), new Uint8Array(0)));
    for (const e of ENGINES) {
      withEngine(e, () => {
        assert.throws(() => seal(key, nodeRandomBytes(12), new Uint8Array(5), new Uint8Array(0)), RangeError, e);
        assert.throws(() => seal(key.subarray(0, 16), nonce, new Uint8Array(5), new Uint8Array(0)), RangeError, e);
        assert.equal(open(key.subarray(0, 16), nonce, s.ciphertext, s.tag, new Uint8Array(0)), null, e);
        assert.equal(open(new Uint8Array(33), nonce, s.ciphertext, s.tag, new Uint8Array(0)), null, e);
      });
    }
  });
});
