/**
 * sFlow v5 decoding: goflow2's and logstash-codec-sflow's datagrams (values read off the
 * bytes and cross-checked against Wireshark's sFlow dissector), logstash-codec-sflow's
 * sampled-header assertions, and datagrams built from readable values for every record type
 * the decoder reads (IPv6 agent, expanded samples, sampled IPv4/IPv6, extended switch/router/
 * gateway, QinQ, truncated headers, interface formats, counters, caps, bad lengths).
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { decodeSflow, interfaceIndex, MAX_SFLOW_SAMPLES } from '../../src/decode/sflow/sflow.js';
import type { SflowFlowSampleDetail } from '../../src/decode/sflow/sflow.js';
import { emptyHeaderInfo, HeaderProtocol, parseEthernet, parseIpv4, parseSampledHeader, parseTransport } from '../../src/decode/packet/header-parser.js';
import { DecodeError, DecodeErrorCode } from '../../src/flow/errors.js';
import type { ExporterPacket } from '../../src/flow/exporter-packet.js';
import type { FlowRecord } from '../../src/flow/flow-record.js';
import { ipToString } from '../../src/flow/ip.js';
import { toFusionRecord } from '../../src/flow/fusion-record.js';
import { buildPcap } from '../support/pcap-builder.js';
import { haveTshark, tsharkFields } from '../support/tshark-fields.js';
import * as sf from '../support/sflow-builder.js';
import { corpora } from '../support/corpora.js';

const RECEIVED_AT = 1_700_000_000_123;

function packetOf(payload: Uint8Array, exporter = '198.51.100.7'): ExporterPacket {
  return { payload, exporter, exporterPort: 6343, transport: 'udp', sessionKey: `udp|${exporter}|6343|6343`, identity: null, receivedAtMs: RECEIVED_AT };
}

function decode(payload: Uint8Array): { records: FlowRecord[]; details: SflowFlowSampleDetail[]; info: ReturnType<typeof decodeSflow> } {
  const records: FlowRecord[] = [];
  const details: SflowFlowSampleDetail[] = [];
  const info = decodeSflow(packetOf(payload), records, details);
  return { records, details, info };
}

/** Records under the 'frame' byte convention (goflow2's). */
function decodeFrame(payload: Uint8Array): FlowRecord[] {
  const records: FlowRecord[] = [];
  decodeSflow(packetOf(payload), records, undefined, { octets: 'frame', layer: 'inner' });
  return records;
}

function corpus(rel: string): Uint8Array {
  return new Uint8Array(readFileSync(path.join(corpora, rel)));
}

const isDecodeError = (code: string) => (e: unknown) => e instanceof DecodeError && e.code === code;

/** The sFlow datagrams of the corpora (the logstash `sflow__*` files are bare headers, not datagrams). */
const DATAGRAMS = [
  ...readdirSync(path.join(corpora, 'goflow2')).filter((f) => f.startsWith('sflow_')).map((f) => `goflow2/${f}`),
  ...readdirSync(path.join(corpora, 'logstash-codec-sflow')).filter((f) => f.startsWith('sflow_') && !f.startsWith('sflow__')).map((f) => `logstash-codec-sflow/${f}`),
];

