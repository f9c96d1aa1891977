import type { BatchSource, DeliveryReceipt, LeasedBatch } from '../flow/pipeline.js';
import type { Chain } from './chain.js';
import type { Checkpoints } from './checkpoints.js';
import type { SpoolStatus } from './inspector.js';
import type { Keyring } from './keyring.js';
import { isExpired } from './retention.js';
import type { SpaceReserve } from './space-reserve.js';
import { BATCH_STATE_ACKED, BATCH_STATE_PARKED } from './spool-schema.js';
import { BATCH_WITH_PAYLOAD, MINUTE_MS, SCAN_PAGE_ROWS, type BatchRow, type SpoolStore } from './store.js';

/**
 * The spool's reader (the drain's BatchSource): leases the oldest ready batches, decrypted and
 * verified, as batch-format bytes it never decodes; a batch leaves storage only by ack
 * (invariant 3 of spool.ts), else it is released (leased again later) or parked.
 */

/** Park reasons are metadata shown by `spool status`; long strings are cut. */
const MAX_PARK_REASON_LENGTH = 200;
export const PARK_REASON_INTEGRITY = 'integrity';
/** Longest Fusion request id kept in the audit trail (ids are short tokens; more is not an id). */
const MAX_REQUEST_ID_LENGTH = 128;

/**
 * The park reason as the audit trail records it: a code, never free text (a Fusion error body
 * may quote what it rejected). With a receipt, `fusion-http-<status>`; else the caller's reason
 * when it is already a code, or 'other'.
 */
function parkReasonCode(reason: string, receipt: DeliveryReceipt | undefined): string {
  if (receipt !== undefined) return `fusion-http-${receipt.status}`;
  return /^[a-z][a-z0-9._-]{0,63}$/.test(reason) ? reason : 'other';
}

function requestIdOf(receipt: DeliveryReceipt | undefined): string | null {
  const id = receipt?.requestId ?? null;
  return id !== null && id.length <= MAX_REQUEST_ID_LENGTH && /^[\x21-\x7e]+$/.test(id) ? id : null;
}

