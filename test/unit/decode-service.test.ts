import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { DecodeService, DEFAULT_DECODE_LIMITS } from '../../src/decode/decode-service.js';
import type { DecodeOutcome } from '../../src/decode/decode-service.js';
import { decodeElements } from '../../src/decode/decode-elements.js';
import { ConfigError, DecodeError, DecodeErrorCode } from '../../src/flow/errors.js';
import type { FlowRecord } from '../../src/flow/flow-record.js';
import { ipToString, parseIp } from '../../src/flow/ip.js';
import {
  VARLEN,
  dataSet,
  exporterPacket,
  ipfixMessage,
  ipfixOptionsTemplateSet,
  ipfixTemplateSet,
  ipfixWithdrawalSet,
  rawSet,
  v9OptionsTemplateFlowSet,
  v9Packet,
  v9TemplateFlowSet,
} from '../support/ipfix-builder.js';
import type { FieldDef, FieldValue, PacketOptions } from '../support/ipfix-builder.js';
import { corpora } from '../support/corpora.js';

const T0 = 1_700_000_000_000;

/** A small IPv4 template: src, dst, ports, protocol, octets (u64), packets (u64). */
const V4: FieldDef[] = [
  { id: 8, length: 4 },
  { id: 12, length: 4 },
  { id: 7, length: 2 },
  { id: 11, length: 2 },
  { id: 4, length: 1 },
  { id: 1, length: 8 },
  { id: 2, length: 8 },
];
const v4rec = (n: number): FieldValue[] => [`10.0.0.${n}`, '192.0.2.1', 1000 + n, 443, 6, 100 * n, n];

function send(svc: DecodeService, payload: Uint8Array, o: PacketOptions = {}): DecodeOutcome {
  return svc.decode(exporterPacket(payload, o));
}

function codes(o: DecodeOutcome): string[] {
  return o.errors.map((e) => e.code);
}

const addr = (a: FlowRecord['srcAddr']): string | null => (a === null ? null : ipToString(a));