describe('sFlow v5: goflow2 vectors', () => {
  test('TestSFlowDecode: compact flow sample, 802.1Q ICMP echo header', () => {
    const { records, details, info } = decode(corpus('goflow2/sflow_TestSFlowDecode_0.bin'));
    // Header: agent type 1, 172.16.0.17 (ac 10 00 11), sub-agent 1, sequence 0x1aa.
    assert.deepEqual([info.agent, info.subAgentId, info.sequence, info.samples, info.flowSamples, info.counterSamples], ['172.16.0.17', 1, 426, 1, 1, 0]);
    assert.equal(info.udpSource, '198.51.100.7');
    assert.equal(records.length, 1);
    const r = records[0]!;
    const d = details[0]!;
    // Sample: sequence 6, source_id 0x413, rate 0x800, pool 0x3000, input 0x4aa, output 0x413.
    assert.deepEqual([d.sequence, d.sourceIdType, d.sourceIdIndex, d.samplingRate, d.samplePool], [6, 0, 0x413, 2048, 0x3000]);
    assert.deepEqual([r.inputIf, r.outputIf, r.samplingInterval], [1194, 1043, 2048]);
    // Raw header: protocol 1 (Ethernet), frame_length 0x52, stripped 4, header 0x4e bytes;
    // 81 00 00 20 → VLAN 32; IPv4 ac10 20fe → ac10 20f1, protocol 1, ICMP type 8 code 0.
    assert.deepEqual([d.headerProtocol, d.frameLength, d.stripped, d.headerLength], [1, 82, 4, 78]);
    // Byte convention (docs/decoding.md): the IPv4 total length 0x3c = 60 (82 − 4 FCS − 14 − 4 tag);
    // goflow2 reports the frame length, which the 'frame' convention gives.
    assert.equal(r.octets, 60);
    assert.equal(decodeFrame(corpus('goflow2/sflow_TestSFlowDecode_0.bin'))[0]?.octets, 82);
    assert.equal(r.packets, 1);
    assert.equal(r.srcVlan, 32);
    assert.equal(ipToString(r.srcAddr!), '172.16.32.254');
    assert.equal(ipToString(r.dstAddr!), '172.16.32.241');
    assert.deepEqual([r.protocol, r.icmpType, r.icmpCode, r.srcPort, r.dstPort], [1, 8, 0, null, null]);
    assert.equal(r.exporter, '172.16.0.17');
    assert.equal(r.flowtype, 'sflow');
    assert.equal(r.flowversion, 5);
    assert.equal(r.observationDomainId, 1);
    const f = toFusionRecord(r);
    assert.deepEqual([f.flowsrcip, f.samplerate, f.bits, f.packets, f.icmptype, f.protocol], ['172.16.0.17', 2048, 480, 1, 8, 'icmp']);
  });

  test('TestExpandedSFlowDecode: 5 expanded samples, extended switch, TCP', () => {
    const { records, details, info } = decode(corpus('goflow2/sflow_TestExpandedSFlowDecode_0.bin'));
    assert.deepEqual([info.agent, info.samples, info.flowSamples], ['1.2.3.4', 5, 5]);
    assert.equal(records.length, 5);
    // First sample: rate 0x3fff, input 0x000f42a4, output 0x000f4252; switch 1001: vlan 0x1e in/out.
    const r = records[0]!;
    // octets: the IPv4 total length 1492 (frame_length 1514 = 14 Ethernet + 4 802.1Q + 1492 + 4 FCS, which goflow2 prints).
    assert.deepEqual([r.samplingInterval, r.inputIf, r.outputIf, r.srcVlan, r.dstVlan, r.octets], [16383, 1000100, 1000018, 30, 30, 1492]);
    assert.deepEqual([details[0]?.frameLength, details[0]?.header?.ipLength, decodeFrame(corpus('goflow2/sflow_TestExpandedSFlowDecode_0.bin'))[0]?.octets], [1514, 1492, 1514]);
    assert.equal(details[0]?.expanded, true);
    assert.equal(ipToString(r.srcAddr!), '185.59.220.147');
    assert.equal(ipToString(r.dstAddr!), '88.238.78.19');
    assert.deepEqual([r.protocol, r.srcPort, r.dstPort, r.tcpFlags], [6, 443, 53206, 0x10]);
    assert.deepEqual(
      records.map((x) => x.srcVlan),
      [30, 23, 1337, 23, 957],
    );
    // Third sample's IPv4 TOS byte is 0x18.
    assert.equal(records[2]?.tos, 0x18);
  });

  for (const name of ['DropEgressQueue', 'DropExtendedACL', 'DropExtendedFunction']) {
    test(`TestSFlowDecode${name}: a drop sample (format 5) is skipped by its length`, () => {
      const { records, info } = decode(corpus(`goflow2/sflow_TestSFlowDecode${name}_0.bin`));
      // goflow2 decodes drop samples (sFlow drop-notification extension); we do not turn
      // drops into flows: the sample is counted as skipped and the datagram is still valid.
      assert.deepEqual([info.agent, info.subAgentId, info.samples, info.skippedSamples, records.length], ['192.168.119.184', 100000, 1, 1, 0]);
    });
  }
});

