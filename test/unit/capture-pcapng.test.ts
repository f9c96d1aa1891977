/**
 * pcapng in `sealflow decode` (issue 20, item 8): files written the way Wireshark writes them
 * (converted and merged by editcap and mergecap from classic captures, so the blocks are
 * theirs, not ours), with several interfaces of different link types and timestamp
 * resolutions, big-endian sections, simple packet blocks, and corrupt blocks.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { readCaptureFile, type CaptureReadOptions } from '../../src/ingest/file/capture-file.js';
import { DecodeErrorCode } from '../../src/flow/errors.js';
import { buildPcap, ipPackets, type PcapDatagram } from '../support/pcap-builder.js';
import { requireTool } from '../support/softflowd.js';
import { tsharkFields } from '../support/tshark-fields.js';

const NOW = 1_750_000_000_000;
const opts: CaptureReadOptions = { exporterOverride: null, defaultExporter: '0.0.0.0', defaultReceivedAtMs: NOW, sessionKeyFor: (e) => `file|${e}` };

const ETH: PcapDatagram[] = [
  { payload: new Uint8Array(100).fill(1), src: '192.0.2.1', dst: '192.0.2.2', srcPort: 40001, dstPort: 2055, timestampMs: 1_700_000_000_001, extraNs: 234_000 },
  { payload: new Uint8Array(40).fill(2), src: '2001:db8::5', dst: '2001:db8::6', srcPort: 40002, dstPort: 4739, timestampMs: 1_700_000_000_900 },
];
const RAW: PcapDatagram[] = [{ payload: new Uint8Array(60).fill(3), src: '198.51.100.9', dst: '192.0.2.2', srcPort: 40003, dstPort: 6343, timestampMs: 1_700_000_000_500, extraNs: 123_456 }];

const haveEditcap = (): boolean => spawnSync('editcap', ['-h'], { stdio: 'ignore' }).status === 0;

function summary(bytes: Uint8Array) {
  const r = readCaptureFile(bytes, 'x.pcapng', opts);
  return { problems: r.problems.map((p) => `${p.code}@${p.offset}`), packets: r.packets.map((p) => [p.packet.exporter, p.packet.exporterPort, p.packet.receivedAtMs, p.packet.payload.length, p.packet.payload[0]]) };
}

describe('pcapng reader', () => {
  test('Wireshark-written pcapng (editcap, mergecap): two interfaces, Ethernet µs and raw IP ns, in time order; tshark agrees', (t) => {
    if (!requireTool(t, haveEditcap(), 'editcap/mergecap (wireshark-common)')) return;
    const dir = mkdtempSync(path.join(tmpdir(), 'sealflow-pcapng-'));
    try {
      writeFileSync(path.join(dir, 'eth.pcap'), buildPcap(ETH));
      writeFileSync(path.join(dir, 'raw.pcap'), buildPcap(RAW, { linkType: 101, nanosecond: true }));
      const merged = path.join(dir, 'merged.pcapng');
      const run = spawnSync('mergecap', ['-F', 'pcapng', '-w', merged, path.join(dir, 'eth.pcap'), path.join(dir, 'raw.pcap')], { encoding: 'utf8' });
      assert.equal(run.status, 0, run.stderr);
      const bytes = new Uint8Array(readFileSync(merged));
      assert.deepEqual(summary(bytes), {
        problems: [],
        packets: [
          ['192.0.2.1', 40001, 1_700_000_000_001, 100, 1],
          ['198.51.100.9', 40003, 1_700_000_000_500, 60, 3],
          ['2001:db8::5', 40002, 1_700_000_000_900, 40, 2],
        ],
      });
      const rows = tsharkFields(merged, [], ['frame.interface_id', 'udp.srcport', 'frame.time_epoch']);
      assert.deepEqual(rows.map((r) => [r['frame.interface_id']?.[0], r['udp.srcport']?.[0]]), [['0', '40001'], ['1', '40003'], ['0', '40002']]);
      assert.deepEqual(rows.map((r) => Math.floor(Number(r['frame.time_epoch']?.[0]) * 1000)), [1_700_000_000_001, 1_700_000_000_500, 1_700_000_000_900]);
      // The same frames as the classic pcap reader gives: one per-frame step for both formats.
      const classic = readCaptureFile(buildPcap(ETH), 'x.pcap', opts).packets.map((p) => Buffer.from(p.packet.payload).toString('hex'));
      assert.deepEqual(readCaptureFile(bytes, 'x.pcapng', opts).packets.filter((p) => p.packet.exporter !== '198.51.100.9').map((p) => Buffer.from(p.packet.payload).toString('hex')), classic);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  /** A pcapng section built by hand: big- or little-endian, with the blocks given. */
  function block(le: boolean, type: number, body: Uint8Array): Uint8Array {
    const padded = new Uint8Array((body.length + 3) & ~3);
    padded.set(body);
    const out = new Uint8Array(12 + padded.length);
    const v = new DataView(out.buffer);
    v.setUint32(0, type, le);
    v.setUint32(4, out.length, le);
    out.set(padded, 8);
    v.setUint32(out.length - 4, out.length, le);
    return out;
  }
  function words(le: boolean, ...parts: [number, 2 | 4][]): Uint8Array {
    const out = new Uint8Array(parts.reduce((n, [, s]) => n + s, 0));
    const v = new DataView(out.buffer);
    let o = 0;
    for (const [x, s] of parts) {
      if (s === 2) v.setUint16(o, x, le);
      else v.setUint32(o, x, le);
      o += s;
    }
    return out;
  }
  const shb = (le: boolean) => block(le, 0x0a0d0d0a, words(le, [0x1a2b3c4d, 4], [1, 2], [0, 2], [0xffffffff, 4], [0xffffffff, 4]));
  const idb = (le: boolean, linkType: number, tsresol?: number) =>
    block(le, 1, tsresol === undefined ? words(le, [linkType, 2], [0, 2], [0, 4]) : Uint8Array.from([...words(le, [linkType, 2], [0, 2], [0, 4]), ...words(le, [9, 2], [1, 2]), tsresol, 0, 0, 0, ...words(le, [0, 2], [0, 2])]));
  const epb = (le: boolean, ifId: number, ts: bigint, frame: Uint8Array) =>
    block(le, 6, Uint8Array.from([...words(le, [ifId, 4], [Number(ts >> 32n), 4], [Number(ts & 0xffffffffn), 4], [frame.length, 4], [frame.length, 4]), ...frame]));
  const spb = (le: boolean, frame: Uint8Array) => block(le, 3, Uint8Array.from([...words(le, [frame.length, 4]), ...frame]));
  const rawFrame = (d: PcapDatagram): Uint8Array => ipPackets(d)[0]!;

  test('big-endian section, if_tsresol 2^-10 and 10^-3, a simple packet block, an unknown block skipped; a second little-endian section', () => {
    const a = RAW[0]!;
    const bytes = Uint8Array.from([
      ...shb(false),
      ...idb(false, 101, 0x80 | 10),
      ...idb(false, 101, 3),
      ...block(false, 0x0bad, Uint8Array.of(1, 2, 3)),
      ...epb(false, 0, 1_700_000_000_500n * 1024n / 1000n, rawFrame(a)),
      ...epb(false, 1, 1_700_000_000_777n, rawFrame({ ...a, srcPort: 40004 })),
      ...spb(false, rawFrame({ ...a, srcPort: 40005 })),
      ...shb(true),
      ...idb(true, 101),
      ...epb(true, 0, 1_700_000_001_000_123n, rawFrame({ ...a, srcPort: 40006 })),
    ]);
    assert.deepEqual(summary(bytes).packets.map((p) => [p[1], p[2]]), [[40003, 1_700_000_000_500], [40004, 1_700_000_000_777], [40005, NOW], [40006, 1_700_000_001_000]]);
    assert.deepEqual(summary(bytes).problems, []);
  });

  test('corrupt blocks: lengths that disagree, an undescribed interface, truncation — packets before kept, typed problems with offsets', () => {
    const a = RAW[0]!;
    const good = Uint8Array.from([...shb(true), ...idb(true, 101), ...epb(true, 0, 1n, rawFrame(a))]);
    const badTrailer = Uint8Array.from([...good, ...epb(true, 0, 2n, rawFrame(a))]);
    new DataView(badTrailer.buffer).setUint32(badTrailer.length - 4, 8, true);
    assert.deepEqual(summary(badTrailer).problems, [`${DecodeErrorCode.BadLength}@${badTrailer.length - 4}`]);
    assert.equal(summary(badTrailer).packets.length, 1);
    const noIface = Uint8Array.from([...good, ...epb(true, 5, 2n, rawFrame(a))]);
    assert.deepEqual(summary(noIface).problems, [`${DecodeErrorCode.BadFile}@${good.length + 8}`]);
    const cut = good.subarray(0, good.length - 10);
    assert.equal(summary(cut).problems[0]?.split('@')[0], DecodeErrorCode.Truncated);
    assert.equal(summary(Uint8Array.from([...shb(true), ...block(true, 1, new Uint8Array(8)).subarray(0, 8)])).problems.length, 1);
  });
});
