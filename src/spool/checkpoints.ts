import type { Chain } from './chain.js';
import type { SpaceReserve } from './space-reserve.js';
import { JOURNAL_SIZE_LIMIT_BYTES, sqliteCode, type SpoolStore } from './store.js';
import type { DurableMark } from './wal-checkpointer.js';

/**
 * When this spool instance checkpoints its WAL (TRUNCATE) and records the high-water mark: the
 * power-cut window of invariant 2 (spool.ts) and the removal of shredded keys' old pages from
 * the WAL (invariant 6) both depend on it. A commit or ack calls afterWrite(); an idle tick
 * covers the last commits before a quiet period; a background checkpointer thread
 * (wal-checkpointer.ts), when one is used, takes the periodic work off this thread.
 */

/**
 * Idle ticks per checkpoint interval. A commit made right after a checkpoint is covered by the
 * next one, due an interval later; on an idle spool only the tick notices, so the power-cut
 * window with NORMAL is the interval plus one tick period (a tick per interval would make it
 * up to two intervals, depending on the tick's phase). When nothing is uncheckpointed a tick
 * returns at once.
 */
const IDLE_TICKS_PER_INTERVAL = 4;
/**
 * A checkpoint of this thread's own that could not complete is tried again after this long,
 * doubling with each further failure up to the checkpoint interval (see checkpoint()).
 */
const CHECKPOINT_RETRY_MS = 50;
/**
 * How long such a checkpoint waits for readers and writers (busy_timeout) before answering
 * busy, except at close(): a reader holding an old snapshot for seconds (a `spool export` of a
 * live spool) must not stall the ingest thread for the full busy timeout on every try.
 */
const CHECKPOINT_BUSY_TIMEOUT_MS = 100;
/** SQLite's default wal_autocheckpoint (pages). */
const SQLITE_WAL_AUTOCHECKPOINT_PAGES = 1000;

/** The source of durable marks for useBackground() (WalCheckpointer). */
export interface BackgroundCheckpoints {
  durableMark(): DurableMark | null;
}

export interface CheckpointOptions {
  /** Interval between WAL checkpoints (TRUNCATE) and high-water-mark writes. */
  readonly intervalMs: number;
  readonly setInterval: (fn: () => void, ms: number) => unknown;
  readonly clearInterval: (handle: unknown) => void;
}

export class Checkpoints {
  private readonly intervalMs: number;
  private readonly setTick: (fn: () => void, ms: number) => unknown;
  private readonly clearTick: (handle: unknown) => void;
  private tickHandle: unknown = null;
  /** Commits since the last checkpoint (the idle tick checkpoints them). */
  private dirty = false;
  /** A key was shredded since the last complete checkpoint: its old pages are still in the WAL. */
  private shredPending = false;
  /** See useBackground(). */
  private background: BackgroundCheckpoints | null = null;
  private lastCheckpointMs: number;
  private lastHwmWriteMs = 0;
  /** Checkpoints run on this thread (close, shredding, and when the background checkpointer is behind or absent). */
  private inline = 0;
  /** Of those, the ones that could not complete (busy), and when the next try is due (see checkpoint()). */
  private busy = 0;
  private retryAtMs = 0;
  private failuresInRow = 0;

  constructor(
    private readonly store: SpoolStore,
    private readonly chain: Chain,
    private readonly reserve: SpaceReserve,
    options: CheckpointOptions,
  ) {
    this.intervalMs = options.intervalMs;
    this.setTick = options.setInterval;
    this.clearTick = options.clearInterval;
    this.lastCheckpointMs = store.clock();
  }

  /**
   * Starts the idle checkpoint tick. Without it, the last commits before an idle period would
   * wait in an unsynced WAL (synchronous=NORMAL) until the next write: the power-cut window
   * must not depend on traffic.
   */
  start(): void {
    if (!this.store.readOnly) this.tickHandle = this.setTick(() => this.tick(), Math.max(1, Math.floor(this.intervalMs / IDLE_TICKS_PER_INTERVAL)));
  }

  /** Stops the idle tick. Idempotent. */
  close(): void {
    if (this.tickHandle !== null) this.clearTick(this.tickHandle);
    this.tickHandle = null;
  }

  /** Keys were shredded: the next maintenance checkpoints (TRUNCATE) at once. */
  keysShredded(): void {
    this.shredPending = true;
  }

  /**
   * Hands the periodic checkpoint to a background checkpointer (WalCheckpointer, whose own
   * connection checkpoints every ~100 ms; null: this thread checkpoints again, as without one).
   * With one, this thread no longer runs the TRUNCATE checkpoint every interval — its copies
   * and fsyncs (tens of ms on a loaded disk) were the ingest worker's largest wait — and
   * SQLite's automatic checkpoint on this connection only fires once the WAL reaches the
   * journal size limit (64 MiB), as a safety valve. Instead:
   * - the high-water mark is written (at most once per interval) with the batch id the
   *   checkpointer's last complete checkpoint made durable (see DurableMark);
   * - the power-cut window is unchanged: when no complete background checkpoint covers a commit
   *   older than the interval, this thread checkpoints (TRUNCATE) as before;
   * - shredding a key and close() still checkpoint (TRUNCATE) here, so a shredded key's old
   *   pages leave the WAL at once.
   * The mark's time must be on this spool's clock (Date.now by default).
   */
  useBackground(source: BackgroundCheckpoints | null): void {
    this.store.assertOpen();
    if (this.store.readOnly) return;
    this.background = source;
    const db = this.store.db;
    const pageSize = db.pragma('page_size', { simple: true }) as number;
    db.pragma(`wal_autocheckpoint = ${source === null ? SQLITE_WAL_AUTOCHECKPOINT_PAGES : Math.max(SQLITE_WAL_AUTOCHECKPOINT_PAGES, Math.floor(JOURNAL_SIZE_LIMIT_BYTES / pageSize))}`);
  }