describe('sFlow v5: logstash-codec-sflow datagrams', () => {
  test('sflow_flow_sample.dat: input 0x3fffffff (internal) → null, extended switch VLANs', () => {
    const { records, details, info } = decode(corpus('logstash-codec-sflow/sflow_flow_sample.dat'));
    assert.deepEqual([info.agent, info.sequence, info.flowSamples], ['10.1.240.66', 47612, 1]);
    const r = records[0]!;
    assert.deepEqual(details[0]?.input, { format: 0, value: 0x3fffffff });
    assert.equal(r.inputIf, null);
    assert.equal(r.outputIf, 944);
    // Extended switch: src_vlan 0 (untagged ingress: IEEE 802.1Q's null VLAN ID) → no VLAN.
    assert.deepEqual(details[0].extendedSwitch, { srcVlan: 0, srcPriority: 0, dstVlan: 1852, dstPriority: 0 });
    assert.deepEqual([r.srcVlan, r.dstVlan], [null, 1852]);
    // The header matches logstash's ipv4_tcp_header spec values (same capture).
    assert.equal(ipToString(r.srcAddr!), '10.243.27.17');
    assert.equal(ipToString(r.dstAddr!), '10.243.0.45');
    assert.deepEqual([r.srcPort, r.dstPort, r.tcpFlags], [5672, 59451, 0x18]);
  });

  test('sflow_counters_sample.dat: 12 counter samples, interface counters, no flows', () => {
    const { records, info } = decode(corpus('logstash-codec-sflow/sflow_counters_sample.dat'));
    assert.equal(records.length, 0);
    assert.equal(info.counterSamples, 12);
    assert.equal(info.interfaceCounters.length, 9);
    for (const c of info.interfaceCounters) assert.equal(c.sourceIdIndex, c.ifIndex);
  });

  test('sflow_1_counters_sample.dat and sflow_with_lag_counters.dat decode', () => {
    assert.equal(decode(corpus('logstash-codec-sflow/sflow_1_counters_sample.dat')).info.counterSamples, 1);
    const lag = decode(corpus('logstash-codec-sflow/sflow_with_lag_counters.dat'));
    assert.deepEqual([lag.info.flowSamples, lag.info.counterSamples, lag.records.length], [5, 2, 5]);
  });

  test('sflow_flow_sample_eth_vlan.dat: VLAN 2422 from the sampled 802.1Q header', () => {
    const { records } = decode(corpus('logstash-codec-sflow/sflow_flow_sample_eth_vlan.dat'));
    assert.equal(records[0]?.srcVlan, 2422);
  });
});

