import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { prefixContains, parsePrefix } from '../../src/flow/cidr.js';
import { newFlowRecord, type FlowRecord, type IpAddr } from '../../src/flow/flow-record.js';
import { ipToString, parseIp } from '../../src/flow/ip.js';
import type { PrivacyEvent } from '../../src/flow/privacy.js';
import { ConfigError } from '../../src/flow/errors.js';
import { compilePseudonymPolicy, type PseudonymPolicyConfig } from '../../src/privacy/policy.js';
import { Pseudonymizer } from '../../src/privacy/pseudonymizer.js';
import { cryptoPanAt, reversePseudonym } from '../../src/privacy/reverse.js';

/*
 * The policy and the ingest worker's pseudonymiser: where pseudonyms go (inside the prefix
 * that matched, never onto an address the policy keeps), that kept addresses stay as they are,
 * that the cache answers what a fresh computation answers, that the map is reversible with the
 * key (re-identification), and key rotation per period.
 */

const KEY = Uint8Array.from({ length: 32 }, (_, i) => 255 - i);
const T0 = Date.UTC(2026, 11, 8, 10, 0, 0);
const POLICY: PseudonymPolicyConfig = {
  fields: ['srcip', 'dstip', 'nexthop'],
  rules: [
    { name: 'servers', action: 'keep', prefixes: ['10.20.0.0/16', '2001:db8:100:2::/64'] },
    { name: 'clients', action: 'pseudonymize', prefixes: ['10.0.0.0/8', '2001:db8:100::/40'] },
  ],
};
const compiled = compilePseudonymPolicy(POLICY);

function make(options: { rotation?: 'never' | 'daily' | 'epoch'; at?: number; cacheEntries?: number; events?: PrivacyEvent[] } = {}): Pseudonymizer {
  const events = options.events;
  return new Pseudonymizer(
    { policy: compiled, masterKey: KEY, rotation: options.rotation ?? 'daily', epochSeconds: 3600, cacheEntries: options.cacheEntries ?? 1024, ...(events === undefined ? {} : { events: (e) => events.push(e) }) },
    options.at ?? T0,
  );
}

const ip = (t: string): IpAddr => {
  const a = parseIp(t);
  if (a === null) throw new Error(t);
  return a;
};
const within = (a: IpAddr, p: string): boolean => {
  const pre = parsePrefix(p);
  if (pre === null) throw new Error(p);
  return prefixContains(pre, a);
};
const out = (pz: Pseudonymizer, a: IpAddr): IpAddr | null => {
  if (typeof a === 'number') {
    const r = pz.a4(a);
    return r < 0 ? null : r;
  }
  return pz.a6(a);
};

const arbClient4 = fc.integer({ min: 0, max: 0xffffff }).map((low) => (0x0a000000 + low) >>> 0);
const arbClient6 = fc.uint8Array({ minLength: 16, maxLength: 16 }).map((b) => {
  const a = Uint8Array.from(b);
  a.set([0x20, 0x01, 0x0d, 0xb8, 0x01], 0); // 2001:db8:1xx: the /40
  return a;
});

test('policy: pseudonyms stay inside the matched prefix, never on a kept address, and reverse to the original with the key', () => {
  const pz = make();
  const { cp } = cryptoPanAt(KEY, 'daily', 3600, T0);
  fc.assert(
    fc.property(fc.oneof(arbClient4, arbClient6), (a) => {
      const y = out(pz, a);
      assert.notEqual(y, null);
      if (y === null) return;
      if (within(a, '10.20.0.0/16') || within(a, '2001:db8:100:2::/64')) {
        assert.equal(ipToString(y), ipToString(a), 'a server address is kept');
        assert.equal(reversePseudonym(compiled, cp, y), null, 'a kept address is not a pseudonym');
        return;
      }
      assert.ok(typeof y === 'number' ? within(y, '10.0.0.0/8') && !within(y, '10.20.0.0/16') : within(y, '2001:db8:100::/40') && !within(y, '2001:db8:100:2::/64'), `${ipToString(a)} → ${ipToString(y)}`);
      const back = reversePseudonym(compiled, cp, y);
      assert.ok(back !== null && ipToString(back) === ipToString(a), `${ipToString(y)} reverses to ${back === null ? 'null' : ipToString(back)}, not ${ipToString(a)}`);
    }),
    { numRuns: 400 },
  );
  assert.equal(pz.stats().unmappable, 0);
});

