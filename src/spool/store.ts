import { chmodSync } from 'node:fs';
import Database from 'better-sqlite3';
import type { Logger } from 'pino';
import { NO_AUDIT, type AuditLog } from '../flow/audit.js';
import { SpoolError, SpoolErrorCode } from '../flow/errors.js';
import { RateLimitedLog } from '../observability/rate-limited-log.js';

/**
 * The spool's one store: the SQLite database (WAL) with its prepared statements, and the state
 * every part of one spool instance shares (its leases and its own counters). The keyring,
 * chain, checkpoints, writer, reader and inspector all work through it; see spool.ts for the
 * invariants they keep together.
 */

export type SynchronousMode = 'normal' | 'full' | 'extra';

export const SPOOL_DB_FILE = 'spool.db';
/** Times stored in columns are minutes (coarse, non-identifying). */
export const MINUTE_MS = 60_000;
/** Rows read per step while evicting, leasing, compacting or exporting. */
export const SCAN_PAGE_ROWS = 256;
/** 16 KiB pages: a sealed batch spans a quarter of the overflow pages it would with 4 KiB ones (less CPU per append, measured). */
const PAGE_SIZE_BYTES = 16_384;
/** WAL file is truncated back to at most this after a checkpoint. */
export const JOURNAL_SIZE_LIMIT_BYTES = 64 * 1024 * 1024;

export interface MetaRow {
  schema_version: number;
  spool_id: Uint8Array;
  kek_fp: Uint8Array;
  spool_key: Uint8Array;
  created_min: number;
  anchor_id: number;
  anchor_tag: Uint8Array;
  anchor_mac: Uint8Array;
  live_batches: number;
  live_records: number;
  live_bytes: number;
  evicted_batches: number;
  evicted_records: number;
  shredded_epochs: number;
  hwm_seen: number;
  rollback_expected: number | null;
  rollback_found: number | null;
  /** Added after schema version 1 (retention.ts): absent in a spool no writer has opened since. */
  expired_batches?: number;
  expired_records?: number;
  max_age_s?: number | null;
}

export interface BatchRow {
  id: number;
  format: number;
  epoch: number;
  state: number;
  records: number;
  bytes: number;
  created_min: number;
  attempts: number;
  prev_id: number;
  ack_mac: Uint8Array | null;
  nonce: Uint8Array;
  tag: Uint8Array;
  /** From the payloads table; null for tombstones (or when removed behind our back). */
  payload: Uint8Array | null;
}

/** Batch metadata with its sealed payload. */
export const BATCH_WITH_PAYLOAD = 'SELECT b.*, p.data AS payload FROM batches b LEFT JOIN payloads p ON p.id = b.id';

export function sqliteCode(err: unknown): string | null {
  const c = (err as { code?: unknown }).code;
  return typeof c === 'string' ? c : null;
}

/** Errors of the disk or of contention, which drop a batch (counted) instead of failing the caller. */
export function isStorageError(err: unknown): boolean {
  const c = sqliteCode(err);
  return c !== null && (c.startsWith('SQLITE_FULL') || c.startsWith('SQLITE_IOERR') || c.startsWith('SQLITE_BUSY') || c.startsWith('SQLITE_CANTOPEN') || c.startsWith('SQLITE_READONLY') || c.startsWith('SQLITE_LOCKED'));
}

export interface DatabaseOptions {
  readonly path: string;
  readonly create: boolean;
  readonly synchronous: SynchronousMode;
  readonly busyTimeoutMs: number;
  readonly maxDbBytes?: number | undefined;
}

/**
 * Opens (or creates) the database file and sets its pragmas; the caller closes it if anything
 * after this fails. SQLite's errors (a file that is not a database) are thrown as they are.
 */
export function openDatabase(options: DatabaseOptions): Database.Database {
  const dbPath = options.path;
  let db: Database.Database;
  try {
    db = new Database(dbPath, { fileMustExist: !options.create });
  } catch (err) {
    throw new SpoolError(SpoolErrorCode.Io, `cannot open the spool database ${dbPath}: ${(err as Error).message}`, { path: dbPath }, { cause: err });
  }
  try {
    try {
      chmodSync(dbPath, 0o600);
    } catch {
      // Best effort: the file holds only ciphertext; permissions are defence in depth.
    }
    db.pragma(`busy_timeout = ${Math.trunc(options.busyTimeoutMs)}`);
    // Takes effect only when the file is new (before WAL mode and the first table).
    db.pragma(`page_size = ${PAGE_SIZE_BYTES}`);
    db.pragma('journal_mode = WAL');
    db.pragma(`synchronous = ${options.synchronous.toUpperCase()}`);
    db.pragma('secure_delete = ON');
    db.pragma('temp_store = MEMORY');
    db.pragma(`journal_size_limit = ${JOURNAL_SIZE_LIMIT_BYTES}`);
    if (options.maxDbBytes !== undefined) {
      const pageSize = db.pragma('page_size', { simple: true }) as number;
      db.pragma(`max_page_count = ${Math.max(1, Math.floor(options.maxDbBytes / pageSize))}`);
    }
  } catch (err) {
    db.close();
    throw err;
  }
  return db;
}