describe('DecodeService: IPFIX basics', () => {
  test('template and data in one message become FlowRecords with raw bytes', () => {
    const svc = new DecodeService();
    const o = send(svc, ipfixMessage({ exportTime: 1_700_000_123, domain: 7, sequence: 0 }, [ipfixTemplateSet([{ id: 256, fields: V4 }]), dataSet(256, V4, [v4rec(1), v4rec(2)])]));
    assert.deepEqual(codes(o), []);
    assert.equal(o.templatesLearned, 1);
    assert.equal(o.version, 10);
    assert.equal(o.observationDomainId, 7);
    assert.equal(o.records.length, 2);
    const r = o.records[1]!;
    assert.equal(addr(r.srcAddr), '10.0.0.2');
    assert.equal(addr(r.dstAddr), '192.0.2.1');
    assert.equal(r.srcPort, 1002);
    assert.equal(r.dstPort, 443);
    assert.equal(r.protocol, 6);
    assert.equal(r.octets, 200);
    assert.equal(r.packets, 2);
    assert.equal(r.ipVersion, 4);
    assert.equal(r.exportTime, 1_700_000_123);
    assert.equal(r.observationDomainId, 7);
    assert.equal(r.flowversion, 10);
    assert.equal(r.samplingInterval, 1);
    assert.equal(r.raw?.bytes.length, 29);
    assert.equal(r.raw.fields.length, V4.length);
    const els = decodeElements(r.raw);
    assert.equal(els.find((e) => e.name === 'sourceIPv4Address')?.value, '10.0.0.2');
    assert.equal(els.find((e) => e.name === 'octetDeltaCount')?.value, 200);
  });

  test('compiled decoders and the generic loop produce identical records', () => {
    const fields: FieldDef[] = [
      { id: 27, length: 16 },
      { id: 28, length: 16 },
      { id: 82, length: VARLEN },
      { id: 7, length: 2 },
      { id: 11, length: 2 },
      { id: 4, length: 1 },
      { id: 6, length: 2 },
      { id: 1, length: 4 },
      { id: 2, length: 3 },
      { id: 139, length: 2 },
      { id: 152, length: 8 },
      { id: 157, length: 8 },
      { id: 62, length: 16 },
      { id: 58, length: 2 },
      { id: 16, length: 4 },
      { id: 60, length: 1 },
    ];
    const rec = (n: number): FieldValue[] => ['2001:db8::1', `2001:db8::${n + 2}`, 'x'.repeat(n * 100), 53, 5353, 58, 0x12, 4000 + n, n, 0x8000 + n, T0 + n, 0xe9c5b3c0_80000000n, '2001:db8::ff', 100 + n, 64500, 6];
    const msg = ipfixMessage({}, [ipfixTemplateSet([{ id: 300, fields }]), dataSet(300, fields, [rec(0), rec(1), rec(3)])]);
    const a = send(new DecodeService(), msg);
    const b = send(new DecodeService({}, { compiledDecoders: false }), msg);
    assert.deepEqual(codes(a), []);
    const strip = (rs: FlowRecord[]) => rs.map((r) => ({ ...r, raw: null }));
    assert.equal(a.records.length, 3);
    assert.deepEqual(strip(a.records), strip(b.records));
    const r = a.records[2]!;
    assert.equal(r.ipVersion, 6);
    assert.equal(addr(r.dstAddr), '2001:db8::5');
    assert.equal(addr(r.nextHop), '2001:db8::ff');
    assert.equal(r.icmpType, 0x80, 'icmpTypeCodeIPv6 high byte');
    assert.equal(r.icmpCode, 3);
    assert.equal(r.tcpFlags, 0x12);
    assert.equal(r.octets, 4003);
    assert.equal(r.packets, 3, 'reduced-size 3-byte counter');
    assert.equal(r.startMs, T0 + 3);
    // dateTimeNanoseconds (NTP): 0xe9c5b3c0 s since 1900 = 2024-03-... ; fraction 0x80000000 = 0.5 s.
    assert.equal(r.endMs, (0xe9c5b3c0 - 2208988800) * 1000 + 500);
    assert.equal(r.srcVlan, 103);
    assert.equal(r.srcAs, 64500);
  });

  test('64-bit counters beyond 2^53 stay exact as bigint; below, numbers', () => {
    const svc = new DecodeService();
    const big = (1n << 60n) + 1n;
    const o = send(svc, ipfixMessage({}, [ipfixTemplateSet([{ id: 256, fields: V4 }]), dataSet(256, V4, [['10.0.0.1', '10.0.0.2', 1, 2, 17, big, 2 ** 53 - 1]])]));
    assert.equal(o.records[0]?.octets, big);
    assert.equal(o.records[0].packets, Number.MAX_SAFE_INTEGER);
    assert.equal(typeof o.records[0].packets, 'number');
  });

  test('reduced-size encoding of counters, ports and interfaces (RFC 7011 §6.2)', () => {
    const fields: FieldDef[] = [
      { id: 8, length: 4 },
      { id: 1, length: 2 },
      { id: 2, length: 1 },
      { id: 85, length: 6 },
      { id: 10, length: 2 },
      { id: 14, length: 1 },
      { id: 16, length: 2 },
    ];
    for (const compiledDecoders of [true, false]) {
      const o = send(new DecodeService({}, { compiledDecoders }), ipfixMessage({}, [ipfixTemplateSet([{ id: 256, fields }]), dataSet(256, fields, [['10.1.1.1', 65535, 255, 2 ** 47, 1234, 7, 65001]])]));
      const r = o.records[0]!;
      assert.equal(r.octets, 65535, 'octetDeltaCount wins over octetTotalCount');
      assert.equal(r.packets, 255);
      assert.equal(r.inputIf, 1234);
      assert.equal(r.outputIf, 7);
      assert.equal(r.srcAs, 65001);
    }
  });

  test('octetTotalCount is used when the template has no delta counter', () => {
    const fields: FieldDef[] = [{ id: 8, length: 4 }, { id: 85, length: 8 }, { id: 86, length: 4 }];
    const o = send(new DecodeService(), ipfixMessage({}, [ipfixTemplateSet([{ id: 256, fields }]), dataSet(256, fields, [['10.1.1.1', 5000, 5]])]));
    assert.equal(o.records[0]?.octets, 5000);
    assert.equal(o.records[0].packets, 5);
  });

  test('variable-length fields in both encodings, values after them in place', () => {
    const fields: FieldDef[] = [
      { id: 8, length: 4 },
      { id: 82, length: VARLEN },
      { id: 7, length: 2 },
      { id: 83, length: VARLEN },
      { id: 11, length: 2 },
    ];
    const long = 'L'.repeat(300);
    const records: FieldValue[][] = [
      ['10.0.0.1', 'eth0', 11, '', 21],
      ['10.0.0.2', long, 12, { bytes: new TextEncoder().encode('short-in-long-form'), longLength: true }, 22],
    ];
    for (const compiledDecoders of [true, false]) {
      const o = send(new DecodeService({}, { compiledDecoders }), ipfixMessage({}, [ipfixTemplateSet([{ id: 256, fields }]), dataSet(256, fields, records)]));
      assert.deepEqual(codes(o), []);
      assert.equal(o.records.length, 2);
      assert.deepEqual(o.records.map((r) => [r.srcPort, r.dstPort]), [[11, 21], [12, 22]]);
      const els = decodeElements(o.records[1]!.raw!);
      assert.equal(els.find((e) => e.name === 'interfaceName')?.value, long);
      assert.equal(els.find((e) => e.name === 'interfaceDescription')?.value, 'short-in-long-form');
      assert.equal(decodeElements(o.records[0]!.raw!).find((e) => e.name === 'interfaceDescription')?.value, '');
    }
  });

  test('a variable-length field running past its set is BadVarLength; earlier records are kept', () => {
    const fields: FieldDef[] = [{ id: 7, length: 2 }, { id: 82, length: VARLEN }];
    const good = dataSet(256, fields, [[1, 'ok']]);
    // Second record claims 200 bytes of string but the set ends after 3.
    const body = new Uint8Array([...good.subarray(4), 0, 2, 200, 65, 66]);
    const o = send(new DecodeService(), ipfixMessage({}, [ipfixTemplateSet([{ id: 256, fields }]), rawSet(256, body)]));
    assert.deepEqual(codes(o), [DecodeErrorCode.BadVarLength]);
    assert.equal(o.records.length, 1);
    assert.equal(o.records[0]?.srcPort, 1);
  });

  test('enterprise-specific fields are carried and named, never mapped onto IANA meanings', () => {
    const fields: FieldDef[] = [
      { id: 8, length: 4, enterprise: 29305 }, // reverse sourceIPv4Address (RFC 5103)
      { id: 12, length: 4 },
      { id: 4315, length: 4, enterprise: 9 }, // Cisco tcpWindowSizeMin
      { id: 1, length: 8, enterprise: 99999 }, // unknown enterprise element with id 1
    ];
    const o = send(new DecodeService(), ipfixMessage({}, [ipfixTemplateSet([{ id: 256, fields }]), dataSet(256, fields, [['10.9.9.9', '10.0.0.2', 65535, 77]])]));
    const r = o.records[0]!;
    assert.equal(r.srcAddr, null, 'PEN 29305 element 8 is not sourceIPv4Address');
    assert.equal(addr(r.dstAddr), '10.0.0.2');
    assert.equal(r.octets, 0, 'PEN 99999 element 1 is not octetDeltaCount');
    const els = decodeElements(r.raw!);
    assert.deepEqual(els.map((e) => e.name), ['reverseSourceIPv4Address', 'destinationIPv4Address', 'tcpWindowSizeMin', 'ie99999.1']);
    assert.equal(els[0]?.value, '10.9.9.9');
    assert.equal(els[2]?.value, 65535);
    assert.ok(els[3]?.value instanceof Uint8Array);
  });

  test('IPv6 with an IPv4 fallback: dual-stack template uses IPv6 where IPv4 is 0.0.0.0', () => {
    const fields: FieldDef[] = [{ id: 8, length: 4 }, { id: 27, length: 16 }, { id: 12, length: 4 }, { id: 28, length: 16 }];
    const o = send(new DecodeService(), ipfixMessage({}, [ipfixTemplateSet([{ id: 256, fields }]), dataSet(256, fields, [['0.0.0.0', '2001:db8::1', '0.0.0.0', '2001:db8::2'], ['10.0.0.1', '::', '10.0.0.2', '::']])]));
    assert.equal(addr(o.records[0]!.srcAddr), '2001:db8::1');
    assert.equal(o.records[0]?.ipVersion, 6);
    assert.equal(addr(o.records[1]!.srcAddr), '10.0.0.1');
    assert.equal(o.records[1]?.ipVersion, 4);
  });

  test('set padding and template set padding are ignored', () => {
    const o = send(new DecodeService(), ipfixMessage({}, [ipfixTemplateSet([{ id: 256, fields: V4 }], 2), dataSet(256, V4, [v4rec(1)], 3)]));
    assert.deepEqual(codes(o), []);
    assert.equal(o.records.length, 1);
  });

  test('several IPFIX messages back to back are all decoded; trailing junk is BadLength', () => {
    const m1 = ipfixMessage({ sequence: 0 }, [ipfixTemplateSet([{ id: 256, fields: V4 }])]);
    const m2 = ipfixMessage({ sequence: 0 }, [dataSet(256, V4, [v4rec(1)])]);
    const o = send(new DecodeService(), new Uint8Array([...m1, ...m2, 0, 10, 0]));
    assert.equal(o.records.length, 1);
    assert.deepEqual(codes(o), [DecodeErrorCode.BadLength]);
  });
});