test('policy: addresses outside every rule (the public internet) and fields not listed stay in clear', () => {
  const pz = make();
  for (const t of ['192.0.2.1', '8.8.8.8', '2001:db8:200::1', '::1']) assert.equal(ipToString(out(pz, ip(t)) ?? 0), t);
  const r = newFlowRecord('netflow', 9, 'udp', '192.0.2.9', null, 0, 0);
  r.srcAddr = ip('10.1.2.3');
  r.dstAddr = ip('8.8.8.8');
  r.nextHop = ip('10.9.9.9');
  r.bgpNextHop = ip('10.7.7.7');
  pz.apply(r);
  const seen: FlowRecord = r;
  assert.ok(seen.srcAddr !== null && ipToString(seen.srcAddr) !== '10.1.2.3' && within(seen.srcAddr, '10.0.0.0/8'));
  assert.equal(ipToString(seen.dstAddr ?? 0), '8.8.8.8');
  assert.ok(seen.nextHop !== null && ipToString(seen.nextHop) !== '10.9.9.9');
  assert.equal(ipToString(seen.bgpNextHop ?? 0), '10.7.7.7', 'bgpnexthop is not in fields');
  assert.equal(seen.exporter, '192.0.2.9', 'the exporter address is not flow data');
});

test('policy: two clients sharing a k-bit prefix get pseudonyms sharing exactly that prefix (no walk involved)', () => {
  const pz = make();
  const a = ip('10.1.2.3') as number;
  for (let k = 8; k < 32; k++) {
    const b = (a ^ (0x80000000 >>> k)) >>> 0;
    if (within(b, '10.20.0.0/16')) continue;
    const ya = pz.a4(a);
    const yb = pz.a4(b);
    // Walked outputs (a pseudonym that first landed in the kept /16) are the documented exception.
    if (ya < 0 || yb < 0) continue;
    const shared = Math.clz32((ya ^ yb) >>> 0);
    assert.equal(shared, k, `k=${k}`);
  }
});

test('cache: answers what a fresh computation answers, for IPv4 and IPv6, through evictions', () => {
  const small = make({ cacheEntries: 1024 });
  const addrs: IpAddr[] = [];
  for (let i = 0; i < 5000; i++) addrs.push(i % 2 === 0 ? (0x0a000000 + i * 2654435761) >>> 0 & 0x0affffff : Uint8Array.from([0x20, 0x01, 0x0d, 0xb8, 0x01, i & 0xff, (i >> 8) & 0xff, 0, 0, 0, 0, 0, 0, 0, 0, i & 7]));
  const first = addrs.map((a) => ipToString(out(small, a) ?? 0));
  const again = addrs.map((a) => ipToString(out(small, a) ?? 0));
  const fresh = addrs.map((a) => ipToString(out(make(), a) ?? 0));
  assert.deepEqual(again, first);
  assert.deepEqual(fresh, first);
  const s = small.stats();
  assert.ok(s.cacheHits > 0 && s.cacheMisses > 5000, `hits ${s.cacheHits}, misses ${s.cacheMisses}`);
});

