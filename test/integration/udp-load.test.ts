import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PrefixSet } from '../../src/flow/cidr.js';
import { UdpListener } from '../../src/ingest/udp/udp-listener.js';
import { dataRecordsIn, RECORD_BYTES, startUdpLoad, TEMPLATE_FIELDS, TEMPLATE_ID } from '../../bench/udp-load.js';
import { buildPcap } from '../support/pcap-builder.js';
import { haveTshark, tsharkFields } from '../support/tshark-fields.js';
import { CollectingSink, testLogger, until } from '../support/udp-harness.js';

/*
 * The benchmark load generator must send what it claims: valid IPFIX (checked field by field
 * by Wireshark's dissector where tshark is installed), the template first, contiguous
 * sequence numbers (RFC 7011 §3.1), and exactly rate × duration records.
 */

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const u16 = (b: Uint8Array, o: number): number => ((b[o] ?? 0) << 8) | (b[o + 1] ?? 0);
const u32 = (b: Uint8Array, o: number): number => ((u16(b, o) << 16) >>> 0) + u16(b, o + 2);

test('startUdpLoad sends paced, valid IPFIX from another process', async () => {
  const sink = new CollectingSink();
  const listener = new UdpListener({
    endpoints: [{ address: '127.0.0.1', port: 0 }],
    allowlist: PrefixSet.parse(['127.0.0.2']),
    sink,
    logger: testLogger().logger,
    receiveBufferBytes: 4 * 1024 * 1024,
  });
  await listener.start();
  try {
    const port = listener.addresses()[0]?.port ?? 0;
    const perPacket = 10;
    const result = await startUdpLoad({ host: '127.0.0.1', port, recordsPerSecond: 20_000, durationMs: 500, recordsPerPacket: perPacket, localAddress: '127.0.0.2' });
    assert.equal(result.sentRecords, 10_000, 'exactly rate × duration records');
    assert.equal(result.sentPackets, 1000 + result.templatePackets);
    assert.ok(result.templatePackets >= 1);
    assert.ok(result.elapsedMs >= 500 && result.elapsedMs < 3000, `elapsed ${result.elapsedMs} ms`);
    assert.equal(result.sendErrors, 0);
    await until(() => sink.packets.length === result.sentPackets, 'every datagram');

    const first = sink.packets[0]?.payload ?? new Uint8Array();
    assert.equal(u16(first, 16), 2, 'the template set comes first');
    assert.equal(u16(first, 20), TEMPLATE_ID);
    assert.equal(u16(first, 22), TEMPLATE_FIELDS.length);
    let expectedSeq = 0;
    let records = 0;
    for (const p of sink.packets) {
      const b = p.payload;
      assert.equal(p.exporter, '127.0.0.2', 'sent from localAddress');
      assert.equal(u16(b, 0), 10);
      assert.equal(u16(b, 2), b.length, 'message length = datagram length');
      const n = dataRecordsIn(b);
      if (n > 0) {
        assert.equal(u32(b, 8), expectedSeq, 'sequence number = data records sent before this message');
        assert.equal(b.length, 20 + n * RECORD_BYTES);
      }
      expectedSeq += n;
      records += n;
    }
    assert.equal(records, result.sentRecords);

    if (!haveTshark()) {
      if (process.env.CI !== undefined) assert.fail('tshark is required in CI (.ci/install-deps installs it)');
      return;
    }
    // Wireshark's IPFIX dissector reads the same bytes: record count and fields must agree.
    const sample = sink.packets.slice(0, 20);
    const dir = mkdtempSync(path.join(tmpdir(), 'sealflow-udp-load-'));
    dirs.push(dir);
    const file = path.join(dir, 'load.pcap');
    writeFileSync(file, buildPcap(sample.map((p, i) => ({ payload: p.payload, src: p.exporter, dst: '127.0.0.1', srcPort: p.exporterPort, dstPort: port, timestampMs: 1_700_000_000_000 + i }))));
    const rows = tsharkFields(file, [`udp.port==${port},cflow`], ['cflow.version', 'cflow.srcaddr', 'cflow.dstport', 'cflow.protocol', 'cflow.srcas']);
    assert.equal(rows.length, sample.length);
    rows.forEach((row, i) => {
      const b = sample[i]?.payload ?? new Uint8Array();
      assert.deepEqual(row['cflow.version'], ['10']);
      const n = dataRecordsIn(b);
      assert.equal(row['cflow.srcaddr']?.length ?? 0, n, `frame ${i}: records`);
      for (let k = 0; k < n; k++) {
        const o = 20 + k * RECORD_BYTES;
        assert.equal(row['cflow.srcaddr']?.[k], `${b[o]}.${b[o + 1]}.${b[o + 2]}.${b[o + 3]}`);
        assert.equal(row['cflow.dstport']?.[k], String(u16(b, o + 10)));
        assert.equal(row['cflow.protocol']?.[k], String(b[o + 12]));
        assert.equal(row['cflow.srcas']?.[k], String(u32(b, o + 55)));
      }
    });
  } finally {
    await listener.close();
  }
});
