import type { Worker } from 'node:worker_threads';
import { startModuleWorker, whenWorkerReady, workerChannel, type StartupMessage, type ThreadChannel } from '../flow/module-worker.js';

/**
 * Background WAL checkpointer for an appending spool: a thread with its own connection to the
 * spool database that runs `PRAGMA wal_checkpoint(PASSIVE)` every `intervalMs`.
 *
 * Why: without it, SQLite's automatic checkpoint (every 1000 WAL pages) and the spool's own
 * TRUNCATE checkpoint copy the WAL into the database and fsync it on the appending thread, and
 * between them the WAL grows to tens of MB. Measured on the 2-core bench machine with 123 KB
 * sealed batches: a commit costs ~850 µs of that thread's wall time (~350 µs CPU) with the long
 * WAL, ~300 µs with this checkpointer keeping it short; at 1.5 M records/s that is 300 commits/s,
 * i.e. ~15% of the ingest worker's time given back.
 *
 * Invariants:
 * - PASSIVE never waits for or blocks writers and readers and never truncates: it only copies
 *   committed frames into the database file and syncs it. Durability (a batch is durable once
 *   its commit returns, per the synchronous mode, and with NORMAL within the spool's power-cut
 *   window, see spool.ts invariant 2) and crypto-shredding (the spool checkpoints with TRUNCATE
 *   on its own thread after a key is destroyed) are unchanged.
 * - The appender's next commit restarts the WAL from its beginning (writing over old frames; the
 *   file is not truncated) only when a checkpoint copied every frame and no commit came in
 *   between. Idle or lightly loaded, this checkpointer's checkpoints do that; under continuous
 *   appends commits land during each of them, and it is the appender's own (automatic, at the
 *   journal size limit) checkpoint that does, so the WAL grows up to that limit.
 * - The connection writes nothing and reads one number, the batch id sequence (non-identifying
 *   metadata), so it never sees or holds plaintext (there is none in the database) or keys; it
 *   gets only the database path.
 * - Durable mark: before each checkpoint it notes the time T and then reads the batch id
 *   sequence S; when the checkpoint copied every WAL frame (busy 0, checkpointed = log), every
 *   batch with id ≤ S — and every commit before T — is in the database file, synced (a complete
 *   checkpoint syncs the WAL before copying and the database after, on any synchronous mode
 *   but OFF). It publishes (S, T) in shared memory, S first, so that a reader that loads T then
 *   S never pairs a newer T with an older S. The appending spool uses it for its high-water
 *   mark and its power-cut window instead of checkpointing on its own thread
 *   (Checkpoints.useBackground in checkpoints.ts).
 * - The writer resets the WAL to its start (truncated to journal_size_limit) on its first commit
 *   after a checkpoint that copied every frame, so the WAL's size stays near what is written
 *   between two checkpoints.
 */

export const DEFAULT_WAL_CHECKPOINT_INTERVAL_MS = 100;

/** Sent by the checkpointer thread: its StartupMessage, then checkpoint failures (it goes on). */
export type FromWalCheckpointer = StartupMessage | { readonly type: 'error'; readonly message: string; readonly code: string | null };

/** Sent to the checkpointer thread. */
export interface ToWalCheckpointer {
  readonly type: 'stop';
}

export interface WalCheckpointerInit {
  readonly dbPath: string;
  readonly intervalMs: number;
  readonly busyTimeoutMs: number;
  /** Shared counters, see COUNTER_*. */
  readonly counters: SharedArrayBuffer;
}

/** Indices into the shared BigInt64 counters. */
export const COUNTER_CHECKPOINTS = 0;
/** Checkpoints that could not copy every frame (a reader held an older snapshot, or another checkpoint ran). */
export const COUNTER_PARTIAL = 1;
export const COUNTER_FAILURES = 2;
/** The durable mark (see the invariants): batch id sequence, and the Date.now() before it was read; -1 until the first complete checkpoint. */
export const COUNTER_DURABLE_SEQ = 3;
export const COUNTER_DURABLE_AT_MS = 4;
const COUNTERS = 5;
/** close() terminates the thread if it has not ended by then. */
const STOP_TIMEOUT_MS = 10_000;