describe('DecodeService: malformed input is counted, never thrown', () => {
  const cases: [string, Uint8Array, string][] = [
    ['empty datagram', new Uint8Array(0), DecodeErrorCode.Truncated],
    ['unknown version', Uint8Array.of(0, 7, 0, 0, 0, 0), DecodeErrorCode.BadVersion],
    ['datagram shorter than any header', Uint8Array.of(0, 10, 0), DecodeErrorCode.Truncated],
    ['IPFIX length beyond the datagram', (() => { const m = ipfixMessage({}, []); m[3] = 200; return m; })(), DecodeErrorCode.BadLength],
    ['IPFIX length below the header', (() => { const m = ipfixMessage({}, []); m[3] = 8; return m; })(), DecodeErrorCode.BadLength],
    ['set length < 4', ipfixMessage({}, [rawSet(256, new Uint8Array(4), 2)]), DecodeErrorCode.BadSetLength],
    ['set length beyond the message', ipfixMessage({}, [rawSet(256, new Uint8Array(4), 400)]), DecodeErrorCode.BadSetLength],
    ['v9 set id 0 in IPFIX', ipfixMessage({}, [rawSet(0, new Uint8Array(4))]), DecodeErrorCode.BadSetId],
    ['v9 set id 1 in IPFIX', ipfixMessage({}, [rawSet(1, new Uint8Array(4))]), DecodeErrorCode.BadSetId],
    ['reserved set id 4', ipfixMessage({}, [rawSet(4, new Uint8Array(4))]), DecodeErrorCode.BadSetId],
    ['reserved set id 255', ipfixMessage({}, [rawSet(255, new Uint8Array(4))]), DecodeErrorCode.BadSetId],
    ['template id < 256', ipfixMessage({}, [ipfixTemplateSet([{ id: 255, fields: V4 }])]), DecodeErrorCode.BadTemplate],
    ['field length 0', ipfixMessage({}, [ipfixTemplateSet([{ id: 256, fields: [{ id: 8, length: 0 }] }])]), DecodeErrorCode.BadFieldLength],
    ['options template with 0 scope fields', ipfixMessage({}, [ipfixOptionsTemplateSet([{ id: 256, fields: V4, scopeCount: 0 }])]), DecodeErrorCode.BadTemplate],
    ['field count beyond the set', ipfixMessage({}, [rawSet(2, Uint8Array.of(1, 0, 0, 50, 0, 8, 0, 4))]), DecodeErrorCode.BadTemplate],
    ['v9 template with 0 fields', v9Packet({}, [v9TemplateFlowSet([{ id: 256, fields: [] }])]), DecodeErrorCode.BadTemplate],
    ['v9 reserved flowset id 2', v9Packet({}, [rawSet(2, new Uint8Array(4))]), DecodeErrorCode.BadSetId],
    ['v9 truncated header', Uint8Array.of(0, 9, 0, 1, 0, 0, 0, 0), DecodeErrorCode.Truncated],
  ];
  for (const [name, payload, code] of cases) {
    test(name, () => {
      const svc = new DecodeService();
      const o = send(svc, payload);
      assert.ok(codes(o).includes(code), `${name}: got ${codes(o).join(',')}`);
      assert.ok(o.errors.every((e) => e instanceof DecodeError));
      assert.equal(svc.stats().errorsByCode[code], codes(o).filter((c) => c === code).length);
    });
  }

  test('v9 zero padding after the last FlowSet (any length) is not an error; a non-zero byte anywhere in it is', () => {
    const v9 = v9Packet({}, [v9TemplateFlowSet([{ id: 256, fields: V4 }]), dataSet(256, V4, [v4rec(1)])]);
    for (const pad of [1, 3, 4, 7, 1301]) {
      const padded = new Uint8Array(v9.length + pad);
      padded.set(v9);
      const o = send(new DecodeService(), padded);
      assert.deepEqual(codes(o), [], `${pad} zero bytes`);
      assert.equal(o.records.length, 1);
      for (const at of new Set([0, pad - 1, pad >> 1])) {
        const dirty = padded.slice();
        dirty[v9.length + at] = 1;
        assert.deepEqual(codes(send(new DecodeService(), dirty)), [DecodeErrorCode.BadSetLength], `${pad} bytes of padding, non-zero at ${at}`);
      }
    }
  });

  test('template without usable fields (v9, all lengths 0) is refused', () => {
    const o = send(new DecodeService(), v9Packet({}, [v9TemplateFlowSet([{ id: 256, fields: [{ id: 8, length: 0 }, { id: 12, length: 0 }] }])]));
    assert.deepEqual(codes(o), [DecodeErrorCode.BadTemplate]);
  });
});

