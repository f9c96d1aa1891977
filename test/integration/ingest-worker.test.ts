/**
 * The running ingest worker thread (real worker, real SQLite spool in a temp dir):
 * - Flow filters across reloads. The worker writes IPFIX/v9 records straight from their bytes
 *   into the spool (the fused path), with the filter rules evaluated inside the fused writers;
 *   a drop rule must apply from start-up and after each reload, and removing the rules must
 *   take it out. A dropped record must never reach the spool, and the batches' record counts
 *   must count only what they hold.
 * - Overload: packets that waited long before reaching the worker switch batches to
 *   uncompressed storage, fresh ones switch compression back on.
 * - Committed batches are announced to the main thread (the drain's wake-up), with the id.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { IngestWorker } from '../../src/ingest-worker/ingest-worker.js';
import type { IngestWorkerInit } from '../../src/ingest-worker/messages.js';
import type { FiltersConfig } from '../../src/filter/compile-filters.js';
import { Spool } from '../../src/spool/spool.js';
import { ipToString } from '../../src/flow/ip.js';
import { dataSet, exporterPacket, ipfixMessage, ipfixTemplateSet, type FieldDef } from '../support/ipfix-builder.js';
import { tempDir, testKek } from '../support/spool-fixtures.js';
import { exportRecords } from '../support/spool-records.js';

const KEK = testKek(3);
const FIELDS: FieldDef[] = [
  { id: 8, length: 4 },
  { id: 12, length: 4 },
  { id: 7, length: 2 },
  { id: 11, length: 2 },
  { id: 4, length: 1 },
  { id: 1, length: 8 },
  { id: 2, length: 4 },
];
const DROP_DNS: FiltersConfig = { default: 'accept', rules: [{ name: 'no-dns', action: 'drop', protocols: ['udp'], dstports: [53] }] };
const ACCEPT_ALL: FiltersConfig = { default: 'accept', rules: [] };

/** One IPFIX message (template + data) with a DNS and an HTTPS flow from 10.0.<phase>.x. */
function phasePacket(phase: number, sequence: number): Uint8Array {
  return ipfixMessage({ sequence, exportTime: 1_700_000_000 + phase }, [
    ipfixTemplateSet([{ id: 256, fields: FIELDS }]),
    dataSet(256, FIELDS, [
      [`10.0.${phase}.1`, '192.0.2.53', 40000, 53, 17, 80n, 1],
      [`10.0.${phase}.2`, '192.0.2.80', 40001, 443, 6, 1500n, 2],
    ]),
  ]);
}

async function until(cond: () => boolean, ms: number): Promise<void> {
  for (let waited = 0; !cond(); waited += 50) {
    if (waited > ms) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 50));
  }
}

function workerInit(dir: string, filters: FiltersConfig): IngestWorkerInit {
  return {
    logLevel: 'silent',
    decode: { templateLifetimeMs: 1_800_000, maxTemplatesPerSession: 64, maxFieldsPerTemplate: 64, pendingHoldMs: 2000, maxPendingRecordsPerSession: 1000, maxSessions: 16, maxStateBytes: 64 << 20, maxStateBytesPerExporter: 16 << 20, tunnelLayer: 'inner', sflowOctets: 'ip' },
    filters,
    spool: { dir, keks: [KEK], quotaBytes: 1 << 30, fullPolicy: 'drop-oldest', reserveBytes: 0, synchronous: 'normal', epochMs: 3_600_000, maxAgeSeconds: null },
    batch: { maxRecords: 5000, maxBytes: 1 << 20, maxAgeMs: 100 },
    stdoutRecords: false,
    pseudonymize: null,
    decoderStateIntervalMs: 60_000,
  };
}

test('ingest worker: a drop rule keeps records off the spool at start-up and after each reload (inside the fused writers)', { timeout: 60_000 }, async () => {
  const { dir, cleanup } = tempDir();
  const init = workerInit(dir, DROP_DNS);
  const worker = new IngestWorker(init);
  try {
    await worker.ready();
    const decoded = (): number => worker.stats()?.records ?? 0;
    // Phases: drop rule (from start-up) → no rules → drop rule again. Each phase's packet is
    // decoded (the worker's statistics say so) before the next reload is posted.
    const phases = [null, ACCEPT_ALL, DROP_DNS];
    for (const [i, filters] of phases.entries()) {
      if (filters !== null) worker.reload({ filters });
      worker.channel.submit(exporterPacket(phasePacket(i, i * 2)));
      worker.channel.flush();
      await until(() => decoded() >= 2 * (i + 1), 10_000);
    }
    await worker.close();
    const final = worker.stats();
    assert.ok(final !== null);
    assert.equal(final.records, 6);
    assert.equal(final.recordsFiltered, 2);
    assert.equal((final.decode as { fusedRecords: number }).fusedRecords, 6, 'every record took the fused path, rules or not');
    // Counts of the last rule set (per-rule counts restart on reload; totals continue).
    assert.deepEqual(final.filter, {
      rules: [{ index: 0, label: 'no-dns', action: 'drop', matched: 1 }],
      defaultAction: 'accept',
      defaultMatched: 1,
      accepted: 4,
      dropped: 2,
    });
  } finally {
    await worker.destroy().catch(() => undefined);
  }
  const db = new Database(join(dir, 'spool.db'), { readonly: true });
  try {
    const batches = db.prepare('SELECT COALESCE(SUM(records), 0) AS n FROM batches').get() as { n: number };
    assert.equal(batches.n, 4, 'the batches\' record counts leave the dropped records out');
  } finally {
    db.close();
  }
  const spool = await Spool.open({ dir, kek: KEK });
  try {
    const stored = exportRecords(spool.inspector).map((r) => `${r.srcAddr === null ? '-' : ipToString(r.srcAddr)}:${String(r.dstPort)}`).sort();
    assert.deepEqual(stored, ['10.0.0.2:443', '10.0.1.1:53', '10.0.1.2:443', '10.0.2.2:443']);
  } finally {
    spool.close();
    cleanup();
  }
});

