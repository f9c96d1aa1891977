/**
 * IPFIX-over-TLS ingest benchmark (npm run bench tls): records/s through the TlsListener
 * (TLS decrypt, stream framing, domain check, ExporterPacket) into a sink, over 1 and over 4
 * concurrent mutually authenticated TLS connections, against the plain UdpListener receiving
 * the same IPFIX messages. Each case runs twice: into a counting sink (ingest alone) and
 * through DecodeService (ingest + decode, "the same pipeline" for both transports).
 *
 * Senders are node:tls clients in a child process (encryption never shares the receiver's
 * event loop), writing as fast as TCP flow control allows. Each message is 20 records of the
 * 15-field IPv4 template (1,280 B). Figures: the received rate (bounded by this machine's
 * cores, shared by sender and receiver) and the receiver's CPU time per message, which gives
 * the rate one receiver core sustains — the figure to compare with plain UDP (target ≥ 0.8×).
 */
import { readFileSync } from 'node:fs';
import tls from 'node:tls';
import { DecodeService } from '../src/decode/decode-service.js';
import { PrefixSet } from '../src/flow/cidr.js';
import type { ExporterPacket } from '../src/flow/exporter-packet.js';
import type { PacketSink } from '../src/flow/pipeline.js';
import { TlsListener } from '../src/ingest/tls/tls-listener.js';
import { UdpListener } from '../src/ingest/udp/udp-listener.js';
import { silentLogger } from '../src/observability/logger.js';
import { createTestPki } from '../test/support/test-pki.js';
import { forkLoadChild, serveLoadChild } from './load-child.js';
import { buildDataMessage, buildTemplateMessage, dataRecordsIn, startUdpLoad } from './udp-load.js';

const RECORDS_PER_MESSAGE = 20;
const DURATION_MS = 3_000;
/** Plain UDP offered load: high enough to keep the receiver busy, low enough to lose little on loopback. */
const UDP_OFFERED_RECORDS_PER_SECOND = 400_000;
/** Distinct data messages the sender cycles through (varied addresses and counters). */
const MESSAGE_POOL = 64;
const CHILD_ENV = 'SEALFLOW_TLS_BENCH_CHILD';
const OBSERVATION_DOMAIN_ID = 1;
const US_PER_S = 1e6;

interface ChildOptions {
  readonly port: number;
  readonly connections: number;
  readonly durationMs: number;
  readonly certFile: string;
  readonly keyFile: string;
  readonly caFile: string;
}

interface ChildResult {
  readonly sentRecords: number;
  readonly elapsedMs: number;
  readonly protocol: string;
  readonly cipher: string;
}

/** Child: K connections, each writing until TCP pushes back, then waiting for 'drain'. */
async function sendTls(o: ChildOptions): Promise<ChildResult> {
  const ca = readFileSync(o.caFile);
  const cert = readFileSync(o.certFile);
  const key = readFileSync(o.keyFile);
  const sockets = await Promise.all(
    Array.from({ length: o.connections }, () =>
      new Promise<tls.TLSSocket>((resolve, reject) => {
        const s = tls.connect({ host: '127.0.0.1', port: o.port, servername: 'localhost', ca, cert, key }, () => resolve(s));
        s.once('error', reject);
      })),
  );
  const now = Date.now();
  const pool = Array.from({ length: MESSAGE_POOL }, (_, i) => buildDataMessage(RECORDS_PER_MESSAGE, 0x9e3779b9 ^ (i * 2654435761), now));
  for (const s of sockets) s.write(buildTemplateMessage(Math.floor(now / 1000), 0, OBSERVATION_DOMAIN_ID));
  let sent = 0;
  const t0 = process.hrtime.bigint();
  const elapsed = (): number => Number(process.hrtime.bigint() - t0) / 1e6;
  await Promise.all(
    sockets.map(
      (s, k) =>
        new Promise<void>((resolve) => {
          let seq = 0;
          const pump = (): void => {
            while (elapsed() < o.durationMs) {
              const msg = Buffer.from(pool[(seq + k) % pool.length] ?? pool[0] ?? Buffer.alloc(0));
              // RFC 7011 §3.1: Sequence Number (offset 8) counts data records; ODID at offset 12.
              msg.writeUInt32BE((seq * RECORDS_PER_MESSAGE) >>> 0, 8);
              msg.writeUInt32BE(OBSERVATION_DOMAIN_ID, 12);
              seq++;
              sent++;
              if (!s.write(msg)) {
                s.once('drain', pump);
                return;
              }
            }
            resolve();
          };
          pump();
        }),
    ),
  );
  const elapsedMs = elapsed();
  const first = sockets[0];
  const result = { sentRecords: sent * RECORDS_PER_MESSAGE, elapsedMs, protocol: first?.getProtocol() ?? '?', cipher: first?.getCipher().name ?? '?' };
  await Promise.all(sockets.map((s) => new Promise<void>((resolve) => s.end(resolve))));
  return result;
}

