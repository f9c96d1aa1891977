/**
 * A child process (and worker-thread entry) for the spool tests: appends a steady stream of
 * batches and reports on stdout, synchronously and only AFTER each commit:
 *   committed <batchId> <records>
 *   acking <batchId>   (before an ack)     acked <batchId>   (after it)
 * The crash test SIGKILLs it at random moments and checks that every reported batch survived.
 *
 * Usage: node --import tsx test/support/spool-child.ts --dir DIR [--canary] [--ack-every N]
 *          [--quota BYTES] [--max-batches N] [--batch-records N] [--synchronous full|normal]
 *          [--queued-bypass | --queued-compressed]
 * --queued-bypass appends as the ingest worker does under overload (addQueued/flushQueued with
 * compression bypassed), so batches commit in groups; it reports from each batch's `done`.
 * --queued-compressed does the same with a compressor thread and a background WAL
 * checkpointer whose durable mark the spool follows (as the ingest worker normally does): with
 * synchronous full its batches commit in groups too.
 * The KEK comes from SEALFLOW_SPOOL_KEK (base64).
 */
import { writeSync } from 'node:fs';
import { parseArgs } from 'node:util';
import type { FlowRecord } from '../../src/flow/flow-record.js';
import { BatchCompressor } from '../../src/spool/batch-compressor.js';
import { Spool } from '../../src/spool/spool.js';
import { WalCheckpointer } from '../../src/spool/wal-checkpointer.js';
import { parseKekText } from '../../src/spool/kek-source.js';
import { canaryRecords, ipv4Records, testKek } from './spool-fixtures.js';
import { appendRecords, enqueueRecords } from './spool-records.js';

function report(line: string): void {
  writeSync(1, `${line}\n`);
}

async function runChild(): Promise<void> {
  const { values } = parseArgs({
    options: {
      dir: { type: 'string' },
      canary: { type: 'boolean' },
      'ack-every': { type: 'string' },
      quota: { type: 'string' },
      'max-batches': { type: 'string' },
      'batch-records': { type: 'string' },
      synchronous: { type: 'string' },
      'queued-bypass': { type: 'boolean' },
      'queued-compressed': { type: 'boolean' },
    },
  });
  const kek = parseKekText(process.env.SEALFLOW_SPOOL_KEK ?? '');
  if (values.dir === undefined || kek === null) throw new Error('spool-child: --dir and SEALFLOW_SPOOL_KEK are required');
  const ackEvery = Number(values['ack-every'] ?? '0');
  const maxBatches = Number(values['max-batches'] ?? '100000');
  const batchRecords = Number(values['batch-records'] ?? '200');
  const sync = values.synchronous === 'full' ? 'full' : 'normal';
  const compressor = values['queued-compressed'] === true ? await BatchCompressor.start() : null;
  const spool = await Spool.open({
    dir: values.dir,
    kek,
    synchronous: sync,
    checkpointIntervalMs: 100,
    ...(values.quota !== undefined ? { quotaBytes: Number(values.quota) } : {}),
  });
  if (compressor !== null) {
    spool.writer.useCompressor(compressor);
    spool.checkpoints.useBackground(await WalCheckpointer.start(spool.path, (m) => process.stderr.write(`checkpointer: ${m}\n`), { intervalMs: 20 }));
  }
  // After the helper threads started: the harness's kill timer starts here.
  report(`opened ${spool.inspector.status().lastBatchId}`);
  if (values['queued-bypass'] === true || values['queued-compressed'] === true) {
    if (values['queued-bypass'] === true) spool.writer.setCompressionBypass(true);
    for (let i = 0; i < maxBatches; i++) {
      const records = ipv4Records(batchRecords - (i % 50), i + process.pid);
      enqueueRecords(spool.writer, records, (err, r) => {
        if (err === null && r !== null && r.id !== null) report(`committed ${r.id} ${records.length}`);
      });
      // Groups form both ways: eight ready at once, and the 20 ms timer.
      if (i % 5 === 4) await new Promise((r) => setImmediate(r));
      if (i % 13 === 12) await new Promise((r) => setTimeout(r, 25));
    }
    await spool.writer.settled();
    spool.close();
    report('done');
    return;
  }
  for (let i = 0; i < maxBatches; i++) {
    const records: FlowRecord[] = values.canary === true ? canaryRecords(batchRecords) : ipv4Records(batchRecords - (i % 50), i + process.pid);
    const r = appendRecords(spool.writer, records);
    if (r.id !== null) report(`committed ${r.id} ${records.length}`);
    if (ackEvery > 0 && i % ackEvery === ackEvery - 1) {
      for (const b of spool.reader.lease(1)) {
        report(`acking ${b.id}`);
        spool.reader.ack(b.id);
        report(`acked ${b.id}`);
      }
    }
    // Yield now and then so the process looks like a live ingest loop (timers, signals).
    if (i % 10 === 9) await new Promise((r) => setImmediate(r));
  }
  spool.close();
  report('done');
}

/** Worker-thread mode: append `total` batches of 50 records with a little pacing, then close. */
export async function appendInWorker(dir: string, total: number): Promise<void> {
  const spool = await Spool.open({ dir, kek: testKek(9) });
  for (let i = 0; i < total; i++) {
    appendRecords(spool.writer, ipv4Records(50, i));
    await new Promise((r) => setTimeout(r, 2));
  }
  spool.close();
}

if (process.argv[1]?.endsWith('spool-child.ts') === true) {
  runChild().catch((err: unknown) => {
    process.stderr.write(`spool-child: ${String(err)}\n`);
    process.exit(1);
  });
}
