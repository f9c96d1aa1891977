/**
 * The captures the accuracy report scores: every flow capture in test/fixtures/corpora, each
 * as one exporter session (datagrams in order). NetFlow/IPFIX sessions follow expected.json's
 * feed order; the RFC 5655 IPFIX file is split into its messages; each goflow2 vector and
 * each sFlow datagram is a session of its own.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { readCaptureFile } from '../../src/ingest/file/capture-file.js';

export const corpora = fileURLToPath(new URL('../../test/fixtures/corpora', import.meta.url));

export interface Capture {
  /** Path under test/fixtures/corpora of the last file fed (the name expected.json uses). */
  readonly name: string;
  readonly kind: 'netflow' | 'sflow';
  readonly datagrams: readonly Uint8Array[];
}

function read(rel: string): Uint8Array {
  return new Uint8Array(readFileSync(path.join(corpora, rel)));
}

/** An RFC 5655 file (or a .dat holding glued IPFIX messages) as its messages, each framed by its length. */
function ipfixMessages(bytes: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let off = 0; off + 16 <= bytes.length; ) {
    const len = ((bytes[off + 2] ?? 0) << 8) | (bytes[off + 3] ?? 0);
    if (len < 16) break;
    out.push(bytes.subarray(off, off + len));
    off += len;
  }
  return out;
}

/** NetFlow v5 datagrams glued back to back, each 24 + 48 × count bytes. */
function v5Datagrams(bytes: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let off = 0; off + 24 <= bytes.length; ) {
    const len = 24 + 48 * (((bytes[off + 2] ?? 0) << 8) | (bytes[off + 3] ?? 0));
    if (off + len > bytes.length) break;
    out.push(bytes.subarray(off, off + len));
    off += len;
  }
  return out;
}

export function loadCaptures(): Capture[] {
  const expected = JSON.parse(readFileSync(path.join(corpora, 'expected.json'), 'utf8')) as { captures: Record<string, { feed_in_order: string[] }> };
  const captures: Capture[] = [];
  for (const [name, c] of Object.entries(expected.captures)) {
    // Deliberately invalid packets have nothing to agree on.
    if (name.includes('invalid')) continue;
    const datagrams = c.feed_in_order.flatMap((f) => {
      const b = read(f);
      // ipfix.dat holds three IPFIX messages glued together, netflow5.dat twelve v5 datagrams:
      // a UDP datagram carries one (RFC 7011 §10.3.3; a v5 header counts its records).
      return b[1] === 10 ? ipfixMessages(b) : b[1] === 5 && b[0] === 0 ? v5Datagrams(b) : [b];
    });
    captures.push({ name, kind: 'netflow', datagrams });
  }
  captures.push({ name: 'ipfixcol2/example_flows.ipfix', kind: 'netflow', datagrams: ipfixMessages(read('ipfixcol2/example_flows.ipfix')) });
  for (const f of readdirSync(path.join(corpora, 'softflowd')).filter((x) => x.endsWith('.pcap')).sort()) {
    const cap = readCaptureFile(read(`softflowd/${f}`), f, { exporterOverride: null, defaultExporter: '0.0.0.0', defaultReceivedAtMs: 0, sessionKeyFor: (e) => e });
    captures.push({ name: `softflowd/${f}`, kind: 'netflow', datagrams: cap.packets.map((p) => p.packet.payload) });
  }
  for (const f of readdirSync(path.join(corpora, 'goflow2')).sort()) {
    if (f.startsWith('nfv')) captures.push({ name: `goflow2/${f}`, kind: 'netflow', datagrams: [read(`goflow2/${f}`)] });
    else if (f.startsWith('sflow_')) captures.push({ name: `goflow2/${f}`, kind: 'sflow', datagrams: [read(`goflow2/${f}`)] });
  }
  for (const f of readdirSync(path.join(corpora, 'logstash-codec-sflow')).sort()) {
    // The sflow__* files are bare packet headers, not datagrams.
    if (f.startsWith('sflow_') && !f.startsWith('sflow__')) captures.push({ name: `logstash-codec-sflow/${f}`, kind: 'sflow', datagrams: [read(`logstash-codec-sflow/${f}`)] });
  }
  return captures;
}
