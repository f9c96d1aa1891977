import { statSync } from 'node:fs';
import type { Chain, Rollback } from './chain.js';
import type { Checkpoints } from './checkpoints.js';
import type { Keyring } from './keyring.js';
import { BATCH_STATE_ACKED } from './spool-schema.js';
import { BATCH_WITH_PAYLOAD, MINUTE_MS, SCAN_PAGE_ROWS, type BatchRow, type SpoolStore, type SynchronousMode } from './store.js';

/**
 * The spool's inspector (`sealflow spool` and `rekey`, and /stats): counts without flow data,
 * the walk that verifies the whole chain, the export of every verifiable batch, and key
 * rotation (rewrapping every key under the current KEK).
 */

export interface SpoolStatus {
  readonly spoolId: string;
  readonly batches: number;
  readonly records: number;
  readonly bytes: number;
  /** Size of spool.db + spool.db-wal on disk. */
  readonly fileBytes: number;
  readonly quotaBytes: number;
  /** bytes / quotaBytes. */
  readonly quotaUsed: number;
  readonly oldestAgeMs: number | null;
  /** The retention limit recorded in the spool (spool.maxAgeSeconds of the probe that writes it), ms; null: none. */
  readonly maxAgeMs: number | null;
  /** Batches and records shredded by the retention limit (delivered ones are gone already; these were not). */
  readonly expiredBatches: number;
  readonly expiredRecords: number;
  readonly lastBatchId: number;
  readonly epochs: number;
  readonly leased: number;
  readonly parkedBatches: number;
  readonly parkedRecords: number;
  readonly parkedByReason: Readonly<Record<string, number>>;
  readonly tombstones: number;
  readonly evictedBatches: number;
  readonly evictedRecords: number;
  readonly shreddedEpochs: number;
  /** Since this instance opened: batches that failed authentication when read, and the records of those set aside. */
  readonly quarantined: number;
  readonly quarantinedRecords: number;
  readonly ioErrors: number;
  readonly ackMisses: number;
  readonly rollback: Rollback | null;
  readonly synchronous: SynchronousMode;
}

export interface VerifyFailure {
  readonly id: number;
  readonly reason: string;
}

export interface VerifyReport {
  readonly ok: boolean;
  readonly batches: number;
  readonly verified: number;
  readonly tombstones: number;
  readonly records: number;
  readonly anchorOk: boolean;
  readonly failures: readonly VerifyFailure[];
  /** Gaps in the chain: a batch whose recorded predecessor is not the batch before it. */
  readonly gaps: readonly { readonly afterId: number; readonly beforeId: number; readonly expectedPrevId: number }[];
  readonly rollback: Rollback | null;
  /** Problems with spool.hwm (missing, unreadable, bad MAC). */
  readonly hwmProblem: string | null;
}

/** A batch as `spool export` reads it: verified batch-format bytes, in chain order. */
export interface ExportedBatch {
  readonly id: number;
  readonly batch: Uint8Array;
  readonly recordCount: number;
}

export class SpoolInspector {
  constructor(
    private readonly store: SpoolStore,
    private readonly keyring: Keyring,
    private readonly chain: Chain,
    private readonly checkpoints: Checkpoints,
    private readonly quotaBytes: number,
  ) {}

  status(): SpoolStatus {
    const { store } = this;
    store.assertOpen();
    return store.db.transaction((): SpoolStatus => {
      const meta = store.meta();
      const parked = store.q('SELECT park_reason AS reason, count(*) AS n, total(records) AS r FROM batches WHERE state = 1 GROUP BY park_reason').all() as { reason: string | null; n: number; r: number }[];
      const parkedByReason: Record<string, number> = {};
      let parkedBatches = 0;
      let parkedRecords = 0;
      for (const p of parked) {
        parkedByReason[p.reason ?? ''] = p.n;
        parkedBatches += p.n;
        parkedRecords += p.r;
      }
      const oldest = store.q('SELECT created_min FROM batches WHERE state != 2 ORDER BY id LIMIT 1').get() as { created_min: number } | undefined;
      const epochs = (store.q('SELECT count(*) AS n FROM epochs').get() as { n: number }).n;
      const tombstones = (store.q('SELECT count(*) AS n FROM batches WHERE state = 2').get() as { n: number }).n;
      let fileBytes = 0;
      for (const f of [store.path, `${store.path}-wal`]) {
        try {
          fileBytes += statSync(f).size;
        } catch {
          // no WAL file right now
        }
      }
      return {
        spoolId: Buffer.from(this.keyring.spoolId).toString('hex'),
        batches: meta.live_batches,
        records: meta.live_records,
        bytes: meta.live_bytes,
        fileBytes,
        quotaBytes: this.quotaBytes,
        quotaUsed: meta.live_bytes / this.quotaBytes,
        oldestAgeMs: oldest === undefined ? null : Math.max(0, store.clock() - oldest.created_min * MINUTE_MS),
        maxAgeMs: meta.max_age_s === undefined || meta.max_age_s === null ? null : meta.max_age_s * 1000,
        expiredBatches: meta.expired_batches ?? 0,
        expiredRecords: meta.expired_records ?? 0,
        lastBatchId: store.sequence('batches'),
        epochs,
        leased: store.leased.size,
        parkedBatches,
        parkedRecords,
        parkedByReason,
        tombstones,
        evictedBatches: meta.evicted_batches,
        evictedRecords: meta.evicted_records,
        shreddedEpochs: meta.shredded_epochs,
        quarantined: store.counters.quarantined,
        quarantinedRecords: store.counters.quarantinedRecords,
        ioErrors: store.counters.ioErrors,
        ackMisses: store.counters.ackMisses,
        rollback: this.chain.rollback,
        synchronous: store.synchronous,
      };
    })();
  }

