/**
 * IPFIX-over-DTLS ingest benchmark (npm run bench dtls): records/s through the DtlsListener
 * (datagram check, demux, OpenSSL decrypt in the addon, IPFIX domain check, ExporterPacket)
 * into a counting sink, over 1 and over 8 concurrent DTLS 1.2 associations, against the plain
 * UdpListener receiving the same IPFIX messages unencrypted.
 *
 * Senders are DTLS clients built on the addon's client role (test/support/dtls-client.ts) in
 * a child process, so encryption never shares the receiver's event loop. Each message is
 * 20 records of the 15-field IPv4 template (1,280 B; 1,317 B as a DTLS record), one per
 * datagram. Two figures per run: the received rate (bounded by this machine's cores, shared
 * by sender and receiver) and the receiver's CPU time per datagram, which gives the rate one
 * receiver core sustains — the figure to compare with plain UDP (target ≥ 0.5×).
 */
import { PrefixSet } from '../src/flow/cidr.js';
import { DtlsListener } from '../src/ingest/dtls/dtls-listener.js';
import { ExporterTrust } from '../src/ingest/trust/exporter-trust.js';
import { UdpListener } from '../src/ingest/udp/udp-listener.js';
import { silentLogger } from '../src/observability/logger.js';
import { DtlsTestClient } from '../test/support/dtls-client.js';
import { createTestPki } from '../test/support/test-pki.js';
import { forkLoadChild, serveLoadChild } from './load-child.js';
import { CountingSink, buildDataMessage, buildTemplateMessage, startUdpLoad } from './udp-load.js';

const RECORDS_PER_MESSAGE = 20;
const DURATION_MS = 3_000;
/** Messages queued on the sender's socket before it yields; keeps the sender from starving its own loop. */
const MAX_QUEUED = 256;
const CHILD_ENV = 'SEALFLOW_DTLS_BENCH_CHILD';

interface ChildOptions {
  readonly port: number;
  readonly sessions: number;
  readonly durationMs: number;
  readonly certFile: string;
  readonly keyFile: string;
  readonly caFile: string;
}

interface ChildResult {
  readonly sentMessages: number;
  readonly sentRecords: number;
  readonly elapsedMs: number;
}

/** Child: K associations, round-robin, as fast as the socket queues allow. */
async function sendDtls(o: ChildOptions): Promise<ChildResult> {
  const clients = await Promise.all(Array.from({ length: o.sessions }, () =>
    DtlsTestClient.connect({ host: '127.0.0.1', port: o.port, certFile: o.certFile, keyFile: o.keyFile, caFile: o.caFile })));
  const now = Date.now();
  const pool = Array.from({ length: 64 }, (_, i) => buildDataMessage(RECORDS_PER_MESSAGE, 0x9e3779b9 ^ (i * 2654435761), now));
  for (const c of clients) await c.sendAsync(buildTemplateMessage(Math.floor(now / 1000), 0, 1));
  let sent = 0;
  const t0 = process.hrtime.bigint();
  const elapsed = (): number => Number(process.hrtime.bigint() - t0) / 1e6;
  await new Promise<void>((resolve) => {
    const tick = (): void => {
      if (elapsed() >= o.durationMs) {
        resolve();
        return;
      }
      for (let i = 0; i < MAX_QUEUED; i++) {
        const c = clients[sent % clients.length];
        const msg = pool[sent % pool.length];
        if (c === undefined || msg === undefined || c.socket.getSendQueueCount() > MAX_QUEUED) break;
        msg.writeUInt32BE(sent >>> 0, 8);
        c.send(msg);
        sent++;
      }
      setImmediate(tick);
    };
    tick();
  });
  const elapsedMs = elapsed();
  await new Promise((r) => setTimeout(r, 200));
  for (const c of clients) await c.close();
  return { sentMessages: sent, sentRecords: sent * RECORDS_PER_MESSAGE, elapsedMs };
}

function startDtlsLoad(o: ChildOptions): Promise<ChildResult> {
  return forkLoadChild<ChildResult>(import.meta.url, CHILD_ENV, o);
}

serveLoadChild(CHILD_ENV, sendDtls);