describe('sampled header parser: logstash-codec-sflow packet_header_spec assertions', () => {
  test('udp.dat: src_port 20665, dst_port 514', () => {
    const info = emptyHeaderInfo();
    parseTransport(corpus('logstash-codec-sflow/sflow__udp.dat'), 0, 17, info);
    assert.deepEqual([info.srcPort, info.dstPort], [20665, 514]);
  });
  test('tcp.dat: ports 5672 → 59451, ACK+PSH only', () => {
    const info = emptyHeaderInfo();
    parseTransport(corpus('logstash-codec-sflow/sflow__tcp.dat'), 0, 6, info);
    assert.deepEqual([info.srcPort, info.dstPort, info.tcpFlags], [5672, 59451, 0x18]);
  });
  test('ipv4_tcp_header.dat: 10.243.27.17 → 10.243.0.45, TCP, dscp/ecn 0', () => {
    const info = emptyHeaderInfo();
    parseIpv4(corpus('logstash-codec-sflow/sflow__ipv4_tcp_header.dat'), 0, info);
    assert.equal(info.ipVersion, 4);
    assert.equal(info.ipLength, 476);
    assert.equal(ipToString(info.srcAddr!), '10.243.27.17');
    assert.equal(ipToString(info.dstAddr!), '10.243.0.45');
    assert.deepEqual([info.protocol, info.tos, info.srcPort, info.dstPort, info.tcpFlags], [6, 0, 5672, 59451, 0x18]);
  });
  test('ethernet_ipv4_udp_header.dat: IPv4 to 10.243.27.9 port 514', () => {
    const info = emptyHeaderInfo();
    parseEthernet(corpus('logstash-codec-sflow/sflow__ethernet_ipv4_udp_header.dat'), info);
    assert.equal(info.ethertype, 0x0800);
    assert.equal(ipToString(info.dstAddr!), '10.243.27.9');
    assert.equal(info.dstPort, 514);
  });
  test('ethernet_vlan_ipv4_tcp_header.dat: VLAN 2422, inner type IPv4', () => {
    const info = parseSampledHeader(HeaderProtocol.Ethernet, corpus('logstash-codec-sflow/sflow__ethernet_vlan_ipv4_tcp_header.dat'));
    assert.deepEqual(info.vlans, [2422]);
    assert.equal(info.ethertype, 0x0800);
  });
});

// ---- datagrams built from readable values ----

const qinqTcp6 = sf.ethernetFrame(
  0x86dd,
  sf.ipv6Packet({ src: '2001:db8::1', dst: '2001:db8:1::443', nextHeader: 6, trafficClass: 0xb8, l4: sf.tcpHeader(50000, 443, 0x112) }),
  [
    [0x88a8, 0x2000 | 300],
    [0x8100, 42],
  ],
);

function featureDatagram(): Uint8Array {
  return sf.datagram({
    agent: '2001:db8::a',
    subAgentId: 7,
    sequence: 99,
    uptimeMs: 123456,
    samples: [
      sf.flowSample({
        expanded: true,
        samplingRate: 4096,
        input: [0, 17],
        output: [0, 0x3fffffff],
        records: [
          sf.rawHeaderRecord(1, 1518, qinqTcp6),
          sf.extendedRouterRecord('2001:db8::fe', 48, 64),
          sf.extendedGatewayRecord({ nextHop: '192.0.2.254', as: 65000, srcAs: 64500, srcPeerAs: 64501, path: [[64510, 64511], [64512]], communities: [0xfde80001, 0xfde80002], localPref: 100 }),
          sf.envelope((9 << 12) | 5, sf.u32(1, 2, 3)), // enterprise 9 record: skipped by length
        ],
      }),
      sf.flowSample({
        samplingRate: 512,
        input: ((1 << 30) | 258) >>> 0, // discarded, reason 258
        output: ((2 << 30) | 3) >>> 0, // 3 output interfaces
        records: [
          sf.sampledIpv4Record({ length: 1400, protocol: 17, src: '10.0.0.1', dst: '10.0.0.2', srcPort: 53, dstPort: 5353, tcpFlags: 0, tos: 0x10 }),
          sf.extendedSwitchRecord(10, 20),
        ],
      }),
      sf.flowSample({
        samplingRate: 0,
        records: [sf.sampledIpv6Record({ length: 80, protocol: 58, src: 'fe80::1', dst: 'ff02::1', srcPort: 0, dstPort: 0, tcpFlags: 0, priority: 0 })],
      }),
      sf.counterSample([sf.genericInterfaceCounters({ ifIndex: 17, ifInOctets: 2n ** 60n, ifOutOctets: 12345n, ifInUcastPkts: 77 })], true, 5, 17),
      sf.envelope(5, sf.u32(1, 2, 3, 4)), // drop sample: skipped
    ],
  });
}

