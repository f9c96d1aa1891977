/**
 * Spool throughput on one core, stage by stage, for batches of 5000 realistic 15-field IPv4
 * records (test/support/spool-fixtures.ts): serialize (batch codec), compress (brotli
 * quality 0, the spool's default; quality 1 and raw deflate level 1 for comparison), encrypt (XChaCha20-Poly1305),
 * decrypt+decompress+decode (the drain's lease path), serialize + Spool.append end to end into
 * SQLite with synchronous=FULL and NORMAL, and draining with lease (+ decode) + ack. Reports records/s by wall clock and by CPU time of this
 * process (less sensitive to other load on a shared machine), spool bytes per record on disk
 * and RSS.
 */
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { brotliCompressSync, brotliDecompressSync, constants as zlibConstants, deflateRawSync } from 'node:zlib';
import { BatchEncoder } from '../src/batch/encoder.js';
import { decodeBatch } from '../src/batch/decoder.js';
import { batchAeadEngine, open, randomBytes, randomKey, seal, sodiumReady, useBatchAeadEngine } from '../src/spool/spool-crypto.js';
import { Spool, batchAd, type SynchronousMode } from '../src/spool/spool.js';
import type { FlowRecord } from '../src/flow/flow-record.js';
import { ipv4Records, tempDir, testKek } from '../test/support/spool-fixtures.js';

const BATCH_RECORDS = 5000;
const DISTINCT_BATCHES = 8;
const STAGE_MS = 1500;
const APPEND_BATCHES = 300;

interface Rate {
  readonly wall: number;
  readonly cpu: number;
}

/** Runs `fn` (one batch per call) for about STAGE_MS; returns records/s by wall clock and CPU time. */
function measure(fn: (i: number) => unknown): Rate {
  for (let i = 0; i < 3; i++) fn(i); // warm-up
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  let n = 0;
  while (performance.now() - t0 < STAGE_MS) fn(n++);
  const wallS = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const cpuS = (cpu.user + cpu.system) / 1e6;
  return { wall: (n * BATCH_RECORDS) / wallS, cpu: (n * BATCH_RECORDS) / cpuS };
}

function fmt(r: Rate): string {
  return `${(r.wall / 1e6).toFixed(2)} M rec/s wall, ${(r.cpu / 1e6).toFixed(2)} M rec/s per CPU-second`;
}

function fileBytes(dir: string): number {
  let n = 0;
  for (const f of ['spool.db', 'spool.db-wal']) {
    try {
      n += statSync(join(dir, f)).size;
    } catch {
      // no WAL after a TRUNCATE checkpoint
    }
  }
  return n;
}

async function appendRun(
  synchronous: SynchronousMode,
  batches: readonly (readonly FlowRecord[])[],
  decode: boolean,
): Promise<{ rate: Rate; bytesPerRecord: number; payloadBytesPerRecord: number; leaseAck: Rate }> {
  const { dir, cleanup } = tempDir('sealflow-bench-spool-');
  try {
    const spool = await Spool.open({ dir, kek: testKek(1), synchronous, quotaBytes: 8 * 1024 ** 3 });
    // What the Batcher does with a whole batch: serialize (one reused encoder), then append.
    const encoder = new BatchEncoder();
    const append = (records: readonly FlowRecord[]): void => {
      spool.writer.append(encoder.encode(records), records.length);
    };
    append(batches[0] ?? []);
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    for (let i = 0; i < APPEND_BATCHES; i++) append(batches[i % batches.length] ?? []);
    const wallS = (performance.now() - t0) / 1000;
    const cpu = process.cpuUsage(cpu0);
    const records = APPEND_BATCHES * BATCH_RECORDS;
    const rate = { wall: records / wallS, cpu: records / ((cpu.user + cpu.system) / 1e6) };
    const st = spool.inspector.status();
    spool.inspector.vacuum();
    const bytesPerRecord = fileBytes(dir) / st.records;
    const payloadBytesPerRecord = st.bytes / st.records;
    const c1 = process.cpuUsage();
    const t1 = performance.now();
    let leased = 0;
    for (;;) {
      const got = spool.reader.lease(4);
      if (got.length === 0) break;
      for (const b of got) {
        leased += decode ? decodeBatch(b.batch).length : b.recordCount;
        spool.reader.ack(b.id);
      }
    }
    const w1 = (performance.now() - t1) / 1000;
    const c = process.cpuUsage(c1);
    spool.close();
    return { rate, bytesPerRecord, payloadBytesPerRecord, leaseAck: { wall: leased / w1, cpu: leased / ((c.user + c.system) / 1e6) } };
  } finally {
    cleanup();
  }
}