  /** Walks the whole chain: the anchor MAC, every batch's tag, chain links and the high-water mark. */
  verify(): VerifyReport {
    const { store, chain } = this;
    store.assertOpen();
    const failures: VerifyFailure[] = [];
    const gaps: { afterId: number; beforeId: number; expectedPrevId: number }[] = [];
    const walk = store.db.transaction(() => {
      const meta = store.meta();
      let batches = 0;
      let verified = 0;
      let tombstones = 0;
      let records = 0;
      let prevId = meta.anchor_id;
      let prevTag: Uint8Array = meta.anchor_tag;
      for (const row of store.q(`${BATCH_WITH_PAYLOAD} ORDER BY b.id`).iterate() as IterableIterator<BatchRow>) {
        batches++;
        if (row.prev_id !== prevId) gaps.push({ afterId: prevId, beforeId: row.id, expectedPrevId: row.prev_id });
        if (row.state === BATCH_STATE_ACKED) {
          tombstones++;
          if (!chain.ackValid(row.id, row.tag, row.ack_mac)) failures.push({ id: row.id, reason: 'marked acknowledged without the key (ack MAC does not verify): the batch was deleted' });
        } else {
          // Authentication and the record count; decoding is left to the reader of the bytes
          // (it would make verifying a large spool several times slower and proves nothing the tag does not).
          const opened = chain.open(row, prevTag);
          if (typeof opened === 'string') failures.push({ id: row.id, reason: opened });
          else {
            verified++;
            records += row.records;
          }
        }
        prevId = row.id;
        prevTag = row.tag;
      }
      // The chain's end: every id up to the sequence was committed, so the last row (or, with
      // none left, the anchor) must be the sequence's last id; otherwise the newest batches
      // were removed. After a recorded rollback the sequence was moved on on purpose.
      const seq = store.sequence('batches');
      if (prevId < seq && meta.rollback_expected === null) {
        failures.push({ id: seq, reason: `the newest batches ${prevId + 1}..${seq} are missing (removed from the end without the key)` });
      }
      return { batches, verified, tombstones, records, anchorOk: chain.anchorValid(meta) };
    });
    const { batches, verified, tombstones, records, anchorOk } = walk();
    const hwm = chain.readHwm();
    const hwmSeen = (store.q('SELECT hwm_seen FROM meta WHERE id = 1').get() as { hwm_seen: number }).hwm_seen === 1;
    let rollback = chain.rollback;
    if (hwm !== null && store.sequence('batches') < hwm) rollback = { expectedAtLeast: hwm, found: store.sequence('batches') };
    if (!anchorOk) failures.push({ id: 0, reason: 'chain anchor MAC does not verify (batches removed from the front without the key)' });
    return {
      ok: failures.length === 0 && gaps.length === 0 && rollback === null && anchorOk && !(hwmSeen && chain.hwmProblem !== null),
      batches,
      verified,
      tombstones,
      records,
      anchorOk,
      failures,
      gaps,
      rollback,
      hwmProblem: chain.hwmProblem,
    };
  }

  /**
   * Every verifiable batch in chain order, as verified batch-format bytes (for `spool
   * export`); batches that fail verification are reported to `onFailure` and skipped.
   */
  *exportBatches(onFailure?: (failure: VerifyFailure) => void): Iterable<ExportedBatch> {
    const { store } = this;
    store.assertOpen();
    let prevTag: Uint8Array = store.meta().anchor_tag;
    let after = 0;
    const page = store.q(`${BATCH_WITH_PAYLOAD} WHERE b.id > ? ORDER BY b.id LIMIT ?`);
    for (;;) {
      const rows = page.all(after, SCAN_PAGE_ROWS) as BatchRow[];
      if (rows.length === 0) return;
      for (const row of rows) {
        after = row.id;
        if (row.state !== BATCH_STATE_ACKED) {
          const opened = this.chain.open(row, prevTag);
          if (typeof opened === 'string') onFailure?.({ id: row.id, reason: opened });
          else yield { id: row.id, batch: opened, recordCount: row.records };
        }
        prevTag = row.tag;
      }
    }
  }

  /**
   * Rewraps the spool key and every epoch key under the current KEK (options.kek), so the
   * previous KEKs can be retired. Returns the number of epoch keys rewrapped.
   */
  rewrapAll(): number {
    this.store.assertWritable();
    const n = this.keyring.rewrapAll();
    this.checkpoints.checkpoint(true);
    return n;
  }

  /** Runs `PRAGMA integrity_check` (tests, `spool verify`). */
  integrityCheck(): string {
    this.store.assertOpen();
    const rows = this.store.db.pragma('integrity_check') as { integrity_check: string }[];
    return rows.map((r) => r.integrity_check).join('; ');
  }

  /** Rebuilds the database file (VACUUM), then truncates the WAL. */
  vacuum(): void {
    this.store.assertOpen();
    this.store.db.exec('VACUUM');
    this.checkpoints.checkpoint(true);
  }
}