  /** Checkpoints this spool ran on its own thread, and how many of them found the WAL busy (retried). */
  stats(): { readonly inline: number; readonly busy: number } {
    return { inline: this.inline, busy: this.busy };
  }

  /** After a commit or ack: checkpoints (TRUNCATE) when due or after a key was shredded, then records the high-water mark. */
  afterWrite(): void {
    this.dirty = true;
    const now = this.store.clock();
    if (this.background !== null && !this.shredPending) this.followBackground(now);
    if (this.due(now)) this.checkpoint(false);
  }

  /**
   * Whether this thread should checkpoint now: a key was shredded, or commits are not known
   * checkpointed for the interval — but not before a checkpoint that could not complete is due
   * for its retry (see checkpoint()).
   */
  private due(now: number): boolean {
    if (now < this.retryAtMs) return false;
    return this.shredPending || now - this.lastCheckpointMs >= this.intervalMs;
  }

  /**
   * Takes in the background checkpointer's durable mark: commits before its time count as
   * checkpointed (lastCheckpointMs), and its batch id goes into the high-water mark. Returns the
   * batch id it covers (-1: none yet).
   */
  private followBackground(now: number): number {
    const mark = this.background?.durableMark() ?? null;
    if (mark === null) return -1;
    const at = Math.min(mark.atMs, now);
    if (at > this.lastCheckpointMs) this.lastCheckpointMs = at;
    if (mark.seq > this.chain.hwmMark && now - this.lastHwmWriteMs >= this.intervalMs) {
      this.lastHwmWriteMs = now;
      this.chain.writeHwm(mark.seq);
    }
    return mark.seq;
  }

  /** The idle tick: checkpoints commits made since the last checkpoint even when no further write comes. */
  private tick(): void {
    if (this.store.isClosed || (!this.dirty && !this.shredPending)) return;
    const now = this.store.clock();
    if (this.background !== null && !this.shredPending) {
      const covered = this.followBackground(now);
      try {
        // Everything committed is covered by a complete background checkpoint: nothing left to do until the next write.
        if (covered >= this.store.sequence('batches') && covered <= this.chain.hwmMark) {
          this.dirty = false;
          return;
        }
      } catch {
        // The checkpoint below reports a failing database.
      }
    }
    if (this.due(now)) this.checkpoint(false);
  }

  /**
   * TRUNCATE checkpoint: copies the whole WAL into the database file, syncs it and truncates the
   * WAL to zero bytes (so a shredded key's old pages leave it), then records the high-water
   * mark. Only a completed one (busy 0) counts: SQLite answers busy at once while another
   * connection checkpoints (the background checkpointer), and after busy_timeout while a reader
   * holds an older snapshot (waiting at most CHECKPOINT_BUSY_TIMEOUT_MS, except when forced).
   * Then — or on an error — the reasons stay (a pending shred, commits not checkpointed) and it
   * is tried again from the next commit or idle tick, CHECKPOINT_RETRY_MS later, doubling up to
   * the checkpoint interval while it keeps failing.
   */
  checkpoint(force: boolean): void {
    if (this.store.readOnly) return;
    this.inline++;
    const db = this.store.db;
    const busyTimeoutMs = this.store.busyTimeoutMs;
    const now = this.store.clock();
    const shortWait = !force && busyTimeoutMs > CHECKPOINT_BUSY_TIMEOUT_MS;
    try {
      const seq = this.store.sequence('batches');
      if (shortWait) db.pragma(`busy_timeout = ${CHECKPOINT_BUSY_TIMEOUT_MS}`);
      let r: { busy: number; log: number; checkpointed: number }[];
      try {
        r = this.walCheckpoint();
      } finally {
        if (shortWait) db.pragma(`busy_timeout = ${busyTimeoutMs}`);
      }
      if (r[0]?.busy === 0) {
        this.lastCheckpointMs = now;
        this.retryAtMs = 0;
        this.failuresInRow = 0;
        this.shredPending = false;
        this.dirty = false;
        // The database file is synced by a completed checkpoint, so `seq` is durable before the mark is written.
        this.chain.writeHwm(seq);
        this.reserve.ensure();
        return;
      }
      this.busy++;
    } catch (err) {
      this.store.rateLog.log('warn', 'checkpoint', { event: 'spool.checkpoint_failed', code: sqliteCode(err) }, 'spool WAL checkpoint failed');
    }
    this.retryAtMs = now + Math.min(CHECKPOINT_RETRY_MS * 2 ** this.failuresInRow, this.intervalMs);
    this.failuresInRow = Math.min(this.failuresInRow + 1, 30);
  }

  /** The TRUNCATE checkpoint; when the database file cannot grow to take the WAL (SQLITE_FULL), once more spending the space reserve. */
  private walCheckpoint(): { busy: number; log: number; checkpointed: number }[] {
    const run = (): { busy: number; log: number; checkpointed: number }[] => this.store.db.pragma('wal_checkpoint(TRUNCATE)') as { busy: number; log: number; checkpointed: number }[];
    try {
      return run();
    } catch (err) {
      if (!(sqliteCode(err) ?? '').startsWith('SQLITE_FULL')) throw err;
      const spent = this.reserve.spend(run, () => undefined);
      if (spent === null) throw err;
      return spent.value;
    }
  }
}