describe('DecodeService: template state', () => {
  test('withdrawal is honoured over TLS and ignored over UDP (RFC 7011 §8.1, §8.4)', () => {
    for (const transport of ['tls', 'udp'] as const) {
      const svc = new DecodeService({ pendingHoldMs: 0 });
      send(svc, ipfixMessage({}, [ipfixTemplateSet([{ id: 256, fields: V4 }, { id: 257, fields: V4 }])]), { transport });
      const w = send(svc, ipfixMessage({}, [ipfixWithdrawalSet([256])]), { transport });
      const d = send(svc, ipfixMessage({}, [dataSet(256, V4, [v4rec(1)]), dataSet(257, V4, [v4rec(2)])]), { transport });
      if (transport === 'tls') {
        assert.equal(w.templatesWithdrawn, 1);
        assert.deepEqual(codes(d), [DecodeErrorCode.UnknownTemplate]);
        assert.equal(d.records.length, 1, 'template 257 still live');
        assert.equal(svc.stats().templatesLive, 1);
      } else {
        assert.equal(w.withdrawalsIgnored, 1);
        assert.equal(w.templatesWithdrawn, 0);
        assert.equal(d.records.length, 2);
      }
    }
  });

  test('withdraw-all (template id 2) removes every data template of the domain over TLS', () => {
    const svc = new DecodeService({ pendingHoldMs: 0 });
    send(svc, ipfixMessage({}, [ipfixTemplateSet([{ id: 256, fields: V4 }, { id: 257, fields: V4 }]), ipfixOptionsTemplateSet([{ id: 258, fields: [{ id: 149, length: 4 }, { id: 34, length: 4 }] }])]), { transport: 'tls' });
    const w = send(svc, ipfixMessage({}, [ipfixWithdrawalSet([2])]), { transport: 'tls' });
    assert.equal(w.templatesWithdrawn, 2);
    assert.equal(svc.stats().templatesLive, 1, 'the options template stays');
  });

  test('UDP templates expire after templateLifetimeMs unless refreshed; TLS ones do not', () => {
    const svc = new DecodeService({ templateLifetimeMs: 1000, pendingHoldMs: 0 });
    const tpl = ipfixMessage({}, [ipfixTemplateSet([{ id: 256, fields: V4 }])]);
    const data = ipfixMessage({}, [dataSet(256, V4, [v4rec(1)])]);
    send(svc, tpl, { receivedAtMs: T0 });
    assert.equal(send(svc, data, { receivedAtMs: T0 + 900 }).records.length, 1);
    send(svc, tpl, { receivedAtMs: T0 + 900 }); // refresh
    assert.equal(send(svc, data, { receivedAtMs: T0 + 1800 }).records.length, 1);
    const late = send(svc, data, { receivedAtMs: T0 + 2000 });
    assert.equal(late.templatesExpired, 1);
    assert.deepEqual(codes(late), [DecodeErrorCode.UnknownTemplate]);

    const tls = new DecodeService({ templateLifetimeMs: 1000 });
    send(tls, tpl, { transport: 'tls', receivedAtMs: T0 });
    assert.equal(tls.expire(T0 + 10_000_000).templatesExpired, 0);
    assert.equal(send(tls, data, { transport: 'tls', receivedAtMs: T0 + 10_000_000 }).records.length, 1);
  });

  test('expire() removes stale UDP templates', () => {
    const svc = new DecodeService({ templateLifetimeMs: 1000 });
    send(svc, ipfixMessage({}, [ipfixTemplateSet([{ id: 256, fields: V4 }])]), { receivedAtMs: T0 });
    assert.equal(svc.expire(T0 + 500).templatesExpired, 0);
    assert.equal(svc.expire(T0 + 1500).templatesExpired, 1);
    assert.equal(svc.stats().templatesLive, 0);
  });

  test('a changed template replaces the old one', () => {
    const svc = new DecodeService();
    send(svc, ipfixMessage({}, [ipfixTemplateSet([{ id: 256, fields: V4 }])]));
    const swapped: FieldDef[] = [{ id: 12, length: 4 }, { id: 8, length: 4 }];
    const o = send(svc, ipfixMessage({}, [ipfixTemplateSet([{ id: 256, fields: swapped }]), dataSet(256, swapped, [['10.0.0.1', '10.0.0.2']])]));
    assert.equal(o.templatesReplaced, 1);
    assert.equal(o.templatesLearned, 0);
    assert.equal(addr(o.records[0]!.srcAddr), '10.0.0.2');
    assert.equal(svc.stats().templatesLive, 1);
  });

  test('a template sent again unchanged is a refresh; any change of a field (id, length, enterprise) or of the scope makes it a replacement', () => {
    const base: FieldDef[] = [{ id: 8, length: 4 }, { id: 7, length: 2 }, { id: 1, length: 8 }];
    const variants: [string, Uint8Array][] = [
      ['field id', ipfixTemplateSet([{ id: 256, fields: [base[0]!, { id: 11, length: 2 }, base[2]!] }])],
      ['field length', ipfixTemplateSet([{ id: 256, fields: [base[0]!, base[1]!, { id: 1, length: 4 }] }])],
      ['enterprise', ipfixTemplateSet([{ id: 256, fields: [base[0]!, { id: 7, length: 2, enterprise: 9 }, base[2]!] }])],
      ['one field fewer', ipfixTemplateSet([{ id: 256, fields: base.slice(0, 2) }])],
      ['an options template (scope 1)', ipfixOptionsTemplateSet([{ id: 256, fields: base, scopeCount: 1 }])],
    ];
    for (const [what, changed] of variants) {
      const svc = new DecodeService();
      send(svc, ipfixMessage({}, [ipfixTemplateSet([{ id: 256, fields: base }])]));
      const again = send(svc, ipfixMessage({}, [ipfixTemplateSet([{ id: 256, fields: base }])]));
      assert.deepEqual([again.templatesLearned, again.templatesReplaced], [0, 0], 'unchanged: a refresh');
      const o = send(svc, ipfixMessage({}, [changed]));
      assert.deepEqual([o.templatesLearned, o.templatesReplaced], [0, 1], what);
    }
    const svc = new DecodeService();
    send(svc, ipfixMessage({}, [ipfixOptionsTemplateSet([{ id: 256, fields: base, scopeCount: 1 }])]));
    assert.equal(send(svc, ipfixMessage({}, [ipfixOptionsTemplateSet([{ id: 256, fields: base, scopeCount: 2 }])])).templatesReplaced, 1, 'scope field count');
  });

  test('templates are scoped by session and observation domain', () => {
    const svc = new DecodeService({ pendingHoldMs: 0 });
    send(svc, ipfixMessage({ domain: 1 }, [ipfixTemplateSet([{ id: 256, fields: V4 }])]), { sessionKey: 'a' });
    assert.equal(send(svc, ipfixMessage({ domain: 2 }, [dataSet(256, V4, [v4rec(1)])]), { sessionKey: 'a' }).records.length, 0);
    assert.equal(send(svc, ipfixMessage({ domain: 1 }, [dataSet(256, V4, [v4rec(1)])]), { sessionKey: 'b' }).records.length, 0);
    assert.equal(send(svc, ipfixMessage({ domain: 1 }, [dataSet(256, V4, [v4rec(1)])]), { sessionKey: 'a' }).records.length, 1);
  });

  test('limits: templates per session and fields per template', () => {
    const svc = new DecodeService({ maxTemplatesPerSession: 2, maxFieldsPerTemplate: 7 });
    const o = send(svc, ipfixMessage({}, [ipfixTemplateSet([{ id: 256, fields: V4 }, { id: 257, fields: V4 }, { id: 258, fields: V4 }])]));
    assert.deepEqual(codes(o), [DecodeErrorCode.TemplateLimit]);
    assert.equal(o.templatesLearned, 2);
    const wide = [...V4, { id: 5, length: 1 }];
    const o2 = send(svc, ipfixMessage({}, [ipfixTemplateSet([{ id: 256, fields: wide }])]), { sessionKey: 'other' });
    assert.deepEqual(codes(o2), [DecodeErrorCode.FieldLimit]);
    assert.equal(DEFAULT_DECODE_LIMITS.templateLifetimeMs, 1_800_000);
  });

  test('limits: sessions beyond maxSessions evict the least recently seen', () => {
    const svc = new DecodeService({ maxSessions: 2 });
    const tpl = ipfixMessage({}, [ipfixTemplateSet([{ id: 256, fields: V4 }])]);
    send(svc, tpl, { sessionKey: 'a', receivedAtMs: T0 });
    send(svc, tpl, { sessionKey: 'b', receivedAtMs: T0 + 1 });
    send(svc, tpl, { sessionKey: 'a', receivedAtMs: T0 + 2 });
    send(svc, tpl, { sessionKey: 'c', receivedAtMs: T0 + 3 });
    const s = svc.stats();
    assert.equal(s.sessions, 2);
    assert.equal(s.sessionsEvicted, 1);
    assert.equal(s.templatesLive, 2);
    assert.equal(send(svc, ipfixMessage({}, [dataSet(256, V4, [v4rec(1)])]), { sessionKey: 'a', receivedAtMs: T0 + 4 }).records.length, 1, 'a was recently seen and survived');
  });

  test('endSession forgets the session and its templates', () => {
    const svc = new DecodeService({ pendingHoldMs: 0 });
    send(svc, ipfixMessage({}, [ipfixTemplateSet([{ id: 256, fields: V4 }])]), { transport: 'tls', sessionKey: 'tls-1' });
    svc.endSession('tls-1');
    assert.equal(svc.stats().templatesLive, 0);
    assert.equal(send(svc, ipfixMessage({}, [dataSet(256, V4, [v4rec(1)])]), { transport: 'tls', sessionKey: 'tls-1' }).records.length, 0);
  });
});

