import type { BatchSource, LeasedBatch } from '../flow/pipeline.js';
import type { Chain } from './chain.js';
import type { Checkpoints } from './checkpoints.js';
import type { SpoolStatus } from './inspector.js';
import type { Keyring } from './keyring.js';
import { isExpired } from './retention.js';
import type { SpaceReserve } from './space-reserve.js';
import { BATCH_STATE_ACKED } from './spool-schema.js';
import { MINUTE_MS, SCAN_PAGE_ROWS, type BatchRow, type SpoolStore } from './store.js';

/**
 * The spool's reader (the drain's BatchSource): leases the oldest ready batches, decrypted and
 * verified, as batch-format bytes it never decodes; a batch leaves storage only by ack
 * (invariant 3 of spool.ts), else it is released (leased again later) or parked.
 */

/** Park reasons are metadata shown by `spool status`; long strings are cut. */
const MAX_PARK_REASON_LENGTH = 200;
export const PARK_REASON_INTEGRITY = 'integrity';

export class SpoolReader implements BatchSource {
  /**
   * Delivered batches whose ack failed on a storage error (a full disk: deleting needs WAL
   * space too). They stay leased, so this instance never hands them out (uploads them) again,
   * and their acks are retried before each lease and at close. After a restart they are
   * leasable again: delivered once more (at-least-once), never lost.
   */
  private readonly ackPending = new Set<number>();

  constructor(
    private readonly store: SpoolStore,
    private readonly keyring: Keyring,
    private readonly chain: Chain,
    private readonly checkpoints: Checkpoints,
    private readonly reserve: SpaceReserve,
    /** The inspector's status (the drain shows it on /stats). */
    private readonly statusOf: () => SpoolStatus,
  ) {}

  /** Records of the batches this instance set aside because they failed authentication (also after close: for the loss ledger's last reading). */
  get quarantinedRecords(): number {
    return this.store.counters.quarantinedRecords;
  }

  /**
   * Leases up to `maxBatches` of the oldest ready batches not leased by this instance,
   * decrypted, decompressed and verified (authentication and record count). A batch that fails
   * verification is parked as 'integrity' (quarantined, counted) and not returned.
   */
  lease(maxBatches: number): LeasedBatch[] {
    this.store.assertOpen();
    this.retryAcks();
    const out: LeasedBatch[] = [];
    if (maxBatches <= 0) return out;
    const { store } = this;
    let after = 0;
    const page = store.q('SELECT * FROM batches WHERE state = 0 AND id > ? ORDER BY id LIMIT ?');
    const payload = store.q('SELECT data FROM payloads WHERE id = ?');
    const prevStmt = store.q('SELECT tag FROM batches WHERE id < ? ORDER BY id DESC LIMIT 1');
    while (out.length < maxBatches) {
      // One read transaction: the rows, their payloads, their predecessors' tags and the anchor
      // from one snapshot (another instance may evict from the front meanwhile). Payloads are
      // read only for batches not already leased here.
      const snapshot = store.db.transaction(() => {
        const rows = page.all(after, SCAN_PAGE_ROWS) as Omit<BatchRow, 'payload'>[];
        const meta = store.meta();
        const anchorTag = meta.anchor_tag;
        const maxAgeS = meta.max_age_s ?? null;
        const now = store.clock();
        const picked: { row: BatchRow; prevTag: Uint8Array }[] = [];
        let scannedTo: number | null = null;
        for (const r of rows) {
          scannedTo = r.id;
          if (store.leased.has(r.id)) continue;
          // Past the retention limit: never uploaded (the appender's Retention removes it).
          if (maxAgeS !== null && isExpired(r.created_min, maxAgeS, now)) continue;
          const data = (payload.get(r.id) as { data: Uint8Array } | undefined)?.data ?? null;
          picked.push({ row: { ...r, payload: data }, prevTag: (prevStmt.get(r.id) as { tag: Uint8Array } | undefined)?.tag ?? anchorTag });
          if (picked.length >= maxBatches - out.length) break;
        }
        return { picked, scannedTo };
      })();
      if (snapshot.scannedTo === null) break;
      after = snapshot.scannedTo;
      for (const { row, prevTag } of snapshot.picked) {
        const batch = this.chain.open(row, prevTag);
        if (typeof batch === 'string') {
          this.quarantine(row.id, row.records, batch);
          continue;
        }
        store.writeQuietly('attempts', () => store.q('UPDATE batches SET attempts = attempts + 1 WHERE id = ?').run(row.id));
        store.leased.add(row.id);
        out.push({ id: row.id, batch, recordCount: row.records, createdAtMs: row.created_min * MINUTE_MS, attempts: row.attempts + 1, bytes: row.bytes });
      }
    }
    return out;
  }

