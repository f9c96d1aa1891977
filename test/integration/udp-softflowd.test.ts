import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PrefixSet } from '../../src/flow/cidr.js';
import { UdpListener } from '../../src/ingest/udp/udp-listener.js';
import { CollectingSink, testLogger, until } from '../support/udp-harness.js';
import { corpora, haveSoftflowd, requireTool, softflowdReplay } from '../support/softflowd.js';
import { loadTrafficTruth } from '../support/traffic-truth.js';

/*
 * A real exporter (Debian softflowd) replaying test/fixtures/corpora/synthetic/traffic.pcap to the
 * UDP listener: every datagram arrives, from 127.0.0.1, unchanged. For NetFlow v5 the fixed
 * 48-byte records are read here directly and matched against traffic_truth.json (v5 carries
 * IPv4 only), so this checks the ingest path without depending on the decoders.
 */

async function replay(port: number, version: '5' | '10'): Promise<void> {
  await softflowdReplay(port, version);
}

const V5_HEADER_BYTES = 24;
const V5_RECORD_BYTES = 48;

test('softflowd NetFlow v5 and IPFIX reach the sink unchanged from an allowlisted exporter', async (t) => {
  if (!requireTool(t, haveSoftflowd(), 'softflowd')) return;
  const truth = loadTrafficTruth(corpora);
  const sink = new CollectingSink();
  const listener = new UdpListener({
    endpoints: [{ address: '127.0.0.1', port: 0 }],
    allowlist: PrefixSet.parse(['127.0.0.1']),
    sink,
    logger: testLogger().logger,
    receiveBufferBytes: 1024 * 1024,
  });
  await listener.start();
  try {
    const port = listener.addresses()[0]?.port ?? 0;
    await replay(port, '5');
    const v4flows = truth.flows.filter((f) => !f.src.includes(':'));
    const recordCount = (): number => sink.packets.reduce((n, p) => n + (((p.payload[2] ?? 0) << 8) | (p.payload[3] ?? 0)), 0);
    await until(() => recordCount() >= v4flows.length, 'the v5 records');
    const got: string[] = [];
    for (const p of sink.packets) {
      const b = Buffer.from(p.payload);
      assert.equal(p.exporter, '127.0.0.1');
      assert.equal(p.transport, 'udp');
      assert.equal(b.readUInt16BE(0), 5);
      const count = b.readUInt16BE(2);
      assert.equal(b.length, V5_HEADER_BYTES + count * V5_RECORD_BYTES);
      for (let i = 0; i < count; i++) {
        const o = V5_HEADER_BYTES + i * V5_RECORD_BYTES;
        const ip = (x: number): string => `${b[x]}.${b[x + 1]}.${b[x + 2]}.${b[x + 3]}`;
        const proto = b[o + 38] ?? 0;
        // ICMP: v5 exporters put type << 8 | code in the destination port (echo request = 2048);
        // the truth file has no ports for ICMP, so ports are compared for TCP/UDP only.
        const ports = proto === 1 ? 'icmp' : `${b.readUInt16BE(o + 32)} ${b.readUInt16BE(o + 34)}`;
        got.push(`${ip(o)} ${ip(o + 4)} ${proto} ${ports} ${b.readUInt32BE(o + 16)} ${b.readUInt32BE(o + 20)}`);
      }
    }
    const want = v4flows.map((f) => `${f.src} ${f.dst} ${f.proto} ${f.proto === 1 ? 'icmp' : `${f.sport} ${f.dport}`} ${f.packets} ${f.bytes}`);
    assert.deepEqual(got.sort(), want.sort());

    const before = sink.packets.length;
    await replay(port, '10');
    await until(() => sink.packets.length > before, 'the IPFIX messages');
    for (const p of sink.packets.slice(before)) {
      assert.equal(((p.payload[0] ?? 0) << 8) | (p.payload[1] ?? 0), 10);
      assert.equal(((p.payload[2] ?? 0) << 8) | (p.payload[3] ?? 0), p.payload.length, 'IPFIX length = datagram length');
    }
    const st = listener.stats();
    assert.equal(st.rejectedTotal, 0);
    assert.equal(st.exporters[0]?.packets, sink.packets.length);
  } finally {
    await listener.close();
  }
});
