/**
 * Sampled packet headers as real networks fill them (issue 20, items 4 and 7), in sFlow
 * datagrams built from readable values and cross-checked against tshark's dissection of the
 * same bytes:
 * - tunnels (VXLAN, GRE, IP-in-IP, and MPLS labels) are decapsulated to the inner flow under
 *   the layer policy; every IP field comes from one header;
 * - VLAN sentinels are no VLAN, QinQ reports the customer VLAN, a source AS of 0 is the
 *   router's own AS, and octets follow one byte convention (the IP packet length, as
 *   NetFlow/IPFIX count; the frame length on request).
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { DecodeService } from '../../src/decode/decode-service.js';
import type { LayerPolicy } from '../../src/decode/template/layer-policy.js';
import type { SflowOctets } from '../../src/decode/sflow/sflow.js';
import type { FlowRecord } from '../../src/flow/flow-record.js';
import { ipToString } from '../../src/flow/ip.js';
import { exporterPacket } from '../support/ipfix-builder.js';
import * as sf from '../support/sflow-builder.js';
import { requireTool } from '../support/softflowd.js';
import { haveTshark } from '../support/tshark-fields.js';
import { tsharkOn } from '../support/tshark-check.js';

function decode(datagram: Uint8Array, layerPolicy: LayerPolicy = 'inner', sflowOctets: SflowOctets = 'ip'): FlowRecord[] {
  const o = new DecodeService({}, { layerPolicy, sflowOctets }).decode(exporterPacket(datagram));
  assert.deepEqual(o.errors, []);
  return o.records;
}

const sampleOf = (frame: Uint8Array, extra: readonly Uint8Array[] = [], frameLength = frame.length + 4): Uint8Array =>
  sf.datagram({ agent: '192.0.2.10', samples: [sf.flowSample({ samplingRate: 512, records: [sf.rawHeaderRecord(1, frameLength, frame), ...extra] })] });

const ip = (a: FlowRecord['srcAddr']): string | null => (a === null ? null : ipToString(a));
const fields = (r: FlowRecord | undefined) => r && [ip(r.srcAddr), ip(r.dstAddr), r.protocol, r.srcPort, r.dstPort, r.tos, r.octets];

// The inner flow every tunnel below carries: 10.1.0.1:51000 → 10.2.0.1:443 TCP SYN, ToS 0x48.
const innerTcp = sf.ipv4Packet({ src: '10.1.0.1', dst: '10.2.0.1', protocol: 6, tos: 0x48, l4: sf.tcpHeader(51000, 443, 0x02) });
const INNER = ['10.1.0.1', '10.2.0.1', 6, 51000, 443, 0x48, innerTcp.length];

const vxlan = (() => {
  const inner = sf.ethernetFrame(0x0800, innerTcp);
  const payload = sf.concat([sf.vxlanHeader(5001), inner]);
  return sf.ethernetFrame(0x0800, sf.ipv4Packet({ src: '192.0.2.1', dst: '198.51.100.1', protocol: 17, l4: sf.concat([sf.udpHeader(60000, 4789, payload.length), payload]) }));
})();
const gre = sf.ethernetFrame(0x0800, sf.ipv4Packet({ src: '192.0.2.2', dst: '198.51.100.2', protocol: 47, tos: 0x20, l4: sf.concat([sf.greHeader(0x0800, { key: 77 }), innerTcp]) }));
const ipip = sf.ethernetFrame(0x0800, sf.ipv4Packet({ src: '192.0.2.3', dst: '198.51.100.3', protocol: 4, l4: innerTcp }));
const ip6in4 = sf.ethernetFrame(0x0800, sf.ipv4Packet({ src: '192.0.2.4', dst: '198.51.100.4', protocol: 41, l4: sf.ipv6Packet({ src: '2001:db8::1', dst: '2001:db8::2', nextHeader: 17, l4: sf.udpHeader(5353, 53) }) }));
const mpls = sf.ethernetFrame(0x8847, sf.concat([sf.mplsStack([16001, 24005]), innerTcp]));

describe('tunnels in sampled headers', () => {
  test('tshark dissects the same bytes: outer and inner IP headers, VXLAN VNI, GRE key, MPLS labels', (t) => {
    if (!requireTool(t, haveTshark(), 'tshark')) return;
    const rows = tsharkOn([vxlan, gre, ipip, mpls].map((f) => sampleOf(f)), 6343, 'sflow', ['ip.src', 'ip.proto', 'tcp.srcport', 'vxlan.vni', 'gre.key', 'mpls.label']);
    // ip.src: the carrier (127.0.0.1), then the sampled header's IP headers, outer first.
    assert.deepEqual(rows.map((r) => r['ip.src']), [['127.0.0.1', '192.0.2.1', '10.1.0.1'], ['127.0.0.1', '192.0.2.2', '10.1.0.1'], ['127.0.0.1', '192.0.2.3', '10.1.0.1'], ['127.0.0.1', '10.1.0.1']]);
    assert.deepEqual(rows.map((r) => r['tcp.srcport']), [['51000'], ['51000'], ['51000'], ['51000']]);
    assert.deepEqual([rows[0]?.['vxlan.vni'], rows[1]?.['gre.key'], rows[3]?.['mpls.label']], [['5001'], ['0x0000004d'], ['16001', '24005']]);
  });

  test('inner (default): VXLAN, GRE, IP-in-IP, 6in4 and MPLS give the inner flow, every field from the inner header', () => {
    for (const frame of [vxlan, gre, ipip, mpls]) assert.deepEqual(fields(decode(sampleOf(frame))[0]), INNER);
    assert.deepEqual(fields(decode(sampleOf(ip6in4))[0]), ['2001:db8::1', '2001:db8::2', 17, 5353, 53, 0, 48]);
  });

  test('outer: every field from the outer header (VXLAN keeps its UDP ports; GRE and IP-in-IP have none)', () => {
    assert.deepEqual(fields(decode(sampleOf(vxlan), 'outer')[0]), ['192.0.2.1', '198.51.100.1', 17, 60000, 4789, 0, vxlan.length - 14]);
    assert.deepEqual(fields(decode(sampleOf(gre), 'outer')[0]), ['192.0.2.2', '198.51.100.2', 47, null, null, 0x20, gre.length - 14]);
    assert.deepEqual(fields(decode(sampleOf(ipip), 'outer')[0]), ['192.0.2.3', '198.51.100.3', 4, null, null, 0, ipip.length - 14]);
  });

  test('a tunnel cut inside its inner header keeps the outer header whole (no mixing)', () => {
    const cut = gre.subarray(0, 14 + 20 + 8 + 10); // GRE with key, then 10 bytes of the inner IPv4 header
    assert.deepEqual(fields(decode(sampleOf(cut, [], gre.length + 4))[0]), ['192.0.2.2', '198.51.100.2', 47, null, null, 0x20, gre.length - 14]);
  });
});

describe('sFlow details', () => {
  const plain = sf.ethernetFrame(0x0800, innerTcp, [[0x8100, 30]]);

  test('tshark reads frame length, IP length, VLAN, and the gateway\'s AS fields from the same bytes', (t) => {
    if (!requireTool(t, haveTshark(), 'tshark')) return;
    const gw = sf.extendedGatewayRecord({ nextHop: '192.0.2.254', as: 64500, srcAs: 0, srcPeerAs: 0, path: [[64501, 64502]], communities: [], localPref: 100 });
    const [row] = tsharkOn([sampleOf(plain, [sf.extendedSwitchRecord(0xffffffff, 4096), gw])], 6343, 'sflow', ['sflow_245.header.frame_length', 'ip.len', 'vlan.id', 'sflow_245.as', 'sflow_245.srcAS', 'sflow_245.dstAS', 'sflow_245.vlan.in', 'sflow_245.vlan.out']);
    assert.deepEqual(row?.['sflow_245.header.frame_length'], [String(plain.length + 4)]);
    assert.deepEqual(row['ip.len']?.slice(1), [String(innerTcp.length)]);
    assert.deepEqual(row['vlan.id'], ['30']);
    assert.deepEqual([row['sflow_245.as'], row['sflow_245.srcAS'], row['sflow_245.dstAS']], [['64500'], ['0'], ['64501', '64502']]);
    assert.deepEqual([row['sflow_245.vlan.in'], row['sflow_245.vlan.out']], [['4294967295'], ['4096']]);
  });

  test('octets: the IP packet length by default (as NetFlow/IPFIX count), the frame length with sflowOctets frame', () => {
    assert.equal(decode(sampleOf(plain))[0]?.octets, innerTcp.length);
    assert.equal(decode(sampleOf(plain), 'inner', 'frame')[0]?.octets, plain.length + 4);
    // A frame with no IP header (ARP) counts its frame length under both conventions.
    const arp = sf.ethernetFrame(0x0806, new Uint8Array(28));
    assert.equal(decode(sampleOf(arp))[0]?.octets, arp.length + 4);
  });

  test('VLAN sentinels (0xFFFFFFFF, > 4095) in the extended switch record are no VLAN', () => {
    const [r] = decode(sampleOf(sf.ethernetFrame(0x0800, innerTcp), [sf.extendedSwitchRecord(0xffffffff, 4096)]));
    assert.deepEqual([r?.srcVlan, r?.dstVlan], [null, null]);
    const [v] = decode(sampleOf(sf.ethernetFrame(0x0800, innerTcp), [sf.extendedSwitchRecord(4095, 12)]));
    assert.deepEqual([v?.srcVlan, v?.dstVlan], [4095, 12]);
  });

  test('QinQ: the record carries the customer (inner) VLAN', () => {
    const [r] = decode(sampleOf(sf.ethernetFrame(0x0800, innerTcp, [[0x88a8, 300], [0x8100, 42]])));
    assert.equal(r?.srcVlan, 42);
  });

  test('extended gateway: source AS 0 is the router\'s own AS', () => {
    const gw = (srcAs: number) => sf.extendedGatewayRecord({ nextHop: '192.0.2.254', as: 64500, srcAs, srcPeerAs: 0, path: [[64501, 64502]], communities: [], localPref: 100 });
    assert.deepEqual(decode(sampleOf(plain, [gw(0)])).map((r) => [r.srcAs, r.dstAs]), [[64500, 64502]]);
    assert.deepEqual(decode(sampleOf(plain, [gw(65001)])).map((r) => [r.srcAs, r.dstAs]), [[65001, 64502]]);
  });
});
