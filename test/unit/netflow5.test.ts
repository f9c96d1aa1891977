/**
 * NetFlow v5 decoding against real exporter bytes: every v5 capture in
 * test/fixtures/corpora/expected.json (logstash-codec-netflow's assertions), goflow2's v5 vector,
 * and a field-by-field cross-check of every v5 record against Wireshark's cflow dissector.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { decodeNetflow5, readNetflow5Header } from '../../src/decode/netflow5/netflow5.js';
import { DecodeError, DecodeErrorCode } from '../../src/flow/errors.js';
import type { ExporterPacket } from '../../src/flow/exporter-packet.js';
import type { FlowRecord } from '../../src/flow/flow-record.js';
import { ipToString } from '../../src/flow/ip.js';
import { splitRawPayload } from '../../src/ingest/file/raw-payload-reader.js';
import { buildPcap } from '../support/pcap-builder.js';
import { haveTshark, tsharkFields } from '../support/tshark-fields.js';
import { corpora } from '../support/corpora.js';


interface ExpectedCapture {
  feed_in_order: string[];
  expected_event_count: number | null;
  records: Record<string, unknown>[];
}
const expected = JSON.parse(readFileSync(path.join(corpora, 'expected.json'), 'utf8')) as { captures: Record<string, ExpectedCapture> };

function packetOf(payload: Uint8Array): ExporterPacket {
  return { payload, exporter: '192.0.2.1', exporterPort: 2055, transport: 'udp', sessionKey: 'udp|192.0.2.1|2055|2055', identity: null, receivedAtMs: 0 };
}

type V5Header = ReturnType<typeof readNetflow5Header>;

/** Decodes a capture file as `sealflow decode` would: split glued datagrams, decode each. */
function decodeFile(rel: string): { records: FlowRecord[]; headers: V5Header[]; headerOf: V5Header[]; errors: DecodeError[] } {
  const bytes = new Uint8Array(readFileSync(path.join(corpora, rel)));
  const split = splitRawPayload(bytes, { exporterOverride: null, defaultExporter: '192.0.2.1', defaultReceivedAtMs: 0, sessionKeyFor: (e) => `file|${e}` });
  const records: FlowRecord[] = [];
  const headers: V5Header[] = [];
  const headerOf: V5Header[] = [];
  const errors: DecodeError[] = [];
  for (const p of split.packets) {
    try {
      decodeNetflow5(p.packet, records);
      const h = readNetflow5Header(p.packet.payload);
      headers.push(h);
      for (let i = 0; i < h.count; i++) headerOf.push(h);
    } catch (e) {
      if (!(e instanceof DecodeError)) throw e;
      errors.push(e);
    }
  }
  return { records, headers, headerOf, errors };
}

const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());

/** Our record in logstash-codec-netflow's v5 field names. */
function asLogstash(r: FlowRecord, h: V5Header): Record<string, unknown> {
  return {
    '@timestamp': new Date(h.exportTimeMs).toISOString(),
    version: r.flowversion,
    flow_seq_num: h.sequence,
    engine_type: r.observationDomainId >>> 8,
    engine_id: r.observationDomainId & 0xff,
    sampling_algorithm: h.samplingMode,
    // logstash prints the raw interval field; 0 means unsampled, which we carry as 1.
    sampling_interval: r.samplingInterval === 1 ? 0 : r.samplingInterval,
    flow_records: h.count,
    ipv4_src_addr: r.srcAddr === null ? null : ipToString(r.srcAddr),
    ipv4_dst_addr: r.dstAddr === null ? null : ipToString(r.dstAddr),
    ipv4_next_hop: r.nextHop === null ? null : ipToString(r.nextHop),
    input_snmp: r.inputIf,
    output_snmp: r.outputIf,
    in_pkts: r.packets,
    in_bytes: r.octets,
    first_switched: iso(r.startMs),
    last_switched: iso(r.endMs),
    l4_src_port: r.srcPort,
    l4_dst_port: r.dstPort,
    tcp_flags: r.tcpFlags,
    protocol: r.protocol,
    src_tos: r.tos,
    src_as: r.srcAs,
    dst_as: r.dstAs,
    src_mask: r.srcMask,
    dst_mask: r.dstMask,
  };
}

