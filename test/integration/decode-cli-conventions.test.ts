/**
 * `sealflow decode` with the decoding conventions of docs/decoding.md as options, on a pcapng
 * (the format Wireshark and dumpcap write): an sFlow sample of a VXLAN-tunnelled packet is
 * printed as the inner flow by default and as the tunnel with --tunnel-layer outer; its bytes
 * are the IP packet's by default and the sampled frame's with --sflow-octets frame.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildPcap } from '../support/pcap-builder.js';
import * as sf from '../support/sflow-builder.js';
import { requireTool } from '../support/softflowd.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

test('sealflow decode x.pcapng: inner flow and IP bytes by default; --tunnel-layer outer, --sflow-octets frame; a bad value is a usage error', (t) => {
  if (!requireTool(t, spawnSync('editcap', ['-h'], { stdio: 'ignore' }).status === 0, 'editcap (wireshark-common)')) return;
  const inner = sf.ipv4Packet({ src: '10.1.0.1', dst: '10.2.0.1', protocol: 6, l4: sf.tcpHeader(51000, 443, 0x02) });
  const payload = sf.concat([sf.vxlanHeader(7), sf.ethernetFrame(0x0800, inner)]);
  const frame = sf.ethernetFrame(0x0800, sf.ipv4Packet({ src: '192.0.2.1', dst: '198.51.100.1', protocol: 17, l4: sf.concat([sf.udpHeader(60000, 4789, payload.length), payload]) }));
  const datagram = sf.datagram({ agent: '192.0.2.10', samples: [sf.flowSample({ samplingRate: 256, records: [sf.rawHeaderRecord(1, frame.length + 4, frame)] })] });
  const dir = mkdtempSync(path.join(tmpdir(), 'sealflow-cli-'));
  try {
    writeFileSync(path.join(dir, 'c.pcap'), buildPcap([{ payload: datagram, src: '192.0.2.10', dst: '192.0.2.99', srcPort: 6343, dstPort: 6343, timestampMs: 1_700_000_000_000 }]));
    const conv = spawnSync('editcap', ['-F', 'pcapng', path.join(dir, 'c.pcap'), path.join(dir, 'c.pcapng')], { encoding: 'utf8' });
    assert.equal(conv.status, 0, conv.stderr);
    const decode = (...args: string[]) => {
      const res = spawnSync(process.execPath, ['--import', 'tsx', 'src/main.ts', 'decode', ...args, path.join(dir, 'c.pcapng')], { cwd: repoRoot, encoding: 'utf8', timeout: 60_000 });
      return { status: res.status, stderr: res.stderr, records: res.stdout.split('\n').filter((l) => l.length > 0).map((l) => JSON.parse(l) as { srcip: string; dstip: string; dstport: number; bits: number; samplerate: number }) };
    };
    const pick = (r: { srcip: string; dstip: string; dstport: number; bits: number; samplerate: number }) => [r.srcip, r.dstip, r.dstport, r.bits, r.samplerate];
    const byDefault = decode();
    assert.equal(byDefault.status, 0, byDefault.stderr);
    assert.deepEqual(byDefault.records.map(pick), [['10.1.0.1', '10.2.0.1', 443, inner.length * 8, 256]]);
    const outer = decode('--tunnel-layer', 'outer', '--sflow-octets', 'frame');
    assert.equal(outer.status, 0, outer.stderr);
    assert.deepEqual(outer.records.map(pick), [['192.0.2.1', '198.51.100.1', 4789, (frame.length + 4) * 8, 256]]);
    assert.equal(decode('--tunnel-layer', 'middle').status, 64);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
