import type Database from 'better-sqlite3';
import type { Chain } from './chain.js';
import type { Keyring } from './keyring.js';
import { BATCH_STATE_ACKED } from './spool-schema.js';
import { MINUTE_MS, SCAN_PAGE_ROWS, type SpoolStore } from './store.js';

/**
 * Retention (`spool.maxAgeSeconds`): batches older than the limit are removed from the front of
 * the chain, delivered or not (a delivered batch is already gone: ack deletes it), and never
 * leased for upload afterwards (the reader skips them). Removal zeroes their rows
 * (secure_delete), the next TRUNCATE checkpoint drops the WAL's copies, and each epoch's data
 * key is destroyed once the epoch holds no batch (invariant 6 of spool.ts): crypto-shredding.
 *
 * The limit in force is recorded in the spool (meta.max_age_s) by the appender that enforces
 * it, so `sealflow spool status` and the drain's connection apply the same one. Ages are
 * judged conservatively at minute resolution (only the creation minute is stored): a batch is
 * expired once even the end of its creation minute is older than the limit. Removal stops at
 * the first batch that is not expired (front-only removal keeps the hash chain verifiable;
 * after a clock step back a younger batch can hold older ones behind it until it expires).
 */

export interface RetentionResult {
  /** Undelivered batches (ready or parked) shredded, and their records. */
  readonly batches: number;
  readonly records: number;
}

/** Columns added to meta after schema version 1 was released: added in place (no data changes). */
const RETENTION_COLUMNS: readonly [string, string][] = [
  ['expired_batches', 'INTEGER NOT NULL DEFAULT 0'],
  ['expired_records', 'INTEGER NOT NULL DEFAULT 0'],
  ['max_age_s', 'INTEGER'],
];

/** Adds the retention columns to a spool created before them (idempotent; writers only; one IMMEDIATE transaction, so two instances opening at once cannot both add them). */
export function migrateRetentionColumns(db: Database.Database): void {
  const missing = (): [string, string][] => {
    const have = new Set((db.prepare('PRAGMA table_info(meta)').all() as { name: string }[]).map((c) => c.name));
    return RETENTION_COLUMNS.filter(([name]) => !have.has(name));
  };
  if (missing().length === 0) return;
  db.transaction(() => {
    for (const [name, type] of missing()) db.exec(`ALTER TABLE meta ADD COLUMN ${name} ${type}`);
  }).immediate();
}

/** Whether a batch created in minute `createdMin` is older than `maxAgeS` at `nowMs`. */
export function isExpired(createdMin: number, maxAgeS: number, nowMs: number): boolean {
  return (createdMin + 1) * MINUTE_MS <= nowMs - maxAgeS * 1000;
}

export class Retention {
  constructor(
    private readonly store: SpoolStore,
    private readonly chain: Chain,
    private readonly keyring: Keyring,
    /** Called after rows were removed: their WAL copies go with the next TRUNCATE checkpoint. */
    private readonly onRemoved: () => void,
  ) {}

  /** The limit recorded in the spool (seconds), or null: none. */
  limitS(): number | null {
    return this.store.meta().max_age_s ?? null;
  }

  /** Records the limit in force (the appender's configuration); null: none. */
  setLimit(maxAgeS: number | null): void {
    this.store.assertWritable();
    if (this.limitS() === maxAgeS) return;
    this.store.q('UPDATE meta SET max_age_s = ? WHERE id = 1').run(maxAgeS);
  }

  /** Shreds the expired batches at the front of the chain; returns what was removed (nothing without a limit). */
  expire(nowMs: number): RetentionResult {
    this.store.assertWritable();
    const { store } = this;
    const result = store.db
      .transaction((): RetentionResult => {
        const limit = this.limitS();
        if (limit === null) return { batches: 0, records: 0 };
        const page = store.q('SELECT id, state, records, created_min, tag FROM batches WHERE id > ? ORDER BY id LIMIT ?');
        let last: { id: number; tag: Uint8Array } | null = null;
        let first: number | null = null;
        let batches = 0;
        let records = 0;
        let after = 0;
        scan: for (;;) {
          const rows = page.all(after, SCAN_PAGE_ROWS) as { id: number; state: number; records: number; created_min: number; tag: Uint8Array }[];
          if (rows.length === 0) break;
          for (const row of rows) {
            if (!isExpired(row.created_min, limit, nowMs)) break scan;
            after = row.id;
            last = { id: row.id, tag: row.tag };
            if (row.state !== BATCH_STATE_ACKED) {
              first ??= row.id;
              batches++;
              records += row.records;
            }
            store.leased.delete(row.id);
          }
        }
        if (last === null) return { batches: 0, records: 0 };
        this.chain.removeThrough(last.id, last.tag);
        store.q('UPDATE meta SET expired_batches = expired_batches + ?, expired_records = expired_records + ? WHERE id = 1').run(batches, records);
        if (batches > 0) store.audit.record({ kind: 'batch.expired', firstBatch: first ?? last.id, lastBatch: last.id, batches, records, maxAgeSeconds: limit });
        this.keyring.shredEmptyEpochs(nowMs);
        return { batches, records };
      })
      .immediate();
    if (result.batches > 0) this.onRemoved();
    return result;
  }
}