describe('DecodeService: data before its template (RFC 7011 §9.3)', () => {
  test('held data is decoded when the template arrives', () => {
    const svc = new DecodeService();
    const held = send(svc, ipfixMessage({ exportTime: 1_700_000_001 }, [dataSet(256, V4, [v4rec(1), v4rec(2)])]), { receivedAtMs: T0 });
    assert.equal(held.pendingHeld, 1);
    assert.equal(held.records.length, 0);
    assert.deepEqual(codes(held), []);
    assert.equal(svc.stats().pendingSets, 1);
    const o = send(svc, ipfixMessage({ exportTime: 1_700_000_002 }, [ipfixTemplateSet([{ id: 256, fields: V4 }])]), { receivedAtMs: T0 + 500 });
    assert.equal(o.pendingDecoded, 1);
    assert.deepEqual(o.records.map((r) => r.srcPort), [1001, 1002]);
    assert.equal(o.records[0]?.exportTime, 1_700_000_001, 'records keep their own message export time');
    assert.equal(svc.stats().pendingSets, 0);
    assert.equal(svc.stats().pendingBytes, 0);
  });

  test('held data older than pendingHoldMs is dropped and counted', () => {
    const svc = new DecodeService({ pendingHoldMs: 2000 });
    send(svc, ipfixMessage({}, [dataSet(256, V4, [v4rec(1)])]), { receivedAtMs: T0 });
    const o = send(svc, ipfixMessage({}, [ipfixTemplateSet([{ id: 256, fields: V4 }])]), { receivedAtMs: T0 + 2500 });
    assert.equal(o.pendingExpired, 1);
    assert.deepEqual(codes(o), [DecodeErrorCode.PendingExpired]);
    assert.equal(o.records.length, 0);

    const svc2 = new DecodeService({ pendingHoldMs: 2000 });
    send(svc2, ipfixMessage({}, [dataSet(256, V4, [v4rec(1)])]), { receivedAtMs: T0 });
    assert.equal(svc2.expire(T0 + 1000).pendingExpired, 0);
    const e = svc2.expire(T0 + 3000);
    assert.equal(e.pendingExpired, 1);
    assert.equal(svc2.stats().pendingSets, 0);
  });

  test('each packet expires held data from the front (oldest first), with exact counts; once a set is held out of time order, every held set is looked at', () => {
    const svc = new DecodeService({ pendingHoldMs: 2000 });
    const data = (t: number): Uint8Array => ipfixMessage({}, [dataSet(t, V4, [v4rec(1)])]);
    for (const [i, at] of [0, 100, 200, 300].entries()) send(svc, data(300 + i), { receivedAtMs: T0 + at });
    const setBytes = svc.stats().pendingBytes / 4;
    // Held at T0 and T0 + 100 are past the hold at T0 + 2150; this packet's own set is held.
    const o = send(svc, data(400), { receivedAtMs: T0 + 2150 });
    assert.equal(o.pendingExpired, 2);
    assert.deepEqual(codes(o), [DecodeErrorCode.PendingExpired, DecodeErrorCode.PendingExpired]);
    assert.deepEqual([svc.stats().pendingSets, svc.stats().pendingBytes], [3, 3 * setBytes]);
    // The wall clock steps back (or captures replay out of order): a set held at T0 - 500 sits
    // behind younger ones, yet expires with the first packet past its hold.
    send(svc, data(401), { receivedAtMs: T0 - 500 });
    const later = send(svc, data(402), { receivedAtMs: T0 + 2260 });
    assert.equal(later.pendingExpired, 2, 'T0 + 200, and T0 - 500 behind the younger T0 + 300 and T0 + 2150');
    assert.deepEqual([svc.stats().pendingSets, svc.stats().pendingBytes], [3, 3 * setBytes]);
    assert.equal(svc.expire(T0 + 2260).pendingExpired, 0);
    assert.equal(svc.expire(T0 + 4270).pendingExpired, 3);
    assert.deepEqual([svc.stats().pendingSets, svc.stats().pendingBytes], [0, 0]);
  });

  test('flushPending() counts held data at shutdown and keeps templates for exportState()', () => {
    const svc = new DecodeService();
    send(svc, ipfixMessage({}, [ipfixTemplateSet([{ id: 256, fields: V4 }]), dataSet(257, V4, [v4rec(1)])]));
    const o = svc.flushPending();
    assert.equal(o.pendingExpired, 1);
    assert.equal(svc.stats().pendingSets, 0);
    assert.equal(svc.stats().templatesLive, 1);
    const restored = new DecodeService();
    restored.importState(svc.exportState());
    assert.equal(restored.stats().templatesLive, 1);
  });

  test('the hold buffer is bounded by sets and bytes per session', () => {
    const svc = new DecodeService({ maxPendingRecordsPerSession: 2 });
    const data = ipfixMessage({}, [dataSet(256, V4, [v4rec(1)])]);
    send(svc, data);
    send(svc, data);
    const o = send(svc, data);
    assert.equal(o.unknownTemplateSets, 1);
    assert.deepEqual(codes(o), [DecodeErrorCode.UnknownTemplate]);
    const svc2 = new DecodeService({ maxPendingBytesPerSession: 40 });
    assert.equal(send(svc2, data).pendingHeld, 1);
    assert.equal(send(svc2, data).unknownTemplateSets, 1);
  });
});

