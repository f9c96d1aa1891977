/**
 * The whole ingest path, as deployed: a load generator (child process) sends IPFIX (15-field
 * IPv4 template, 20 records per datagram) over UDP on loopback into the probe's listener →
 * ingest worker (decode → filter → batch → compress → XChaCha20-Poly1305 → SQLite).
 *
 * For each offered rate it runs `BENCH_SECONDS` (default 10 s), then compares the records the
 * generator sent with the records decoded and committed to the spool, and reads the kernel's
 * UDP drop counter for the port. The figure that matters is the highest offered rate with
 * loss under 0.1%. With Debian's nfcapd installed, each rate is also run against it right
 * after sealflow's step (counted with `nfdump -I`), a reference measured on the same machine
 * in the same minute (`BENCH_NFCAPD=off` skips it, e.g. for A/B runs of the probe alone).
 * Also reported: RSS of the probe process and spool bytes per record, with the share of batches
 * stored uncompressed because ingest was overloaded ("unc.", see README, Overload).
 * `BENCH_PSEUDONYMIZE=on` runs the probe with privacy.pseudonymize on the generator's source
 * addresses (10.0.0.0/8, 65,536 distinct; destinations 192.0.2.0/24 kept).
 */
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { App } from '../src/app.js';
import { loadConfig } from '../src/config/load.js';
import { loadUdpReceiverAddon } from '../src/ingest/udp/native-receiver.js';
import { silentLogger } from '../src/observability/logger.js';
import type { SpoolStatus } from '../src/spool/spool.js';
import { startUdpLoad } from './udp-load.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? '10');
const RATES = (process.env.BENCH_RATES ?? '250000,500000,1000000,1250000,1500000,1750000,2000000,2250000,2500000,3000000').split(',').map(Number);
const LOSS_LIMIT = 0.001;
const PSEUDONYMIZE = process.env.BENCH_PSEUDONYMIZE === 'on';
const PORT = 47391;
/** listeners.udpReceiver for the probe: "auto" (default), "native" or "node" to compare the two. */
const RECEIVER = ((): 'auto' | 'native' | 'node' => {
  const r = process.env.BENCH_UDP_RECEIVER ?? 'auto';
  if (r !== 'auto' && r !== 'native' && r !== 'node') throw new Error(`BENCH_UDP_RECEIVER must be auto, native or node, not ${r}`);
  return r;
})();

/**
 * spool.synchronous for the probe: "normal" by default here, since nfcapd, the reference, does not
 * fsync at all; "full" (the product's default) waits for the WAL's fsync on every commit.
 */
const SYNCHRONOUS = ((): 'normal' | 'full' => {
  const s = process.env.BENCH_SYNCHRONOUS ?? 'normal';
  if (s !== 'normal' && s !== 'full') throw new Error(`BENCH_SYNCHRONOUS must be normal or full, not ${s}`);
  return s;
})();

interface Step {
  readonly offered: number;
  readonly sent: number;
  readonly decoded: number;
  readonly spooled: number;
  readonly kernelDrops: number;
  /** Datagrams dropped at the channel's hard limit (the worker fell behind). */
  readonly channelDrops: number;
  /** The load generator's CPU use, % of one core: it shares the machine's two cores. */
  readonly senderCpuPct: number;
  /** CPU time of the whole probe process (every thread) per record spooled, ns. */
  readonly probeNsPerRecord: number;
  /** CPU time of the UDP receive path (main thread + native receiver threads) per record spooled, ns; null off Linux. */
  readonly receiveNsPerRecord: number | null;
  readonly loss: number;
  readonly rssMb: number;
  readonly spoolBytesPerRecord: number;
  /** Share of batches stored uncompressed because ingest was overloaded (see README, Overload). */
  readonly bypassedShare: number;
  /** WAL checkpoints: by the background checkpointer (of which partial) and on the ingest worker's thread. */
  readonly checkpoints: { readonly background: number; readonly partial: number; readonly inline: number };
}

interface Stats {
  compression: { offThread: number; inline: number; bypassed: number } | null;
  decode: { records: number } | null;
  batcher: { records: number; droppedRecords: number; inFlightRecords: number } | null;
  spool: (SpoolStatus & { inlineCheckpoints: number }) | null;
  walCheckpointer: { checkpoints: number; partial: number } | null;
  listeners: { udp: { listeners: { kernelDrops: number | null }[] } | null; channel: { inFlightBytes: number; droppedPackets: number } | null };
}

/** The parts of App.stats() this benchmark reads (the worker's parts are null until its first report). */
function benchStats(app: App): Stats {
  // /stats keeps the WAL checkpointer and compression figures inside its one spool section.
  const doc = app.stats() as unknown as Omit<Stats, 'compression' | 'walCheckpointer'> & { spool: { compression?: Stats['compression']; walCheckpointer?: Stats['walCheckpointer'] } | null };
  return { ...doc, compression: doc.spool?.compression ?? null, walCheckpointer: doc.spool?.walCheckpointer ?? null };
}

