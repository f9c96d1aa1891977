/**
 * sFlow v5 from a real agent: pmacctd's sfprobe plugin (Debian pmacct) samples
 * ../shared/corpora/synthetic/traffic.pcap at 1 in 1 and exports sFlow v5 to a UDP socket of
 * ours; decodeSflow's records, aggregated per flow, must match traffic_truth.json (packets,
 * bytes, addresses, ports, protocol, VLAN, TOS), and the raw datagrams must agree with
 * Wireshark's sFlow dissector.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import dgram from 'node:dgram';
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { decodeSflow } from '../../src/decode/sflow/sflow.js';
import type { SflowFlowSampleDetail } from '../../src/decode/sflow/sflow.js';
import type { ExporterPacket } from '../../src/flow/exporter-packet.js';
import type { FlowRecord } from '../../src/flow/flow-record.js';
import { ipToString } from '../../src/flow/ip.js';
import { buildPcap } from '../support/pcap-builder.js';
import { haveTshark, tsharkFields } from '../support/tshark-fields.js';
import { loadTrafficTruth } from '../support/traffic-truth.js';

const repoRoot = path.resolve(import.meta.dirname, '../..');
const corpora = path.resolve(repoRoot, '../shared/corpora');

const truth = loadTrafficTruth(corpora);

const AGENT = '192.0.2.77';
const ETHERNET_HEADER = 14;
const ETHERNET_FCS = 4;
const VLAN_TAG = 4;
const SUB_AGENT = 9;
/** How long pmacctd may take for 79 packets, including its 2 s start-up pause for savefiles. */
const PMACCTD_TIMEOUT_MS = 30_000;

const pmacctdInstalled = spawnSync('pmacctd', ['-V'], { stdio: 'ignore' }).error === undefined;
const skip = !pmacctdInstalled && process.env.CI === undefined ? 'pmacctd not installed (apt-get install pmacct)' : false;

function keyOf(src: string, dst: string, proto: number, sport: number, dport: number): string {
  return `${src}>${dst}/${proto}/${sport}>${dport}`;
}