export class SpoolReader implements BatchSource {
  /**
   * Delivered batches whose ack failed on a storage error (a full disk: deleting needs WAL
   * space too). They stay leased, so this instance never hands them out (uploads them) again,
   * and their acks are retried before each lease and at close. After a restart they are
   * leasable again: delivered once more (at-least-once), never lost.
   */
  private readonly ackPending = new Set<number>();
  /** Fusion's answer for each pending ack, recorded with the delivery when the ack is written. */
  private readonly pendingReceipts = new Map<number, DeliveryReceipt>();

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
    const update = { parked: false };
    store.writeQuietly('quarantine', () => {
      update.parked = this.parkRow(id, PARK_REASON_INTEGRITY, PARK_REASON_INTEGRITY);
    });
    if (update.parked) store.counters.quarantinedRecords += records;
  }

  /** Parks a ready batch and records it, in one transaction; false when it was not ready (gone, or parked already). */
  private parkRow(id: number, reason: string, code: string): boolean {
    return this.store.db.transaction((): boolean => {
      const row = this.store.q('SELECT records FROM batches WHERE id = ? AND state = 0').get(id) as { records: number } | undefined;
      if (row === undefined) return false;
      this.store.q('UPDATE batches SET state = 1, park_reason = ? WHERE id = ?').run(reason, id);
      this.store.audit.record({ kind: 'batch.parked', batch: id, records: row.records, reason: code });
      return true;
    }).immediate();
  }

  /**
   * Acknowledges a delivered batch: it is removed (and its epoch key shredded if it was the
   * last), and the delivery recorded with Fusion's answer. A batch already gone is a counted no-op.
   */
  ack(id: number, receipt?: DeliveryReceipt): void {
    this.store.assertOpen();
    this.settleAck(id, receipt);
    this.checkpoints.afterWrite();
  }

  /** Acks still pending after storage errors (see ackPending), oldest first; the first that fails again ends the round. */
  retryAcks(): void {
    if (this.ackPending.size === 0 || this.store.isClosed || this.store.readOnly) return;
    let acked = false;
    for (const id of [...this.ackPending].sort((a, b) => a - b)) {
      if (!this.settleAck(id, this.pendingReceipts.get(id))) break;
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
  private settleAck(id: number, receipt: DeliveryReceipt | undefined): boolean {
    const { store } = this;
    const outcome = { removed: true };
    const remove = (): void => {
      outcome.removed = store.db.transaction((): boolean => {
        const row = store.q('SELECT state, tag, records FROM batches WHERE id = ?').get(id) as { state: number; tag: Uint8Array; records: number } | undefined;
        if (row === undefined || row.state === BATCH_STATE_ACKED) return false;
        store.audit.record({ kind: 'batch.delivered', batch: id, records: row.records, chunks: receipt?.chunks ?? 1, status: receipt?.status ?? 200, requestId: requestIdOf(receipt) });
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
      if (receipt !== undefined) this.pendingReceipts.set(id, receipt);
      return false;
    }
    store.leased.delete(id);
    this.ackPending.delete(id);
    this.pendingReceipts.delete(id);
    if (!outcome.removed) store.counters.ackMisses++;
    return true;
  }

  /** Returns a leased batch to the queue (delivery failed; retry later). */
  release(id: number): void {
    this.store.assertOpen();
    this.store.leased.delete(id);
  }

  /** Keeps a batch (encrypted) out of the queue, e.g. rejected by the receiver; visible in status. */
  park(id: number, reason: string, receipt?: DeliveryReceipt): void {
    this.store.assertOpen();
    this.store.leased.delete(id);
    this.store.writeQuietly('park', () => this.parkRow(id, reason.slice(0, MAX_PARK_REASON_LENGTH), parkReasonCode(reason, receipt)));
  }

  /**
   * The batches held with `reason`, decrypted and verified (a held batch is never leased):
   * `sealflow attest` reads its canary batch back to search the disk for every form of it.
   */
  readHeld(reason: string): { id: number; batch: Uint8Array; records: number }[] {
    this.store.assertOpen();
    const { store } = this;
    const rows = store.db.transaction(() =>
      (store.q(`${BATCH_WITH_PAYLOAD} WHERE b.state = ? AND b.park_reason = ? ORDER BY b.id`).all(BATCH_STATE_PARKED, reason) as BatchRow[]).map((row) => ({
        row,
        prevTag: (store.q('SELECT tag FROM batches WHERE id < ? ORDER BY id DESC LIMIT 1').get(row.id) as { tag: Uint8Array } | undefined)?.tag ?? store.meta().anchor_tag,
      })),
    )();
    const out: { id: number; batch: Uint8Array; records: number }[] = [];
    for (const { row, prevTag } of rows) {
      const batch = this.chain.open(row, prevTag);
      if (typeof batch !== 'string') out.push({ id: row.id, batch, records: row.records });
    }
    return out;
  }

  /**
   * Removes every batch held with `reason` (SpoolOptions.holdNewBatches: attestation canaries)
   * without delivering it, and destroys the keys of the epochs they were sealed in at once
   * (those epochs hold nothing else: a holding instance seals only held batches). One
   * transaction; a TRUNCATE checkpoint follows so no older page copy stays in the WAL.
   */
  discardHeld(reason: string): { batches: number; records: number; epochs: number[] } {
    this.store.assertWritable();
    const { store } = this;
    const out = store.db.transaction(() => {
      const rows = store.q('SELECT id, tag, records, epoch FROM batches WHERE state = ? AND park_reason = ? ORDER BY id').all(BATCH_STATE_PARKED, reason) as { id: number; tag: Uint8Array; records: number; epoch: number }[];
      const epochs = new Set<number>();
      let records = 0;
      for (const row of rows) {
        store.audit.record({ kind: 'batch.discarded', batch: row.id, records: row.records, reason });
        this.chain.tombstone(row.id, row.tag);
        epochs.add(row.epoch);
        records += row.records;
      }
      this.chain.compactFront();
      return { batches: rows.length, records, epochs: this.keyring.shredNow([...epochs]) };
    }).immediate();
    this.checkpoints.checkpoint(true);
    return out;
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