/**
 * Where logstash-codec-netflow and sealflow disagree on v5 times, and why sealflow is right.
 * v5 first/last are sysUptime values in ms (u32); absolute = export time − (sysUptime − t).
 *  1. Sub-second borrow: when the export time's millisecond part is smaller than the age's
 *     (export ms < (sysUptime − t) mod 1000), logstash's result is exactly 1000 ms late:
 *     its seconds/microseconds arithmetic does not borrow the second. Juniper MX80 record 28:
 *     unix_secs 1469109172, unix_nsecs 0, sysUptime 190649064, first 190631000 → age 18064 ms
 *     → 13:52:33.936 (Wireshark shows first = 190631.000 s uptime, export 190649.064 s);
 *     logstash prints 13:52:34.936.
 *  2. Uptime wrap: softflowd (netflow5.dat) writes first = 0xffffffff with sysUptime 3381:
 *     the flow started 3382 ms before export, 1 ms before the uptime counter's zero. The
 *     difference is a u32 and must be taken modulo 2^32; logstash subtracts as signed
 *     integers and dates the flow 49.7 days (2^32 ms) AFTER its own export.
 */
function explainedTimeDisagreement(field: string, ours: unknown, theirs: unknown): string | null {
  if ((field !== 'first_switched' && field !== 'last_switched') || typeof ours !== 'string' || typeof theirs !== 'string') return null;
  const delta = Date.parse(theirs) - Date.parse(ours);
  if (delta === 1000) return 'logstash-missing-borrow';
  if (delta === 2 ** 32) return 'logstash-no-u32-wrap';
  return null;
}

describe('NetFlow v5: logstash-codec-netflow expectations (expected.json)', () => {
  const v5Captures = Object.entries(expected.captures).filter(([k]) => path.basename(k).startsWith('netflow5'));

  test('the corpus has the v5 captures this test is about', () => {
    assert.deepEqual(v5Captures.map(([k]) => path.basename(k)).sort(), [
      'netflow5.dat',
      'netflow5_test_invalid01.dat',
      'netflow5_test_invalid02.dat',
      'netflow5_test_juniper_mx80.dat',
      'netflow5_test_microtik.dat',
    ]);
  });

  for (const [key, cap] of v5Captures) {
    test(key, () => {
      const records: FlowRecord[] = [];
      const headerOf: V5Header[] = [];
      const errors: DecodeError[] = [];
      for (const rel of cap.feed_in_order) {
        const d = decodeFile(rel);
        errors.push(...d.errors);
        records.push(...d.records);
        headerOf.push(...d.headerOf);
      }
      if (key.endsWith('invalid01.dat') || key.endsWith('invalid02.dat')) {
        // "must not crash": the header count does not fit the datagram → typed BadCount.
        assert.equal(records.length, 0);
        assert.equal(errors.length, 1);
        assert.equal(errors[0]?.code, DecodeErrorCode.BadCount);
        return;
      }
      assert.equal(errors.length, 0, errors.map((e) => e.message).join('; '));
      if (key.endsWith('/netflow5.dat')) {
        // logstash decodes only the first datagram of this glued file (expected_event_count 2);
        // the file holds 12 softflowd datagrams (counts 2,4,4,4 and 8 × 2 = 30 records), all valid.
        assert.equal(records.length, 2 + 4 + 4 + 4 + 2 * 8);
      } else if (cap.expected_event_count !== null) {
        assert.equal(records.length, cap.expected_event_count);
      }
      for (const exp of cap.records) {
        const idx = exp._index as number;
        const rec = records[idx];
        const h = headerOf[idx];
        assert.ok(rec !== undefined && h !== undefined, `record ${idx}`);
        const ours = asLogstash(rec, h);
        for (const [field, theirs] of Object.entries(exp)) {
          if (field.startsWith('_')) continue;
          assert.ok(field in ours, `unmapped logstash field ${field}`);
          if (ours[field] === theirs) continue;
          const why = explainedTimeDisagreement(field, ours[field], theirs);
          assert.ok(why !== null, `${key} #${idx} ${field}: ours ${String(ours[field])}, logstash ${String(theirs)}`);
        }
      }
    });
  }
});

