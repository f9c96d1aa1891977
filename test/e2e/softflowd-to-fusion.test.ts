/**
 * End to end with real components only: softflowd (Debian) replays traffic.pcap and exports
 * NetFlow v5, v9 and IPFIX over UDP → the real daemon (`sealflow run` child process: UDP
 * listener → ingest worker → encrypted SQLite spool → drain over HTTPS) → the Fusion stand-in
 * (real HTTPS server, JWT auth, schema validation). Every flow of traffic_truth.json must
 * arrive once per export version with the right values; SIGTERM then stops the probe with 0.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createDevCertificate } from '../../src/fusion-sim/dev-certificate.js';
import { startFusionSim } from '../../src/fusion-sim/fusion-sim.js';
import { corpora, haveSoftflowd, requireTool, softflowdReplay, type TruthFlow } from '../support/softflowd.js';
import { loadTrafficTruth } from '../support/traffic-truth.js';
import { fusionProbeConfig } from '../support/fusion-probe-config.js';
import { startProbe } from '../support/probe.js';
import { until } from '../support/udp-harness.js';

interface Received {
  flowversion: number;
  flowsrcip: string;
  srcip: string;
  dstip: string;
  protocolint: number;
  srcport: number;
  dstport: number;
  packets: number;
  bits: number;
  samplerate: number;
  tcpflagsint: number | null;
}

/** A flow's identity and counters in one comparable string; ports only where the protocol has them. */
function key(src: string, dst: string, proto: number, sport: number, dport: number, packets: number, bytes: number): string {
  const ports = proto === 6 || proto === 17 ? `${sport}>${dport}` : '-';
  return `${src} ${dst} p${proto} ${ports} ${packets}pkt ${bytes}B`;
}

test('softflowd → UDP → encrypted spool → drain → Fusion stand-in: every flow arrives once, values exact', { timeout: 180_000 }, async (t) => {
  if (!requireTool(t, haveSoftflowd(), 'softflowd')) return;
  const truth = loadTrafficTruth(corpora);
  const dir = mkdtempSync(path.join(tmpdir(), 'sealflow-e2e-'));
  const cert = await createDevCertificate();
  const sim = await startFusionSim({ host: '127.0.0.1', port: 0, certPem: cert.certPem, keyPem: cert.keyPem });
  try {
    writeFileSync(path.join(dir, 'ca.pem'), cert.certPem);
    const { file, udpPort, adminPort } = await fusionProbeConfig(dir, sim, { caFile: path.join(dir, 'ca.pem'), retry: { initialDelayMs: 100, maxDelayMs: 1000 } });
    const probe = await startProbe({ args: ['--config', file], adminPort });
    try {
      const v4 = truth.flows.filter((f) => !f.src.includes(':'));
      const expected = new Map<number, TruthFlow[]>([
        [5, v4], // NetFlow v5 carries IPv4 only
        [9, truth.flows],
        [10, truth.flows],
      ]);
      for (const version of ['5', '9', '10'] as const) await softflowdReplay(udpPort, version);
      const total = [...expected.values()].reduce((n, f) => n + f.length, 0);
      await until(() => sim.records.length >= total, `${total} records at the stand-in (have ${sim.records.length}); probe output:\n${probe.output().slice(-4000)}`, 60_000);
      // Give a duplicate (which must not happen) a moment to show up.
      await new Promise((r) => setTimeout(r, 1000));
      const got = sim.records as unknown as Received[];
      assert.equal(got.length, total, 'each flow delivered exactly once');
      for (const [version, flows] of expected) {
        const mine = got.filter((r) => r.flowversion === version);
        const want = flows.map((f) => key(f.src, f.dst, f.proto, f.sport, f.dport, f.packets, f.bytes)).sort();
        const have = mine.map((r) => key(r.srcip, r.dstip, r.protocolint, r.srcport, r.dstport, r.packets, r.bits / 8)).sort();
        assert.deepEqual(have, want, `NetFlow/IPFIX version ${version}`);
        for (const r of mine) {
          assert.equal(r.flowsrcip, '127.0.0.1');
          assert.equal(r.samplerate, 1);
        }
        const tcp = flows.filter((f) => f.proto === 6);
        for (const f of tcp) {
          const r = mine.find((x) => x.srcip === f.src && x.dstip === f.dst && x.srcport === f.sport);
          assert.equal(r?.tcpflagsint, f.tcp_flags, `tcp flags of ${f.src}:${f.sport} in v${version}`);
        }
      }
      const stats = (await probe.getJson('/stats')) as { drain: { deliveredRecords: number; parkedBatches: number } };
      assert.equal(stats.drain.deliveredRecords, total);
      assert.equal(stats.drain.parkedBatches, 0);
      assert.equal(sim.stats.recordsRejected, 0, 'the stand-in found every record valid');
      assert.equal(sim.stats.duplicates, 0, 'no upload needed de-duplication');
    } finally {
      const code = await probe.stop('SIGTERM');
      assert.equal(code, 0, `clean exit on SIGTERM; output:\n${probe.output().slice(-3000)}`);
    }
  } finally {
    await sim.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