export async function run(): Promise<void> {
  await sodiumReady();
  const batches = Array.from({ length: DISTINCT_BATCHES }, (_, i) => ipv4Records(BATCH_RECORDS, i + 1));
  const encoder = new BatchEncoder();
  const plain = batches.map((b) => encoder.encode(b).slice());
  const deflated = plain.map((p) => deflateRawSync(p, { level: 1 }));
  const brotliParams = (quality: number): { params: Record<number, number> } => ({
    params: { [zlibConstants.BROTLI_PARAM_QUALITY]: quality, [zlibConstants.BROTLI_PARAM_LGWIN]: 18, [zlibConstants.BROTLI_PARAM_SIZE_HINT]: plain[0]?.length ?? 0 },
  });
  const brotli = plain.map((p) => brotliCompressSync(p, brotliParams(0)));
  const brotli1 = plain.map((p) => brotliCompressSync(p, brotliParams(1)));
  const key = randomKey();
  const spoolId = randomBytes(16);
  const tag = new Uint8Array(16);
  const nonce = randomBytes(24);
  const sealed = brotli.map((d, i) => ({ ...seal(key, nonce, d, batchAd(2, spoolId, i, 1, tag)), i }));

  const pick = <T>(arr: readonly T[], i: number): T => arr[i % arr.length] as T;
  const avg = (xs: readonly Uint8Array[]): number => xs.reduce((s, x) => s + x.length, 0) / xs.length / BATCH_RECORDS;

  console.log(`batches of ${BATCH_RECORDS} 15-field IPv4 records; serialized ${avg(plain).toFixed(1)} B/record, deflate-1 ${avg(deflated).toFixed(1)} B/record, brotli-0 ${avg(brotli).toFixed(1)} B/record, brotli-1 ${avg(brotli1).toFixed(1)} B/record`);
  console.log(`serialize (batch codec)         ${fmt(measure((i) => encoder.encode(pick(batches, i))))}`);
  console.log(`compress deflate-raw level 1    ${fmt(measure((i) => deflateRawSync(pick(plain, i), { level: 1 })))}`);
  console.log(`compress brotli quality 0 (used) ${fmt(measure((i) => brotliCompressSync(pick(plain, i), brotliParams(0))))}`);
  console.log(`compress brotli quality 1       ${fmt(measure((i) => brotliCompressSync(pick(plain, i), brotliParams(1))))}`);
  const engine = batchAeadEngine();
  for (const e of engine === 'openssl' ? (['libsodium', 'openssl'] as const) : (['libsodium'] as const)) {
    useBatchAeadEngine(e);
    const label = `encrypt XChaCha20-Poly1305 (${e === 'openssl' ? 'OpenSSL' : 'libsodium.js'}${e === engine ? ', used' : ''})`;
    console.log(`${label.padEnd(32)}${fmt(measure((i) => seal(key, nonce, pick(brotli, i), batchAd(2, spoolId, i, 1, tag))))}`);
  }
  useBatchAeadEngine(engine);
  console.log(
    `decrypt + brotli-dec + decode   ${fmt(
      measure((i) => {
        const s = pick(sealed, i);
        const p = open(key, nonce, s.ciphertext, s.tag, batchAd(2, spoolId, s.i, 1, tag));
        if (p === null) throw new Error('bench: open failed');
        return decodeBatch(brotliDecompressSync(p));
      }),
    )}`,
  );
  for (const sync of ['full', 'normal'] as const) {
    const r = await appendRun(sync, batches, sync === 'full');
    console.log(`Spool.append synchronous=${sync.padEnd(6)}  ${fmt(r.rate)}; on disk ${r.bytesPerRecord.toFixed(1)} B/record (sealed payload ${r.payloadBytesPerRecord.toFixed(1)})`);
    console.log(`Spool.lease${sync === 'full' ? ' + decode' : '         '} + ack   ${fmt(r.leaseAck)}`);
  }
  console.log(`RSS ${(process.memoryUsage().rss / 1024 / 1024).toFixed(0)} MiB`);
}

if (process.argv[1]?.endsWith('spool.ts') === true) await run();