describe('DecodeService: sequence numbers', () => {
  const tpl = ipfixTemplateSet([{ id: 256, fields: V4 }]);
  const recs = (n: number): FieldValue[][] => Array.from({ length: n }, (_, i) => v4rec(i));

  test('IPFIX gaps count missing data records', () => {
    const svc = new DecodeService();
    assert.equal(send(svc, ipfixMessage({ sequence: 100 }, [tpl, dataSet(256, V4, recs(3))])).sequenceLost, 0);
    assert.equal(send(svc, ipfixMessage({ sequence: 103 }, [dataSet(256, V4, recs(2))])).sequenceLost, 0);
    assert.equal(send(svc, ipfixMessage({ sequence: 110 }, [dataSet(256, V4, recs(1))])).sequenceLost, 5);
    assert.equal(svc.stats().sequenceLost, 5);
  });

  test('a single wild jump does not reset tracking; two consistent packets do (RFC 7011 §11)', () => {
    const svc = new DecodeService();
    send(svc, ipfixMessage({ sequence: 0 }, [tpl, dataSet(256, V4, recs(2))]));
    // Spoofed/corrupt message far ahead.
    assert.equal(send(svc, ipfixMessage({ sequence: 0x80000005 }, [dataSet(256, V4, recs(1))])).sequenceLost, 0);
    assert.equal(svc.stats().sequenceJumpsHeld, 1);
    // The real stream continues where it was: no loss, tracking intact.
    assert.equal(send(svc, ipfixMessage({ sequence: 2 }, [dataSet(256, V4, recs(2))])).sequenceLost, 0);
    assert.equal(send(svc, ipfixMessage({ sequence: 7 }, [dataSet(256, V4, recs(1))])).sequenceLost, 3);
    // A genuine jump (exporter restart elsewhere) confirmed by the next message.
    assert.equal(send(svc, ipfixMessage({ sequence: 1_000_000_000 }, [dataSet(256, V4, recs(2))])).sequenceLost, 0);
    assert.equal(send(svc, ipfixMessage({ sequence: 1_000_000_002 }, [dataSet(256, V4, recs(2))])).sequenceLost, 0);
    assert.equal(send(svc, ipfixMessage({ sequence: 1_000_000_005 }, [dataSet(256, V4, recs(1))])).sequenceLost, 1);
    assert.equal(svc.stats().sequenceLost, 4);
  });

  test('NetFlow v9 sequence counts packets', () => {
    const svc = new DecodeService();
    const t = v9TemplateFlowSet([{ id: 256, fields: V4 }]);
    send(svc, v9Packet({ sequence: 10 }, [t, dataSet(256, V4, recs(5))]));
    assert.equal(send(svc, v9Packet({ sequence: 11 }, [dataSet(256, V4, recs(5))])).sequenceLost, 0);
    assert.equal(send(svc, v9Packet({ sequence: 14 }, [dataSet(256, V4, recs(5))])).sequenceLost, 2);
  });
});

