import { SpoolError, SpoolErrorCode } from '../flow/errors.js';
import { NO_SPAN, type AppendDone, type AppendResult, type BatchSpan } from '../flow/pipeline.js';
import type { RateLimitedLog } from '../observability/rate-limited-log.js';
import type { BatchCompressor } from './batch-compressor.js';
import { batchDigest, compressBatch, SEAL_FORMAT_NONE } from './compression.js';
import type { SynchronousMode } from './store.js';

/**
 * The writer's queue of batches between their arrival (enqueue) and their commit: each is
 * compressed on the compressor thread (or here), and they commit strictly in queue order (the
 * hash chain's order), in groups where a commit costs a WAL sync. `done` gets each result, in
 * that order, on this thread.
 */

/**
 * Batches at most in flight on the compressor thread; beyond, a new batch is compressed on the
 * appending thread (still committed in order). Bounds the serialized copies held in memory.
 */
const MAX_COMPRESSOR_JOBS = 4;
/** While jobs are out, results are also polled on a timer this often (the appending thread may be idle). */
const COMPRESSOR_POLL_MS = 1;
/**
 * Group commit of batches stored uncompressed (overload), and with synchronous=full of every
 * batch (see commitReady): such a batch is ready at once, and committing each on its own costs
 * one WAL sync per batch with synchronous=full (several ms each on a busy disk, on the thread
 * that is already behind) and a round of locks and WAL-index updates with normal. So it waits
 * for more — at most GROUP_COMMIT_MS, or until GROUP_COMMIT_BATCHES are ready — and the ready
 * batches commit in one transaction (one sync).
 * Durability is unchanged in kind: a batch is durable once its commit returns and `done`
 * reports it; before that it is lost on a crash like the Batcher's open batch.
 */
const GROUP_COMMIT_MS = 20;
const GROUP_COMMIT_BATCHES = 8;
/** Atomics.wait target for 1 ms sleeps while waiting for the compressor thread (never notified). */
const SLEEP_CELL = new Int32Array(new SharedArrayBuffer(4));

export interface CompressionStats {
  readonly offThread: number;
  readonly inline: number;
  readonly bypassed: number;
}

/** What the audit trail records of a batch besides its id: its plaintext digest and export-time span. */
export interface BatchFacts {
  readonly digest: string;
  readonly span: BatchSpan;
}

/** One queued batch. */
export interface QueuedBatch {
  readonly seq: number;
  readonly records: number;
  readonly span: BatchSpan;
  /** SHA-256 of the plaintext, set with `compressed`. */
  digest: string | null;
  /** Seal format of `compressed` (the spool's, or SEAL_FORMAT_NONE when compression was bypassed). */
  readonly format: number;
  compressed: Uint8Array | null;
  failed: Error | null;
  /** Set when its group has committed (see commitQueued); reported by commitQueued's loop. */
  committed?: AppendResult;
  readonly done: AppendDone;
}

/** A queued batch is ready to commit (compressed) or to report (failed). */
function isReady(e: QueuedBatch): boolean {
  return e.compressed !== null || e.failed !== null;
}

/** What commits the queue's batches (the writer). */
export interface QueueCommitter {
  /** Seals and commits one batch; storage errors drop it (counted). */
  store(compressed: Uint8Array, records: number, format: number, facts: BatchFacts): AppendResult;
  /** Commits ready batches in one transaction; null when it rolled back (they are then stored one by one). */
  commitGroup(group: readonly QueuedBatch[]): AppendResult[] | null;
  /** Counts a batch that could not be serialized or compressed as dropped. */
  encodeFailed(err: unknown, records: number): AppendResult;
}

export interface AppendQueueOptions {
  readonly sealFormat: number;
  readonly synchronous: SynchronousMode;
  /** Longest close(), append() and useCompressor() wait for batches out on the compressor thread before dropping them (counted). */
  readonly compressorWaitMs: number;
  readonly rateLog: RateLimitedLog;
  readonly isClosed: () => boolean;
}

export class AppendQueue {
  /** Queued batches in arrival order; committed strictly from the front. */
  private readonly queue: QueuedBatch[] = [];
  private waiters: (() => void)[] = [];
  private nextSeq = 0;
  private compressor: BatchCompressor | null = null;
  /** Sequence numbers of queued batches out on the compressor thread. */
  private readonly jobs = new Set<number>();
  private pollTimer: NodeJS.Timeout | null = null;
  /** Pending group commit of ready batches (see GROUP_COMMIT_MS). */
  private groupTimer: NodeJS.Timeout | null = null;
  private bypass = false;
  private readonly counts = { offThread: 0, inline: 0, bypassed: 0 };

  constructor(
    private readonly committer: QueueCommitter,
    private readonly options: AppendQueueOptions,
  ) {}

