/**
 * Decoding a real exporter's NetFlow v9 and IPFIX: Debian softflowd replays
 * test/fixtures/corpora/synthetic/traffic.pcap to a UDP socket on 127.0.0.1, and the datagrams go
 * through DecodeService. Every flow of traffic_truth.json must come out with its 5-tuple,
 * packets, octets, TCP flags, ToS, ICMP type/code and IP version, and the start/end times
 * turned absolute (v9: header sysUpTime and unix_secs; IPFIX: systemInitTimeMilliseconds
 * options data) must keep the capture's relative timing.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { DecodeService } from '../../src/decode/decode-service.js';
import type { FlowRecord } from '../../src/flow/flow-record.js';
import { ipToString } from '../../src/flow/ip.js';
import { corpora, haveSoftflowd, requireTool, softflowdReplay } from '../support/softflowd.js';
import type { TruthFlow } from '../support/softflowd.js';

interface Truth extends TruthFlow {
  readonly tos: number;
  readonly first_ts: number;
  readonly last_ts: number;
}

/** softflowd keeps one start/end per bidirectional flow, so a reply's first packet (10 ms later here) shares its request's times. */
const TIME_TOLERANCE_MS = 10;

async function capture(version: '9' | '10'): Promise<Buffer[]> {
  const sock = dgram.createSocket('udp4');
  const got: Buffer[] = [];
  sock.on('message', (m) => got.push(m));
  await new Promise<void>((resolve) => sock.bind(0, '127.0.0.1', resolve));
  try {
    await softflowdReplay(sock.address().port, version);
    // Loopback delivery is immediate; give the event loop one turn for the last datagrams.
    for (let i = 0; i < 20 && got.length === 0; i++) await new Promise((r) => setTimeout(r, 50));
    await new Promise((r) => setTimeout(r, 100));
  } finally {
    sock.close();
  }
  return got;
}

function tupleKey(src: string, dst: string, proto: number, sport: number, dport: number): string {
  return proto === 6 || proto === 17 ? `${src} ${dst} ${proto} ${sport} ${dport}` : `${src} ${dst} ${proto}`;
}

for (const version of ['9', '10'] as const) {
  test(`softflowd ${version === '9' ? 'NetFlow v9' : 'IPFIX'} export of traffic.pcap decodes to traffic_truth.json`, async (t) => {
    if (!requireTool(t, haveSoftflowd(), 'softflowd')) return;
    const truth = (JSON.parse(readFileSync(path.join(corpora, 'synthetic/traffic_truth.json'), 'utf8')) as { flows: Truth[] }).flows;
    const datagrams = await capture(version);
    assert.ok(datagrams.length > 0, 'softflowd sent datagrams');
    const svc = new DecodeService();
    const records: FlowRecord[] = [];
    for (const payload of datagrams) {
      const o = svc.decode({ payload, exporter: '127.0.0.1', exporterPort: 0, transport: 'udp', sessionKey: 'softflowd', identity: null, receivedAtMs: Date.now() });
      assert.deepEqual(o.errors.map((e) => `${e.code} ${e.message}`), []);
      assert.equal(o.version, Number(version));
      records.push(...o.records);
    }
    assert.equal(records.length, truth.length, 'one record per truth flow');
    const byKey = new Map(records.map((r) => [tupleKey(ipToString(r.srcAddr ?? 0), ipToString(r.dstAddr ?? 0), r.protocol ?? -1, r.srcPort ?? 0, r.dstPort ?? 0), r]));
    const base = Math.min(...records.map((r) => r.startMs ?? Infinity));
    const truthBase = Math.min(...truth.map((f) => f.first_ts * 1000));
    for (const f of truth) {
      const r = byKey.get(tupleKey(f.src, f.dst, f.proto, f.sport, f.dport));
      assert.ok(r !== undefined, `flow ${f.src} → ${f.dst} p${f.proto} decoded`);
      const where = `${f.src} → ${f.dst} p${f.proto}`;
      assert.equal(r.packets, f.packets, where);
      assert.equal(r.octets, f.bytes, where);
      assert.equal(r.ipVersion, f.src.includes(':') ? 6 : 4, where);
      assert.equal(r.tos, f.tos, where);
      if (f.proto === 6) assert.equal(r.tcpFlags, f.tcp_flags, where);
      if (f.proto === 1 || f.proto === 58) assert.ok(r.icmpType !== null && r.icmpCode === 0, where);
      assert.equal(r.samplingInterval, 1, where);
      assert.equal(r.flowversion, Number(version));
      assert.ok(r.startMs !== null && r.endMs !== null, `${where}: absolute times`);
      assert.ok(Math.abs(r.startMs - base - (f.first_ts * 1000 - truthBase)) <= TIME_TOLERANCE_MS, `${where}: start offset ${r.startMs - base} vs ${f.first_ts * 1000 - truthBase}`);
      assert.ok(Math.abs(r.endMs - base - (f.last_ts * 1000 - truthBase)) <= TIME_TOLERANCE_MS, `${where}: end offset ${r.endMs - base} vs ${f.last_ts * 1000 - truthBase}`);
    }
  });
}
