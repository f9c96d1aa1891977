import { isSealflowError } from '../flow/errors.js';
import type { AppendResult } from '../flow/pipeline.js';
import type { RateLimitedLog } from '../observability/rate-limited-log.js';

/**
 * The one place on the ingest worker where every closed batch's outcome arrives (the
 * Batcher's onAppend and onError): committed (the drain is told, see `committed` in
 * messages.ts), dropped or evicting older batches (logged, rate-limited; the spool and the
 * batcher count them), or failed in the sink (logged; the batcher counts it dropped). What
 * else must see every batch (a loss ledger, an audit trail) belongs here.
 */
export class BatchOutcomes {
  private lastCommittedId = -1;
  private notifyQueued = false;

  constructor(
    private readonly log: RateLimitedLog,
    /** Called with the newest committed batch id, at most once per turn of the event loop. */
    private readonly onCommitted: (lastBatchId: number) => void,
  ) {}

  /** A batch reached the spool: committed, or dropped by it (quota, oversize, I/O, unserializable). */
  appended(r: AppendResult): void {
    if (r.droppedRecords > 0 || r.evictedRecords > 0) {
      this.log.log('warn', `spool-${r.dropReason ?? 'evict'}`, { dropped: r.droppedRecords, evicted: r.evictedRecords, reason: r.dropReason }, 'spool full or failing: records dropped/evicted (counted)');
    }
    if (r.id !== null) this.committed(r.id);
  }

  /** The spool threw for a batch (a bug, or a closed spool); the batcher counts its records as dropped. */
  failed(err: unknown, records: number): void {
    // Spool errors carry codes and counts, never record contents, so the message is safe to log.
    this.log.log('error', 'spool-append-error', { records, code: isSealflowError(err) ? err.code : 'unknown', err: (err as Error).message }, 'spool append failed; batch dropped (counted)');
  }

  /**
   * Coalesces commits: batches commit in groups and several per frame, and the drain needs only
   * to know that there is something new, so one notice per event-loop turn carries the newest id.
   */
  private committed(id: number): void {
    if (id > this.lastCommittedId) this.lastCommittedId = id;
    if (this.notifyQueued) return;
    this.notifyQueued = true;
    queueMicrotask(() => {
      this.notifyQueued = false;
      this.onCommitted(this.lastCommittedId);
    });
  }
}