describe('sFlow v5: every record type, built from readable values', () => {
  test('IPv6 agent, expanded sample, QinQ + IPv6 TCP header, router and gateway records', () => {
    const { records, details, info } = decode(featureDatagram());
    assert.deepEqual([info.agent, info.subAgentId, info.sequence, info.uptimeMs, info.samples], ['2001:db8::a', 7, 99, 123456, 5]);
    assert.deepEqual([info.flowSamples, info.counterSamples, info.skippedSamples, info.skippedRecords], [3, 1, 1, 1]);
    assert.equal(records.length, 3);
    const r = records[0]!;
    assert.equal(r.exporter, '2001:db8::a');
    // octets: the IPv6 packet in the header (40 + 20 bytes of TCP), not the 1518-byte frame.
    assert.deepEqual([r.inputIf, r.outputIf, r.samplingInterval, r.octets, r.packets], [17, null, 4096, 60, 1]);
    assert.equal(details[0]?.frameLength, 1518);
    // QinQ: service tag 300, customer tag 42; the record carries the customer VLAN.
    assert.deepEqual(details[0].header?.vlans, [300, 42]);
    assert.equal(r.srcVlan, 42);
    assert.equal(r.ipVersion, 6);
    assert.equal(ipToString(r.srcAddr!), '2001:db8::1');
    assert.equal(ipToString(r.dstAddr!), '2001:db8:1::443');
    assert.deepEqual([r.protocol, r.srcPort, r.dstPort, r.tcpFlags, r.tos], [6, 50000, 443, 0x112, 0xb8]);
    assert.equal(ipToString(r.nextHop!), '2001:db8::fe');
    assert.deepEqual([r.srcMask, r.dstMask], [48, 64]);
    assert.equal(ipToString(r.bgpNextHop!), '192.0.2.254');
    assert.deepEqual([r.srcAs, r.dstAs], [64500, 64512]);
    assert.deepEqual(details[0].asPath.map((s) => s.asns), [[64510, 64511], [64512]]);
    assert.deepEqual(details[0].communities, [0xfde80001, 0xfde80002]);
    assert.deepEqual([details[0].routerAs, details[0].srcPeerAs, details[0].localPref], [65000, 64501, 100]);
    assert.deepEqual(details[0].skippedRecordFormats, [(9 << 12) | 5]);
    assert.deepEqual([r.startMs, r.endMs, r.exportTime, r.uptimeMs], [RECEIVED_AT, RECEIVED_AT, Math.floor(RECEIVED_AT / 1000), 123456]);
  });

  test('compact sample: discard and multiple-interface formats have no ifIndex; sampled IPv4 record', () => {
    const { records, details } = decode(featureDatagram());
    const r = records[1]!;
    assert.deepEqual(details[1]!.input, { format: 1, value: 258 });
    assert.deepEqual(details[1]!.output, { format: 2, value: 3 });
    assert.deepEqual([r.inputIf, r.outputIf], [null, null]);
    assert.equal(ipToString(r.srcAddr!), '10.0.0.1');
    assert.deepEqual([r.ipVersion, r.protocol, r.srcPort, r.dstPort, r.tos, r.octets, r.srcVlan, r.dstVlan], [4, 17, 53, 5353, 0x10, 1400, 10, 20]);
  });

  test('sampled IPv6 record; sampling rate 0 reported as 1', () => {
    const { records } = decode(featureDatagram());
    const r = records[2]!;
    assert.deepEqual([r.ipVersion, r.protocol, r.samplingInterval, r.octets], [6, 58, 1, 80]);
    assert.equal(ipToString(r.dstAddr!), 'ff02::1');
  });

  test('counter sample: generic interface counters, 64-bit counters exact', () => {
    const { info } = decode(featureDatagram());
    const c = info.interfaceCounters[0]!;
    assert.deepEqual([c.ifIndex, c.sequence, c.sourceIdIndex, c.ifInUcastPkts], [17, 5, 17, 77]);
    assert.equal(c.ifInOctets, 2n ** 60n);
    assert.equal(c.ifOutOctets, 12345);
  });

  test('interfaceIndex: only a single real interface has an ifIndex', () => {
    assert.equal(interfaceIndex({ format: 0, value: 5 }), 5);
    assert.equal(interfaceIndex({ format: 0, value: 0 }), 0);
    assert.equal(interfaceIndex({ format: 0, value: 0x3fffffff }), null);
    assert.equal(interfaceIndex({ format: 0, value: 0xffffffff }), null);
    assert.equal(interfaceIndex({ format: 1, value: 5 }), null);
    assert.equal(interfaceIndex({ format: 2, value: 5 }), null);
  });

  test('a priority-only 802.1Q tag (VLAN ID 0) gives no VLAN', () => {
    const frame = sf.ethernetFrame(0x0800, sf.ipv4Packet({ src: '10.0.0.1', dst: '10.0.0.2', protocol: 17, l4: sf.udpHeader(1, 2) }), [[0x8100, 0x6000]]);
    const { records, details } = decode(sf.datagram({ samples: [sf.flowSample({ records: [sf.rawHeaderRecord(1, 64, frame)] })] }));
    assert.deepEqual(details[0]!.header!.vlans, [0]);
    assert.equal(records[0]!.srcVlan, null);
  });

  test('unknown agent address type 0 falls back to the UDP source', () => {
    const { records, info } = decode(sf.datagram({ agent: null, samples: [sf.flowSample({ records: [] })] }));
    assert.equal(info.agent, '198.51.100.7');
    assert.equal(records[0]?.exporter, '198.51.100.7');
  });
});

