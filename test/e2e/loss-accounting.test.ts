/**
 * Every lost record counted where operators look: `sealflow run` with its data directory on a
 * small real filesystem (a tmpfs of a few MiB this test mounts), flooded over UDP on loopback
 * with IPFIX records until the disk is full. Sent = stored + counted-lost, exactly, in every
 * place an operator reads it: /metrics while it runs, the status line at stop, and
 * `sealflow spool status` afterwards. The probe keeps running through the full disk and stops
 * cleanly (exit 0).
 *
 * Records the kernel drops (the sender outruns the socket) are in the IPFIX sequence numbers
 * (`sequence_gap`, in records), so the identity holds on a busy machine too: a header-only
 * message sent after the data ("the fence") makes the trailing gap visible.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import { stringify } from 'yaml';
import { PACKET_LOSS_REASONS, RECORD_LOSS_REASONS } from '../../src/flow/loss.js';
import { dataSet, ipfixMessage, ipfixTemplateSet, type FieldDef } from '../support/ipfix-builder.js';
import { freeTcpPort, freeUdpPort, startProbe, type RunningProbe } from '../support/probe.js';
import { parsePrometheusText, sampleValue } from '../support/prometheus-text.js';
import { smallFilesystem } from '../support/small-filesystem.js';
import { repoRoot } from '../support/softflowd.js';
import { until } from '../support/udp-harness.js';

/** The filesystem: room for the database, its WAL and a few hundred thousand sealed records, not for all of them. */
const FS_BYTES = 4 * 1024 * 1024;
const RECORDS_PER_MESSAGE = 30;
const MESSAGES = 12_000;
const SENT = RECORDS_PER_MESSAGE * MESSAGES;
/** Messages per burst, and the pause after each: about 6,000 messages (180,000 records) a second. */
const BURST = 30;
const PAUSE_MS = 5;

const FIELDS: readonly FieldDef[] = [
  { id: 8, length: 4 }, // sourceIPv4Address
  { id: 12, length: 4 }, // destinationIPv4Address
  { id: 7, length: 2 }, // sourceTransportPort
  { id: 11, length: 2 }, // destinationTransportPort
  { id: 4, length: 1 }, // protocolIdentifier
  { id: 1, length: 8 }, // octetDeltaCount
  { id: 2, length: 8 }, // packetDeltaCount
  { id: 152, length: 8 }, // flowStartMilliseconds
  { id: 153, length: 8 }, // flowEndMilliseconds
];
const TEMPLATE = { id: 256, fields: FIELDS };

/** One message of random (hardly compressible) records, the template in front, as exporters on UDP send it. */
function message(sequence: number): Uint8Array {
  const t0 = 1_700_000_000_000 + randomInt(1_000_000);
  const records = Array.from({ length: RECORDS_PER_MESSAGE }, () => [
    `10.${randomInt(256)}.${randomInt(256)}.${randomInt(256)}`,
    `192.0.2.${randomInt(256)}`,
    randomInt(65536),
    randomInt(65536),
    6,
    BigInt(randomInt(2 ** 40)),
    BigInt(randomInt(2 ** 30)),
    BigInt(t0),
    BigInt(t0 + randomInt(60_000)),
  ]);
  return ipfixMessage({ sequence, exportTime: 1_700_000_000 }, [ipfixTemplateSet([TEMPLATE]), dataSet(TEMPLATE.id, FIELDS, records)]);
}

interface LossFigures {
  readonly stored: number;
  readonly records: Readonly<Record<string, number>>;
  readonly packets: Readonly<Record<string, number>>;
}

const sum = (o: Readonly<Record<string, number>>): number => Object.values(o).reduce((a, b) => a + b, 0);

async function metricsFigures(probe: RunningProbe): Promise<LossFigures> {
  const fams = parsePrometheusText(await (await fetch(`${probe.adminUrl}/metrics`)).text());
  const byReason = (name: string): Record<string, number> => Object.fromEntries((fams.get(name)?.samples ?? []).map((s) => [s.labels.reason ?? '', s.value]));
  return { stored: sampleValue(fams, 'sealflow_spool_records') ?? NaN, records: byReason('sealflow_records_lost_total'), packets: byReason('sealflow_packets_lost_total') };
}