export interface WalCheckpointerStats {
  readonly checkpoints: number;
  readonly partial: number;
  readonly failures: number;
}

/** What a complete checkpoint made durable (see the invariants). */
export interface DurableMark {
  /** Every batch with an id up to this is durable. */
  readonly seq: number;
  /** Every commit before this time (Date.now() clock) is durable. */
  readonly atMs: number;
}

export class WalCheckpointer {
  private readonly counters: BigInt64Array;
  private readonly exited: Promise<void>;
  private readonly channel: ThreadChannel<FromWalCheckpointer, ToWalCheckpointer>;
  private stopping = false;

  private constructor(
    private readonly worker: Worker,
    shared: SharedArrayBuffer,
  ) {
    this.counters = new BigInt64Array(shared);
    this.channel = workerChannel(worker);
    this.exited = new Promise((resolve) => {
      worker.once('exit', () => {
        resolve();
      });
    });
  }

  /**
   * Starts the thread and resolves once its connection is open. `onError` gets checkpoint
   * failures (the caller rate-limits its log); the appending thread goes on without help.
   */
  static async start(
    dbPath: string,
    onError: (message: string, code: string | null) => void,
    options: { readonly intervalMs?: number; readonly busyTimeoutMs?: number } = {},
  ): Promise<WalCheckpointer> {
    const shared = new SharedArrayBuffer(COUNTERS * BigInt64Array.BYTES_PER_ELEMENT);
    const counters = new BigInt64Array(shared);
    counters[COUNTER_DURABLE_SEQ] = -1n;
    counters[COUNTER_DURABLE_AT_MS] = -1n;
    const init: WalCheckpointerInit = {
      dbPath,
      intervalMs: options.intervalMs ?? DEFAULT_WAL_CHECKPOINT_INTERVAL_MS,
      busyTimeoutMs: options.busyTimeoutMs ?? 5_000,
      counters: shared,
    };
    const worker = startModuleWorker(import.meta.url, new URL('./wal-checkpointer-worker', import.meta.url), { workerData: init });
    const cp = new WalCheckpointer(worker, shared);
    // Checkpoint failures after start-up go to `onError` (the appending thread goes on without help).
    cp.channel.on((msg) => {
      if (msg.type === 'error') onError(msg.message, msg.code);
    });
    await whenWorkerReady(worker, 'WAL checkpointer');
    return cp;
  }

  /** The mark of the last complete checkpoint, or null before the first. */
  durableMark(): DurableMark | null {
    // T before S: the thread stores S before T (see the invariants).
    const atMs = Atomics.load(this.counters, COUNTER_DURABLE_AT_MS);
    const seq = Atomics.load(this.counters, COUNTER_DURABLE_SEQ);
    if (atMs < 0n || seq < 0n) return null;
    return { seq: Number(seq), atMs: Number(atMs) };
  }

  stats(): WalCheckpointerStats {
    return {
      checkpoints: Number(Atomics.load(this.counters, COUNTER_CHECKPOINTS)),
      partial: Number(Atomics.load(this.counters, COUNTER_PARTIAL)),
      failures: Number(Atomics.load(this.counters, COUNTER_FAILURES)),
    };
  }

  /**
   * Graceful: stops checkpointing and closes the connection; resolves when the thread has ended
   * (no checkpoint runs after that). Idempotent, and immediate when the thread already ended.
   */
  close(): Promise<void> {
    if (!this.stopping) {
      this.stopping = true;
      // Referenced again so that a caller awaiting the thread's end keeps the event loop alive.
      this.worker.ref();
      this.channel.post({ type: 'stop' });
      // A thread stuck in a checkpoint on a stalled disk must not hold up shutdown for ever.
      const timer = setTimeout(() => void this.worker.terminate(), STOP_TIMEOUT_MS);
      timer.unref();
      void this.exited.then(() => {
        clearTimeout(timer);
      });
    }
    return this.exited;
  }

  /** Forced: ends the thread now, even inside a checkpoint (a checkpoint is safe to interrupt: SQLite resumes it). Idempotent. */
  async destroy(): Promise<void> {
    this.stopping = true;
    await this.worker.terminate();
    await this.exited;
  }
}
