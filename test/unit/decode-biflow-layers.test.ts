/**
 * Records as real exporters shape them (issue 20, items 1, 2 and 6), on IPFIX built from
 * readable values and cross-checked against tshark's dissection of the same bytes:
 * - biflows (RFC 5103): reverse elements (PEN 29305) become a second, reverse record, emitted
 *   only for a direction that saw packets (YAF's real biflows from the corpus too);
 * - one layer per record: a template that repeats the IP header elements (a tunnelled flow)
 *   fills every header field from one header, the inner by default, the outer on request;
 * - systemInitTimeMilliseconds (160) inside the data record anchors its sysUpTime times.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import type { TestContext } from 'node:test';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { DecodeService } from '../../src/decode/decode-service.js';
import type { LayerPolicy } from '../../src/decode/template/layer-policy.js';
import type { FlowRecord } from '../../src/flow/flow-record.js';
import { ipToString } from '../../src/flow/ip.js';
import { dataSet, exporterPacket, ipfixMessage, ipfixTemplateSet, type FieldDef, type FieldValue } from '../support/ipfix-builder.js';
import { corpora, requireTool } from '../support/softflowd.js';
import { haveTshark } from '../support/tshark-fields.js';
import { tsharkOn } from '../support/tshark-check.js';

const EXPORT_S = 1_700_000_100;
const REV = 29305;

function decode(msgs: readonly Uint8Array[], layerPolicy?: LayerPolicy): FlowRecord[] {
  const svc = new DecodeService({}, layerPolicy === undefined ? {} : { layerPolicy });
  const out: FlowRecord[] = [];
  for (const m of msgs) {
    const o = svc.decode(exporterPacket(m));
    assert.deepEqual(o.errors, []);
    out.push(...o.records);
  }
  return out;
}

function message(fields: readonly FieldDef[], rows: readonly (readonly FieldValue[])[]): Uint8Array {
  return ipfixMessage({ exportTime: EXPORT_S, sequence: 0, domain: 1 }, [ipfixTemplateSet([{ id: 300, fields }]), dataSet(300, fields, rows)]);
}

const addr = (a: FlowRecord['srcAddr']): string | null => (a === null ? null : ipToString(a));
const view = (r: FlowRecord) => ({
  src: addr(r.srcAddr), dst: addr(r.dstAddr), sport: r.srcPort, dport: r.dstPort, proto: r.protocol, tos: r.tos, flags: r.tcpFlags,
  in: r.inputIf, out: r.outputIf, vlanIn: r.srcVlan, vlanOut: r.dstVlan, octets: r.octets, packets: r.packets, start: r.startMs, end: r.endMs,
});

const tshark = (t: TestContext): boolean => requireTool(t, haveTshark(), 'tshark');

describe('biflows (RFC 5103)', () => {
  const F: FieldDef[] = [
    { id: 8, length: 4 }, { id: 12, length: 4 }, { id: 7, length: 2 }, { id: 11, length: 2 }, { id: 4, length: 1 },
    { id: 10, length: 4 }, { id: 14, length: 4 }, { id: 58, length: 2 }, { id: 59, length: 2 },
    { id: 152, length: 8 }, { id: 153, length: 8 },
    { id: 1, length: 8 }, { id: 2, length: 8 }, { id: 6, length: 1 }, { id: 5, length: 1 },
    { id: 1, length: 8, enterprise: REV }, { id: 2, length: 8, enterprise: REV }, { id: 6, length: 1, enterprise: REV }, { id: 5, length: 1, enterprise: REV },
    { id: 152, length: 8, enterprise: REV }, { id: 153, length: 8, enterprise: REV },
  ];
  const T0 = 1_700_000_000_000n;
  const both = ['10.0.0.1', '192.0.2.80', 51000, 443, 6, 3, 7, 100, 200, T0, T0 + 900n, 1500n, 12n, 0x1b, 0, 64000n, 50n, 0x1a, 8, T0 + 10n, T0 + 950n];
  const reverseOnly = ['10.0.0.2', '192.0.2.53', 53000, 53, 17, 3, 7, 100, 200, T0, T0, 0n, 0n, 0, 0, 300n, 2n, 0, 0, T0 + 1n, T0 + 2n];
  const forwardOnly = ['10.0.0.3', '192.0.2.9', 40000, 22, 6, 3, 7, 100, 200, T0, T0 + 5n, 60n, 1n, 0x02, 0, 0n, 0n, 0, 0, T0, T0];
  const msg = message(F, [both, reverseOnly, forwardOnly]);

  test('tshark reads the forward and the [Reverse] counters of the same bytes', (t) => {
    if (!tshark(t)) return;
    const [row] = tsharkOn([msg], 4739, 'cflow', ['cflow.srcaddr', 'cflow.octets', 'cflow.packets']);
    assert.deepEqual(row?.['cflow.srcaddr'], ['10.0.0.1', '10.0.0.2', '10.0.0.3']);
    // Per record: forward octets, then reverse octets (tshark labels them "Reverse Type 1 BYTES").
    assert.deepEqual(row['cflow.octets'], ['1500', '64000', '0', '300', '60', '0']);
    assert.deepEqual(row['cflow.packets'], ['12', '50', '0', '2', '1', '0']);
  });

  test('each direction that saw packets is a record: reverse keys swapped, reverse counters, flags, ToS and times', () => {
    const rs = decode([msg]).map(view);
    assert.deepEqual(rs, [
      { src: '10.0.0.1', dst: '192.0.2.80', sport: 51000, dport: 443, proto: 6, tos: 0, flags: 0x1b, in: 3, out: 7, vlanIn: 100, vlanOut: 200, octets: 1500, packets: 12, start: Number(T0), end: Number(T0) + 900 },
      { src: '192.0.2.80', dst: '10.0.0.1', sport: 443, dport: 51000, proto: 6, tos: 8, flags: 0x1a, in: 7, out: 3, vlanIn: 200, vlanOut: 100, octets: 64000, packets: 50, start: Number(T0) + 10, end: Number(T0) + 950 },
      // The reverse-only biflow: one record, for the direction that had packets.
      { src: '192.0.2.53', dst: '10.0.0.2', sport: 53, dport: 53000, proto: 17, tos: 0, flags: 0, in: 7, out: 3, vlanIn: 200, vlanOut: 100, octets: 300, packets: 2, start: Number(T0) + 1, end: Number(T0) + 2 },
      { src: '10.0.0.3', dst: '192.0.2.9', sport: 40000, dport: 22, proto: 6, tos: 0, flags: 0x02, in: 3, out: 7, vlanIn: 100, vlanOut: 200, octets: 60, packets: 1, start: Number(T0), end: Number(T0) + 5 },
    ]);
  });

  test('without reverse times the reverse record takes the biflow times; without reverse flags it has none', () => {
    const dropped = (f: FieldDef | undefined): boolean => f?.enterprise === REV && [152, 153, 6].includes(f.id);
    const G = F.filter((f) => !dropped(f));
    const row = both.filter((_, i) => !dropped(F[i]));
    const rev = decode([message(G, [row])]).map(view)[1];
    assert.ok(rev !== undefined);
    assert.equal(rev.start, Number(T0));
    assert.equal(rev.end, Number(T0) + 900);
    assert.equal(rev.flags, null);
    assert.equal(rev.octets, 64000);
  });

  test('YAF (corpus): each biflow of the real capture is two records, the reverse one with the reverse counters', () => {
    const files = ['ipfix_test_yaf_tpls_option_tpl.dat', 'ipfix_test_yaf_tpl45841.dat', 'ipfix_test_yaf_data45841.dat', 'ipfix_test_yaf_data45873.dat'];
    const rs = decode(files.map((f) => readFileSync(path.join(corpora, 'logstash-codec-netflow', f)))).map(view);
    // logstash's spec: 172.16.32.201:46086 → 172.16.32.100:53, 132 octets / 2 packets, reverse 200 / 2;
    // 172.16.32.100:63499 → 172.16.32.215:9997, 172 / 4, reverse 92 / 2.
    assert.deepEqual(
      rs.map((r) => [r.src, r.sport, r.dst, r.dport, r.octets, r.packets]),
      [
        ['172.16.32.201', 46086, '172.16.32.100', 53, 132, 2],
        ['172.16.32.100', 53, '172.16.32.201', 46086, 200, 2],
        ['172.16.32.100', 63499, '172.16.32.215', 9997, 172, 4],
        ['172.16.32.215', 9997, '172.16.32.100', 63499, 92, 2],
      ],
    );
  });
});

describe('one layer per record (tunnelled flows)', () => {
  // IP-in-IP: outer 192.0.2.1 → 198.51.100.1 protocol 4, inner 10.1.0.1:51000 → 10.2.0.1:443 TCP; ports only inside.
  const IPIP: FieldDef[] = [
    { id: 8, length: 4 }, { id: 12, length: 4 }, { id: 4, length: 1 }, { id: 5, length: 1 },
    { id: 8, length: 4 }, { id: 12, length: 4 }, { id: 4, length: 1 }, { id: 5, length: 1 }, { id: 7, length: 2 }, { id: 11, length: 2 },
    { id: 1, length: 4 }, { id: 2, length: 4 },
  ];
  const ipipRow = ['192.0.2.1', '198.51.100.1', 4, 0x20, '10.1.0.1', '10.2.0.1', 6, 0x48, 51000, 443, 9000, 10];
  // VXLAN: the outer header has UDP ports too (→ 4789); pairs of each element side by side.
  const VXLAN: FieldDef[] = [
    { id: 8, length: 4 }, { id: 8, length: 4 }, { id: 12, length: 4 }, { id: 12, length: 4 }, { id: 4, length: 1 }, { id: 4, length: 1 },
    { id: 7, length: 2 }, { id: 7, length: 2 }, { id: 11, length: 2 }, { id: 11, length: 2 }, { id: 1, length: 4 },
  ];
  const vxlanRow = ['192.0.2.1', '10.1.0.9', '198.51.100.1', '10.2.0.9', 17, 6, 60000, 33000, 4789, 22, 700];

  test('tshark shows both headers of the same bytes, outer first', (t) => {
    if (!tshark(t)) return;
    const [row] = tsharkOn([message(IPIP, [ipipRow])], 4739, 'cflow', ['cflow.srcaddr', 'cflow.dstaddr', 'cflow.protocol', 'cflow.srcport']);
    assert.deepEqual(row?.['cflow.srcaddr'], ['192.0.2.1', '10.1.0.1']);
    assert.deepEqual(row['cflow.dstaddr'], ['198.51.100.1', '10.2.0.1']);
    assert.deepEqual(row['cflow.protocol'], ['4', '6']);
    assert.deepEqual(row['cflow.srcport'], ['51000']);
  });

  test('inner (default): addresses, protocol, ToS and ports all from the inner header', () => {
    const [r] = decode([message(IPIP, [ipipRow])]).map(view);
    assert.deepEqual([r?.src, r?.dst, r?.proto, r?.tos, r?.sport, r?.dport], ['10.1.0.1', '10.2.0.1', 6, 0x48, 51000, 443]);
    const [v] = decode([message(VXLAN, [vxlanRow])]).map(view);
    assert.deepEqual([v?.src, v?.dst, v?.proto, v?.sport, v?.dport], ['10.1.0.9', '10.2.0.9', 6, 33000, 22]);
  });

  test('outer: every header field from the outer header, none from the inner (IP-in-IP has no outer ports)', () => {
    const [r] = decode([message(IPIP, [ipipRow])], 'outer').map(view);
    assert.deepEqual([r?.src, r?.dst, r?.proto, r?.tos, r?.sport, r?.dport], ['192.0.2.1', '198.51.100.1', 4, 0x20, null, null]);
    const [v] = decode([message(VXLAN, [vxlanRow])], 'outer').map(view);
    assert.deepEqual([v?.src, v?.dst, v?.proto, v?.sport, v?.dport], ['192.0.2.1', '198.51.100.1', 17, 60000, 4789]);
  });

  test('counters and non-header fields are the same under both policies', () => {
    for (const policy of ['inner', 'outer'] as const) {
      const [r] = decode([message(IPIP, [ipipRow])], policy).map(view);
      assert.deepEqual([r?.octets, r?.packets], [9000, 10]);
    }
  });
});

describe('systemInitTimeMilliseconds (160) in the data record', () => {
  const F: FieldDef[] = [{ id: 8, length: 4 }, { id: 12, length: 4 }, { id: 22, length: 4 }, { id: 21, length: 4 }, { id: 160, length: 8 }, { id: 2, length: 4 }];
  const boot = BigInt(EXPORT_S) * 1000n - 3_600_000n; // booted an hour before the export
  const msg = message(F, [['10.0.0.1', '10.0.0.2', 3_000_000, 3_500_000, boot, 5]]);

  test('tshark reads the boot time and the sysUpTime-relative start/end from the same bytes', (t) => {
    if (!tshark(t)) return;
    const [row] = tsharkOn([msg], 4739, 'cflow', ['cflow.sys_init_time', 'cflow.timestart', 'cflow.timeend']);
    assert.match(row?.['cflow.sys_init_time']?.[0] ?? '', /Nov 14, 2023 21:15:00/);
    assert.deepEqual([row?.['cflow.timestart'], row?.['cflow.timeend']], [['3000.000000000'], ['3500.000000000']]);
  });

  test('the record\'s own boot time anchors its start and end (boot + sysUpTime), and gives its uptime', () => {
    const [r] = decode([msg]);
    assert.equal(r?.startMs, Number(boot) + 3_000_000);
    assert.equal(r.endMs, Number(boot) + 3_500_000);
    assert.equal(r.uptimeMs, 3_600_000);
  });
});