  /** Queues a batch (owning its buffer): stored as is under bypass, else compressed on the thread or here. */
  enqueue(plain: Uint8Array, records: number, done: AppendDone, span: BatchSpan = NO_SPAN): void {
    this.poll();
    const format = this.options.sealFormat;
    if (this.bypass || format === SEAL_FORMAT_NONE) {
      // Overloaded (or compression 'none'): store it as is rather than spend CPU the ingest path lacks.
      this.queue.push({ seq: this.nextSeq++, records, span, digest: batchDigest(plain), format: SEAL_FORMAT_NONE, compressed: plain, failed: null, done });
      if (format !== SEAL_FORMAT_NONE) this.counts.bypassed++;
      this.commitSoon();
      return;
    }
    const entry: QueuedBatch = { seq: this.nextSeq++, records, span, digest: null, format, compressed: null, failed: null, done };
    this.queue.push(entry);
    if (this.compressor?.alive !== true || this.jobs.size >= MAX_COMPRESSOR_JOBS) {
      this.counts.inline++;
      try {
        entry.digest = batchDigest(plain);
        entry.compressed = compressBatch(format, plain);
      } catch (err) {
        entry.failed = err as Error;
      }
      this.commitReady();
      return;
    }
    this.counts.offThread++;
    this.compressor.submit(entry.seq, format, plain);
    this.jobs.add(entry.seq);
    this.armPoll();
  }

  /** Queues a batch that could not be serialized: earlier batches keep their place, it is reported (dropped, counted) after them. */
  reject(records: number, err: unknown, done: AppendDone): void {
    this.queue.push({ seq: this.nextSeq++, records, span: NO_SPAN, digest: null, format: this.options.sealFormat, compressed: null, failed: err as Error, done });
    this.commitQueued();
  }

  /** Takes every result the compressor thread has finished and commits what is ready, in order. Cheap when nothing is out. */
  poll(): void {
    if (this.takeResults()) this.commitReady();
  }

  /** Lets queued batches compress on `compressor`'s thread (null: on this thread), after committing what is queued. */
  useCompressor(compressor: BatchCompressor | null): void {
    this.commitAll();
    this.compressor = compressor;
  }

  /** While on, batches are stored uncompressed (SEAL_FORMAT_NONE, still sealed). */
  setBypass(on: boolean): void {
    this.bypass = on;
  }

  /** Queued batches by where they were compressed: on the compressor thread, on this thread, or not at all (bypass). */
  stats(): CompressionStats {
    return { ...this.counts };
  }