serveLoadChild(CHILD_ENV, sendTls);

/** Counts messages and records; with `decode`, runs every packet through DecodeService first. */
class BenchSink implements PacketSink {
  messages = 0;
  records = 0;
  decoded = 0;
  private readonly decoder: DecodeService | null;
  constructor(decode: boolean) {
    this.decoder = decode ? new DecodeService() : null;
  }
  submit(p: ExporterPacket): boolean {
    this.messages++;
    this.records += dataRecordsIn(p.payload);
    if (this.decoder !== null) this.decoded += this.decoder.decode(p).records.length;
    return true;
  }
  endSession(sessionKey: string): void {
    this.decoder?.endSession(sessionKey);
  }
  onDrain(): void {
    // never above a high-water mark
  }
}

function fmt(n: number): string {
  return n >= 999_500 ? `${(n / 1e6).toFixed(2)}M` : n >= 1e3 ? `${(n / 1e3).toFixed(1)}k` : n.toFixed(0);
}

/** Receiver CPU µs per message → records/s one receiver core sustains. */
function perCore(usPerMessage: number): number {
  return (US_PER_S / usPerMessage) * RECORDS_PER_MESSAGE;
}

async function settle(sink: BenchSink, sentRecords: number): Promise<void> {
  for (let i = 0; i < 200 && sink.records < sentRecords; i++) await new Promise((r) => setTimeout(r, 10));
}

async function udpCase(decode: boolean): Promise<number> {
  const sink = new BenchSink(decode);
  const listener = new UdpListener({ endpoints: [{ address: '127.0.0.1', port: 0 }], allowlist: PrefixSet.parse(['127.0.0.1']), sink, logger: silentLogger() });
  await listener.start();
  const port = listener.addresses()[0]?.port ?? 0;
  try {
    const cpu0 = process.cpuUsage();
    const sent = await startUdpLoad({ host: '127.0.0.1', port, recordsPerSecond: UDP_OFFERED_RECORDS_PER_SECOND, durationMs: DURATION_MS, recordsPerPacket: RECORDS_PER_MESSAGE });
    await settle(sink, sent.sentRecords);
    const cpu = process.cpuUsage(cpu0);
    const us = (cpu.user + cpu.system) / Math.max(1, sink.messages);
    console.log(
      `plain UDP         ${decode ? '+decode' : '       '}: received ${fmt(sink.records / (sent.elapsedMs / 1000))} records/s at ${fmt(UDP_OFFERED_RECORDS_PER_SECOND)} offered, ` +
        `receiver ${us.toFixed(2)} µs CPU/message ⇒ ~${fmt(perCore(us))} records/s per core`,
    );
    return us;
  } finally {
    await listener.close();
  }
}

export async function run(): Promise<void> {
  const pki = await createTestPki();
  try {
    console.log(`IPFIX over TLS, ${RECORDS_PER_MESSAGE} records (1,280 B) per message, ${DURATION_MS / 1000} s per run, senders in a child process`);
    for (const decode of [false, true]) {
      const udpUs = await udpCase(decode);
      for (const connections of [1, 4]) {
        const sink = new BenchSink(decode);
        const listener = new TlsListener(
          {
            host: '127.0.0.1',
            port: 0,
            trust: { caFile: pki.caFile, crlFiles: pki.crlFiles, certFile: pki.collector.certFile, keyFile: pki.collector.keyFile, exporters: [{ name: 'exporter1.test' }] },
            watchFiles: false,
          },
          { sink, logger: silentLogger() },
        );
        await listener.start();
        try {
          const cpu0 = process.cpuUsage();
          const r = await forkLoadChild<ChildResult>(import.meta.url, CHILD_ENV, { port: listener.address().port, connections, durationMs: DURATION_MS, certFile: pki.exporters.valid.certFile, keyFile: pki.exporters.valid.keyFile, caFile: pki.caFile });
          await settle(sink, r.sentRecords);
          const cpu = process.cpuUsage(cpu0);
          const us = (cpu.user + cpu.system) / Math.max(1, sink.messages);
          const secs = r.elapsedMs / 1000;
          const decodedNote = decode ? `, ${fmt(sink.decoded / secs)} decoded/s` : '';
          console.log(
            `TLS ${String(connections)} connection${connections === 1 ? ' ' : 's'} ${decode ? '+decode' : '       '}: received ${fmt(sink.records / secs)} records/s${decodedNote} ` +
              `(${r.protocol} ${r.cipher}), receiver ${us.toFixed(2)} µs CPU/message ⇒ ~${fmt(perCore(us))} records/s per core = ${(udpUs / us).toFixed(2)}× plain UDP`,
          );
        } finally {
          await listener.close();
        }
      }
    }
  } finally {
    await pki.cleanup();
  }
}
