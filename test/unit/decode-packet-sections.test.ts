/**
 * Packet sections (issue 20, item 3): an IPFIX record that carries the leading bytes of a
 * packet — dataLinkFrameSection (315) or ipHeaderPacketSection (313) with their sizes
 * dataLinkFrameSize (312) and ipTotalLength (224), as Juniper inline-jflow drop reports,
 * SRv6 exporters and ipfixprobe send — yields addresses, ports, protocol, VLAN and byte
 * counts through the same header parser as sFlow's sampled headers, not a record of nulls.
 * Built from readable values and checked against tshark's dissection of the same bytes.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { DecodeService } from '../../src/decode/decode-service.js';
import type { LayerPolicy } from '../../src/decode/template/layer-policy.js';
import type { FlowRecord } from '../../src/flow/flow-record.js';
import { ipToString } from '../../src/flow/ip.js';
import { dataSet, exporterPacket, ipfixMessage, ipfixTemplateSet, VARLEN, type FieldDef, type FieldValue } from '../support/ipfix-builder.js';
import * as sf from '../support/sflow-builder.js';
import { requireTool } from '../support/softflowd.js';
import { haveTshark } from '../support/tshark-fields.js';
import { tsharkOn } from '../support/tshark-check.js';

function decode(fields: readonly FieldDef[], rows: readonly (readonly FieldValue[])[], layerPolicy: LayerPolicy = 'inner'): FlowRecord[] {
  const msg = ipfixMessage({ exportTime: 1_700_000_100, sequence: 0, domain: 1 }, [ipfixTemplateSet([{ id: 300, fields }]), dataSet(300, fields, rows)]);
  const o = new DecodeService({}, { layerPolicy }).decode(exporterPacket(msg));
  assert.deepEqual(o.errors, []);
  return o.records;
}

const ip = (a: FlowRecord['srcAddr']): string | null => (a === null ? null : ipToString(a));
const view = (r: FlowRecord | undefined) => r && { src: ip(r.srcAddr), dst: ip(r.dstAddr), v: r.ipVersion, proto: r.protocol, sport: r.srcPort, dport: r.dstPort, tos: r.tos, flags: r.tcpFlags, vlan: r.srcVlan, octets: r.octets, packets: r.packets, in: r.inputIf };

// The first 64 bytes of a 1500-byte packet on VLAN 101: 10.9.0.1:5000 → 10.9.0.2:443 TCP ACK, ToS 0x10.
const packet = sf.ipv4Packet({ src: '10.9.0.1', dst: '10.9.0.2', protocol: 6, tos: 0x10, l4: sf.tcpHeader(5000, 443, 0x10), totalLength: 1500 });
const frame = sf.ethernetFrame(0x0800, packet, [[0x8100, 101]]);
const DATALINK: FieldDef[] = [{ id: 10, length: 4 }, { id: 312, length: 2 }, { id: 315, length: VARLEN }];
const datalinkRow = [7, 1518, frame.subarray(0, 64)];

// SRv6 (End.DT4): an IPv6 header with a segment routing header carrying the IPv4 packet above.
const srh = Uint8Array.from([4, 2, 4, 0, 0, 0, 0, 0, ...new Uint8Array(16)]); // next header 4 (IPv4), 2 × 8 bytes, type 4 (SRH), one segment
const srv6 = sf.ipv6Packet({ src: '2001:db8::a', dst: '2001:db8::b', nextHeader: 43, l4: sf.concat([srh, packet]), payloadLength: 24 + 1500 });
const IPSECTION: FieldDef[] = [{ id: 224, length: 2 }, { id: 2, length: 4 }, { id: 313, length: VARLEN }];

describe('packet sections', () => {
  test('tshark dissects the dataLinkFrameSection of the same bytes as Ethernet / 802.1Q / IPv4 / TCP', (t) => {
    if (!requireTool(t, haveTshark(), 'tshark')) return;
    const msg = ipfixMessage({ exportTime: 1_700_000_100, sequence: 0, domain: 1 }, [ipfixTemplateSet([{ id: 300, fields: DATALINK }]), dataSet(300, DATALINK, [datalinkRow])]);
    const [row] = tsharkOn([msg], 4739, 'cflow', ['cflow.data_link_frame_size', 'vlan.id', 'ip.src', 'ip.dst', 'ip.len', 'tcp.srcport', 'tcp.dstport']);
    assert.ok(row !== undefined);
    assert.deepEqual(row['cflow.data_link_frame_size'], ['1518']);
    assert.deepEqual(row['vlan.id'], ['101']);
    assert.deepEqual([row['ip.src']?.[1], row['ip.dst']?.[1], row['ip.len']?.[1]], ['10.9.0.1', '10.9.0.2', '1500']);
    assert.deepEqual([row['tcp.srcport'], row['tcp.dstport']], [['5000'], ['443']]);
  });

  test('dataLinkFrameSection: flow keys, VLAN, the IP length as octets (the byte convention), one packet', () => {
    assert.deepEqual(view(decode(DATALINK, [datalinkRow])[0]), { src: '10.9.0.1', dst: '10.9.0.2', v: 4, proto: 6, sport: 5000, dport: 443, tos: 0x10, flags: 0x10, vlan: 101, octets: 1500, packets: 1, in: 7 });
  });

  test('ipHeaderPacketSection with SRv6: the inner flow under the inner policy, the SRv6 header under outer; ipTotalLength gives octets', () => {
    const row = [1548, 3, srv6.subarray(0, 40 + 24 + 40)];
    assert.deepEqual(view(decode(IPSECTION, [row])[0]), { src: '10.9.0.1', dst: '10.9.0.2', v: 4, proto: 6, sport: 5000, dport: 443, tos: 0x10, flags: 0x10, vlan: null, octets: 1548, packets: 3, in: null });
    assert.deepEqual(view(decode(IPSECTION, [row], 'outer')[0]), { src: '2001:db8::a', dst: '2001:db8::b', v: 6, proto: 4, sport: null, dport: null, tos: 0, flags: null, vlan: null, octets: 1548, packets: 3, in: null });
  });

  test('the template\'s own flow keys win: a section never mixes into a record that has addresses', () => {
    const F: FieldDef[] = [{ id: 8, length: 4 }, { id: 12, length: 4 }, { id: 1, length: 4 }, { id: 315, length: VARLEN }];
    const [r] = decode(F, [['192.0.2.1', '192.0.2.2', 900, frame.subarray(0, 64)]]);
    assert.deepEqual([ip(r?.srcAddr ?? null), ip(r?.dstAddr ?? null), r?.protocol, r?.srcPort, r?.octets, r?.srcVlan], ['192.0.2.1', '192.0.2.2', null, null, 900, 101]);
  });

  test('a section cut inside the IP header, or not IP at all, leaves the record as the template made it', () => {
    assert.deepEqual(view(decode(DATALINK, [[7, 1518, frame.subarray(0, 30)]])[0]), { src: null, dst: null, v: 0, proto: null, sport: null, dport: null, tos: null, flags: null, vlan: 101, octets: 1518, packets: 1, in: 7 });
    const arp = sf.ethernetFrame(0x0806, new Uint8Array(28));
    assert.deepEqual(view(decode(DATALINK, [[7, 60, arp]])[0])?.octets, 60);
  });
});