  /** Resolves once every batch queued so far has been committed (or dropped) and reported. */
  settled(): Promise<void> {
    if (this.queue.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /**
   * Commits every queued batch now, in order. Batches out on the compressor thread are waited
   * for (at most compressorWaitMs); any that do not come back are dropped and counted.
   */
  commitAll(): void {
    if (this.queue.length === 0) return;
    // Batches out on the compressor thread were transferred there: wait for them (bounded).
    const deadline = Date.now() + this.options.compressorWaitMs;
    while (this.jobs.size > 0 && Date.now() < deadline) {
      if (!this.takeResults()) Atomics.wait(SLEEP_CELL, 0, 0, 1);
    }
    for (const entry of this.queue) {
      if (entry.compressed === null && entry.failed === null) entry.failed = new SpoolError(SpoolErrorCode.Io, 'the batch compressor thread did not return the batch in time');
    }
    // Late results, if any still come, are ignored.
    this.jobs.clear();
    this.commitQueued();
  }

  /** Commits what is queued (graceful) and stops the timers; the compressor is detached. */
  close(): void {
    this.commitAll();
    this.stopTimers();
    this.compressor = null;
  }

  /** Forced: batches still queued are dropped (counted) without waiting for the compressor thread. */
  destroy(): void {
    for (const entry of this.queue) entry.failed ??= new SpoolError(SpoolErrorCode.Closed, 'the spool was destroyed with the batch still queued');
    this.jobs.clear();
    this.commitQueued();
    this.stopTimers();
    this.compressor = null;
  }

  private stopTimers(): void {
    if (this.pollTimer !== null) clearTimeout(this.pollTimer);
    if (this.groupTimer !== null) clearTimeout(this.groupTimer);
    this.pollTimer = null;
    this.groupTimer = null;
  }

  /**
   * Commits what is ready at the front of the queue. With synchronous=full (or extra) a commit
   * costs a WAL fsync (~10 ms on a busy disk, measured ~14% of the ingest worker's wall time at
   * 1.75 M records/s), so compressed batches also wait for a group like uncompressed ones (see
   * GROUP_COMMIT_MS): 20 ms more (a timer on this thread, later while it is busy) before they
   * are durable and reported. With normal a commit does not sync, and they commit at once.
   */
  private commitReady(): void {
    if (this.options.synchronous === 'normal') {
      this.commitQueued();
      return;
    }
    if (this.readyAtFront() > 0) this.commitSoon();
  }

  /** Moves finished compressor results into their queue entries; true when there was any. */
  private takeResults(): boolean {
    if (this.jobs.size === 0 || this.compressor === null) return false;
    let r = this.compressor.poll();
    if (r === undefined) {
      if (this.compressor.alive) return false;
      // The thread ended with batches still out: they are lost (dropped and counted, never
      // waited for), and later batches compress on this thread.
      this.options.rateLog.log('error', 'compressor', { event: 'spool.compressor_ended', batches: this.jobs.size }, 'batch compressor thread ended; its pending batches are dropped (counted) and compression continues on this thread');
      for (const e of this.queue) if (this.jobs.has(e.seq)) e.failed = new SpoolError(SpoolErrorCode.Io, 'the batch compressor thread ended before returning the batch');
      this.jobs.clear();
      this.compressor = null;
      return true;
    }
    while (r !== undefined) {
      // A seq still in `jobs` belongs to a queued batch not yet compressed (commitAll clears both together).
      if (this.jobs.delete(r.seq)) {
        const seq = r.seq;
        const entry = this.queue.find((e) => e.seq === seq);
        if (entry !== undefined) {
          if (r.out !== null && r.digest !== null) {
            entry.compressed = r.out;
            entry.digest = r.digest;
          } else entry.failed = new SpoolError(SpoolErrorCode.Format, `batch compression failed: ${r.error ?? 'unknown error'}`);
        }
      }
      r = this.compressor.poll();
    }
    return true;
  }

  private armPoll(): void {
    if (this.pollTimer !== null) return;
    this.pollTimer = setTimeout(() => {
      this.pollTimer = null;
      if (this.options.isClosed()) return;
      this.poll();
      if (this.jobs.size > 0) this.armPoll();
    }, COMPRESSOR_POLL_MS);
  }

  /** Ready batches at the front of the queue not yet committed by a group. */
  private readyAtFront(): number {
    let k = 0;
    for (const e of this.queue) {
      if (!isReady(e) || e.committed !== undefined) break;
      k++;
    }
    return k;
  }

  /** Commits the ready batches now when GROUP_COMMIT_BATCHES are waiting, else within GROUP_COMMIT_MS. */
  private commitSoon(): void {
    if (this.readyAtFront() >= GROUP_COMMIT_BATCHES) {
      this.commitQueued();
      return;
    }
    this.armGroupTimer();
  }

  private armGroupTimer(): void {
    this.groupTimer ??= setTimeout(() => {
      this.groupTimer = null;
      if (!this.options.isClosed()) this.commitQueued();
    }, GROUP_COMMIT_MS);
  }

  /**
   * Commits (or drops) the batches at the front of the queue while they are ready, and reports
   * each to its `done` in order; wakes settled() when the queue empties. Two or more ready ones
   * commit as a group first (one transaction); should the group roll back, nothing is marked and
   * each is stored on its own, with the single-batch handling of storage errors (disk full:
   * evict and retry; I/O: drop and count). A `done` that throws leaves the rest queued, reported
   * on the next call.
   */
  private commitQueued(): void {
    if (this.groupTimer !== null) {
      clearTimeout(this.groupTimer);
      this.groupTimer = null;
    }
    const ready = this.readyAtFront();
    if (ready >= 2) {
      const group = this.queue.slice(0, ready);
      const results = this.committer.commitGroup(group);
      if (results !== null) {
        for (const [i, e] of group.entries()) {
          const r = results[i];
          if (r !== undefined) e.committed = r;
        }
      }
    }
    let head = this.queue[0];
    try {
      while (head !== undefined && isReady(head)) {
        this.queue.shift();
        const { compressed, failed, records, format, committed, span, digest } = head;
        settle(head.done, () => committed ?? (compressed !== null ? this.committer.store(compressed, records, format, { span, digest: digest ?? '' }) : this.committer.encodeFailed(failed, records)));
        head = this.queue[0];
      }
    } finally {
      // A `done` threw (it propagates to the caller): what is ready behind it is committed and reported soon, not left waiting for the next batch.
      head = this.queue[0];
      if (head !== undefined && isReady(head)) this.armGroupTimer();
    }
    if (this.queue.length === 0 && this.waiters.length > 0) {
      const waiters = this.waiters;
      this.waiters = [];
      for (const w of waiters) w();
    }
  }
}

/** Runs `step` and reports its result or exception to `done`; an exception thrown by `done` itself is not caught. */
function settle(done: AppendDone, step: () => AppendResult): void {
  let result: AppendResult;
  try {
    result = step();
  } catch (err) {
    done(err, null);
    return;
  }
  done(null, result);
}
