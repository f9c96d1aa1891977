/**
 * A real exporter's IPFIX modes (issue 20, items 1 and 3), softflowd exporting traffic.pcap
 * to a UDP socket on 127.0.0.1, checked against traffic_truth.json per direction:
 * - bidirectional mode (`-v 10 -b`, RFC 5103 reverse elements under PEN 29305): every
 *   direction of every flow is its own record with that direction's packets and bytes (the
 *   reverse direction was dropped before);
 * - PSAMP mode (`-v psamp`): one packet report per packet carrying only a
 *   dataLinkFrameSection (315): the header parser gives flow keys, VLAN and the IP length
 *   (the records were all nulls before).
 * The captures kept in the corpora (softflowd/*.pcap) are this exporter's output for this
 * traffic; tshark reads the same bytes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { DecodeService } from '../../src/decode/decode-service.js';
import { readCaptureFile } from '../../src/ingest/file/capture-file.js';
import type { FlowRecord } from '../../src/flow/flow-record.js';
import { ipToString } from '../../src/flow/ip.js';
import { corpora, haveSoftflowd, requireTool, softflowdReplay } from '../support/softflowd.js';
import { loadTrafficTruth } from '../support/traffic-truth.js';
import { haveTshark } from '../support/tshark-fields.js';
import { tsharkOn } from '../support/tshark-check.js';

const key = (src: string, dst: string, proto: number, sport: number, dport: number): string => `${src} ${dst} ${proto} ${sport} ${dport}`;

function decodeAll(datagrams: readonly Uint8Array[]): FlowRecord[] {
  const svc = new DecodeService();
  const out: FlowRecord[] = [];
  for (const payload of datagrams) {
    const o = svc.decode({ payload, exporter: '127.0.0.1', exporterPort: 40000, transport: 'udp', sessionKey: 'softflowd', identity: null, receivedAtMs: Date.now() });
    assert.deepEqual(o.errors, []);
    out.push(...o.records);
  }
  return out;
}

/** Each direction of each truth flow has exactly its packets and bytes. */
function assertDirections(records: readonly FlowRecord[]): void {
  const truth = loadTrafficTruth(corpora);
  const got = new Map<string, [number, number]>();
  for (const r of records) {
    const icmp = r.protocol === 1 || r.protocol === 58;
    const k = key(ipToString(r.srcAddr!), ipToString(r.dstAddr!), r.protocol!, icmp ? 0 : r.srcPort!, icmp ? 0 : r.dstPort!);
    const [p, b] = got.get(k) ?? [0, 0];
    got.set(k, [p + Number(r.packets), b + Number(r.octets)]);
  }
  for (const f of truth.flows) assert.deepEqual(got.get(key(f.src, f.dst, f.proto, f.sport, f.dport)), [f.packets, f.bytes], key(f.src, f.dst, f.proto, f.sport, f.dport));
  assert.equal(got.size, truth.flows.length, 'no record beyond the truth flows');
}

async function capture(version: '10', extra: readonly string[]): Promise<Uint8Array[]> {
  const sock = createSocket('udp4');
  const datagrams: Uint8Array[] = [];
  sock.on('message', (m) => datagrams.push(new Uint8Array(m)));
  await new Promise<void>((resolve) => sock.bind(0, '127.0.0.1', () => resolve()));
  try {
    await softflowdReplay(sock.address().port, version, undefined, extra);
    // softflowd has exited; take what is still in flight, until 300 ms pass with nothing new (at most 5 s).
    const deadline = Date.now() + 5000;
    for (let seen = -1; seen !== datagrams.length && Date.now() < deadline; ) {
      seen = datagrams.length;
      await new Promise((r) => setTimeout(r, 300));
    }
  } finally {
    sock.close();
  }
  assert.ok(datagrams.length > 0, 'softflowd exported');
  return datagrams;
}

function corpusDatagrams(name: string): Uint8Array[] {
  const file = path.join(corpora, 'softflowd', name);
  return readCaptureFile(new Uint8Array(readFileSync(file)), file, { exporterOverride: null, defaultExporter: '0.0.0.0', defaultReceivedAtMs: 0, sessionKeyFor: (e) => e }).packets.map((p) => p.packet.payload);
}

// PSAMP is checked on the corpus capture only: softflowd sends its ~80 report datagrams in one
// burst, more than a default socket receive buffer holds on a busy machine.
test('softflowd -v psamp (the corpus capture): packet reports with only a dataLinkFrameSection add up to every direction of every flow', (t) => {
  const fromCorpus = decodeAll(corpusDatagrams('psamp_traffic.pcap'));
  assert.equal(fromCorpus.length, 79, 'one record per packet');
  assertDirections(fromCorpus);
  // VLAN 100 of the tagged flow comes from the section's 802.1Q tag.
  assert.deepEqual([...new Set(fromCorpus.map((r) => r.srcVlan))].sort(), [100, null]);
  if (requireTool(t, haveTshark(), 'tshark')) {
    const rows = tsharkOn(corpusDatagrams('psamp_traffic.pcap'), 4739, 'cflow', ['cflow.data_link_frame_section']);
    assert.equal(rows.reduce((n, r) => n + (r['cflow.data_link_frame_section']?.length ?? 0), 0), 79);
  }
});

test('softflowd -v 10 -b (live): every direction of every flow is its own record with its own packets and bytes', async (t) => {
  if (!requireTool(t, haveSoftflowd(), 'softflowd')) return;
  assertDirections(decodeAll(await capture('10', ['-b'])));
});

test('the corpus capture of softflowd -b: the same directions; tshark reads both directions\' counters of the same bytes', (t) => {
  const datagrams = corpusDatagrams('ipfix_biflow_traffic.pcap');
  const records = decodeAll(datagrams);
  assertDirections(records);
  if (!requireTool(t, haveTshark(), 'tshark')) return;
  const rows = tsharkOn(datagrams, 4739, 'cflow', ['cflow.packets']);
  // Per biflow: forward packets then [Reverse] packets; their sum is the capture's 79 packets.
  const total = rows.flatMap((r) => r['cflow.packets'] ?? []).reduce((n, v) => n + Number(v), 0);
  assert.equal(total, 79);
  assert.equal(records.reduce((n, r) => n + Number(r.packets), 0), 79);
});
