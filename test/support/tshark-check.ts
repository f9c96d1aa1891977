/**
 * Writes datagrams to a temporary pcap and returns tshark's fields for them, so a test can
 * check that the bytes it built mean, to Wireshark's dissectors, what the test says they mean.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { buildPcap } from './pcap-builder.js';
import { tsharkFields } from './tshark-fields.js';

export function tsharkOn(payloads: readonly Uint8Array[], dstPort: number, decodeAs: string, fields: readonly string[]): Record<string, string[]>[] {
  const dir = mkdtempSync(path.join(tmpdir(), 'sealflow-tshark-'));
  try {
    const file = path.join(dir, 'c.pcap');
    writeFileSync(file, buildPcap(payloads.map((payload, i) => ({ payload, src: '127.0.0.1', dst: '127.0.0.1', srcPort: 40000, dstPort, timestampMs: 1_700_000_000_000 + i }))));
    return tsharkFields(file, [`udp.port==${dstPort},${decodeAs}`], fields);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
