import { closeSync, existsSync, openSync, renameSync, statfsSync, unlinkSync, writeSync } from 'node:fs';
import { threadId } from 'node:worker_threads';
import type { RateLimitedLog } from '../observability/rate-limited-log.js';

/**
 * Space the spool keeps allocated next to its database (`spool.reserve`, zeros) and gives back
 * when the filesystem is full.
 *
 * SQLite needs free space to delete as well as to insert: a transaction's pages go to the WAL
 * first, and secure_delete rewrites every freed page. On a full disk the very writes that make
 * room — the drain's acks, drop-oldest's eviction, the checkpoint that moves the WAL into the
 * database file — fail like the rest, and the spool would stay full (and the drain deliver
 * without being able to delete) after the uplink returns. So on SQLITE_FULL those steps, and
 * only those, spend the reserve (spend()): give it back, retry once, checkpoint (TRUNCATE) so
 * the WAL's space returns to the filesystem, and take the reserve again at once. What they free
 * stays inside the database file (its pages are reused by later batches). New batches never
 * spend it: they could take the last space, and the next checkpoint (which must grow the
 * database file to take their WAL frames) would find none. A reserve that could not be taken
 * again (a checkpoint blocked by a reader) is made after a later completed checkpoint, once the
 * filesystem has room for it twice over (ensure()). While it is spent, or the filesystem is
 * full, the writer keeps the database file from growing (roomToGrow(): see writer.ts), so the
 * space the checkpoints return comes back to the reserve first.
 *
 * One file for every spool instance on the directory (the ingest worker's and the drain's):
 * releasing is an unlink, making it a temp file renamed into place.
 */
export const SPOOL_RESERVE_FILE = 'spool.reserve';
const CHUNK_BYTES = 64 * 1024;

export class SpaceReserve {
  private released = 0;
  /** Spent and not yet taken again: taken back as soon as its size is free (not twice it). */
  private owed = false;

  constructor(
    readonly path: string,
    /** 0: no reserve. */
    readonly bytes: number,
    private readonly log: RateLimitedLog,
  ) {}

  /** Times this instance gave the reserve back. */
  get releases(): number {
    return this.released;
  }

  /**
   * Runs `free` (a step that frees space and failed for lack of it) with the reserve given back,
   * then `settle` (a TRUNCATE checkpoint: the WAL's space returns), then takes the reserve again.
   * Null when there was no reserve to give (`free` did not run).
   */
  spend<T>(free: () => T, settle: () => void): { readonly value: T } | null {
    if (!this.release()) return null;
    try {
      return { value: free() };
    } finally {
      try {
        settle();
      } catch {
        // The checkpoint reports its own failures; the reserve is made later then.
      }
      this.make(1);
    }
  }

  /** Makes the reserve when it is missing and the filesystem has twice its size free (its size, when it was spent). Never throws. */
  ensure(): void {
    this.make(this.owed ? 1 : 2);
  }

  /** Whether the database may grow again: the reserve is there (made now if it can be) and as much again is free. */
  roomToGrow(): boolean {
    if (this.bytes <= 0) return true;
    this.ensure();
    if (this.owed || !existsSync(this.path)) return false;
    try {
      return this.available() >= this.bytes;
    } catch {
      return false;
    }
  }

  private available(): number {
    const fs = statfsSync(this.path.slice(0, this.path.lastIndexOf('/') + 1) || '.');
    return fs.bavail * fs.bsize;
  }

  /** Gives the reserve back to the filesystem. True when there was one to give. */
  release(): boolean {
    if (this.bytes <= 0) return false;
    try {
      unlinkSync(this.path);
    } catch {
      return false;
    }
    this.released++;
    this.owed = true;
    this.log.log('warn', 'reserve-released', { event: 'spool.reserve_released', bytes: this.bytes }, 'filesystem full: released the spool\'s space reserve so that acks, eviction and checkpoints can free space');
    return true;
  }

  /** Makes the reserve when it is missing and `times` its size is free. Never throws. */
  private make(times: number): void {
    if (this.bytes <= 0) return;
    if (existsSync(this.path)) {
      this.owed = false;
      return;
    }
    const tmp = `${this.path}.${process.pid}.${threadId}.tmp`;
    try {
      if (this.available() < times * this.bytes) return;
      const fd = openSync(tmp, 'w', 0o600);
      try {
        const zeros = Buffer.alloc(CHUNK_BYTES);
        for (let at = 0; at < this.bytes; at += CHUNK_BYTES) writeSync(fd, zeros, 0, Math.min(CHUNK_BYTES, this.bytes - at), at);
      } finally {
        closeSync(fd);
      }
      renameSync(tmp, this.path);
      this.owed = false;
    } catch (err) {
      try {
        unlinkSync(tmp);
      } catch {
        // nothing to remove
      }
      this.log.log('warn', 'reserve-failed', { event: 'spool.reserve_failed', code: (err as NodeJS.ErrnoException).code }, 'cannot make the spool\'s space reserve; retried after the next checkpoint');
    }
  }
}