test('rotation: pseudonyms change with the period (daily), not within it; never keeps one key; the key in force is stamped and announced', () => {
  const events: PrivacyEvent[] = [];
  const pz = make({ events });
  const a = ip('10.1.2.3') as number;
  const day1 = pz.a4(a);
  assert.equal(pz.rotate(T0 + 3_600_000), false, 'still the same UTC day');
  assert.equal(pz.a4(a), day1);
  const stamp1 = pz.stamp;
  assert.equal(pz.rotate(T0 + 86_400_000), true);
  const day2 = pz.a4(a);
  assert.notEqual(day2, day1);
  assert.equal(pz.stamp.startS - stamp1.startS, 86_400);
  assert.equal(pz.stamp.lengthS, 86_400);
  assert.deepEqual(events.map((e) => e.kind === 'pseudonym_key.in_force' && e.reason), ['start', 'rotation']);
  assert.ok(events.every((e) => !JSON.stringify(e).includes('10.1.2.3')));
  // Re-identification with the key of the right period only.
  assert.equal(ipToString(reversePseudonym(compiled, cryptoPanAt(KEY, 'daily', 3600, T0 + 86_400_000).cp, day2) ?? 0), '10.1.2.3');
  assert.notEqual(ipToString(reversePseudonym(compiled, cryptoPanAt(KEY, 'daily', 3600, T0).cp, day2) ?? 0), '10.1.2.3');

  // The previous period's mappings are overwritten, not only invalidated.
  pz.a6(Uint8Array.from([0x20, 0x01, 0x0d, 0xb8, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9]));
  assert.ok(pz.v6words.some((w) => w !== 0));
  assert.equal(pz.rotate(T0 + 2 * 86_400_000), true);
  assert.ok(pz.v6words.every((w) => w === 0), 'no pseudonym of the previous period left in the cache');

  const never = make({ rotation: 'never' });
  const n1 = never.a4(a);
  assert.equal(never.rotate(T0 + 400 * 86_400_000), false);
  assert.equal(never.a4(a), n1);
  assert.equal(never.stamp.lengthS, 0);
  const epoch = make({ rotation: 'epoch' });
  assert.equal(epoch.stamp.lengthS, 3600);
  assert.equal(epoch.rotate(T0 + 3_600_000), true);
});

test('policy compilation: bad prefixes, shadowed and over-carved ranges are refused naming the setting', () => {
  const bad = (cfg: PseudonymPolicyConfig, re: RegExp): void => {
    assert.throws(() => compilePseudonymPolicy(cfg), (err: unknown) => err instanceof ConfigError && re.test(err.message));
  };
  bad({ fields: ['srcip'], rules: [{ action: 'pseudonymize', prefixes: ['10.0.0.0/33'] }] }, /privacy\.pseudonymize\.rules\[0\]\.prefixes\[0\]: must be an IP address or CIDR prefix/);
  bad({ fields: ['srcip'], rules: [{ action: 'keep', prefixes: ['10.0.0.0/8'] }, { action: 'pseudonymize', prefixes: ['10.1.0.0/16'] }] }, /rules\[1\]\.prefixes\[0\]: 10\.1\.0\.0\/16 never applies/);
  bad({ fields: ['srcip'], rules: [{ action: 'keep', prefixes: ['10.0.0.0/9', '10.128.0.0/10'] }, { action: 'pseudonymize', prefixes: ['10.0.0.0/8'] }] }, /carve 75 % out of 10\.0\.0\.0\/8/);
  assert.doesNotThrow(() => compilePseudonymPolicy({ fields: ['srcip'], rules: [{ action: 'keep', prefixes: ['10.0.0.0/9'] }, { action: 'pseudonymize', prefixes: ['10.0.0.0/8'] }] }));
});

test('a walk that cannot end removes the address instead of storing it (counted as unmappable)', () => {
  // Half of 10.0.0.0/8 carved out: walks are frequent but end; the count stays 0 over many addresses.
  const half = compilePseudonymPolicy({ fields: ['srcip'], rules: [{ action: 'keep', prefixes: ['10.0.0.0/9'] }, { action: 'pseudonymize', prefixes: ['10.0.0.0/8'] }] });
  const pz = new Pseudonymizer({ policy: half, masterKey: KEY, rotation: 'never', epochSeconds: 3600, cacheEntries: 1024 }, T0);
  const { cp } = cryptoPanAt(KEY, 'never', 3600, T0);
  for (let i = 0; i < 2000; i++) {
    const a = (0x0a800000 + i * 977) >>> 0;
    const y = pz.a4(a);
    assert.ok(y >= 0 && within(y, '10.128.0.0/9'));
    assert.equal(reversePseudonym(half, cp, y), a);
  }
  assert.equal(pz.stats().unmappable, 0);
});
