import { isSealflowError } from '../flow/errors.js';
import type { RecordLossReason } from '../flow/loss.js';
import type { AppendResult, DropReason } from '../flow/pipeline.js';
import type { RateLimitedLog } from '../observability/rate-limited-log.js';

/** The loss reason (src/flow/loss.ts) of each way the spool drops a batch. */
const LOSS_REASON: Readonly<Record<DropReason, RecordLossReason>> = {
  quota: 'quota_dropped',
  oversize: 'quota_dropped',
  'disk-full': 'disk_full',
  io: 'io_error',
  encode: 'internal_error',
  closed: 'stopped',
};

/** Records the spool lost, by loss reason (this thread's share of the loss ledger). */
export type SpoolLoss = Readonly<Partial<Record<RecordLossReason, number>>>;

/**
 * The one place on the ingest worker where every closed batch's outcome arrives (the
 * Batcher's onAppend and onError): committed (the drain is told, see `committed` in
 * messages.ts), dropped or evicting older batches (counted here by loss reason for the loss
 * ledger, and logged, rate-limited), or failed in the sink (likewise). What else must see every
 * batch (an audit trail) belongs here.
 */
export class BatchOutcomes {
  private lastCommittedId = -1;
  private notifyQueued = false;
  private readonly lost: Partial<Record<RecordLossReason, number>> = {};

  constructor(
    private readonly log: RateLimitedLog,
    /** Called with the newest committed batch id, at most once per turn of the event loop. */
    private readonly onCommitted: (lastBatchId: number) => void,
  ) {}

  /** A batch reached the spool: committed, or dropped by it (quota, oversize, I/O, unserializable). */
  appended(r: AppendResult): void {
    if (r.droppedRecords > 0) this.count(r.dropReason === null ? 'internal_error' : LOSS_REASON[r.dropReason], r.droppedRecords);
    if (r.evictedRecords > 0) {
      this.count('disk_full', r.evictedDiskFullRecords);
      this.count('quota_eviction', r.evictedRecords - r.evictedDiskFullRecords);
    }
    if (r.droppedRecords > 0 || r.evictedRecords > 0) {
      this.log.log('warn', `spool-${r.dropReason ?? 'evict'}`, { dropped: r.droppedRecords, evicted: r.evictedRecords, reason: r.dropReason }, 'spool full or failing: records dropped/evicted (counted)');
    }
    if (r.id !== null) this.committed(r.id);
  }

  /** The spool threw for a batch (a bug, or a closed spool); the batcher counts its records as dropped. */
  failed(err: unknown, records: number): void {
    this.count('internal_error', records);
    // Spool errors carry codes and counts, never record contents, so the message is safe to log.
    this.log.log('error', 'spool-append-error', { records, code: isSealflowError(err) ? err.code : 'unknown', err: (err as Error).message }, 'spool append failed; batch dropped (counted)');
  }

  /** Records lost so far, by reason. */
  loss(): SpoolLoss {
    return { ...this.lost };
  }

  private count(reason: RecordLossReason, n: number): void {
    if (n > 0) this.lost[reason] = (this.lost[reason] ?? 0) + n;
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
