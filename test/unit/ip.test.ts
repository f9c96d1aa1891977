import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ipToString, ipv6ToString, normaliseAddress, parseIp, parseIpv4, parseIpv6 } from '../../src/flow/ip.js';
import { PrefixSet, parsePrefix } from '../../src/flow/cidr.js';

test('IPv4 text round trip', () => {
  for (const t of ['0.0.0.0', '10.1.2.3', '255.255.255.255', '192.0.2.1']) {
    const v = parseIpv4(t);
    assert.notEqual(v, null);
    assert.equal(ipToString(v!), t);
  }
  for (const bad of ['1.2.3', '1.2.3.256', '1.2.3.4.5', 'a.b.c.d', '', '01.2.3.4444']) assert.equal(parseIpv4(bad), null, bad);
});

test('IPv6 text follows RFC 5952', () => {
  const cases: [string, string][] = [
    ['2001:db8:0:0:0:0:2:1', '2001:db8::2:1'],
    ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'],
    ['2001:0:0:1:0:0:0:1', '2001:0:0:1::1'],
    ['::', '::'],
    ['::1', '::1'],
    ['::ffff:192.0.2.1', '::ffff:192.0.2.1'],
    ['FE80::ABCD', 'fe80::abcd'],
  ];
  for (const [input, want] of cases) assert.equal(ipv6ToString(parseIpv6(input)!), want, input);
  for (const bad of [':::', '1::2::3', '12345::', 'fe80::1%eth0', '1:2:3:4:5:6:7:8:9']) assert.equal(parseIpv6(bad), null, bad);
});

test('socket addresses are normalised', () => {
  assert.equal(normaliseAddress('::ffff:127.0.0.2'), '127.0.0.2');
  assert.equal(normaliseAddress('[FE80::1%lo]'), 'fe80::1');
  assert.equal(normaliseAddress('10.0.0.1'), '10.0.0.1');
});

test('prefix sets match by family and length', () => {
  const set = PrefixSet.parse(['127.0.0.0/8', '192.0.2.7', '2001:db8:ab00::/40']);
  assert.ok(set.containsText('127.9.9.9'));
  assert.ok(set.containsText('192.0.2.7'));
  assert.ok(!set.containsText('192.0.2.8'));
  assert.ok(set.containsText('2001:db8:abff::1'));
  assert.ok(!set.containsText('2001:db8:ac00::1'));
  assert.ok(!set.contains(parseIp('::ffff:127.0.0.1')!), 'an IPv4 prefix never matches an IPv6 address');
  assert.ok(!new PrefixSet([]).containsText('127.0.0.1'), 'empty set contains nothing');
  assert.equal(parsePrefix('10.0.0.0/33'), null);
  assert.equal(parsePrefix('::/129'), null);
  assert.equal(parsePrefix('0.0.0.0/0')?.v4Mask, 0);
  assert.throws(() => PrefixSet.parse(['10.0.0.0/8', 'nope']), /nope/);
});
