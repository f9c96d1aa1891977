/**
 * Capture file readers (src/ingest/file): raw payloads with glued messages, classic pcap in
 * every supported link type / byte order / timestamp resolution, RFC 5655 IPFIX files, and
 * truncated or corrupt files (typed errors with the file offset, packets before kept).
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { detectCaptureFormat, readCaptureFile } from '../../src/ingest/file/capture-file.js';
import type { CaptureReadOptions } from '../../src/ingest/file/capture-file.js';
import { readPcap } from '../../src/ingest/file/pcap-reader.js';
import { readIpfixFile } from '../../src/ingest/file/ipfix-file-reader.js';
import { splitRawPayload } from '../../src/ingest/file/raw-payload-reader.js';
import { DecodeError, DecodeErrorCode } from '../../src/flow/errors.js';
import { buildPcap } from '../support/pcap-builder.js';
import type { PcapDatagram, PcapLinkType } from '../support/pcap-builder.js';
import { haveTshark, tsharkFields } from '../support/tshark-fields.js';
import { corpora } from '../support/corpora.js';

const NOW = 1_750_000_000_000;

const opts: CaptureReadOptions = { exporterOverride: null, defaultExporter: '0.0.0.0', defaultReceivedAtMs: NOW, sessionKeyFor: (e) => `file|${e}` };

function corpus(rel: string): Uint8Array {
  return new Uint8Array(readFileSync(path.join(corpora, rel)));
}

function payload(n: number, fill: number): Uint8Array {
  return new Uint8Array(n).fill(fill);
}

const DATAGRAMS: PcapDatagram[] = [
  { payload: payload(100, 1), src: '192.0.2.1', dst: '192.0.2.2', srcPort: 40001, dstPort: 2055, timestampMs: 1_700_000_000_001, extraNs: 234_567 },
  { payload: payload(3, 2), src: '2001:db8::5', dst: '2001:db8::6', srcPort: 40002, dstPort: 4739, timestampMs: 1_700_000_000_500 },
  { payload: payload(1400, 3), src: '198.51.100.9', dst: '192.0.2.2', srcPort: 40003, dstPort: 6343, timestampMs: 1_700_000_001_000 },
];

describe('pcap reader', () => {
  const linkTypes: PcapLinkType[] = [0, 1, 101, 113, 228, 229, 276];
  for (const linkType of linkTypes) {
    for (const littleEndian of [true, false]) {
      for (const nanosecond of [false, true]) {
        test(`link type ${linkType}, ${littleEndian ? 'little' : 'big'}-endian, ${nanosecond ? 'ns' : 'µs'}`, () => {
          // Link types 228/229 carry only IPv4/IPv6 respectively.
          const ds = linkType === 228 ? DATAGRAMS.filter((d) => !d.src.includes(':')) : linkType === 229 ? DATAGRAMS.filter((d) => d.src.includes(':')) : DATAGRAMS;
          const bytes = buildPcap(ds, { linkType, littleEndian, nanosecond });
          assert.equal(detectCaptureFormat(bytes, 'capture.bin'), 'pcap', 'recognised by magic, not extension');
          const r = readCaptureFile(bytes, 'capture.bin', opts);
          assert.equal(r.format, 'pcap');
          assert.deepEqual(r.problems, []);
          assert.equal(r.packets.length, ds.length);
          r.packets.forEach((p, i) => {
            const d = ds[i]!;
            assert.deepEqual(p.packet.payload, d.payload);
            assert.equal(p.packet.exporter, d.src);
            assert.equal(p.packet.exporterPort, d.srcPort);
            assert.equal(p.packet.receivedAtMs, d.timestampMs);
            assert.equal(p.packet.transport, 'file');
            assert.equal(p.packet.sessionKey, `file|${d.src}`);
            // The offset points at the payload's first byte in the file.
            assert.deepEqual(bytes.subarray(p.fileOffset, p.fileOffset + d.payload.length), d.payload);
          });
        });
      }
    }
  }

  test('802.1Q and QinQ tagged Ethernet frames', () => {
    const bytes = buildPcap([{ ...DATAGRAMS[0]!, vlans: [100] }, { ...DATAGRAMS[1]!, vlans: [200, 300] }]);
    const r = readPcap(bytes, opts);
    assert.equal(r.packets.length, 2);
    assert.equal(r.packets[1]?.packet.exporter, '2001:db8::5');
  });

  test('IPv4 fragments are skipped and counted, the rest is read', () => {
    const bytes = buildPcap([DATAGRAMS[0]!, { ...DATAGRAMS[2]!, fragmentAt: 800 }, DATAGRAMS[1]!]);
    const r = readPcap(bytes, opts);
    assert.equal(r.ipFragmentsSkipped, 2);
    assert.deepEqual(r.packets.map((p) => p.packet.exporterPort), [40001, 40002]);
  });

  test('--exporter override replaces the IP source in exporter and session', () => {
    const r = readPcap(buildPcap(DATAGRAMS), { ...opts, exporterOverride: '203.0.113.1' });
    assert.ok(r.packets.every((p) => p.packet.exporter === '203.0.113.1' && p.packet.sessionKey === 'file|203.0.113.1'));
  });

  test('every truncation point gives a typed error with its file offset, and keeps earlier packets', () => {
    const bytes = buildPcap(DATAGRAMS);
    const full = readPcap(bytes, opts);
    const ends = full.packets.map((p, i) => p.fileOffset + DATAGRAMS[i]!.payload.length);
    for (let n = 0; n < bytes.length; n++) {
      const r = readPcap(bytes.subarray(0, n), opts);
      const complete = ends.filter((e) => e <= n).length;
      if (n === 24 || ends.includes(n)) {
        assert.deepEqual(r.problems, [], `n=${n} is a record boundary (24: header only, an empty capture)`);
      } else {
        assert.equal(r.problems.length, 1, `n=${n}`);
        const e = r.problems[0]!;
        assert.ok(e instanceof DecodeError);
        assert.equal(e.code, DecodeErrorCode.Truncated);
        assert.ok(e.offset <= n, `offset ${e.offset} within the file at n=${n}`);
      }
      assert.equal(r.packets.length, complete, `n=${n}`);
    }
  });

  test('frames cut by the snapshot length are reported, not decoded', () => {
    const r = readPcap(buildPcap(DATAGRAMS, { snaplen: 200 }), opts);
    assert.deepEqual(r.packets.map((p) => p.packet.exporterPort), [40001, 40002]);
    assert.equal(r.problems.length, 1);
    assert.equal(r.problems[0]?.code, DecodeErrorCode.Truncated);
  });

  test('a corrupt record length is BadLength and stops reading', () => {
    const bytes = buildPcap(DATAGRAMS);
    new DataView(bytes.buffer).setUint32(24 + 8, 0x7fffffff, true);
    const r = readPcap(bytes, opts);
    assert.equal(r.packets.length, 0);
    assert.equal(r.problems[0]?.code, DecodeErrorCode.BadLength);
    assert.equal(r.problems[0].offset, 32);
  });

  test('a pcapng cut inside its section header is truncated (pcapng: capture-pcapng.test.ts); unknown link types are refused', () => {
    const ng = new Uint8Array([0x0a, 0x0d, 0x0d, 0x0a, 0, 0, 0, 28]);
    assert.equal(readCaptureFile(ng, 'x.pcapng', opts).problems[0]?.code, DecodeErrorCode.Truncated);
    const bytes = buildPcap(DATAGRAMS);
    new DataView(bytes.buffer).setUint32(20, 147, true);
    assert.equal(readPcap(bytes, opts).problems[0]?.code, DecodeErrorCode.BadFile);
  });

  test('traffic.pcap: the UDP datagrams match tshark (sources, ports, times, lengths)', { skip: !haveTshark() && process.env.CI === undefined ? 'tshark not installed' : false }, () => {
    const file = path.join(corpora, 'synthetic/traffic.pcap');
    const r = readPcap(new Uint8Array(readFileSync(file)), opts);
    const rows = tsharkFields(file, [], ['ip.src', 'ipv6.src', 'udp.srcport', 'udp.length', 'frame.time_epoch']).filter((row) => row['udp.srcport']!.length > 0);
    assert.ok(rows.length > 0);
    assert.equal(r.packets.length, rows.length);
    assert.equal(r.nonUdpSkipped + r.packets.length, 79);
    r.packets.forEach((p, i) => {
      const row = rows[i]!;
      assert.equal(p.packet.exporter, row['ip.src']![0] ?? row['ipv6.src']![0]);
      assert.equal(p.packet.exporterPort, Number(row['udp.srcport']![0]));
      assert.equal(p.packet.payload.length, Number(row['udp.length']![0]) - 8);
      assert.equal(p.packet.receivedAtMs, Math.floor(Number(row['frame.time_epoch']![0]) * 1000 + 1e-6));
    });
  });
});

describe('raw payload files (.dat/.bin)', () => {
  test('netflow5.dat: 12 glued v5 datagrams split by their counts', () => {
    const bytes = corpus('logstash-codec-netflow/netflow5.dat');
    const r = readCaptureFile(bytes, 'netflow5.dat', opts);
    assert.equal(r.format, 'raw');
    const counts = r.packets.map((p) => (p.packet.payload[2]! << 8) | p.packet.payload[3]!);
    assert.deepEqual(counts, [2, 4, 4, 4, 2, 2, 2, 2, 2, 2, 2, 2]);
    assert.equal(r.packets.reduce((n, p) => n + p.packet.payload.length, 0), bytes.length);
    assert.ok(r.packets.every((p) => p.packet.exporter === '0.0.0.0' && p.packet.receivedAtMs === NOW));
  });

  test('ipfix.dat: 3 IPFIX messages back to back split by their lengths', () => {
    const bytes = corpus('logstash-codec-netflow/ipfix.dat');
    const r = readCaptureFile(bytes, 'ipfix.dat', opts);
    assert.equal(r.format, 'raw');
    assert.equal(r.packets.length, 3);
    let pos = 0;
    for (const p of r.packets) {
      assert.equal(p.fileOffset, pos);
      assert.equal(p.packet.payload.length, (bytes[pos + 2]! << 8) | bytes[pos + 3]!);
      pos += p.packet.payload.length;
    }
    assert.equal(pos, bytes.length);
  });

  test('NetFlow v9 and sFlow datagrams stay whole', () => {
    for (const rel of ['logstash-codec-netflow/netflow9_test_cisco_asa_1_tpl.dat', 'goflow2/sflow_TestExpandedSFlowDecode_0.bin']) {
      const bytes = corpus(rel);
      const r = readCaptureFile(bytes, rel, opts);
      assert.equal(r.packets.length, 1, rel);
      assert.equal(r.packets[0]?.packet.payload.length, bytes.length);
    }
  });

  test('a v5 count that does not fit leaves the datagram whole for the decoder to report', () => {
    const bytes = corpus('logstash-codec-netflow/netflow5_test_invalid01.dat');
    const r = splitRawPayload(bytes, opts);
    assert.equal(r.packets.length, 1);
    assert.equal(r.packets[0]?.packet.payload.length, bytes.length);
  });

  test('zero padding after the last v5 datagram is not a message; other trailing bytes are', () => {
    const one = corpus('goflow2/nfv5_TestDecodeNetFlowV5_0.bin');
    const padded = new Uint8Array(one.length + 16);
    padded.set(one);
    assert.equal(splitRawPayload(padded, opts).packets.length, 1);
    padded[one.length + 3] = 7;
    const r = splitRawPayload(padded, opts);
    assert.equal(r.packets.length, 2);
    assert.equal(r.packets[1]?.fileOffset, one.length);
  });

  test('--exporter override applies to raw files', () => {
    const r = splitRawPayload(corpus('goflow2/nfv5_TestDecodeNetFlowV5_0.bin'), { ...opts, exporterOverride: '2001:db8::1' });
    assert.equal(r.packets[0]?.packet.exporter, '2001:db8::1');
    assert.equal(r.packets[0].packet.sessionKey, 'file|2001:db8::1');
  });

  test('an empty file is a BadFile problem', () => {
    assert.equal(readCaptureFile(new Uint8Array(0), 'empty.dat', opts).problems[0]?.code, DecodeErrorCode.BadFile);
  });
});

describe('RFC 5655 IPFIX files', () => {
  const bytes = corpus('ipfixcol2/example_flows.ipfix');

  test('example_flows.ipfix: 68 messages, observation domain 6, recognised by content', () => {
    assert.equal(detectCaptureFormat(bytes, 'flows.data'), 'ipfix');
    const r = readCaptureFile(bytes, 'example_flows.ipfix', opts);
    assert.equal(r.format, 'ipfix');
    assert.deepEqual(r.problems, []);
    assert.equal(r.packets.length, 68);
    for (const p of r.packets) {
      const v = new DataView(p.packet.payload.buffer, p.packet.payload.byteOffset);
      assert.equal(v.getUint16(0), 10);
      assert.equal(v.getUint32(12), 6);
    }
  });

  test('a truncated file is Truncated at the offset of the cut message, earlier messages kept', () => {
    const full = readIpfixFile(bytes, opts);
    const third = full.packets[2]!;
    const r = readIpfixFile(bytes.subarray(0, third.fileOffset + 20), opts);
    assert.equal(r.packets.length, 2);
    assert.equal(r.problems.length, 1);
    assert.equal(r.problems[0]?.code, DecodeErrorCode.Truncated);
    assert.equal(r.problems[0].offset, third.fileOffset);
  });

  test('a message that is not IPFIX stops reading with BadVersion at its offset', () => {
    const b = bytes.slice();
    const second = readIpfixFile(bytes, opts).packets[1]!.fileOffset;
    b[second + 1] = 9;
    const r = readIpfixFile(b, opts);
    assert.equal(r.packets.length, 1);
    assert.equal(r.problems[0]?.code, DecodeErrorCode.BadVersion);
    assert.equal(r.problems[0].offset, second);
  });

  test('a length shorter than the header is BadLength', () => {
    const b = bytes.slice();
    b[3] = 8;
    b[2] = 0;
    const r = readIpfixFile(b, opts);
    assert.equal(r.problems[0]?.code, DecodeErrorCode.BadLength);
  });
});