export interface StoreOptions {
  readonly readOnly: boolean;
  readonly synchronous: SynchronousMode;
  readonly busyTimeoutMs: number;
  readonly clock: () => number;
  readonly logger: Logger;
  /** Where sealing, delivery, eviction, parking, shredding and rekeying are recorded, inside the transaction that does them. */
  readonly audit?: ((db: Database.Database) => AuditLog) | undefined;
}

export class SpoolStore {
  readonly path: string;
  readonly readOnly: boolean;
  readonly synchronous: SynchronousMode;
  readonly busyTimeoutMs: number;
  readonly clock: () => number;
  readonly logger: Logger;
  /** The audit trail bound to this connection (src/flow/audit.ts); NO_AUDIT when none was wired. */
  readonly audit: AuditLog;
  /** Repeated problems (I/O, quota, quarantine) are logged through this. */
  readonly rateLog: RateLimitedLog;
  /** Batch ids leased by this instance: leases live in memory only (invariant 3). */
  readonly leased = new Set<number>();
  /** Counted by this instance since it opened (shown by status()). */
  readonly counters = { quarantined: 0, quarantinedRecords: 0, ioErrors: 0, ackMisses: 0 };
  /** The SQLite code of the last storage error writeQuietly() swallowed (null: its last write succeeded). */
  lastWriteError: string | null = null;
  private readonly statements = new Map<string, Database.Statement>();
  private closed = false;

  constructor(
    readonly db: Database.Database,
    options: StoreOptions,
  ) {
    this.path = db.name;
    this.readOnly = options.readOnly;
    this.synchronous = options.synchronous;
    this.busyTimeoutMs = Math.trunc(options.busyTimeoutMs);
    this.clock = options.clock;
    this.logger = options.logger;
    this.audit = options.audit?.(db) ?? NO_AUDIT;
    this.rateLog = new RateLimitedLog(this.logger, { windowMs: 60_000, burst: 5, maxKeys: 64, now: this.clock });
  }

  /** A prepared statement, compiled once per instance. */
  q(sql: string): Database.Statement {
    let st = this.statements.get(sql);
    if (st === undefined) {
      st = this.db.prepare(sql);
      this.statements.set(sql, st);
    }
    return st;
  }

  meta(): MetaRow {
    return this.q('SELECT * FROM meta WHERE id = 1').get() as MetaRow;
  }

  /** The last id AUTOINCREMENT handed out for `table` (0 before the first). */
  sequence(table: 'batches' | 'epochs'): number {
    const row = this.q('SELECT seq FROM sqlite_sequence WHERE name = ?').get(table) as { seq: number } | undefined;
    return row?.seq ?? 0;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  assertOpen(): void {
    if (this.closed) throw new SpoolError(SpoolErrorCode.Closed, 'the spool is closed');
  }

  assertWritable(): void {
    this.assertOpen();
    if (this.readOnly) throw new SpoolError(SpoolErrorCode.Io, 'the spool was opened read-only');
  }

  /**
   * Runs a small metadata write; a storage error (disk full, I/O) is counted and logged instead
   * of thrown, so the drain keeps going (the write is retried naturally: an unacked batch stays).
   */
  writeQuietly(what: string, fn: () => unknown): boolean {
    try {
      fn();
      this.lastWriteError = null;
      return true;
    } catch (err) {
      if (!isStorageError(err)) throw err;
      this.lastWriteError = sqliteCode(err);
      this.counters.ioErrors++;
      this.rateLog.log('error', `io:${what}`, { event: 'spool.write_failed', what, code: sqliteCode(err) }, 'spool metadata write failed');
      return false;
    }
  }

  /** Closes the database; every later call fails with ERR_SPOOL_CLOSED. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.leased.clear();
    this.db.close();
  }
}
