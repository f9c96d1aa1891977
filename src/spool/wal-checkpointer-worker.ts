/**
 * The WAL checkpointer thread (see wal-checkpointer.ts): its own connection to the spool
 * database, `PRAGMA wal_checkpoint(PASSIVE)` every interval, until 'stop', publishing the
 * durable mark after each complete one.
 */
import Database from 'better-sqlite3';
import { workerData } from 'node:worker_threads';
import { parentChannel, startupError } from '../flow/module-worker.js';
import { lowerThreadPriority } from '../flow/thread-priority.js';
import {
  COUNTER_CHECKPOINTS, COUNTER_DURABLE_AT_MS, COUNTER_DURABLE_SEQ, COUNTER_FAILURES, COUNTER_PARTIAL,
  type FromWalCheckpointer, type ToWalCheckpointer, type WalCheckpointerInit,
} from './wal-checkpointer.js';

const init = workerData as WalCheckpointerInit;
const counters = new BigInt64Array(init.counters);
const parent = parentChannel<ToWalCheckpointer, FromWalCheckpointer>();

function codeOf(err: unknown): string | null {
  const code = (err as { code?: unknown }).code;
  return typeof code === 'string' ? code : null;
}

lowerThreadPriority('wal-checkpointer');
let db: Database.Database;
let sequence: Database.Statement;
try {
  // fileMustExist: the spool created it; this thread must never create a database.
  db = new Database(init.dbPath, { fileMustExist: true });
  db.pragma(`busy_timeout = ${String(Math.trunc(init.busyTimeoutMs))}`);
  // The batch id sequence (AUTOINCREMENT): no row content.
  sequence = db.prepare("SELECT seq FROM sqlite_sequence WHERE name = 'batches'").pluck();
} catch (err) {
  parent.post(startupError(new Error(`the WAL checkpointer could not open ${init.dbPath}: ${(err as Error).message}`), codeOf(err)));
  process.exit(1);
}

function checkpoint(): void {
  try {
    // T, then S, then the checkpoint: a commit before T has an id ≤ S and its frames are in the WAL the checkpoint sees.
    const atMs = Date.now();
    const seq = (sequence.get() as number | undefined) ?? 0;
    // One row: busy (1 if another checkpoint held the lock), log (WAL frames), checkpointed (frames copied).
    const rows = db.pragma('wal_checkpoint(PASSIVE)') as { busy: number; log: number; checkpointed: number }[];
    const r = rows[0];
    Atomics.add(counters, COUNTER_CHECKPOINTS, 1n);
    if (r !== undefined && (r.busy !== 0 || r.checkpointed < r.log)) {
      Atomics.add(counters, COUNTER_PARTIAL, 1n);
    } else if (r !== undefined && r.log >= 0) {
      // (log −1: the database is not in WAL mode, and this was no checkpoint at all.)
      // S before T (the reader loads T before S).
      Atomics.store(counters, COUNTER_DURABLE_SEQ, BigInt(seq));
      Atomics.store(counters, COUNTER_DURABLE_AT_MS, BigInt(atMs));
    }
  } catch (err) {
    Atomics.add(counters, COUNTER_FAILURES, 1n);
    parent.post({ type: 'error', message: (err as Error).message, code: codeOf(err) });
  }
}

const timer = setInterval(checkpoint, init.intervalMs);
// The one message is 'stop'.
parent.on(() => {
  clearInterval(timer);
  try {
    db.close();
  } finally {
    // Nothing else keeps the thread alive: it ends, and the parent sees 'exit'.
    parent.close();
  }
});
parent.post({ type: 'ready' });
