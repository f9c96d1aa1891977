/**
 * Drain throughput: records/s delivered from a full spool (real Spool, SQLite + XChaCha20) to
 * the Fusion stand-in over HTTPS with gzip on loopback, and the CPU cost per record of each
 * stage measured on its own: spool lease (decrypt + decompress, and + decode), serialization
 * (the drain's FusionJsonWriter, and the generic toFusionRecord + JSON.stringify for
 * comparison), compression (gzip at the configured levels), TLS + HTTP (uploading ready
 * bodies). From the stages it also prints the floor: the CPU per record no drain can go
 * below here (lease + decode + serialize + gzip), and the rate that allows on this machine's
 * cores with nothing else running.
 *
 * The stand-in runs as a separate process (`sealflow fusion-sim --validate none`: it gunzips
 * and counts lines) on the same cores, so the end-to-end rate is shared with it. Upload
 * workers are started (and, under tsx, compiled) before the clock starts. Target: ≥ 500k
 * records/s.
 *
 * Environment: SEALFLOW_BENCH_DRAIN_RECORDS (default 500000), SEALFLOW_BENCH_DRAIN_LEVELS
 * (gzip levels to run end to end, default "6,1,auto": fixed 6, fixed 1, and the adaptive level
 * with ceiling 6, the default), SEALFLOW_BENCH_DRAIN_WORKERS (upload worker
 * counts to run, default "1,N" with N = cores), SEALFLOW_BENCH_DRAIN_CONCURRENCY (batches in
 * flight, default 4).
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { gzipSync } from 'node:zlib';
import { Drain, resolveDrainSettings } from '../src/drain/drain.js';
import { FusionAuth, DEFAULT_AUTH_SETTINGS } from '../src/drain/fusion-auth.js';
import { FusionHttp } from '../src/drain/fusion-http.js';
import { parseNetosecret } from '../src/drain/netosecret.js';
import { DEFAULT_ENCODER_SETTINGS, UploadEncoder } from '../src/drain/upload-encoder.js';
import { FusionJsonWriter, toFusionRecord } from '../src/flow/fusion-record.js';
import { decodeBatch } from '../src/batch/decoder.js';
import { encodeBatch } from '../src/batch/encoder.js';
import { Spool } from '../src/spool/spool.js';
import { ipv4Records } from '../test/support/spool-fixtures.js';

const repoRoot = resolve(import.meta.dirname, '..');
const PER_BATCH = 5000;
const SAMPLE_RECORDS = 100_000;

/** CPU µs of one run of `f`, after one untimed run (JIT warm-up). */
function cpuUs(f: () => void): number {
  f();
  const c0 = process.cpuUsage();
  f();
  const c = process.cpuUsage(c0);
  return c.user + c.system;
}

async function cpuUsAsync(f: () => Promise<void>): Promise<{ cpuUs: number; wallMs: number }> {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  await f();
  const c = process.cpuUsage(c0);
  return { cpuUs: c.user + c.system, wallMs: performance.now() - t0 };
}