describe('NetFlow v5: the disagreements with logstash, checked on the bytes', () => {
  test('Juniper MX80 record 28: sub-second borrow', () => {
    const { records, headers } = decodeFile('logstash-codec-netflow/netflow5_test_juniper_mx80.dat');
    const h = headers[0]!;
    assert.equal(headers[0]?.count, 29);
    assert.equal(h.exportTimeMs, 1469109172_000);
    assert.equal(h.uptimeMs, 190649064);
    const r = records[28]!;
    // first = 190631000 (bytes 24+28×48+24..27): 18064 ms before export.
    assert.equal(h.exportTimeMs - r.startMs!, 18064);
    assert.equal(iso(r.startMs), '2016-07-21T13:52:33.936Z');
  });

  test('netflow5.dat record 0: first = 0xffffffff wraps, it does not jump 49.7 days ahead', () => {
    const bytes = readFileSync(path.join(corpora, 'logstash-codec-netflow/netflow5.dat'));
    assert.equal(bytes.readUInt32BE(24 + 24), 0xffffffff);
    assert.equal(bytes.readUInt32BE(4), 3381);
    const { records } = decodeFile('logstash-codec-netflow/netflow5.dat');
    const r = records[0]!;
    assert.equal(iso(r.startMs), '2015-05-02T18:38:04.898Z');
    assert.ok(r.startMs! <= r.endMs!, 'a flow cannot end before it starts');
    assert.equal(iso(r.endMs), '2015-05-02T18:38:07.476Z');
  });
});

describe('NetFlow v5: goflow2 vector', () => {
  test('TestDecodeNetFlowV5: version 5, Records[0].Input = 9, 6 records', () => {
    const { records, headers, errors } = decodeFile('goflow2/nfv5_TestDecodeNetFlowV5_0.bin');
    assert.equal(errors.length, 0);
    assert.equal(headers.length, 1);
    assert.equal(records.length, 6);
    const r0 = records[0]!;
    assert.equal(r0.flowversion, 5);
    assert.equal(r0.flowtype, 'netflow');
    assert.equal(r0.inputIf, 9);
    // engine_type 8, engine_id 8 (header bytes 20, 21) → observation domain 0x0808.
    assert.equal(headers[0]!.observationDomainId, 0x0808);
    assert.equal(headers[0]!.sequence, 25661);
  });
});