describe('loss accounting on a full disk', { timeout: 300_000 }, () => {
  test('sent = stored + counted-lost, exactly, on /metrics, in the status line and in `sealflow spool status`; the probe keeps running', async (t) => {
    const fs = smallFilesystem(t, FS_BYTES);
    if (fs === null) return;
    const work = mkdtempSync(path.join(tmpdir(), 'sealflow-loss-'));
    let probe: RunningProbe | null = null;
    try {
      const kekFile = path.join(work, 'kek');
      writeFileSync(kekFile, randomBytes(32).toString('base64'), { mode: 0o600 });
      const udpPort = await freeUdpPort();
      const adminPort = await freeTcpPort();
      const configFile = path.join(work, 'sealflow.yaml');
      writeFileSync(configFile, stringify({
        dataDir: path.join(fs.dir, 'data'),
        log: { level: 'info', format: 'json' },
        listeners: { allowlist: ['127.0.0.1'], udp: [{ name: 'flows', address: '127.0.0.1', port: udpPort, receiveBufferBytes: 8 * 1024 * 1024 }] },
        // Small batches: many commits, so the disk fills part-way through the flood, not in one batch.
        spool: { kek: { file: kekFile }, batch: { maxRecords: 600, maxAgeMs: 100 } },
        drain: { enabled: false },
        admin: { port: adminPort },
        stats: { intervalSeconds: 1 },
      }));
      probe = await startProbe({ args: ['--config', configFile], adminPort });

      const sock = createSocket('udp4');
      const send = (m: Uint8Array): Promise<void> => new Promise((resolve, reject) => sock.send(m, udpPort, '127.0.0.1', (e) => (e ? reject(e) : resolve())));
      for (let i = 0; i < MESSAGES; i += BURST) {
        for (let k = i; k < Math.min(MESSAGES, i + BURST); k++) await send(message(k * RECORDS_PER_MESSAGE));
        await new Promise((r) => setTimeout(r, PAUSE_MS));
      }
      // The fence: no records, sequence = records sent, resent until every record sent is decoded or
      // in a sequence gap (a kernel drop of the last data message shows only once a fence arrives).
      const decoded = async (): Promise<{ records: number; gap: number }> => {
        const d = ((await probe?.getJson('/stats')) as { decode: { records: number; sequenceLost: number } | null }).decode;
        return { records: d?.records ?? 0, gap: d?.sequenceLost ?? 0 };
      };
      await until(async () => {
        await send(ipfixMessage({ sequence: SENT, exportTime: 1_700_000_000 }, [ipfixTemplateSet([TEMPLATE])]));
        await new Promise((r) => setTimeout(r, 200));
        const d = await decoded();
        return d.records + d.gap === SENT;
      }, 'every record sent decoded or in a sequence gap', 120_000);
      sock.close();

      // 1. /metrics, while the probe runs on the full disk.
      const running = probe;
      let m = await metricsFigures(running);
      try {
        await until(async () => {
          m = await metricsFigures(running);
          return m.stored + sum(m.records) === SENT;
        }, 'stored + lost = sent on /metrics', 30_000);
      } catch {
        assert.fail(`/metrics: stored ${m.stored} + lost ${sum(m.records)} ≠ sent ${SENT}; records lost ${JSON.stringify(m.records)}, packets lost ${JSON.stringify(m.packets)}`);
      }
      assert.ok((m.records.disk_full ?? 0) > 0, `the disk never filled: ${JSON.stringify(m)}`);
      assert.ok(m.stored > 0, 'nothing stored');
      assert.equal(m.packets.decode_error, 0, 'no decode errors (their records are not known)');
      assert.equal(m.packets.channel_full, 0, 'no datagram shed by the ingest channel');
      for (const r of RECORD_LOSS_REASONS) assert.ok(r in m.records, `sealflow_records_lost_total{reason="${r}"} exported`);
      for (const r of PACKET_LOSS_REASONS) assert.ok(r in m.packets, `sealflow_packets_lost_total{reason="${r}"} exported`);
      assert.equal(probe.exitStatus(), null, 'the probe keeps running on a full disk');

      // 2. The status line written at stop.
      const code = await probe.stop('SIGTERM', 60_000);
      assert.equal(code, 0, `exit status; output:\n${probe.output().slice(-3000)}`);
      const statusLines = probe.output().split('\n').filter((l) => l.includes('"stats":{'));
      const last = JSON.parse(statusLines.at(-1) ?? '{}') as { msg?: string; stats?: { lostRecords: number; lostByReason: Record<string, number>; spoolRecords: number } };
      assert.ok(last.stats !== undefined, 'a status line');
      assert.equal(last.stats.spoolRecords + last.stats.lostRecords, SENT, `status line: ${last.msg ?? ''}`);
      assert.equal(last.stats.lostRecords, sum(m.records), 'the status line shows the totals of /metrics');
      assert.match(last.msg ?? '', new RegExp(`lost ${last.stats.lostRecords} rec \\(.*disk_full ${last.stats.lostByReason.disk_full}`));

      // 3. `sealflow spool status`, the probe stopped.
      const st = spawnSync(process.execPath, ['--import', 'tsx', 'src/main.ts', 'spool', 'status', '--json', '--data-dir', path.join(fs.dir, 'data')], {
        cwd: repoRoot,
        env: { PATH: process.env.PATH ?? '', SEALFLOW_SPOOL_KEK_FILE: kekFile },
        encoding: 'utf8',
      });
      assert.equal(st.status, 0, st.stderr);
      const status = JSON.parse(st.stdout) as { records: number; loss: { records: Record<string, number>; packets: Record<string, number> } };
      assert.equal(status.records + sum(status.loss.records), SENT, `spool status: ${st.stdout}`);
      assert.deepEqual(status.loss.records, m.records, 'the same totals as /metrics showed while it ran (nothing was lost since)');
      assert.deepEqual(status.loss.packets, m.packets);
      const text = spawnSync(process.execPath, ['--import', 'tsx', 'src/main.ts', 'spool', 'status', '--data-dir', path.join(fs.dir, 'data')], {
        cwd: repoRoot,
        env: { PATH: process.env.PATH ?? '', SEALFLOW_SPOOL_KEK_FILE: kekFile },
        encoding: 'utf8',
      });
      assert.match(text.stdout, new RegExp(`records lost +${sum(status.loss.records)} \\(.*disk_full ${status.loss.records.disk_full}`));
      t.diagnostic(`sent ${SENT}: stored ${status.records}, lost ${JSON.stringify(status.loss.records)}; packets lost ${JSON.stringify(status.loss.packets)}`);
    } finally {
      await probe?.stop('SIGKILL');
      rmSync(work, { recursive: true, force: true });
      fs.remove();
    }
  });
});
