import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { ipv4ToString, ipv6ToString, parseIpv4, parseIpv6 } from '../../src/flow/ip.js';
import { CryptoPan } from '../../src/privacy/crypto-pan.js';

/*
 * Crypto-PAn against the published vectors of independent implementations
 * (test/fixtures/crypto-pan), then its properties: bijective (decrypt ∘ encrypt = id), and
 * prefix-preserving — two addresses sharing exactly k leading bits map to outputs sharing
 * exactly k leading bits — with and without fixed leading bits.
 */

interface VectorSet {
  readonly source: string;
  readonly key: string;
  readonly ipv4: readonly [string, string][];
  readonly ipv6: readonly [string, string][];
}
const vectors = JSON.parse(readFileSync(new URL('../fixtures/crypto-pan/vectors.json', import.meta.url), 'utf8')) as { sets: VectorSet[] };

const v4 = (t: string): number => {
  const a = parseIpv4(t);
  if (a === null) throw new Error(`bad IPv4 ${t}`);
  return a;
};
const v6 = (t: string): Uint8Array => {
  const a = parseIpv6(t);
  if (a === null) throw new Error(`bad IPv6 ${t}`);
  return a;
};

test('Crypto-PAn: every published vector of every set (IPv4 and IPv6), both directions', () => {
  let checked = 0;
  for (const set of vectors.sets) {
    const cp = new CryptoPan(Buffer.from(set.key, 'hex'));
    for (const [plain, pseudonym] of set.ipv4) {
      assert.equal(ipv4ToString(cp.encryptV4(v4(plain))), pseudonym, `${set.source}: ${plain}`);
      assert.equal(ipv4ToString(cp.decryptV4(v4(pseudonym))), ipv4ToString(v4(plain)), `${set.source}: reverse ${pseudonym}`);
      checked++;
    }
    for (const [plain, pseudonym] of set.ipv6) {
      const out = new Uint8Array(16);
      cp.encryptV6(v6(plain), out);
      assert.equal(ipv6ToString(out), ipv6ToString(v6(pseudonym)), `${set.source}: ${plain}`);
      const back = new Uint8Array(16);
      cp.decryptV6(out, back);
      assert.equal(ipv6ToString(back), ipv6ToString(v6(plain)), `${set.source}: reverse ${pseudonym}`);
      checked++;
    }
  }
  assert.ok(checked >= 140, `only ${checked} vectors checked`);
});

test('Crypto-PAn: a key that is not 32 bytes is refused', () => {
  assert.throws(() => new CryptoPan(new Uint8Array(16)), /32 bytes/);
});

function commonPrefix4(a: number, b: number): number {
  const x = (a ^ b) >>> 0;
  return x === 0 ? 32 : Math.clz32(x);
}
function commonPrefix6(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < 16; i++) {
    const x = (a[i] ?? 0) ^ (b[i] ?? 0);
    if (x !== 0) return i * 8 + Math.clz32(x) - 24;
  }
  return 128;
}

const key = fc.uint8Array({ minLength: 32, maxLength: 32 });
const addr4 = fc.integer({ min: 0, max: 0xffffffff });
const addr6 = fc.uint8Array({ minLength: 16, maxLength: 16 });

test('Crypto-PAn IPv4 property: bijective, exact shared prefix kept, fixed bits unchanged', () => {
  fc.assert(
    fc.property(key, addr4, addr4, fc.integer({ min: 0, max: 32 }), fc.integer({ min: 0, max: 32 }), (k, a, shift, fixed, share) => {
      const cp = new CryptoPan(k);
      // b shares exactly `share` leading bits with a (or is a, at 32).
      const hi = share === 0 ? 0 : (0xffffffff << (32 - share)) >>> 0;
      const bit = 0x80000000 >>> share;
      const low = share >= 31 ? 0 : 0xffffffff >>> (share + 1);
      const b = share === 32 ? a : ((a & hi) | (~a & bit) | (shift & low)) >>> 0;
      assert.equal(commonPrefix4(a, b), share);
      const ea = cp.encryptV4(a, fixed);
      const eb = cp.encryptV4(b, fixed);
      assert.equal(commonPrefix4(ea, eb), commonPrefix4(a, b));
      assert.equal(cp.decryptV4(ea, fixed), a);
      if (fixed > 0) assert.equal(commonPrefix4(ea, a) >= fixed, true);
    }),
    { numRuns: 300 },
  );
});

test('Crypto-PAn IPv6 property: bijective, exact shared prefix kept, fixed bits unchanged', () => {
  fc.assert(
    fc.property(key, addr6, addr6, fc.integer({ min: 0, max: 128 }), fc.integer({ min: 0, max: 127 }), (k, a, other, fixed, share) => {
      const cp = new CryptoPan(k);
      // b: a's first `share` bits, the opposite bit at `share`, then other's bits.
      const b = Uint8Array.from(other);
      for (let i = 0; i < share; i++) {
        const m = 0x80 >>> (i & 7);
        b[i >>> 3] = ((b[i >>> 3] ?? 0) & ~m) | ((a[i >>> 3] ?? 0) & m);
      }
      const m = 0x80 >>> (share & 7);
      b[share >>> 3] = ((b[share >>> 3] ?? 0) & ~m) | (~(a[share >>> 3] ?? 0) & m);
      const ea = new Uint8Array(16);
      const eb = new Uint8Array(16);
      cp.encryptV6(a, ea, fixed);
      cp.encryptV6(b, eb, fixed);
      assert.equal(commonPrefix6(a, b), share);
      assert.equal(commonPrefix6(ea, eb), share);
      const back = new Uint8Array(16);
      cp.decryptV6(ea, back, fixed);
      assert.deepEqual(back, a);
      assert.ok(commonPrefix6(ea, a) >= fixed);
    }),
    { numRuns: 100 },
  );
});

test('Crypto-PAn: distinct addresses in a /20 map to distinct pseudonyms (bijective on a whole block)', () => {
  const cp = new CryptoPan(Buffer.alloc(32, 9));
  const seen = new Set<number>();
  const base = v4('10.20.16.0');
  for (let i = 0; i < 4096; i++) seen.add(cp.encryptV4(base + i, 8));
  assert.equal(seen.size, 4096);
});