describe('DecodeService: options data — sampling and uptime', () => {
  test('IPFIX samplingInterval options data applies to the domain; counters are not multiplied', () => {
    const svc = new DecodeService();
    const opt: FieldDef[] = [{ id: 149, length: 4 }, { id: 34, length: 4 }, { id: 35, length: 1 }];
    const o = send(svc, ipfixMessage({ domain: 3 }, [ipfixOptionsTemplateSet([{ id: 300, fields: opt }]), ipfixTemplateSet([{ id: 256, fields: V4 }]), dataSet(300, opt, [[3, 100, 2]]), dataSet(256, V4, [v4rec(1)])]));
    assert.equal(o.optionsRecords, 1);
    assert.equal(o.options.length, 1);
    assert.equal(o.records[0]?.samplingInterval, 100);
    assert.equal(o.records[0].octets, 100, 'exported octets, not × 100');
    const other = send(svc, ipfixMessage({ domain: 4 }, [ipfixTemplateSet([{ id: 256, fields: V4 }]), dataSet(256, V4, [v4rec(1)])]));
    assert.equal(other.records[0]?.samplingInterval, 1, 'another domain is not sampled');
  });

  test('per-sampler intervals: records naming samplerId get their sampler\'s rate', () => {
    const svc = new DecodeService();
    const opt: FieldDef[] = [{ id: 48, length: 1 }, { id: 50, length: 4 }];
    const fields: FieldDef[] = [...V4, { id: 48, length: 1 }];
    const o = send(svc, v9Packet({}, [v9OptionsTemplateFlowSet([{ id: 300, fields: opt, scopeCount: 0 }]), v9TemplateFlowSet([{ id: 256, fields }]), dataSet(300, opt, [[1, 10], [2, 1000]]), dataSet(256, fields, [[...v4rec(1), 1], [...v4rec(2), 2], [...v4rec(3), 9]])]));
    assert.deepEqual(codes(o), []);
    assert.deepEqual(o.records.map((r) => r.samplingInterval), [10, 1000, 1]);
  });

  test('v9 options with System scope: sampling interval, and scope fields are not IEs', () => {
    const svc = new DecodeService();
    const opt: FieldDef[] = [{ id: 1, length: 4 }, { id: 34, length: 4 }, { id: 35, length: 1 }];
    const o = send(svc, v9Packet({}, [v9OptionsTemplateFlowSet([{ id: 300, fields: opt, scopeCount: 1 }]), v9TemplateFlowSet([{ id: 256, fields: V4 }]), dataSet(300, opt, [[0x0a000001, 512, 2]]), dataSet(256, V4, [v4rec(1)])]));
    assert.equal(o.records[0]?.samplingInterval, 512);
    const els = decodeElements(o.options[0]!.raw);
    assert.deepEqual(els.map((e) => e.name), ['scopeSystem', 'samplingInterval', 'samplingAlgorithm']);
  });

  test('PSAMP systematic count-based sampling: interval 1, space 99 → 1 in 100 (RFC 5476)', () => {
    const svc = new DecodeService();
    const opt: FieldDef[] = [{ id: 302, length: 4 }, { id: 305, length: 4 }, { id: 306, length: 4 }];
    const fields: FieldDef[] = [...V4, { id: 302, length: 4 }];
    const o = send(svc, ipfixMessage({}, [ipfixOptionsTemplateSet([{ id: 300, fields: opt }]), ipfixTemplateSet([{ id: 256, fields }]), dataSet(300, opt, [[7, 1, 99]]), dataSet(256, fields, [[...v4rec(1), 7]])]));
    assert.equal(o.records[0]?.samplingInterval, 100);
  });

  test('v9 FIRST/LAST_SWITCHED become absolute from the header, across a sysUpTime wrap', () => {
    const svc = new DecodeService();
    const fields: FieldDef[] = [...V4, { id: 22, length: 4 }, { id: 21, length: 4 }];
    const unixSecs = 1_700_000_100;
    const o = send(svc, v9Packet({ uptimeMs: 10_000, unixSecs }, [v9TemplateFlowSet([{ id: 256, fields }]), dataSet(256, fields, [[...v4rec(1), 4000, 9000]])]));
    assert.equal(o.records[0]?.startMs, unixSecs * 1000 - 6000);
    assert.equal(o.records[0].endMs, unixSecs * 1000 - 1000);
    assert.equal(o.records[0].uptimeMs, 10_000);
    // sysUpTime wrapped to 100 ms; the flow started 256 ms before the wrap.
    const w = send(svc, v9Packet({ uptimeMs: 100, unixSecs }, [dataSet(256, fields, [[...v4rec(1), 0xffffff00, 50]])]));
    assert.equal(w.records[0]?.startMs, unixSecs * 1000 - 356);
    assert.equal(w.records[0].endMs, unixSecs * 1000 - 50);
  });

  test('IPFIX flowStartSysUpTime needs systemInitTimeMilliseconds (IE 160) from options data', () => {
    const svc = new DecodeService();
    const fields: FieldDef[] = [...V4, { id: 22, length: 4 }, { id: 21, length: 4 }];
    const before = send(svc, ipfixMessage({}, [ipfixTemplateSet([{ id: 256, fields }]), dataSet(256, fields, [[...v4rec(1), 1000, 2000]])]));
    assert.equal(before.records[0]?.startMs, null, 'unknown boot time: no invented timestamps');
    const opt: FieldDef[] = [{ id: 144, length: 4 }, { id: 160, length: 8 }];
    const boot = 1_699_990_000_000;
    const after = send(svc, ipfixMessage({ exportTime: 1_700_000_000 }, [ipfixOptionsTemplateSet([{ id: 300, fields: opt }]), dataSet(300, opt, [[1, boot]]), dataSet(256, fields, [[...v4rec(1), 1000, 2000]])]));
    assert.equal(after.records[0]?.startMs, boot + 1000);
    assert.equal(after.records[0].endMs, boot + 2000);
    assert.equal(after.records[0].uptimeMs, 1_700_000_000_000 - boot);
  });

  test('flowStart/End in seconds, microseconds (NTP) and delta microseconds', () => {
    const fields: FieldDef[] = [{ id: 8, length: 4 }, { id: 150, length: 4 }, { id: 155, length: 8 }];
    const ntpSecs = 1_700_000_000 + 2208988800;
    const o = send(new DecodeService(), ipfixMessage({}, [ipfixTemplateSet([{ id: 256, fields }]), dataSet(256, fields, [['10.0.0.1', 1_700_000_000, (BigInt(ntpSecs) << 32n) | 0x40000000n]])]));
    assert.equal(o.records[0]?.startMs, 1_700_000_000_000);
    assert.equal(o.records[0].endMs, 1_700_000_000_250);
    const d: FieldDef[] = [{ id: 8, length: 4 }, { id: 158, length: 4 }, { id: 159, length: 4 }];
    const o2 = send(new DecodeService(), ipfixMessage({ exportTime: 1_700_000_010 }, [ipfixTemplateSet([{ id: 256, fields: d }]), dataSet(256, d, [['10.0.0.1', 5_000_000, 1_000_000]])]));
    assert.equal(o2.records[0]?.startMs, 1_700_000_005_000);
    assert.equal(o2.records[0].endMs, 1_700_000_009_000);
  });
});

describe('DecodeService: NetFlow v9 framing', () => {
  test('the header count is not trusted and a zero-filled tail is padding', () => {
    const svc = new DecodeService();
    const pkt = v9Packet({ count: 99 }, [v9TemplateFlowSet([{ id: 256, fields: V4 }]), dataSet(256, V4, [v4rec(1), v4rec(2)])]);
    const o = send(svc, new Uint8Array([...pkt, ...new Uint8Array(64)]));
    assert.deepEqual(codes(o), []);
    assert.equal(o.records.length, 2);
    assert.equal(o.records[0]?.flowversion, 9);
  });

  test('v9 zero-length fields are skipped', () => {
    const fields: FieldDef[] = [{ id: 8, length: 4 }, { id: 1, length: 0 }, { id: 2, length: 4 }];
    const o = send(new DecodeService(), v9Packet({}, [v9TemplateFlowSet([{ id: 256, fields }]), dataSet(256, fields, [['10.0.0.1', new Uint8Array(0), 9]])]));
    assert.equal(o.records[0]?.packets, 9);
    assert.equal(o.records[0].octets, 0);
  });
});