describe('sampled header parser: truncation and odd headers', () => {
  const frame = sf.ethernetFrame(0x0800, sf.ipv4Packet({ src: '10.0.0.1', dst: '10.0.0.2', protocol: 6, tos: 4, l4: sf.tcpHeader(1234, 80, 0x02) }), [[0x8100, 5]]);

  test('every truncation of a VLAN/IPv4/TCP frame parses as far as its bytes go, never throws', () => {
    for (let n = 0; n <= frame.length; n++) {
      const h = parseSampledHeader(1, frame.subarray(0, n));
      const full = n === frame.length;
      if (n >= 18 + 20) {
        assert.equal(h.ipVersion, 4, `n=${n}`);
        assert.equal(ipToString(h.dstAddr!), '10.0.0.2');
      } else {
        assert.equal(h.ipVersion, 0, `n=${n}`);
      }
      assert.equal(h.srcPort !== null, n >= 18 + 20 + 4, `ports at n=${n}`);
      assert.equal(h.tcpFlags !== null, n >= 18 + 20 + 14, `flags at n=${n}`);
      assert.equal(h.truncated, !full && n < 18 + 20 + 14, `truncated at n=${n}`);
    }
  });

  test('a later IPv4 fragment has no ports', () => {
    const h = parseSampledHeader(11, sf.ipv4Packet({ src: '10.0.0.1', dst: '10.0.0.2', protocol: 17, fragmentOffset8: 100, l4: sf.udpHeader(1, 2) }));
    assert.deepEqual([h.protocol, h.srcPort], [17, null]);
  });

  test('IPv6 extension headers are walked to the upper protocol; ICMPv6 type/code', () => {
    const hopByHop = Uint8Array.from([58, 0, 0, 0, 0, 0, 0, 0]);
    const l4 = sf.concat([hopByHop, sf.icmpHeader(135, 0)]);
    const h = parseSampledHeader(12, sf.ipv6Packet({ src: 'fe80::1', dst: 'ff02::1', nextHeader: 0, l4 }));
    assert.deepEqual([h.ipVersion, h.protocol, h.icmpType, h.icmpCode], [6, 58, 135, 0]);
  });

  test('an endless VLAN tag chain stops at the bound', () => {
    const tags = Array.from({ length: 20 }, () => [0x8100, 1] as const);
    const h = parseSampledHeader(1, sf.ethernetFrame(0x0800, new Uint8Array(0), tags));
    assert.equal(h.ipVersion, 0);
    assert.ok(h.vlans.length <= 8);
  });

  test('unknown header protocol gives an empty result', () => {
    assert.equal(parseSampledHeader(7, frame).ipVersion, 0);
  });
});