  private quarantine(id: number, records: number, reason: string): void {
    const { store } = this;
    store.counters.quarantined++;
    store.rateLog.log('error', 'quarantine', { event: 'spool.batch_quarantined', batchId: id, reason }, 'spool batch failed verification; parked as integrity');
    if (store.readOnly) return;
    // Its records are lost once it is set aside; a failed write leaves it to be quarantined (and counted) at the next lease.
    const update = { changes: 0 };
    store.writeQuietly('quarantine', () => {
      update.changes = store.q('UPDATE batches SET state = 1, park_reason = ? WHERE id = ? AND state = 0').run(PARK_REASON_INTEGRITY, id).changes;
    });
    if (update.changes === 1) store.counters.quarantinedRecords += records;
  }

  /** Acknowledges a delivered batch: it is removed (and its epoch key shredded if it was the last). A batch already gone is a counted no-op. */
  ack(id: number): void {
    this.store.assertOpen();
    this.settleAck(id);
    this.checkpoints.afterWrite();
  }

  /** Acks still pending after storage errors (see ackPending), oldest first; the first that fails again ends the round. */
  retryAcks(): void {
    if (this.ackPending.size === 0 || this.store.isClosed || this.store.readOnly) return;
    let acked = false;
    for (const id of [...this.ackPending].sort((a, b) => a - b)) {
      if (!this.settleAck(id)) break;
      acked = true;
    }
    if (acked) this.checkpoints.afterWrite();
  }

  /** Delivered batches whose ack is pending (see ackPending). */
  get pendingAcks(): number {
    return this.ackPending.size;
  }

  /**
   * Removes a delivered batch; false when a storage error left it (kept leased, its ack
   * pending). On a full disk it spends the space reserve (space-reserve.ts) and is tried once more.
   */
  private settleAck(id: number): boolean {
    const { store } = this;
    const outcome = { removed: true };
    const remove = (): void => {
      outcome.removed = store.db.transaction((): boolean => {
        const row = store.q('SELECT state, tag FROM batches WHERE id = ?').get(id) as { state: number; tag: Uint8Array } | undefined;
        if (row === undefined || row.state === BATCH_STATE_ACKED) return false;
        this.chain.tombstone(id, row.tag);
        this.chain.compactFront();
        this.keyring.shredEmptyEpochs(store.clock());
        return true;
      }).immediate();
    };
    let written = store.writeQuietly('ack', remove);
    if (!written && (store.lastWriteError ?? '').startsWith('SQLITE_FULL')) {
      written = this.reserve.spend(() => store.writeQuietly('ack', remove), () => this.checkpoints.checkpoint(false))?.value ?? false;
    }
    if (!written) {
      store.leased.add(id);
      this.ackPending.add(id);
      return false;
    }
    store.leased.delete(id);
    this.ackPending.delete(id);
    if (!outcome.removed) store.counters.ackMisses++;
    return true;
  }

  /** Returns a leased batch to the queue (delivery failed; retry later). */
  release(id: number): void {
    this.store.assertOpen();
    this.store.leased.delete(id);
  }

  /** Keeps a batch (encrypted) out of the queue, e.g. rejected by the receiver; visible in status. */
  park(id: number, reason: string): void {
    this.store.assertOpen();
    this.store.leased.delete(id);
    this.store.writeQuietly('park', () => this.store.q('UPDATE batches SET state = 1, park_reason = ? WHERE id = ? AND state = 0').run(reason.slice(0, MAX_PARK_REASON_LENGTH), id));
  }

  /** Puts parked batches back into the queue (all, or those parked for `reason`). Returns how many. */
  unpark(reason?: string): number {
    this.store.assertOpen();
    const r = reason === undefined
      ? this.store.q('UPDATE batches SET state = 0, park_reason = NULL WHERE state = 1').run()
      : this.store.q('UPDATE batches SET state = 0, park_reason = NULL WHERE state = 1 AND park_reason = ?').run(reason);
    return r.changes;
  }

  /** The spool's status (BatchSource: the drain shows it). */
  status(): SpoolStatus {
    return this.statusOf();
  }

  /** Ids currently leased by this instance. */
  leasedIds(): readonly number[] {
    return [...this.store.leased];
  }
}