describe('NetFlow v5: every record against Wireshark (tshark cflow)', () => {
  const files = [
    'logstash-codec-netflow/netflow5.dat',
    'logstash-codec-netflow/netflow5_test_juniper_mx80.dat',
    'logstash-codec-netflow/netflow5_test_microtik.dat',
    'goflow2/nfv5_TestDecodeNetFlowV5_0.bin',
  ];
  const skip = !haveTshark() && process.env.CI === undefined ? 'tshark not installed (apt-get install tshark)' : false;
  test('all fields of all records agree', { skip }, () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'sealflow-nf5-'));
    try {
      for (const rel of files) {
        const bytes = new Uint8Array(readFileSync(path.join(corpora, rel)));
        const split = splitRawPayload(bytes, { exporterOverride: null, defaultExporter: '192.0.2.1', defaultReceivedAtMs: 0, sessionKeyFor: (e) => e });
        const pcap = buildPcap(split.packets.map((p, i) => ({ payload: p.packet.payload, src: '192.0.2.1', dst: '192.0.2.2', srcPort: 40000, dstPort: 2055, timestampMs: 1_700_000_000_000 + i })));
        const file = path.join(dir, 'v5.pcap');
        writeFileSync(file, pcap);
        const F = ['cflow.count', 'cflow.sysuptime', 'cflow.srcaddr', 'cflow.dstaddr', 'cflow.nexthop', 'cflow.inputint', 'cflow.outputint', 'cflow.packets', 'cflow.octets', 'cflow.timestart', 'cflow.timeend', 'cflow.srcport', 'cflow.dstport', 'cflow.tcpflags', 'cflow.protocol', 'cflow.tos', 'cflow.srcas', 'cflow.dstas', 'cflow.srcmask', 'cflow.dstmask'];
        const rows = tsharkFields(file, ['udp.port==2055,cflow'], F);
        assert.equal(rows.length, split.packets.length, rel);
        let checked = 0;
        split.packets.forEach((p, i) => {
          const row = rows[i]!;
          const recs: FlowRecord[] = [];
          const h = decodeNetflow5(p.packet, recs);
          assert.equal(Number(row['cflow.count']![0]), h.count);
          const uptimeS = Number(row['cflow.sysuptime']![0]);
          recs.forEach((r, j) => {
            const col = (f: string): string => row[f]![j]!;
            assert.equal(ipToString(r.srcAddr!), col('cflow.srcaddr'));
            assert.equal(ipToString(r.dstAddr!), col('cflow.dstaddr'));
            assert.equal(ipToString(r.nextHop!), col('cflow.nexthop'));
            assert.equal(r.inputIf, Number(col('cflow.inputint')));
            assert.equal(r.outputIf, Number(col('cflow.outputint')));
            assert.equal(r.packets, Number(col('cflow.packets')));
            assert.equal(r.octets, Number(col('cflow.octets')));
            assert.equal(r.srcPort, Number(col('cflow.srcport')));
            assert.equal(r.dstPort, Number(col('cflow.dstport')));
            assert.equal(r.tcpFlags, Number(col('cflow.tcpflags')));
            assert.equal(r.protocol, Number(col('cflow.protocol')));
            assert.equal(r.tos, Number(col('cflow.tos')));
            assert.equal(r.srcAs, Number(col('cflow.srcas')));
            assert.equal(r.dstAs, Number(col('cflow.dstas')));
            assert.equal(r.srcMask, Number(col('cflow.srcmask')));
            assert.equal(r.dstMask, Number(col('cflow.dstmask')));
            // Wireshark shows first/last as uptime seconds; ours are absolute: compare the age.
            for (const [ours, f] of [[r.startMs!, 'cflow.timestart'], [r.endMs!, 'cflow.timeend']] as const) {
              const ageMs = Math.round((uptimeS - Number(col(f))) * 1000);
              const exportMs = readNetflow5Header(p.packet.payload).exportTimeMs;
              assert.equal(exportMs - ours, ((ageMs % 2 ** 32) + 2 ** 32) % 2 ** 32, `${rel} #${j} ${f}`);
            }
            checked++;
          });
        });
        assert.ok(checked > 0, rel);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('NetFlow v5: malformed input', () => {
  const good = new Uint8Array(readFileSync(path.join(corpora, 'goflow2/nfv5_TestDecodeNetFlowV5_0.bin')));

  test('short header is Truncated at offset 0', () => {
    assert.throws(() => decodeNetflow5(packetOf(good.subarray(0, 23)), []), (e: unknown) => e instanceof DecodeError && e.code === DecodeErrorCode.Truncated);
  });
  test('count that does not fit the datagram is BadCount, nothing appended', () => {
    const out: FlowRecord[] = [];
    assert.throws(() => decodeNetflow5(packetOf(good.subarray(0, good.length - 1)), out), (e: unknown) => e instanceof DecodeError && e.code === DecodeErrorCode.BadCount && e.offset === 2);
    assert.equal(out.length, 0);
  });
  test('count above 30 is BadCount even when the bytes are there', () => {
    const big = new Uint8Array(24 + 31 * 48);
    big.set(good.subarray(0, 24));
    new DataView(big.buffer).setUint16(2, 31);
    assert.throws(() => decodeNetflow5(packetOf(big), []), (e: unknown) => e instanceof DecodeError && e.code === DecodeErrorCode.BadCount);
  });
  test('wrong version is BadVersion', () => {
    const b = good.slice();
    b[1] = 9;
    assert.throws(() => decodeNetflow5(packetOf(b), []), (e: unknown) => e instanceof DecodeError && e.code === DecodeErrorCode.BadVersion);
  });
  test('sampling field: 2-bit mode and 14-bit interval', () => {
    const b = good.slice();
    new DataView(b.buffer).setUint16(22, (2 << 14) | 512);
    const out: FlowRecord[] = [];
    const h = decodeNetflow5(packetOf(b), out);
    assert.equal(h.samplingInterval, 512);
    assert.equal(readNetflow5Header(b).samplingMode, 2);
    assert.ok(out.every((r) => r.samplingInterval === 512));
  });
  test('count 0 is a valid empty datagram', () => {
    const b = good.slice(0, 24);
    new DataView(b.buffer).setUint16(2, 0);
    const out: FlowRecord[] = [];
    assert.equal(decodeNetflow5(packetOf(b), out).count, 0);
    assert.equal(out.length, 0);
  });
});
