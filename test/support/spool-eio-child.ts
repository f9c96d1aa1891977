/**
 * Child of test/integration/spool-eio.test.ts, run with test/support/eio-shim.c preloaded
 * (argv: spool directory, control file, records per batch, KEK in base64): a spool driven through each SQLite step while the shim makes writes or syncs fail
 * with EIO (the control file argv[3]), then without faults. Prints one JSON line: what each
 * step reported, and the batches committed (id → seed of ipv4Records(RECORDS, seed)) and
 * acknowledged, for the parent to check against the spool it reopens without the shim.
 */
import { rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { AppendResult } from '../../src/flow/pipeline.js';
import { Spool } from '../../src/spool/spool.js';
import { ipv4Records } from './spool-fixtures.js';
import { appendRecords, enqueueRecords } from './spool-records.js';
import { testLogger } from './udp-harness.js';

const [dir = '', control = '', records = '', kek = ''] = process.argv.slice(2);
const EIO_RECORDS = Number(records);
const EIO_KEK = Buffer.from(kek, 'base64');
const fault = (calls: 'write' | 'sync' | null): void => {
  if (calls === null) rmSync(control, { force: true });
  else writeFileSync(control, calls);
};

const logs = testLogger();
const spool = await Spool.open({ dir, kek: EIO_KEK, fullPolicy: 'drop-newest', reserveBytes: 0, logger: logs.logger, checkpointIntervalMs: 3_600_000, setInterval: () => null, clearInterval: () => undefined });
const committed: Record<number, number> = {};
const acked: number[] = [];
let seed = 0;
const append = (): AppendResult => {
  const s = ++seed;
  const r = appendRecords(spool.writer, ipv4Records(EIO_RECORDS, s));
  if (r.id !== null) committed[r.id] = s;
  return r;
};
const events = (name: string): number => logs.lines.filter((l) => l.event === name).length;
const walBytes = (): number => statSync(path.join(dir, 'spool.db-wal'), { throwIfNoEntry: false })?.size ?? 0;
const steps: Record<string, unknown> = {};

for (let i = 0; i < 4; i++) append();
spool.checkpoints.checkpoint(true);

fault('write');
steps.appendWrite = append().dropReason;
fault('sync');
steps.appendSync = append().dropReason;

fault('write');
spool.writer.setCompressionBypass(true);
const group: (string | null)[] = [];
for (let k = 0; k < 3; k++) {
  const s = ++seed;
  enqueueRecords(spool.writer, ipv4Records(EIO_RECORDS, s), (err, r) => {
    if (r !== null && r.id !== null) committed[r.id] = s;
    group.push(err !== null && err !== undefined ? 'threw' : (r?.dropReason ?? null));
  });
}
await spool.writer.settled();
steps.groupWrite = group;
fault(null);

for (let i = 0; i < 3; i++) append();
for (const calls of ['write', 'sync'] as const) {
  const before = events('spool.checkpoint_failed');
  fault(calls);
  spool.checkpoints.checkpoint(true);
  fault(null);
  steps[`checkpoint_${calls}`] = { failed: events('spool.checkpoint_failed') - before, walBytes: walBytes() };
}

const delivered = spool.reader.lease(2).map((b) => b.id);
fault('write');
for (const id of delivered) spool.reader.ack(id);
steps.ackWrite = { pendingAcks: spool.reader.pendingAcks, batches: spool.inspector.status().batches, ioErrors: spool.inspector.status().ioErrors };
fault(null);
const next = spool.reader.lease(100).map((b) => b.id);
for (const id of next) spool.reader.release(id);
acked.push(...delivered);
steps.ackAfter = { pendingAcks: spool.reader.pendingAcks, batches: spool.inspector.status().batches, leasedAgain: next.filter((id) => delivered.includes(id)).length };

steps.appendAfter = append().dropReason;
spool.checkpoints.checkpoint(true);
steps.walAfter = walBytes();
spool.close();
process.stdout.write(`${JSON.stringify({ steps, committed, acked })}\n`);