function fmt(n: number): string {
  return n >= 999_500 ? `${(n / 1e6).toFixed(2)}M` : n >= 1e3 ? `${(n / 1e3).toFixed(1)}k` : n.toFixed(0);
}

/**
 * Plain UDP receive cost per datagram for the same messages (the baseline), offered at a rate
 * near what the DTLS senders reach: per-datagram CPU measured at a low rate is inflated by
 * per-wakeup overhead and would flatter DTLS.
 */
const UDP_BASELINE_RECORDS_PER_SECOND = 2_500_000;
async function udpBaseline(): Promise<number> {
  const sink = new CountingSink();
  const listener = new UdpListener({ endpoints: [{ address: '127.0.0.1', port: 0 }], allowlist: PrefixSet.parse(['127.0.0.1']), sink, logger: silentLogger() });
  await listener.start();
  const port = listener.addresses()[0]?.port ?? 0;
  try {
    const cpu0 = process.cpuUsage();
    const sent = await startUdpLoad({ host: '127.0.0.1', port, recordsPerSecond: UDP_BASELINE_RECORDS_PER_SECOND, durationMs: DURATION_MS, recordsPerPacket: RECORDS_PER_MESSAGE });
    for (let i = 0; i < 100 && sink.records < sent.sentRecords; i++) await new Promise((r) => setTimeout(r, 10));
    const cpu = process.cpuUsage(cpu0);
    const us = (cpu.user + cpu.system) / Math.max(1, sink.packets);
    console.log(`plain UDP    : ${fmt(sink.records / (sent.elapsedMs / 1000))} records/s received at ${fmt(UDP_BASELINE_RECORDS_PER_SECOND)} offered (${fmt(sent.sentRecords / (sent.elapsedMs / 1000))} sent), receiver ${us.toFixed(2)} µs CPU/datagram ⇒ ~${fmt((1e6 / us) * RECORDS_PER_MESSAGE)} records/s per core`);
    return us;
  } finally {
    await listener.close();
  }
}

export async function run(): Promise<void> {
  const pki = await createTestPki();
  try {
    const trust = ExporterTrust.load({
      caFile: pki.caFile, crlFiles: pki.crlFiles, certFile: pki.collector.certFile, keyFile: pki.collector.keyFile,
      exporters: [{ name: 'exporter1.test' }],
    }, 'listeners.dtls');
    console.log(`IPFIX over DTLS 1.2, ${RECORDS_PER_MESSAGE} records (1,280 B) per record/datagram, ${DURATION_MS / 1000} s per run, senders in a child process`);
    const udpUs = await udpBaseline();
    for (const sessions of [1, 8]) {
      const sink = new CountingSink();
      const listener = new DtlsListener({ address: '127.0.0.1', port: 0, trust, sink, logger: silentLogger(), handshakesPerSecond: 1000 });
      const { port } = await listener.start();
      try {
        const cpu0 = process.cpuUsage();
        const r = await startDtlsLoad({ port, sessions, durationMs: DURATION_MS, certFile: pki.exporters.valid.certFile, keyFile: pki.exporters.valid.keyFile, caFile: pki.caFile });
        const cpu = process.cpuUsage(cpu0);
        const us = (cpu.user + cpu.system) / Math.max(1, sink.packets);
        const secs = r.elapsedMs / 1000;
        const loss = r.sentRecords === 0 ? 0 : Math.max(0, r.sentRecords - sink.records) / r.sentRecords;
        const cipher = listener.stats().counters.handshakesCompleted;
        console.log(
          `DTLS ${String(sessions).padStart(2)} sess: sent ${fmt(r.sentRecords / secs)} records/s, received ${fmt(sink.records / secs)} records/s ` +
          `(${(loss * 100).toFixed(2)}% lost), receiver ${us.toFixed(2)} µs CPU/datagram (handshakes included) ⇒ ~${fmt((1e6 / us) * RECORDS_PER_MESSAGE)} records/s per core = ` +
          `${(udpUs / us).toFixed(2)}× plain UDP [${cipher} handshakes]`,
        );
      } finally {
        await listener.close();
      }
    }
  } finally {
    await pki.cleanup();
  }
}