test('ingest worker: packets that waited over 250 ms switch batches to uncompressed storage; fresh ones switch compression back on', { timeout: 60_000 }, async () => {
  const { dir, cleanup } = tempDir();
  const worker = new IngestWorker(workerInit(dir, ACCEPT_ALL));
  interface Compression {
    offThread: number;
    inline: number;
    bypassed: number;
    overloaded: boolean;
  }
  const compression = (): Compression | null => worker.stats()?.compression ?? null;
  let sent = 0;
  const send = (receivedAtMs: number): void => {
    worker.channel.submit({ ...exporterPacket(phasePacket(sent, sent * 2)), receivedAtMs });
    worker.channel.flush();
    sent++;
  };
  try {
    await worker.ready();
    // receivedAtMs is when the receive path saw the packet: 2 s ago means it waited 2 s for the worker.
    send(Date.now() - 2000);
    await until(() => compression()?.overloaded === true && (compression()?.bypassed ?? 0) >= 1, 10_000);
    // Fresh packets until the worker sees a lag under 50 ms (on a loaded machine one may not be enough; bounded).
    for (let i = 0; i < 50 && compression()?.overloaded !== false; i++) {
      send(Date.now());
      await new Promise((r) => setTimeout(r, 200));
    }
    assert.equal(compression()?.overloaded, false, 'overload cleared');
    // One more batch after it cleared: compressed.
    const before = compression();
    send(Date.now());
    await until(() => (worker.stats()?.records ?? 0) >= 2 * sent && (compression()?.offThread ?? 0) + (compression()?.inline ?? 0) > (before?.offThread ?? 0) + (before?.inline ?? 0), 10_000);
    await worker.close();
  } finally {
    await worker.destroy().catch(() => undefined);
  }
  const db = new Database(join(dir, 'spool.db'), { readonly: true });
  try {
    // Seal formats (compression.ts): 3 = stored uncompressed (still sealed), 2 = brotli.
    const rows = (db.prepare('SELECT format, records FROM batches ORDER BY id').all() as { format: number; records: number }[]).map((r) => [r.format, r.records]);
    assert.deepEqual(rows[0], [3, 2], 'the backlogged packet\'s batch is stored uncompressed');
    assert.equal(rows.at(-1)?.[0], 2, 'the last batch is compressed again');
  } finally {
    db.close();
  }
  const spool = await Spool.open({ dir, kek: KEK });
  try {
    assert.equal(spool.inspector.verify().ok, true);
    const stored = exportRecords(spool.inspector).map((r) => (r.srcAddr === null ? '-' : ipToString(r.srcAddr)));
    assert.equal(stored.length, 2 * sent);
    assert.deepEqual(stored.slice(0, 2), ['10.0.0.1', '10.0.0.2']);
  } finally {
    spool.close();
    cleanup();
  }
});

test('ingest worker: tells the main thread when batches are committed, with the newest id (the drain wakes on it, no polling)', { timeout: 60_000 }, async () => {
  const { dir, cleanup } = tempDir();
  const worker = new IngestWorker(workerInit(dir, ACCEPT_ALL));
  const committed: number[] = [];
  worker.onCommitted((id) => committed.push(id));
  try {
    await worker.ready();
    assert.deepEqual(committed, [], 'nothing committed before any packet');
    for (let i = 0; i < 3; i++) {
      worker.channel.submit(exporterPacket(phasePacket(i, i * 2)));
      worker.channel.flush();
      // Each packet's batch closes by age (100 ms) and commits on its own.
      const before = committed.length;
      await until(() => committed.length > before, 10_000);
    }
    await worker.close();
  } finally {
    await worker.destroy().catch(() => undefined);
  }
  assert.deepEqual(committed, [...committed].sort((a, b) => a - b), 'ids only grow');
  const spool = await Spool.open({ dir, kek: KEK });
  try {
    const st = spool.inspector.status();
    assert.equal(committed.at(-1), st.lastBatchId, 'the last notice names the last committed batch');
    assert.equal(st.records, 6);
  } finally {
    spool.close();
    cleanup();
  }
});
