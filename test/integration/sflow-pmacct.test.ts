/**
 * sFlow v5 from a real agent: pmacctd's sfprobe plugin (Debian pmacct) samples
 * test/fixtures/corpora/synthetic/traffic.pcap at 1 in 1 and exports sFlow v5 to a UDP socket of
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
import { corpora } from '../support/corpora.js';

const repoRoot = path.resolve(import.meta.dirname, '../..');

const truth = loadTrafficTruth(corpora);

const AGENT = '192.0.2.77';
const ETHERNET_HEADER = 14;
const ETHERNET_FCS = 4;
const VLAN_TAG = 4;
const SUB_AGENT = 9;
/** How long pmacctd may take to export 79 packets, including its 2 s start-up pause for savefiles. */
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
        'pcap_savefile_wait: true',
        '',
      ].join('\n'),
    );
    // pcap_savefile_wait keeps pmacctd running after the file: left to exit by itself, its
    // exit races with the sfprobe plugin and sometimes loses the last datagram. The test
    // stops it (SIGINT, its "user request" shutdown) once every packet has been sampled, or
    // at the deadline: the shutdown flushes whatever the plugin still holds.
    const child = spawn('pmacctd', ['-f', conf], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    let log = '';
    child.stdout.on('data', (b: Buffer) => (log += b.toString()));
    child.stderr.on('data', (b: Buffer) => (log += b.toString()));
    const exited = new Promise<void>((resolve) => child.on('close', () => resolve()));
    const decodeAll = (): { records: FlowRecord[]; details: SflowFlowSampleDetail[] } => {
      const records: FlowRecord[] = [];
      const details: SflowFlowSampleDetail[] = [];
      for (const d of datagrams) {
        const packet: ExporterPacket = { payload: d.payload, exporter: '127.0.0.1', exporterPort: d.srcPort, transport: 'udp', sessionKey: `udp|127.0.0.1|${d.srcPort}|${port}`, identity: null, receivedAtMs: d.atMs };
        const info = decodeSflow(packet, records, details);
        assert.equal(info.agent, AGENT);
        assert.equal(info.subAgentId, SUB_AGENT);
        assert.equal(info.udpSource, '127.0.0.1');
      }
      return { records, details };
    };
    const started = Date.now();
    while (decodeAll().records.length < truth.packets && Date.now() - started < PMACCTD_TIMEOUT_MS && child.exitCode === null) {
      await new Promise((r) => setTimeout(r, 200));
    }
    child.kill('SIGINT');
    const killTimer = setTimeout(() => child.kill('SIGKILL'), 3000);
    await exited;
    clearTimeout(killTimer);
    await new Promise((r) => setTimeout(r, 200));
    assert.ok(datagrams.length > 0, `pmacctd sent sFlow datagrams:\n${log}`);

    const all = decodeAll();
    // Sampling 1 in 1: one flow sample per packet of the capture, sample sequence numbers
    // 1, 2, 3, ... in capture order. pmacctd 1.7.7's shutdown then exports again the packets
    // still queued between its core and the plugin (observed: 25 more samples of the bulk UDP
    // flow, with new sequence numbers after the capture's): those are pmacctd's duplicates,
    // not packets of the capture, so the capture is samples 1..truth.packets.
    const order = all.details.map((d, i) => ({ seq: d.sequence, i })).sort((x, y) => x.seq - y.seq);
    assert.ok(order.length >= truth.packets, `${order.length} flow samples for ${truth.packets} packets:\n${log}`);
    order.forEach((o, j) => assert.equal(o.seq, j + 1, 'sample sequence numbers are 1..N without gaps'));
    const capture = order.slice(0, truth.packets);
    const records = capture.map((o) => all.records[o.i]!);
    const details = capture.map((o) => all.details[o.i]!);

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
      // The byte convention (docs/decoding.md): octets are the IP packet's length, as NetFlow counts.
      assert.equal(r.octets, h.ipLength);
      a.ipBytes += r.octets;
      a.frameBytes += details[i]!.frameLength!;
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
      // truth bytes are IP total lengths (L3), as NetFlow counts them, and so are sealflow's
      // sFlow octets; the sample's frame_length is "the total number of octets of data received
      // on the network (excluding framing bits but including FCS octets)" (sFlow v5 §5.2,
      // sampled_header): Ethernet header 14 + FCS 4 + 802.1Q tag 4 when tagged, on top of every IP packet.
      assert.equal(a.ipBytes, f.bytes, k);
      assert.equal(a.frameBytes - a.ipBytes, a.packets * (ETHERNET_HEADER + ETHERNET_FCS + (f.vlan === null ? 0 : VLAN_TAG)), `${k} L2 overhead per packet`);
      assert.equal(a.vlan, f.vlan, k);
      assert.equal(a.tos, f.tos, k);
      assert.equal(a.ipVersion, f.src.includes(':') ? 6 : 4, k);
      if (f.proto === 6) assert.equal(a.tcpFlags, f.tcp_flags, k);
      if (f.icmp_type_code !== undefined) assert.equal(a.icmp, f.icmp_type_code, k);
    }

    // The same datagrams through `sealflow decode` (pcap reader → DecodeService → decodeSflow).
    const pcapFile = path.join(dir, 'sflow.pcap');
    writeFileSync(pcapFile, buildPcap(datagrams.map((d) => ({ payload: d.payload, src: '127.0.0.1', dst: '127.0.0.1', srcPort: d.srcPort, dstPort: port, timestampMs: d.atMs }))));
    const cli = spawnSync(process.execPath, ['--import', 'tsx', 'src/main.ts', 'decode', pcapFile], { cwd: repoRoot, encoding: 'utf8', timeout: 60_000 });
    assert.equal(cli.status, 0, cli.stderr);
    const printed = cli.stdout.split('\n').filter((l) => l.length > 0).map((l) => JSON.parse(l) as { flowtype: string; flowsrcip: string; samplerate: number; packets: number; bits: number });
    assert.equal(printed.length, all.records.length);
    assert.ok(printed.every((x) => x.flowtype === 'sflow' && x.flowsrcip === AGENT && x.samplerate === 1 && x.packets === 1));
    assert.deepEqual(printed.map((x) => x.bits), all.records.map((r) => (r.octets as number) * 8));

    if (haveTshark() || process.env.CI !== undefined) {
      const rows = tsharkFields(pcapFile, [`udp.port==${port},sflow`], ['sflow_245.agent', 'sflow_245.numsamples', 'sflow.flow_sample.sampling_rate', 'sflow_245.header.frame_length']);
      assert.equal(rows.length, datagrams.length);
      assert.ok(rows.every((row) => row['sflow_245.agent']![0] === AGENT));
      assert.deepEqual(all.details.map((d) => d.frameLength), rows.flatMap((row) => row['sflow_245.header.frame_length']!.map(Number)));
      assert.deepEqual(all.details.map((d) => d.samplingRate), rows.flatMap((row) => row['sflow.flow_sample.sampling_rate']!.map(Number)));
    }
  } finally {
    sock.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