/** CPU time of one thread of this process in ms (Linux /proc: utime + stime in clock ticks of 10 ms). */
function threadCpuMs(tid: string): number {
  const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
  // Fields after the parenthesised command name: state is field 3, utime 14 and stime 15 (proc(5)).
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

/**
 * CPU time in ms of the UDP receive path: the main thread plus the native receiver threads
 * (named by the addon, see udp_receiver.cc), which exist only while the listener is open, so
 * the caller samples them before closing it. Null off Linux.
 */
function receiveCpuMs(): number | null {
  const receiverName = loadUdpReceiverAddon().addon?.threadName ?? null;
  try {
    let ms = threadCpuMs(String(process.pid));
    if (receiverName !== null) {
      for (const tid of readdirSync('/proc/self/task')) {
        if (tid !== String(process.pid) && readFileSync(`/proc/self/task/${tid}/comm`, 'utf8').trim() === receiverName) ms += threadCpuMs(tid);
      }
    }
    return ms;
  } catch {
    return null;
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

async function probeStep(rate: number): Promise<Step> {
  const dir = mkdtempSync(path.join(tmpdir(), 'sealflow-bench-'));
  const kek = randomBytes(32);
  const { config } = await loadConfig({
    env: { SEALFLOW_SPOOL_KEK: kek.toString('base64') },
    overrides: {
      dataDir: dir,
      listeners: { allowlist: ['127.0.0.0/8'], udp: [{ name: 'bench', address: '127.0.0.1', port: PORT, receiveBufferBytes: 64 * 1024 * 1024 }], udpReceiver: RECEIVER },
      spool: { synchronous: SYNCHRONOUS },
      ...(PSEUDONYMIZE ? { privacy: { pseudonymize: { key: { env: 'SEALFLOW_BENCH_UNUSED' }, rules: [{ action: 'pseudonymize' as const, prefixes: ['10.0.0.0/8'] }] } } } : {}),
      drain: { enabled: false },
      admin: { enabled: false },
      stats: { intervalSeconds: 0 },
    },
    compileFilters: null,
  });
  const app = new App({ config, logger: silentLogger(), keks: [kek], credentials: null, pseudonymizeKey: PSEUDONYMIZE ? randomBytes(32) : null });
  await app.start();
  try {
    const cpuBefore = process.cpuUsage();
    const mainBefore = receiveCpuMs();
    const load = await startUdpLoad({ host: '127.0.0.1', port: PORT, recordsPerSecond: rate, durationMs: SECONDS * 1000, recordsPerPacket: 20 });
    // Let the worker finish the queue and commit the last batch (batch age 1 s). A saturated
    // worker posts no statistics, so wait for a report with nothing left in flight (channel,
    // compressor) and every decoded record committed or dropped (the open batch included),
    // whose spooled count then stays unchanged for a second (bounded: 60 s).
    let last = -1;
    for (let i = 0; i < 60; i++) {
      await sleep(1000);
      const w = benchStats(app);
      const now = w.batcher?.records;
      if (now === undefined || (w.listeners.channel?.inFlightBytes ?? 0) > 0 || (w.batcher?.inFlightRecords ?? 0) > 0) continue;
      if (now + (w.batcher?.droppedRecords ?? 0) < (w.decode?.records ?? 0)) continue;
      if (now === last) break;
      last = now;
    }
    const s = benchStats(app);
    const cpu = process.cpuUsage(cpuBefore);
    const mainAfter = receiveCpuMs();
    const decoded = s.decode?.records ?? 0;
    const spooled = s.batcher?.records ?? 0;
    const kernelDrops = s.listeners.udp?.listeners[0]?.kernelDrops ?? 0;
    const channelDrops = s.listeners.channel?.droppedPackets ?? 0;
    const rssMb = process.memoryUsage().rss / 1024 / 1024;
    const spoolBytes = s.spool?.bytes ?? 0;
    return {
      offered: rate,
      sent: load.sentRecords,
      decoded,
      spooled,
      kernelDrops,
      channelDrops,
      senderCpuPct: (100 * load.senderCpuMs) / load.elapsedMs,
      probeNsPerRecord: spooled === 0 ? 0 : ((cpu.user + cpu.system) * 1000) / spooled,
      receiveNsPerRecord: mainBefore === null || mainAfter === null || spooled === 0 ? null : ((mainAfter - mainBefore) * 1e6) / spooled,
      loss: load.sentRecords === 0 ? 1 : 1 - spooled / load.sentRecords,
      rssMb,
      spoolBytesPerRecord: spooled === 0 ? 0 : spoolBytes / spooled,
      checkpoints: { background: s.walCheckpointer?.checkpoints ?? 0, partial: s.walCheckpointer?.partial ?? 0, inline: s.spool?.inlineCheckpoints ?? 0 },
      bypassedShare: ((c) => (c === null || c.offThread + c.inline + c.bypassed === 0 ? 0 : c.bypassed / (c.offThread + c.inline + c.bypassed)))(s.compression),
    };
  } finally {
    await app.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** nfcapd at one rate of the ladder: flows counted by `nfdump -I` after it exits. */
async function nfcapdStep(rate: number): Promise<{ sent: number; stored: number; loss: number; senderCpuPct: number }> {
  const dir = mkdtempSync(path.join(tmpdir(), 'sealflow-bench-nfcapd-'));
  try {
    const child = spawn('nfcapd', ['-w', dir, '-p', String(PORT + 1), '-b', '127.0.0.1', '-B', String(64 * 1024 * 1024), '-t', '3600'], { stdio: 'ignore' });
    await sleep(1000);
    const load = await startUdpLoad({ host: '127.0.0.1', port: PORT + 1, recordsPerSecond: rate, durationMs: SECONDS * 1000, recordsPerPacket: 20 });
    await sleep(1000);
    child.kill('SIGTERM');
    await new Promise((r) => child.on('exit', r));
    const out = spawnSync('nfdump', ['-R', dir, '-I'], { encoding: 'utf8' }).stdout;
    const m = /^Flows:\s+(\d+)/m.exec(out);
    const stored = m === null ? 0 : Number(m[1]);
    return { sent: load.sentRecords, stored, loss: load.sentRecords === 0 ? 1 : 1 - stored / load.sentRecords, senderCpuPct: (100 * load.senderCpuMs) / load.elapsedMs };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function pct(x: number): string {
  return `${(x * 100).toFixed(3)}%`;
}

/**
 * The ladder. With nfcapd, each rate runs sealflow's step and then nfcapd's, so both see the
 * machine in the same minute (a shared VM's speed drifts by tens of percent within minutes);
 * each stops climbing at its own first step over the loss limit.
 */
export async function run(): Promise<void> {
  console.log(`whole ingest path, UDP IPFIX 15-field IPv4 template, ${SECONDS} s per step; loss limit ${pct(LOSS_LIMIT)}; udpReceiver ${RECEIVER}; spool.synchronous ${SYNCHRONOUS}${PSEUDONYMIZE ? '; privacy.pseudonymize on (sources 10.0.0.0/8)' : ''}`);
  console.log(`probe CPU: all threads / receive path (main thread${loadUdpReceiverAddon().addon === null ? '' : ' + native receiver thread'}), ns per record spooled (the rest is mostly the ingest worker)`);
  let withNfcapd = process.env.BENCH_NFCAPD !== 'off';
  if (withNfcapd && spawnSync('nfcapd', ['-V'], { stdio: 'ignore' }).error !== undefined) {
    console.log('nfcapd not installed: no reference run (apt-get install nfdump)');
    withNfcapd = false;
  }
  if (withNfcapd) console.log('nfcapd (Debian nfdump) runs each rate right after sealflow, on the same port setup, counted with nfdump -I');
  console.log('offered/s   sent        decoded     spooled     kernel-drops  chan-drops  loss      RSS MB  B/rec (unc.) sender CPU  probe CPU');
  let best = 0;
  let nfBest = 0;
  let probeClimbing = true;
  let nfClimbing = withNfcapd;
  for (const rate of RATES) {
    if (!probeClimbing && !nfClimbing) break;
    if (probeClimbing) {
      const s = await probeStep(rate);
      console.log(
        `${String(rate).padEnd(11)} ${String(s.sent).padEnd(11)} ${String(s.decoded).padEnd(11)} ${String(s.spooled).padEnd(11)} ${String(s.kernelDrops).padEnd(13)} ${String(s.channelDrops).padEnd(11)} ${pct(s.loss).padEnd(9)} ${s.rssMb.toFixed(0).padEnd(7)} ${`${s.spoolBytesPerRecord.toFixed(1)} (${(s.bypassedShare * 100).toFixed(0)}%)`.padEnd(12)} ${`${s.senderCpuPct.toFixed(0)}%`.padEnd(11)} ${s.probeNsPerRecord.toFixed(0)} / ${s.receiveNsPerRecord?.toFixed(0) ?? '-'} ns`,
      );
      console.log(`  WAL checkpoints: ${s.checkpoints.background} background (${s.checkpoints.partial} partial), ${s.checkpoints.inline} on the ingest thread`);
      if (s.loss >= LOSS_LIMIT) probeClimbing = false;
      else best = rate;
    }
    if (nfClimbing) {
      const r = await nfcapdStep(rate);
      console.log(`  nfcapd ${String(rate).padEnd(11)} sent ${r.sent} stored ${r.stored} loss ${pct(r.loss)} sender CPU ${r.senderCpuPct.toFixed(0)}%`);
      if (r.loss >= LOSS_LIMIT) nfClimbing = false;
      else nfBest = rate;
    }
  }
  console.log(`sealflow: highest offered rate with loss < ${pct(LOSS_LIMIT)}: ${best} records/s`);
  if (withNfcapd) console.log(`nfcapd: highest offered rate with loss < ${pct(LOSS_LIMIT)}: ${nfBest} records/s`);
}
