import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { compileFilters, type FiltersConfig } from '../../src/filter/compile-filters.js';
import { FlowFilter } from '../../src/filter/flow-filter.js';
import { ConfigError } from '../../src/flow/errors.js';
import { newFlowRecord, type FlowRecord } from '../../src/flow/flow-record.js';
import { parseIp } from '../../src/flow/ip.js';
import type { RecordSink } from '../../src/flow/pipeline.js';

interface Flow {
  exporter?: string;
  src?: string;
  dst?: string;
  sport?: number;
  dport?: number;
  proto?: number;
  srcAs?: number;
  dstAs?: number;
}
function flow(f: Flow): FlowRecord {
  const r = newFlowRecord('netflow', 10, 'udp', f.exporter ?? '192.0.2.1', null, 0, 0);
  r.srcAddr = f.src === undefined ? null : parseIp(f.src);
  r.dstAddr = f.dst === undefined ? null : parseIp(f.dst);
  r.srcPort = f.sport ?? null;
  r.dstPort = f.dport ?? null;
  r.protocol = f.proto ?? null;
  r.srcAs = f.srcAs ?? null;
  r.dstAs = f.dstAs ?? null;
  return r;
}
function drops(cfg: FiltersConfig, f: Flow): boolean {
  return compileFilters(cfg).drops(flow(f));
}
function configError(cfg: unknown): ConfigError {
  try {
    compileFilters(cfg as FiltersConfig);
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${String(err)}`);
    return err;
  }
  assert.fail('expected compileFilters to throw');
}

describe('filter semantics', () => {
  test('no rules: the default action applies', () => {
    assert.equal(drops({ default: 'accept', rules: [] }, {}), false);
    assert.equal(drops({ default: 'drop', rules: [] }, {}), true);
  });

  test('a rule without match fields matches everything', () => {
    assert.equal(drops({ default: 'accept', rules: [{ action: 'drop' }] }, { src: '10.0.0.1' }), true);
  });

  test('first matching rule wins, like a firewall', () => {
    const cfg: FiltersConfig = {
      default: 'accept',
      rules: [
        { name: 'keep-dns', action: 'accept', dstports: [53] },
        { name: 'drop-private', action: 'drop', srcnets: ['10.0.0.0/8'] },
      ],
    };
    assert.equal(drops(cfg, { src: '10.1.1.1', dport: 53 }), false);
    assert.equal(drops(cfg, { src: '10.1.1.1', dport: 80 }), true);
    assert.equal(drops(cfg, { src: '11.1.1.1', dport: 80 }), false);
  });

  test('fields are ANDed, values ORed', () => {
    const cfg: FiltersConfig = { default: 'accept', rules: [{ action: 'drop', protocols: ['tcp', 'udp'], dstports: [443, '8000-8080'] }] };
    assert.equal(drops(cfg, { proto: 6, dport: 443 }), true);
    assert.equal(drops(cfg, { proto: 17, dport: 8080 }), true);
    assert.equal(drops(cfg, { proto: 17, dport: 8081 }), false);
    assert.equal(drops(cfg, { proto: 1, dport: 443 }), false);
  });

  test('port ranges are inclusive and may overlap', () => {
    const cfg: FiltersConfig = { default: 'accept', rules: [{ action: 'drop', srcports: ['1000-2000', '1500-2500', 7, ' 9 '] }] };
    for (const [p, want] of [[999, false], [1000, true], [2500, true], [2501, false], [7, true], [8, false], [9, true]] as const) {
      assert.equal(drops(cfg, { sport: p }), want, `port ${p}`);
    }
  });

  test('IPv4 and IPv6 prefixes only match their own family', () => {
    const cfg: FiltersConfig = { default: 'accept', rules: [{ action: 'drop', dstnets: ['2001:db8::/32', '192.0.2.0/24'] }] };
    assert.equal(drops(cfg, { dst: '2001:db8:1::5' }), true);
    assert.equal(drops(cfg, { dst: '2001:db9::5' }), false);
    assert.equal(drops(cfg, { dst: '192.0.2.77' }), true);
    assert.equal(drops(cfg, { dst: '::ffff:192.0.2.77' }), false);
    assert.equal(drops({ default: 'accept', rules: [{ action: 'drop', srcnets: ['0.0.0.0/0'] }] }, { src: '::1' }), false);
    assert.equal(drops({ default: 'accept', rules: [{ action: 'drop', srcnets: ['::/0'] }] }, { src: '::1' }), true);
  });

  test('an absent record field does not match a rule that constrains it', () => {
    const cfg: FiltersConfig = { default: 'accept', rules: [{ action: 'drop', srcasns: [0] }] };
    assert.equal(drops(cfg, {}), false);
    assert.equal(drops(cfg, { srcAs: 0 }), true);
  });

  test('protocols by name (any case) or number', () => {
    const cfg: FiltersConfig = { default: 'drop', rules: [{ action: 'accept', protocols: ['ICMP', 'ipv6-icmp', 47] }] };
    assert.equal(drops(cfg, { proto: 1 }), false);
    assert.equal(drops(cfg, { proto: 58 }), false);
    assert.equal(drops(cfg, { proto: 47 }), false);
    assert.equal(drops(cfg, { proto: 6 }), true);
  });

  test('exporters match the exporter address (IPv4 and IPv6)', () => {
    const cfg: FiltersConfig = { default: 'accept', rules: [{ action: 'drop', exporters: ['198.51.100.0/24', '2001:db8::7'] }] };
    assert.equal(drops(cfg, { exporter: '198.51.100.9' }), true);
    assert.equal(drops(cfg, { exporter: '2001:db8::7' }), true);
    assert.equal(drops(cfg, { exporter: '2001:db8::8' }), false);
    assert.equal(drops(cfg, { exporter: '203.0.113.1' }), false);
  });

  test('AS numbers cover the 32-bit range', () => {
    const cfg: FiltersConfig = { default: 'accept', rules: [{ action: 'drop', dstasns: [4200000000] }] };
    assert.equal(drops(cfg, { dstAs: 4200000000 }), true);
    assert.equal(drops(cfg, { dstAs: 420000000 }), false);
  });
});

describe('FlowFilter', () => {
  test('drops never reach downstream; counts per rule; unchanged batch passed through as is', () => {
    const batches: (readonly FlowRecord[])[] = [];
    const sink: RecordSink = { accept: (rs) => void batches.push(rs) };
    const filter = new FlowFilter(
      compileFilters({ default: 'accept', rules: [{ name: 'no-telnet', action: 'drop', dstports: [23] }, { action: 'accept', protocols: ['udp'] }] }),
      sink,
    );
    const clean = [flow({ dport: 80, proto: 6 }), flow({ dport: 53, proto: 17 })];
    filter.accept(clean);
    assert.equal(batches[0], clean, 'a batch with nothing dropped is handed on as the same array');
    const mixed = [flow({ dport: 23 }), flow({ dport: 22 }), flow({ dport: 23 })];
    filter.accept(mixed);
    assert.deepEqual(batches[1], [mixed[1]]);
    filter.accept([flow({ dport: 23 })]);
    assert.equal(batches.length, 2, 'an all-dropped batch is not handed on');
    const s = filter.stats();
    assert.deepEqual(
      s.rules.map((r) => [r.label, r.action, r.matched]),
      [
        ['no-telnet', 'drop', 3],
        ['#1', 'accept', 1],
      ],
    );
    assert.equal(s.defaultMatched, 2);
    assert.equal(s.dropped, 3);
    assert.equal(s.accepted, 3);
  });

  test('reload swaps the rules and restarts per-rule counts', () => {
    const got: FlowRecord[] = [];
    const filter = new FlowFilter(compileFilters({ default: 'accept', rules: [] }), { accept: (rs) => void got.push(...rs) });
    filter.accept([flow({})]);
    filter.reload(compileFilters({ default: 'drop', rules: [{ action: 'accept', srcasns: [65000] }] }));
    filter.accept([flow({ srcAs: 65000 }), flow({ srcAs: 1 })]);
    assert.equal(got.length, 2);
    assert.equal(got[1]?.srcAs, 65000);
    const s = filter.stats();
    assert.equal(s.rules[0]?.matched, 1);
    assert.equal(s.defaultMatched, 1);
    assert.equal(s.dropped, 1);
  });
});

describe('validation names the setting', () => {
  const cases: [unknown, string, RegExp][] = [
    [{ default: 'accept', rules: [{ action: 'drop' }, { action: 'drop' }, { action: 'drop', srcports: [80, '2000-1000'] }] }, 'filters.rules[2].srcports[1]', /greater than its end/],
    [{ default: 'accept', rules: [{ action: 'drop', dstports: [70000] }] }, 'filters.rules[0].dstports[0]', /0\.\.65535/],
    [{ default: 'accept', rules: [{ action: 'drop', dstports: ['http'] }] }, 'filters.rules[0].dstports[0]', /not a port/],
    [{ default: 'accept', rules: [{ action: 'drop', srcnets: ['10.0.0.0/33'] }] }, 'filters.rules[0].srcnets[0]', /CIDR/],
    [{ default: 'accept', rules: [{ action: 'drop', dstnets: ['10.0.0.0/8', 'example.com'] }] }, 'filters.rules[0].dstnets[1]', /CIDR/],
    [{ default: 'accept', rules: [{ action: 'drop', protocols: ['tpc'] }] }, 'filters.rules[0].protocols[0]', /protocol/],
    [{ default: 'accept', rules: [{ action: 'drop', protocols: [256] }] }, 'filters.rules[0].protocols[0]', /0\.\.255/],
    [{ default: 'accept', rules: [{ action: 'drop', srcasns: [-1] }] }, 'filters.rules[0].srcasns[0]', /AS number/],
    [{ default: 'accept', rules: [{ action: 'drop', dstasns: ['65000'] }] }, 'filters.rules[0].dstasns[0]', /AS number/],
    [{ default: 'accept', rules: [{ action: 'drop', exporters: ['1.2.3'] }] }, 'filters.rules[0].exporters[0]', /CIDR/],
    [{ default: 'accept', rules: [{ action: 'drop', srcports: [] }] }, 'filters.rules[0].srcports', /empty list/],
    [{ default: 'accept', rules: [{ action: 'drop', srcport: [80] }] }, 'filters.rules[0].srcport', /unknown field/],
    [{ default: 'accept', rules: [{ action: 'reject' }] }, 'filters.rules[0].action', /"accept" or "drop"/],
    [{ default: 'allow', rules: [] }, 'filters.default', /"accept" or "drop"/],
    [{ default: 'accept', rules: [{ action: 'drop', srcnets: '10.0.0.0/8' }] }, 'filters.rules[0].srcnets', /must be a list/],
    [{ default: 'accept', rules: ['drop'] }, 'filters.rules[0]', /mapping/],
    [{ default: 'accept', rules: [], extra: 1 }, 'filters.extra', /unknown field/],
  ];
  for (const [cfg, setting, message] of cases) {
    test(setting, () => {
      const err = configError(cfg);
      assert.equal(err.setting, setting);
      assert.equal(err.code, 'ERR_CONFIG_INVALID');
      assert.match(err.message, message);
      assert.ok(err.message.startsWith(`${setting}: `), err.message);
    });
  }
});