async function startSimProcess(dir: string): Promise<{ netosecret: string; uploadUrl: string; caPem: string; stop: () => Promise<void> }> {
  const caOut = join(dir, 'sim.pem');
  const child = spawn(process.execPath, ['--import', 'tsx', join(repoRoot, 'src/main.ts'), 'fusion-sim', '--port', '0', '--validate', 'none', '--ca-out', caOut], {
    cwd: repoRoot,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    const neto = /SEALFLOW_FUSION_NETOSECRET=(\S+)\n/.exec(out)?.[1];
    const url = /upload URL\s+(\S+)/.exec(err)?.[1];
    if (neto !== undefined && url !== undefined) {
      return {
        netosecret: neto,
        uploadUrl: url,
        caPem: await readFile(caOut, 'utf8'),
        stop: async () => {
          child.kill('SIGTERM');
          await new Promise((r) => child.on('close', r));
        },
      };
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  child.kill('SIGKILL');
  throw new Error(`fusion-sim did not start: ${err}`);
}

async function fillSpool(dir: string, kek: Uint8Array, total: number): Promise<Spool> {
  const spool = await Spool.open({ dir, kek, synchronous: 'normal', quotaBytes: 8 * 1024 * 1024 * 1024 });
  const template = ipv4Records(PER_BATCH, 7);
  const batch = encodeBatch(template);
  for (let done = 0; done < total; done += PER_BATCH) {
    const n = Math.min(PER_BATCH, total - done);
    const res = spool.writer.append(n === PER_BATCH ? batch : encodeBatch(template.slice(0, n)), n);
    if (res.id === null) throw new Error(`spool dropped a batch: ${String(res.dropReason)}`);
  }
  return spool;
}

const fmt = (n: number, d = 2): string => n.toFixed(d);

export async function run(): Promise<void> {
  const total = Number(process.env.SEALFLOW_BENCH_DRAIN_RECORDS ?? 500_000);
  const modes = (process.env.SEALFLOW_BENCH_DRAIN_LEVELS ?? '6,1,auto').split(',').map((m) => (m === 'auto' ? { level: 6, adaptive: true } : { level: Number(m), adaptive: false }));
  const levels = modes.map((m) => m.level);
  const concurrency = Number(process.env.SEALFLOW_BENCH_DRAIN_CONCURRENCY ?? 4);
  const workerCounts = (process.env.SEALFLOW_BENCH_DRAIN_WORKERS ?? `1,${availableParallelism()}`).split(',').map(Number);
  console.log(`${availableParallelism()} cores, load average ${loadavg().map((l) => l.toFixed(1)).join(' ')} (figures scale with the CPU actually free)`);
  const dir = await mkdtemp(join(tmpdir(), 'sealflow-bench-drain-'));
  const sim = await startSimProcess(dir);
  try {
    // --- per-stage CPU cost on a sample -------------------------------------------------
    const sample = ipv4Records(SAMPLE_RECORDS, 3);
    let bytes = 0;
    const genericUs = cpuUs(() => {
      bytes = 0;
      for (const r of sample) bytes += JSON.stringify(toFusionRecord(r)).length + 1;
    });
    const writer = new FusionJsonWriter();
    const serUs = cpuUs(() => {
      for (let i = 0; i < SAMPLE_RECORDS; i += PER_BATCH) writer.ndjson(sample.slice(i, i + PER_BATCH));
    });
    const encoded = Array.from({ length: SAMPLE_RECORDS / PER_BATCH }, (_, i) => encodeBatch(sample.slice(i * PER_BATCH, (i + 1) * PER_BATCH)));
    const decodeUs = cpuUs(() => {
      for (const b of encoded) decodeBatch(b);
    });
    console.log(`serialization (FusionJsonWriter)       ${fmt(serUs / SAMPLE_RECORDS)} µs/record, ${fmt(bytes / SAMPLE_RECORDS, 0)} B/record NDJSON (generic toFusionRecord + JSON.stringify: ${fmt(genericUs / SAMPLE_RECORDS)} µs/record)`);
    console.log(`batch decode in the upload worker      ${fmt(decodeUs / SAMPLE_RECORDS)} µs/record`);
    const gzipUs = new Map<number, number>();
    const encoder = new UploadEncoder({ ...DEFAULT_ENCODER_SETTINGS, compression: 'none' });
    const framed = encoder.frame(sample);
    for (const level of [...new Set([...levels, 6, 1])].sort()) {
      let out = 0;
      const us = cpuUs(() => {
        out = 0;
        for (const f of framed) out += gzipSync(f.raw, { level }).length;
      });
      gzipUs.set(level, us / SAMPLE_RECORDS);
      const raw = framed.reduce((a, f) => a + f.raw.length, 0);
      console.log(`gzip level ${level}                          ${fmt(us / SAMPLE_RECORDS)} µs/record, ratio ${fmt(raw / out, 1)}:1, ${fmt(out / SAMPLE_RECORDS, 0)} B/record on the wire`);
    }

    // TLS + HTTP: upload ready gzip bodies (no serialization/compression in the loop).
    const credentials = parseNetosecret(sim.netosecret, 'bench');
    const http = new FusionHttp({ ...resolveDrainSettings().tls, caPem: sim.caPem });
    const auth = new FusionAuth(credentials, http, DEFAULT_AUTH_SETTINGS, Date.now, Math.random);
    const token = await auth.token();
    const bodies = framed.map((f) => gzipSync(f.raw, { level: 6 }));
    let k = 0;
    const tls = await cpuUsAsync(async () => {
      const lanes = Array.from({ length: concurrency }, async (_, lane) => {
        for (let i = lane; i < bodies.length; i += concurrency) {
          const res = await http.request(sim.uploadUrl, {
            method: 'POST',
            headers: { 'content-type': 'application/x-ndjson', 'content-encoding': 'gzip', authorization: `Bearer ${token}`, 'idempotency-key': `bench-tls-${k++}` },
            body: bodies[i] ?? Buffer.alloc(0),
          });
          if (res.status !== 200) throw new Error(`upload answered ${res.status}`);
        }
      });
      await Promise.all(lanes);
    });
    await http.destroy();
    console.log(`TLS + HTTP (ready gzip bodies)          ${fmt(tls.cpuUs / SAMPLE_RECORDS)} µs/record, ${fmt(SAMPLE_RECORDS / (tls.wallMs / 1000), 0)} records/s wall`);

    // --- end to end from a full spool, per gzip level and worker count -------------------
    for (const { level, adaptive } of modes) for (const workers of workerCounts) {
      const spoolDir = join(dir, `spool-${level}-${adaptive}-${workers}`);
      const kek = new Uint8Array(randomBytes(32));
      const t0 = performance.now();
      let spool = await fillSpool(spoolDir, kek, total);
      const fillMs = performance.now() - t0;
      // Spool lease cost (decrypt + verify + decompress), measured on its own then released.
      const leaseUs = cpuUs(() => {
        const leased = spool.reader.lease(Math.ceil(total / PER_BATCH));
        for (const b of leased) spool.reader.release(b.id);
      });
      spool.close();
      spool = await Spool.open({ dir: spoolDir, kek, synchronous: 'normal', quotaBytes: 8 * 1024 * 1024 * 1024 });
      const drain = new Drain({
        source: spool.reader,
        credentials,
        settings: resolveDrainSettings({ uploadUrl: sim.uploadUrl, concurrency: Math.max(concurrency, workers), uploadWorkers: workers, tls: { caPem: sim.caPem }, encoder: { gzipLevel: level, adaptiveGzip: adaptive } }),
      });
      // Let the upload workers start (and compile under tsx) before the clock starts.
      await new Promise((r) => setTimeout(r, 3000));
      const rssBefore = process.memoryUsage().rss;
      let peakRss = rssBefore;
      const timer = setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage().rss)), 100);
      const elu0 = performance.eventLoopUtilization();
      const e2e = await cpuUsAsync(async () => {
        const res = await drain.drainOnce();
        if (!res.complete || res.stats.deliveredRecords !== total) throw new Error(`drain incomplete: ${JSON.stringify(res.stats)}`);
      });
      clearInterval(timer);
      // The drain's own thread: busy time per record bounds the rate when workers have cores.
      const elu = performance.eventLoopUtilization(elu0);
      const mainUs = (elu.active * 1000) / total;
      const st = drain.stats();
      spool.close();
      const rate = total / (e2e.wallMs / 1000);
      console.log(
        `end to end gzip ${adaptive ? `adaptive ≤ ${level} (ended at ${st.gzipLevel ?? '-'})` : level}, ${workers === 0 ? 'no workers' : `${workers} upload workers`}: ${total} records (${total / PER_BATCH} batches) in ${fmt(e2e.wallMs / 1000)} s = ${fmt(rate, 0)} records/s ` +
          `(${fmt(st.deliveredBytes / (e2e.wallMs / 1000) / 1e6)} MB/s on the wire, ${fmt(st.deliveredBytes / total, 0)} B/record), ` +
          `drain process CPU ${fmt(e2e.cpuUs / total)} µs/record (all threads), drain thread busy ${fmt(mainUs)} µs/record ` +
          `(ceiling ${fmt(1e6 / mainUs / 1000, 0)}k records/s given free cores), spool lease (decrypt + decompress) ${fmt(leaseUs / total)} µs/record, ` +
          `peak RSS +${fmt((peakRss - rssBefore) / 1e6, 0)} MB; target ≥ 500k records/s: ${rate >= 500_000 ? 'met' : 'NOT met'} ` +
          `(spool fill took ${fmt(fillMs / 1000)} s)`,
      );
      if (adaptive) continue;
      const floorUs = leaseUs / total + decodeUs / SAMPLE_RECORDS + serUs / SAMPLE_RECORDS + (gzipUs.get(level) ?? 0);
      console.log(
        `  floor at gzip ${level}: lease + decode + serialize + gzip = ${fmt(floorUs)} µs/record before TLS, HTTP and the receiver; ` +
          `${availableParallelism()} cores doing nothing else could reach at most ${fmt((availableParallelism() * 1e6) / floorUs / 1000, 0)}k records/s`,
      );
    }
  } finally {
    await sim.stop();
    await rm(dir, { recursive: true, force: true });
  }
}
