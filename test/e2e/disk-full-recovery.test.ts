/**
 * A full disk while the uplink is down, then the uplink back while the disk is still full, then
 * space back: `sealflow run` on a small real filesystem (a tmpfs this test mounts, filled with a
 * ballast file), NetFlow v5 over UDP on loopback with a unique id per record (its source
 * address), the drain delivering to the Fusion stand-in over HTTPS.
 *
 * 1. Uplink down (the stand-in answers 503), disk full: the probe keeps running; every record
 *    sent is stored or counted lost (sent = stored + lost, exactly, on /metrics).
 * 2. Uplink back, disk still full: the drain delivers every stored record once and its acks go
 *    through (the spool gives back its space reserve), so the spool empties — without that the
 *    acks fail like the appends, the spool stays full and the drain uploads the same batches
 *    again and again.
 * 3. Ballast removed: new records are all delivered; the reserve is made again.
 * Throughout: delivered + counted lost = sent, no record delivered twice.
 */
import assert from 'node:assert/strict';
import { randomBytes, randomInt } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import { stringify } from 'yaml';
import { SPOOL_RESERVE_FILE } from '../../src/spool/spool.js';
import { startTestSim } from '../support/drain-fixtures.js';
import { freeTcpPort, freeUdpPort, startProbe, type RunningProbe } from '../support/probe.js';
import { parsePrometheusText, sampleValue } from '../support/prometheus-text.js';
import { smallFilesystem } from '../support/small-filesystem.js';
import { until } from '../support/udp-harness.js';

const FS_BYTES = 8 * 1024 * 1024;
const RESERVE_BYTES = 1024 * 1024;
const RECORDS_PER_PACKET = 30;
const V5_HEADER = 24;
const V5_RECORD = 48;
/** Phase 1 sends far more than the filesystem holds; phase 3 a little. */
const PHASE1_PACKETS = 3000;
const PHASE3_PACKETS = 200;

/** NetFlow v5 records with ids first.. as source addresses and random (hardly compressible) counters and ports. */
function v5Packet(first: number, sequence: number): Buffer {
  const b = Buffer.alloc(V5_HEADER + RECORDS_PER_PACKET * V5_RECORD);
  const now = Date.now();
  b.writeUInt16BE(5, 0);
  b.writeUInt16BE(RECORDS_PER_PACKET, 2);
  b.writeUInt32BE(3_600_000, 4);
  b.writeUInt32BE(Math.floor(now / 1000), 8);
  b.writeUInt32BE(sequence >>> 0, 16);
  for (let i = 0; i < RECORDS_PER_PACKET; i++) {
    const o = V5_HEADER + i * V5_RECORD;
    b.writeUInt32BE((first + i) >>> 0, o);
    b.writeUInt32BE(randomInt(2 ** 32), o + 4);
    b.writeUInt32BE(randomInt(1, 2 ** 20), o + 16);
    b.writeUInt32BE(randomInt(1, 2 ** 31), o + 20);
    b.writeUInt32BE(3_590_000, o + 24);
    b.writeUInt32BE(3_599_000, o + 28);
    b.writeUInt16BE(randomInt(65536), o + 32);
    b.writeUInt16BE(randomInt(65536), o + 34);
    b[o + 38] = 6;
  }
  return b;
}

const idOf = (srcip: string): number => srcip.split('.').reduce((a, p) => a * 256 + Number(p), 0);
const sum = (o: Readonly<Record<string, number>>): number => Object.values(o).reduce((a, b) => a + b, 0);

interface Figures {
  readonly stored: number;
  readonly lost: Readonly<Record<string, number>>;
  readonly decoded: number;
}

async function figures(probe: RunningProbe): Promise<Figures> {
  const fams = parsePrometheusText(await (await fetch(`${probe.adminUrl}/metrics`)).text());
  const lost = Object.fromEntries((fams.get('sealflow_records_lost_total')?.samples ?? []).map((s) => [s.labels.reason ?? '', s.value]));
  const d = ((await probe.getJson('/stats')) as { decode: { records: number } | null }).decode;
  return { stored: sampleValue(fams, 'sealflow_spool_records') ?? NaN, lost, decoded: d?.records ?? 0 };
}