describe('DecodeService: NetFlow v5 and sFlow dispatch', () => {
  test('v5 and sFlow datagrams reach their decoders; v5 sequence counts flows', () => {
    const svc = new DecodeService();
    const v5 = readFileSync(path.join(corpora, 'goflow2/nfv5_TestDecodeNetFlowV5_0.bin'));
    const o = send(svc, v5);
    assert.deepEqual(codes(o), []);
    assert.equal(o.version, 5);
    assert.ok(o.records.length > 0);
    assert.equal(o.records[0]?.flowversion, 5);
    const sflow = readFileSync(path.join(corpora, 'goflow2/sflow_TestSFlowDecode_0.bin'));
    const s = send(svc, sflow);
    assert.equal(s.version, 5);
    assert.ok(s.records.every((r) => r.flowtype === 'sflow'));
  });
});

describe('DecodeService: exportState / importState', () => {
  test('a restarted service decodes UDP data immediately with the saved templates and sampling', () => {
    const svc = new DecodeService({ pendingHoldMs: 0 });
    const opt: FieldDef[] = [{ id: 149, length: 4 }, { id: 34, length: 4 }];
    const fields: FieldDef[] = [...V4, { id: 82, length: VARLEN }];
    send(svc, ipfixMessage({ domain: 5 }, [ipfixOptionsTemplateSet([{ id: 300, fields: opt }]), ipfixTemplateSet([{ id: 256, fields }]), dataSet(300, opt, [[5, 64]])]));
    send(svc, ipfixMessage({}, [ipfixTemplateSet([{ id: 256, fields: V4 }])]), { transport: 'tls', sessionKey: 'tls-x' });
    const state = svc.exportState();
    const fresh = new DecodeService({ pendingHoldMs: 0 });
    fresh.importState(state);
    assert.equal(fresh.stats().templatesLive, 2, 'UDP session only');
    const o = send(fresh, ipfixMessage({ domain: 5 }, [dataSet(256, fields, [[...v4rec(1), 'ge-0/0/1']])]));
    assert.deepEqual(codes(o), []);
    assert.equal(o.records[0]?.samplingInterval, 64);
    assert.equal(o.records[0].srcPort, 1001);
  });

  test('garbage state is rejected with DecodeError only, leaving state unchanged', () => {
    const svc = new DecodeService();
    send(svc, ipfixMessage({}, [ipfixTemplateSet([{ id: 256, fields: V4 }])]));
    const enc = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));
    const good = JSON.parse(new TextDecoder().decode(svc.exportState())) as { sessions: { domains: { templates: { fields: unknown[] }[] }[] }[] };
    const bad: Uint8Array[] = [
      new Uint8Array([0xff, 0xfe, 0x00]),
      enc(null),
      enc({ format: 'sealflow-decode-state', version: 2, sessions: [] }),
      enc({ format: 'sealflow-decode-state', version: 1, sessions: 'x' }),
      enc({ format: 'sealflow-decode-state', version: 1, sessions: [{ key: '', domains: [] }] }),
      enc({ format: 'sealflow-decode-state', version: 1, sessions: [{ key: 'k', domains: [{ version: 7, odid: 0, sysInitMs: -1, sampling: 0, samplers: [], templates: [] }] }] }),
      enc({ format: 'sealflow-decode-state', version: 1, sessions: [{ key: 'k', domains: [{ version: 10, odid: 0, sysInitMs: -1, sampling: 0, samplers: [], templates: [{ id: 12, scope: 0, options: false, fields: [[8, 0, 4]], expiresAtMs: null }] }] }] }),
      enc({ format: 'sealflow-decode-state', version: 1, sessions: [{ key: 'k', domains: [{ version: 10, odid: 0, sysInitMs: -1, sampling: 0, samplers: [], templates: [{ id: 256, scope: 0, options: false, fields: [[8, 0, 0]], expiresAtMs: null }] }] }] }),
      enc({ ...good, sessions: [{ key: 'k', domains: [{ version: 10, odid: 0, sysInitMs: -1, sampling: 0, samplers: [], templates: [{ id: 256, scope: 0, options: false, fields: Array.from({ length: 100000 }, () => [8, 0, 4]), expiresAtMs: null }] }] }] }),
    ];
    for (const b of bad) {
      assert.throws(() => svc.importState(b), (e: unknown) => e instanceof DecodeError && e.code === DecodeErrorCode.BadState);
    }
    assert.equal(svc.stats().templatesLive, 1);
  });
});

describe('DecodeService: ip helpers used by tests are consistent', () => {
  test('parseIp round-trips', () => {
    assert.equal(ipToString(parseIp('2001:db8::1')!), '2001:db8::1');
  });
});

describe('DecodeService: configuration', () => {
  test('invalid limits are a ConfigError naming the setting', () => {
    assert.throws(
      () => new DecodeService({ templateLifetimeMs: -1 }),
      (e: unknown) => e instanceof ConfigError && e.setting === 'decode.templateLifetimeMs',
    );
    assert.throws(() => new DecodeService({ maxSessions: Number.NaN }), ConfigError);
  });
});

describe('DecodeService: rawRecords option', () => {
  test('rawRecords: false decodes the same records without raw views (IPFIX fixed and variable length, v9)', () => {
    const VAR: FieldDef[] = [...V4, { id: 82, length: VARLEN }];
    const packets = [
      ipfixMessage({ exportTime: 1_700_000_123, domain: 7, sequence: 0 }, [
        ipfixTemplateSet([
          { id: 256, fields: V4 },
          { id: 257, fields: VAR },
        ]),
        dataSet(256, V4, [v4rec(1), v4rec(2)]),
        dataSet(257, VAR, [[...v4rec(3), 'eth0']]),
      ]),
      v9Packet({ unixSecs: 1_700_000_124, sourceId: 3, sequence: 0 }, [v9TemplateFlowSet([{ id: 300, fields: V4 }]), dataSet(300, V4, [v4rec(4)])]),
    ];
    const withRaw = new DecodeService();
    const without = new DecodeService({}, { rawRecords: false });
    for (const p of packets) {
      const a = send(withRaw, p);
      const b = send(without, p);
      assert.deepEqual(codes(b), []);
      assert.ok(a.records.length > 0);
      assert.equal(b.records.length, a.records.length);
      for (let i = 0; i < a.records.length; i++) {
        assert.notEqual(a.records[i]!.raw, null);
        assert.equal(b.records[i]!.raw, null);
        assert.deepStrictEqual({ ...b.records[i]!, raw: null }, { ...a.records[i]!, raw: null });
      }
    }
  });
});