test('pmacctd sfprobe exporting traffic.pcap: sFlow samples add up to traffic_truth.json', { skip, timeout: 60_000 }, async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'sealflow-sfprobe-'));
  const sock = dgram.createSocket('udp4');
  try {
    copyFileSync(path.join(corpora, 'synthetic/traffic.pcap'), path.join(dir, 'traffic.pcap'));
    const datagrams: { payload: Uint8Array; srcPort: number; atMs: number }[] = [];
    sock.on('message', (m, rinfo) => datagrams.push({ payload: new Uint8Array(m), srcPort: rinfo.port, atMs: Date.now() }));
    await new Promise<void>((resolve) => sock.bind(0, '127.0.0.1', resolve));
    const port = sock.address().port;
    const conf = path.join(dir, 'pmacctd.conf');
    writeFileSync(
      conf,
      [
        `pcap_savefile: ${path.join(dir, 'traffic.pcap')}`,
        'plugins: sfprobe',
        `sfprobe_receiver: 127.0.0.1:${port}`,
        `sfprobe_agentip: ${AGENT}`,
        `sfprobe_agentsubid: ${SUB_AGENT}`,
        'sampling_rate: 1',
        '',
      ].join('\n'),
    );
    // pmacctd exits by itself once the savefile is processed (pcap_savefile_wait unset).
    const child = spawn('pmacctd', ['-f', conf], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    let log = '';
    child.stdout.on('data', (b: Buffer) => (log += b.toString()));
    child.stderr.on('data', (b: Buffer) => (log += b.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
    const timer = setTimeout(() => child.kill('SIGKILL'), PMACCTD_TIMEOUT_MS);
    const code = await exited;
    clearTimeout(timer);
    assert.equal(code, 0, `pmacctd exited cleanly:\n${log}`);
    await new Promise((r) => setTimeout(r, 200));
    assert.ok(datagrams.length > 0, 'pmacctd sent sFlow datagrams');

    const records: FlowRecord[] = [];
    const details: SflowFlowSampleDetail[] = [];
    let flowSamples = 0;
    for (const d of datagrams) {
      const packet: ExporterPacket = { payload: d.payload, exporter: '127.0.0.1', exporterPort: d.srcPort, transport: 'udp', sessionKey: `udp|127.0.0.1|${d.srcPort}|${port}`, identity: null, receivedAtMs: d.atMs };
      const info = decodeSflow(packet, records, details);
      assert.equal(info.agent, AGENT);
      assert.equal(info.subAgentId, SUB_AGENT);
      assert.equal(info.udpSource, '127.0.0.1');
      flowSamples += info.flowSamples;
    }
    // Sampling 1 in 1: one flow sample per packet of the capture.
    assert.equal(flowSamples, truth.packets);
    assert.equal(records.length, truth.packets);

    const agg = new Map<string, { packets: number; ipBytes: number; frameBytes: number; tcpFlags: number; vlan: number | null; tos: number | null; icmp: number | null; ipVersion: number }>();
    records.forEach((r, i) => {
      assert.equal(r.flowtype, 'sflow');
      assert.equal(r.exporter, AGENT);
      assert.equal(r.samplingInterval, 1);
      assert.equal(r.packets, 1);
      const h = details[i]!.header;
      assert.ok(h !== null, 'every sample carries a raw packet header');
      const icmp = r.protocol === 1 || r.protocol === 58;
      const k = keyOf(ipToString(r.srcAddr!), ipToString(r.dstAddr!), r.protocol!, icmp ? 0 : r.srcPort!, icmp ? 0 : r.dstPort!);
      const a = agg.get(k) ?? { packets: 0, ipBytes: 0, frameBytes: 0, tcpFlags: 0, vlan: r.srcVlan, tos: r.tos, icmp: null, ipVersion: r.ipVersion };
      a.packets += 1;
      a.ipBytes += h.ipLength!;
      a.frameBytes += r.octets as number;
      a.tcpFlags |= r.tcpFlags ?? 0;
      if (icmp && a.icmp === null) a.icmp = r.icmpType! * 256 + r.icmpCode!;
      agg.set(k, a);
    });
    assert.equal(agg.size, truth.flows.length);
    for (const f of truth.flows) {
      const k = keyOf(f.src, f.dst, f.proto, f.sport, f.dport);
      const a = agg.get(k);
      assert.ok(a !== undefined, `flow ${k}`);
      assert.equal(a.packets, f.packets, k);
      // truth bytes are IP total lengths (L3), as NetFlow counts them; sFlow's octets are the
      // frame_length, "the total number of octets of data received on the network (excluding
      // framing bits but including FCS octets)" (sFlow v5 §5.2, sampled_header): Ethernet
      // header 14 + FCS 4 + 802.1Q tag 4 when tagged, on top of every IP packet.
      assert.equal(a.ipBytes, f.bytes, k);
      assert.equal(a.frameBytes - a.ipBytes, a.packets * (ETHERNET_HEADER + ETHERNET_FCS + (f.vlan === null ? 0 : VLAN_TAG)), `${k} L2 overhead per packet`);
      assert.equal(a.vlan, f.vlan, k);
      assert.equal(a.tos, f.tos, k);
      assert.equal(a.ipVersion, f.src.includes(':') ? 6 : 4, k);
      if (f.proto === 6) assert.equal(a.tcpFlags, f.tcp_flags, k);
      if (f.icmp_type_code !== undefined) assert.equal(a.icmp, f.icmp_type_code, k);
    }

    if (haveTshark() || process.env.CI !== undefined) {
      const pcapFile = path.join(dir, 'sflow.pcap');
      writeFileSync(pcapFile, buildPcap(datagrams.map((d) => ({ payload: d.payload, src: '127.0.0.1', dst: '127.0.0.1', srcPort: d.srcPort, dstPort: port, timestampMs: d.atMs }))));
      const rows = tsharkFields(pcapFile, [`udp.port==${port},sflow`], ['sflow_245.agent', 'sflow_245.numsamples', 'sflow.flow_sample.sampling_rate', 'sflow_245.header.frame_length']);
      assert.equal(rows.length, datagrams.length);
      assert.ok(rows.every((row) => row['sflow_245.agent']![0] === AGENT));
      assert.deepEqual(details.map((d) => d.frameLength), rows.flatMap((row) => row['sflow_245.header.frame_length']!.map(Number)));
      assert.deepEqual(details.map((d) => d.samplingRate), rows.flatMap((row) => row['sflow.flow_sample.sampling_rate']!.map(Number)));
    }
  } finally {
    sock.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