describe('full disk, uplink down, then back', { timeout: 300_000 }, () => {
  test('the probe keeps running and counts; the drain empties the spool while the disk is still full; every record delivered or counted lost, none twice', async (t) => {
    const fs = smallFilesystem(t, FS_BYTES);
    if (fs === null) return;
    const work = mkdtempSync(path.join(tmpdir(), 'sealflow-diskfull-'));
    const delivered = new Map<number, number>();
    const env = await startTestSim({
      keepRecords: false,
      onRecord: (r) => {
        const id = typeof r.srcip === 'string' ? idOf(r.srcip) : -1;
        delivered.set(id, (delivered.get(id) ?? 0) + 1);
      },
    });
    const { sim } = env;
    let probe: RunningProbe | null = null;
    const sock = createSocket('udp4');
    try {
      await sim.setFault({ kind: 'status', status: 503, scope: 'upload' });
      writeFileSync(path.join(work, 'ca.pem'), env.caPem);
      writeFileSync(path.join(work, 'netosecret'), sim.netosecret, { mode: 0o600 });
      const kekFile = path.join(work, 'kek');
      writeFileSync(kekFile, randomBytes(32).toString('base64'), { mode: 0o600 });
      const udpPort = await freeUdpPort();
      const adminPort = await freeTcpPort();
      const configFile = path.join(work, 'sealflow.yaml');
      const dataDir = path.join(fs.dir, 'data');
      writeFileSync(configFile, stringify({
        dataDir,
        log: { level: 'info', format: 'json' },
        listeners: { allowlist: ['127.0.0.1'], udp: [{ name: 'flows', address: '127.0.0.1', port: udpPort, receiveBufferBytes: 8 * 1024 * 1024 }] },
        spool: { kek: { file: kekFile }, reserveBytes: RESERVE_BYTES, batch: { maxRecords: 600, maxAgeMs: 100 } },
        drain: {
          fusion: { uploadUrl: sim.uploadUrl, caFile: path.join(work, 'ca.pem'), netosecret: { file: path.join(work, 'netosecret') }, maxRecordsPerRequest: 600 },
          retry: { initialDelayMs: 50, maxDelayMs: 500 },
        },
        admin: { port: adminPort },
        stats: { intervalSeconds: 0 },
      }));
      probe = await startProbe({ args: ['--config', configFile], adminPort });
      const running = probe;
      const reserve = path.join(dataDir, 'spool', SPOOL_RESERVE_FILE);
      await until(() => existsSync(reserve), 'the reserve made at start', 10_000);

      let nextId = 1;
      let sequence = 0;
      const send = (m: Buffer): Promise<void> => new Promise((resolve, reject) => sock.send(m, udpPort, '127.0.0.1', (e) => (e ? reject(e) : resolve())));
      const sendPackets = async (n: number): Promise<void> => {
        for (let i = 0; i < n; i++) {
          await send(v5Packet(nextId, sequence));
          nextId += RECORDS_PER_PACKET;
          sequence += RECORDS_PER_PACKET;
          if (i % 20 === 19) await new Promise((r) => setTimeout(r, 5));
        }
      };
      const sent = (): number => nextId - 1;
      /** Every record sent decoded or in a sequence gap (a header-only v5 packet makes a trailing gap visible). */
      const settled = async (what: string): Promise<Figures> => {
        let f = await figures(running);
        await until(async () => {
          const fence = v5Packet(nextId, sequence).subarray(0, V5_HEADER);
          fence.writeUInt16BE(0, 2);
          await send(fence);
          await new Promise((r) => setTimeout(r, 200));
          f = await figures(running);
          return f.decoded + (f.lost.sequence_gap ?? 0) === sent();
        }, `${what}: every record sent decoded or in a sequence gap`, 120_000);
        return f;
      };

      // 1. Uplink down: records stored while there is room, then the disk is full.
      await sendPackets(PHASE1_PACKETS / 10);
      await settled('phase 1, before the disk is full');
      fs.fill();
      await sendPackets(PHASE1_PACKETS - PHASE1_PACKETS / 10);
      await settled('phase 1');
      let f = await figures(running);
      await until(async () => {
        f = await figures(running);
        return f.stored + sum(f.lost) === sent();
      }, 'phase 1: stored + lost = sent on /metrics', 30_000).catch(() => assert.fail(`phase 1: stored ${f.stored} + lost ${sum(f.lost)} ≠ sent ${sent()}: ${JSON.stringify(f.lost)}`));
      const storedAtFull = f.stored;
      t.diagnostic(`phase 1 (disk full, uplink down): sent ${sent()}, stored ${storedAtFull}, lost ${JSON.stringify(f.lost)}`);
      assert.ok((f.lost.disk_full ?? 0) > 0, 'the disk filled');
      assert.ok(storedAtFull > 0);
      assert.equal(delivered.size, 0, 'nothing delivered while the uplink was down');
      assert.equal(running.exitStatus(), null, 'the probe keeps running on a full disk');

      // 2. Uplink back, disk still full.
      await sim.setFault(null);
      await until(async () => (await figures(running)).stored === 0 && delivered.size >= storedAtFull, 'phase 2: the drain empties the spool on the full disk', 120_000).catch(async () => {
        const g = await figures(running);
        assert.fail(`phase 2: spool still holds ${g.stored} records; delivered ${delivered.size} of ${storedAtFull}; uploads ${JSON.stringify(sim.stats)}`);
      });
      assert.equal(delivered.size, storedAtFull, 'every stored record delivered');
      t.diagnostic(`phase 2 (uplink back, disk full): delivered ${delivered.size}, stand-in ${JSON.stringify(sim.stats)}`);

      // 3. Space back.
      fs.free();
      const before = delivered.size;
      await sendPackets(PHASE3_PACKETS);
      await settled('phase 3');
      await until(() => delivered.size === before + PHASE3_PACKETS * RECORDS_PER_PACKET, 'phase 3: every new record delivered', 60_000).catch(() =>
        assert.fail(`phase 3: delivered ${delivered.size - before} of ${PHASE3_PACKETS * RECORDS_PER_PACKET}`),
      );
      await until(() => existsSync(reserve), 'the reserve made again once space returned', 30_000);

      f = await figures(running);
      assert.equal(delivered.size + sum(f.lost), sent(), `delivered ${delivered.size} + lost ${sum(f.lost)} = sent ${sent()}`);
      const twice = [...delivered.values()].filter((n) => n > 1).length;
      assert.equal(twice, 0, 'no record delivered twice');
      for (const id of delivered.keys()) assert.ok(id >= 1 && id <= sent(), `unknown id ${id}`);
      assert.equal(await probe.stop('SIGTERM', 60_000), 0, `exit status; output:\n${probe.output().slice(-3000)}`);
    } finally {
      sock.close();
      await probe?.stop('SIGKILL');
      await env.cleanup();
      rmSync(work, { recursive: true, force: true });
      fs.remove();
    }
  });
});
