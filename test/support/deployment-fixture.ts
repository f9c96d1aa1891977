/**
 * What the deployment tests (systemd unit, container image) put around a probe started from
 * its deployment files: a test PKI and a local Fusion stand-in, the files an operator installs
 * under /etc/sealflow, a production-shaped configuration on loopback ports, and exporters that
 * send over UDP (softflowd), TLS and DTLS.
 */
import assert from 'node:assert/strict';
import { chownSync, copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { stringify } from 'yaml';
import { createDevCertificate } from '../../src/fusion-sim/dev-certificate.js';
import { startFusionSim, type FusionSim } from '../../src/fusion-sim/fusion-sim.js';
import { corpora } from './corpora.js';
import { DtlsTestClient } from './dtls-client.js';
import { freeTcpPort, freeUdpPort, type RunningProbe } from './probe.js';
import { softflowdReplay } from './softflowd.js';
import { createTestPki, type TestPki } from './test-pki.js';
import { sClient } from './tls-harness.js';
import { loadTrafficTruth } from './traffic-truth.js';
import { until } from './udp-harness.js';

const TPL = readFileSync(path.join(corpora, 'logstash-codec-netflow/ipfix_test_openbsd_pflow_tpl.dat'));
const DATA = readFileSync(path.join(corpora, 'logstash-codec-netflow/ipfix_test_openbsd_pflow_data.dat'));

export interface DeploymentPeers {
  readonly pki: TestPki;
  readonly sim: FusionSim;
  readonly udpPort: number;
  readonly tlsPort: number;
  readonly adminPort: number;
  /**
   * Writes <etc>/sealflow.yaml and the public certificates under <etc>/tls, as an operator
   * installs them under /etc/sealflow; paths in the file are those of `etcAsSeen` (where the
   * probe sees <etc>). The TLS key, KEK and netosecret are not in it: the deployment supplies them.
   */
  writeEtc(etc: string, etcAsSeen: string, extra?: Record<string, unknown>): void;
  /** The secrets by name: spool-kek, netosecret, tls-key. */
  readonly secrets: Readonly<Record<string, string | Buffer>>;
  /** Exporters send for `ms`: softflowd rounds (v9, IPFIX, v5) over UDP, once IPFIX over TLS and DTLS; `each` runs after each round. Returns the softflowd records sent. */
  send(ms: number, each?: (round: number) => void): Promise<{ records: number; rounds: number }>;
  /** Waits until more than `records` are delivered and checks what every deployment must show. */
  checkDelivered(probe: RunningProbe, records: number): Promise<void>;
  close(): Promise<void>;
}

interface Stats {
  listeners: { udp: { listeners: { kernelDrops: number | null }[] }; tls: { messages: number }; dtls: { messages: number } };
  drain: { deliveredRecords: number; parkedBatches: number };
}

/** Writes a secret file readable by `owner` alone (0400), as a secret store or systemd hands it over. */
export function writeSecret(file: string, value: string | Buffer, owner: number): void {
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, value, { mode: 0o400 });
  chownSync(file, owner, owner);
}