describe('sFlow v5: malformed datagrams are typed errors, atomic', () => {
  const good = featureDatagram();

  test('every truncation of a valid datagram throws DecodeError (never anything else), appends nothing', () => {
    for (let n = 0; n < good.length; n++) {
      const out: FlowRecord[] = [];
      assert.throws(() => decodeSflow(packetOf(good.subarray(0, n)), out), (e: unknown) => e instanceof DecodeError, `n=${n}`);
      assert.equal(out.length, 0);
    }
  });

  test('version other than 5 is BadVersion', () => {
    const b = good.slice();
    b[3] = 4;
    assert.throws(() => decode(b), isDecodeError(DecodeErrorCode.BadVersion));
  });

  test('sample count above the cap is BadCount before any allocation', () => {
    const b = sf.datagram({ samples: [] });
    new DataView(b.buffer).setUint32(b.length - 4, MAX_SFLOW_SAMPLES + 1);
    assert.throws(() => decode(b), isDecodeError(DecodeErrorCode.BadCount));
  });

  test('sample count larger than the bytes could hold is BadCount', () => {
    const b = sf.datagram({ samples: [sf.flowSample({ records: [] })] });
    new DataView(b.buffer).setUint32(24, 100);
    assert.throws(() => decode(b), isDecodeError(DecodeErrorCode.BadCount));
  });

  test('a sample length past the datagram is Truncated with its offset', () => {
    const b = sf.datagram({ samples: [sf.flowSample({ records: [] })] });
    new DataView(b.buffer).setUint32(32, 0xfffffff0);
    assert.throws(() => decode(b), (e: unknown) => e instanceof DecodeError && e.code === DecodeErrorCode.Truncated && e.offset === 36);
  });

  test('a record length that lies inside its sample cannot read the next sample', () => {
    // Raw header record claiming a 200-byte header inside a 40-byte record.
    const lying = sf.envelope(1, sf.concat([sf.u32(1, 100, 0, 200), new Uint8Array(24)]));
    const b = sf.datagram({ samples: [sf.flowSample({ records: [lying] }), sf.flowSample({ records: [] })] });
    assert.throws(() => decode(b), isDecodeError(DecodeErrorCode.Truncated));
  });

  test('unknown agent address type is BadRecord', () => {
    const b = good.slice();
    new DataView(b.buffer).setUint32(4, 3);
    assert.throws(() => decode(b), isDecodeError(DecodeErrorCode.BadRecord));
  });

  test('AS path longer than the cap is BadCount', () => {
    const gw = sf.envelope(1003, sf.concat([sf.address('192.0.2.1'), sf.u32(1, 2, 3, 1, 2, 5000)]));
    assert.throws(() => decode(sf.datagram({ samples: [sf.flowSample({ records: [gw] })] })), isDecodeError(DecodeErrorCode.BadCount));
  });
});