export async function startDeploymentPeers(kek: string): Promise<DeploymentPeers> {
  const pki = await createTestPki();
  const cert = await createDevCertificate();
  const sim = await startFusionSim({ host: '127.0.0.1', port: 0, certPem: cert.certPem, keyPem: cert.keyPem });
  const udpPort = await freeUdpPort();
  const tlsPort = await freeTcpPort();
  const adminPort = await freeTcpPort();
  const truth = loadTrafficTruth(corpora);
  return {
    pki,
    sim,
    udpPort,
    tlsPort,
    adminPort,
    secrets: { 'spool-kek': kek, netosecret: sim.netosecret, 'tls-key': readFileSync(pki.collector.keyFile) },
    writeEtc(etc, etcAsSeen, extra = {}) {
      mkdirSync(path.join(etc, 'tls'), { recursive: true, mode: 0o755 });
      copyFileSync(pki.collector.certFile, path.join(etc, 'tls/collector.crt.pem'));
      copyFileSync(pki.caFile, path.join(etc, 'tls/exporter-ca.pem'));
      copyFileSync(pki.crlFiles[0] ?? '', path.join(etc, 'tls/exporter-ca.crl.pem'));
      writeFileSync(path.join(etc, 'fusion-ca.pem'), cert.certPem);
      const identities = [{ name: pki.exporters.valid.name, sources: ['127.0.0.0/8'] }];
      const tlsFiles = { certFile: `${etcAsSeen}/tls/collector.crt.pem`, caFile: `${etcAsSeen}/tls/exporter-ca.pem`, crlFiles: [`${etcAsSeen}/tls/exporter-ca.crl.pem`] };
      const config = {
        log: { level: 'info', format: 'json' },
        listeners: {
          allowlist: ['127.0.0.0/8'],
          udp: [{ name: 'flows', address: '127.0.0.1', port: udpPort, receiveBufferBytes: 4 * 1024 * 1024 }],
          tls: { enabled: true, address: '127.0.0.1', port: tlsPort, ...tlsFiles, identities },
          dtls: { enabled: true, address: '127.0.0.1', port: tlsPort },
        },
        spool: { batch: { maxAgeMs: 200 } },
        drain: { fusion: { uploadUrl: sim.uploadUrl, caFile: `${etcAsSeen}/fusion-ca.pem` }, retry: { initialDelayMs: 100, maxDelayMs: 1000 } },
        admin: { address: '127.0.0.1', port: adminPort },
        stats: { intervalSeconds: 1 },
        ...extra,
      };
      writeFileSync(path.join(etc, 'sealflow.yaml'), stringify(config), { mode: 0o644 });
    },
    async send(ms, each) {
      const started = Date.now();
      let records = 0;
      let rounds = 0;
      while (Date.now() - started < ms) {
        const version = (['9', '10', '5'] as const)[rounds % 3] ?? '9';
        await softflowdReplay(udpPort, version);
        records += version === '5' ? truth.flows.filter((f) => !f.src.includes(':')).length : truth.flows.length;
        if (rounds === 1) {
          const r = await sClient(tlsPort, pki, pki.exporters.valid, Buffer.concat([TPL, DATA]));
          assert.equal(r.code, 0, r.stderr);
          const dtls = await DtlsTestClient.connect({ host: '127.0.0.1', port: tlsPort, certFile: pki.exporters.valid.certFile, keyFile: pki.exporters.valid.keyFile, caFile: pki.caFile });
          dtls.send(TPL);
          dtls.send(DATA);
          await dtls.close();
        }
        each?.(rounds);
        rounds++;
        await new Promise((r) => setTimeout(r, 500));
      }
      return { records, rounds };
    },
    async checkDelivered(probe, records) {
      const stats = async (): Promise<Stats> => (await probe.getJson('/stats')) as Stats;
      await until(async () => (await stats()).drain.deliveredRecords > records, `more than ${records} records delivered:\n${probe.output().slice(-3000)}`, 30_000);
      const s = await stats();
      assert.equal(s.drain.parkedBatches, 0);
      assert.equal(sim.stats.recordsRejected, 0);
      assert.equal(s.listeners.tls.messages, 2, 'template and data over TLS');
      assert.equal(s.listeners.dtls.messages, 2, 'template and data over DTLS (the DTLS addon loaded)');
      assert.equal(typeof s.listeners.udp.listeners[0]?.kernelDrops, 'number', 'kernel drop counters readable');
      assert.ok(probe.output().split('\n').some((l) => l.includes('UDP listener ready') && l.includes('"receiver":"native"')), 'the native UDP receiver loaded');
    },
    async close() {
      await sim.close();
      await pki.cleanup();
    },
  };
}