describe('sFlow v5: every datagram against Wireshark (tshark sflow dissector)', () => {
  const skip = !haveTshark() && process.env.CI === undefined ? 'tshark not installed (apt-get install tshark)' : false;
  test('agent, sequence, samples, rates, interfaces, frame lengths, VLANs, addresses, ports agree', { skip }, () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'sealflow-sflow-'));
    try {
      const inputs = [...DATAGRAMS.map((rel) => ({ name: rel, bytes: corpus(rel) })), { name: 'feature datagram', bytes: featureDatagram() }];
      const file = path.join(dir, 'sflow.pcap');
      writeFileSync(file, buildPcap(inputs.map((d, i) => ({ payload: d.bytes, src: '192.0.2.200', dst: '192.0.2.201', srcPort: 40000, dstPort: 6343, timestampMs: 1_700_000_000_000 + i }))));
      const F = [
        'sflow_245.agent',
        'sflow_245.agent.v6',
        'sflow_245.sub_agent_id',
        'sflow_245.sequence_number',
        'sflow_245.numsamples',
        'sflow.flow_sample.sampling_rate',
        'sflow_245.header.frame_length',
        'sflow_245.vlan.in',
        'sflow_245.vlan.out',
        'sflow_245.nexthop.src_mask',
        'sflow_245.nexthop.dst_mask',
        'vlan.id',
        'ieee8021ad.id',
        'tcp.srcport',
        'tcp.dstport',
        'ipv6.src',
      ];
      const rows = tsharkFields(file, ['udp.port==6343,sflow'], F);
      assert.equal(rows.length, inputs.length);
      inputs.forEach((input, i) => {
        const row = rows[i]!;
        const { records, details, info } = decode(input.bytes);
        const n = (f: string): number[] => row[f]!.map(Number);
        assert.equal(info.agent, row['sflow_245.agent']![0] ?? row['sflow_245.agent.v6']![0], input.name);
        assert.deepEqual([info.subAgentId, info.sequence, info.samples], [n('sflow_245.sub_agent_id')[0], n('sflow_245.sequence_number')[0], n('sflow_245.numsamples')[0]], input.name);
        assert.deepEqual(details.map((d) => d.samplingRate), n('sflow.flow_sample.sampling_rate'), input.name);
        assert.deepEqual(details.filter((d) => d.frameLength !== null).map((d) => d.frameLength), n('sflow_245.header.frame_length'), input.name);
        // Wireshark names 802.1ad (QinQ service) tags ieee8021ad.id and 802.1Q tags vlan.id; the
        // frames here carry at most one service tag, outermost.
        assert.deepEqual(details.flatMap((d) => d.header?.vlans ?? []), [...n('ieee8021ad.id'), ...n('vlan.id')], input.name);
        const switched = details.flatMap((d) => (d.extendedSwitch === null ? [] : [d.extendedSwitch]));
        assert.deepEqual(switched.map((w) => w.srcVlan), n('sflow_245.vlan.in'), input.name);
        assert.deepEqual(switched.map((w) => w.dstVlan), n('sflow_245.vlan.out'), input.name);
        const routed = records.filter((r) => r.srcMask !== null);
        assert.deepEqual(routed.map((r) => r.srcMask), n('sflow_245.nexthop.src_mask'), input.name);
        assert.deepEqual(routed.map((r) => r.dstMask), n('sflow_245.nexthop.dst_mask'), input.name);
        // TCP ports as read from the sampled headers (the outer capture is UDP).
        const tcpFromHeaders = details.filter((d) => d.header?.protocol === 6 && d.header.srcPort !== null);
        assert.deepEqual(tcpFromHeaders.map((d) => d.header!.srcPort), n('tcp.srcport'), input.name);
        assert.deepEqual(tcpFromHeaders.map((d) => d.header!.dstPort), n('tcp.dstport'), input.name);
        const v6 = details.filter((d) => d.header?.ipVersion === 6);
        assert.deepEqual(v6.map((d) => ipToString(d.header!.srcAddr!)), row['ipv6.src'], input.name);
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
