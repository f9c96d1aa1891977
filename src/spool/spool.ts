import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type Database from 'better-sqlite3';
import type { Logger } from 'pino';
import { DEFAULTS } from '../config/defaults.js';
import type { AuditLog } from '../flow/audit.js';
import { SpoolError, SpoolErrorCode } from '../flow/errors.js';
import { silentLogger } from '../observability/logger.js';
import { anchorMac, Chain, SPOOL_HWM_FILE, ZERO_TAG } from './chain.js';
import { Checkpoints } from './checkpoints.js';
import { sealFormatOf, type Compression } from './compression.js';
import { DecoderStateStore } from './decoder-state.js';
import { SpoolInspector } from './inspector.js';
import { Keyring, spoolKeyAd } from './keyring.js';
import { SpoolReader } from './reader.js';
import { migrateRetentionColumns, Retention } from './retention.js';
import { SPOOL_RESERVE_FILE, SpaceReserve } from './space-reserve.js';
import { KDF_ANCHOR, Kek, randomBytes, randomKey, sodiumReady, subkey, wipe } from './spool-crypto.js';
import { SCHEMA_SQL, SPOOL_SCHEMA_VERSION } from './spool-schema.js';
import { MINUTE_MS, openDatabase, SPOOL_DB_FILE, SpoolStore, sqliteCode, type MetaRow, type SynchronousMode } from './store.js';
import { SpoolWriter, type FullPolicy } from './writer.js';

/**
 * The encrypted spool: a durable FIFO of sealed batches in SQLite (WAL). Its batches are
 * batch-format bytes (src/batch) it compresses, seals and stores without reading them.
 *
 * One store (store.ts: the database, its statements, this instance's leases and counters), and
 * over it, each file one concern:
 *   keyring.ts      KEKs, the spool key and its subkeys, epoch data keys, shredding   (6)
 *   chain.ts        sealing and opening in place, anchor, tombstones, high-water mark (4, 5)
 *   checkpoints.ts  WAL checkpoints and the high-water mark's writes                  (2, 6)
 *   space-reserve.ts  space given back on a full disk so acks and eviction still run
 *   writer.ts       append, quota and eviction; append-queue.ts: compressor queue and
 *                   group commit (the ingest worker's BatchSink)                      (1–3, 7)
 *   reader.ts       lease, ack, release, park (the drain's BatchSource)               (3)
 *   retention.ts    age limit: expired batches shredded from the front, never leased   (3, 6)
 *   inspector.ts    status, verify, export, rekey (`sealflow spool`, `rekey`)
 *   decoder-state.ts  the sealed decoder-state blob
 * Spool.open() builds them in that order and close() takes them down in reverse.
 *
 * Invariants
 * 1. Nothing but ciphertext and non-identifying metadata reaches the database (see
 *    spool-schema.ts); plaintext batches exist only in memory.
 * 2. A batch is durable once `append` returns its id (its transaction committed) against a
 *    process crash (SIGKILL, OOM, panic) in every mode. Against a power cut or kernel crash:
 *    with synchronous=FULL (default) none; with NORMAL commits since the last completed
 *    checkpoint (this thread's, or a complete one of a background checkpointer, see
 *    Checkpoints.useBackground) can be lost: one is due `checkpointIntervalMs` (1 s) after the
 *    last, checked at each commit and by an idle tick four times per interval, so ≤ 1.25
 *    intervals (while a reader pins the WAL no checkpoint completes, and the window grows).
 *    Records still in the Batcher (≤ its max age, 1 s by default) or queued for a group commit
 *    (≤ 20 ms) are not yet committed in either mode. So the power-cut window is ≤ batch age with
 *    FULL (1 s by default), ≤ batch age + 1.25 checkpoint intervals (2.25 s) with NORMAL.
 * 3. Batches leave storage only by `ack` (delivered), quota eviction or retention expiry
 *    (both counted) or never; an expired batch is never leased again.
 *    Leases live in this instance's memory: after a crash every unacked batch is leasable.
 * 4. Batch ids come from AUTOINCREMENT and are never reused (also after a detected rollback,
 *    the sequence is moved past the high-water mark).
 * 5. Hash chain: each batch is sealed (XChaCha20-Poly1305, random 24-byte nonce) with
 *    associated data  format ‖ spool id ‖ batch id ‖ epoch ‖ tag of the previous batch  (by id).
 *    Chain rules for removal:
 *    - Rows are physically removed only from the front of the chain (ack of the oldest batch,
 *      quota eviction). The last removed batch (id, tag) becomes the anchor, MAC'd with a key
 *      derived from the spool key; the first remaining batch is verified against it.
 *    - An out-of-order ack turns its row into a tombstone: payload deleted, tag kept (the next
 *      batch's associated data needs it), plus an ack MAC proving a key holder acked it. A
 *      tombstone is removed once it reaches the front, and only if its ack MAC verifies.
 *    - The chain must end at the last id the sequence handed out.
 *    Hence: an altered byte, swapped batches or a deleted middle batch fail a batch's
 *    authentication; batches deleted from the front without the key fail the anchor; a forged
 *    tombstone fails its ack MAC; the newest batches deleted leave the chain short of the
 *    sequence; and an older database file restored is caught by the high-water mark file
 *    (spool.hwm, MAC'd, written after a completed checkpoint — at most once per interval from a
 *    background checkpointer's durable mark; see high-water-mark.ts).
 * 6. Each epoch (default 1 h) has a random data key stored only wrapped by the KEK. When an
 *    epoch has ended and holds no live batch its key row is deleted (secure_delete zeroes it,
 *    and a TRUNCATE checkpoint follows, retried until it completes, which removes the row's
 *    older copies from the WAL) so its batches are unrecoverable from any disk remnant.
 * 7. Several instances on the same file (an appending worker thread and a draining main
 *    thread) are supported: every mutation is one short IMMEDIATE transaction, and an append
 *    reads the chain's end inside its transaction, so even concurrent appenders stay chained.
 */

export interface SpoolOptions {
  /** Data directory; the spool is `<dir>/spool.db` (+ -wal, -shm) and `<dir>/spool.hwm`. */
  readonly dir: string;
  /** The key-encryption key (32 bytes), see resolveKek(). */
  readonly kek: Uint8Array;
  /** Earlier KEKs still accepted for unwrapping during a rotation. */
  readonly previousKeks?: readonly Uint8Array[];
  /** Byte quota over the stored batches (ciphertext + nonce + tag). Default: the spool.quotaBytes setting's. */
  readonly quotaBytes?: number;
  /** What to do when a new batch does not fit the quota. Default: the spool.fullPolicy setting's. */
  readonly fullPolicy?: FullPolicy;
  /** SQLite synchronous mode (see invariant 2). Default: the spool.synchronous setting's (full). */
  readonly synchronous?: SynchronousMode;
  /** Compression of new batches (both are always readable). Default 'brotli'. */
  readonly compression?: Compression;
  /** Lifetime of an epoch data key. Default: the spool.epochSeconds setting's. */
  readonly epochMs?: number;
  /** Interval between WAL checkpoints (TRUNCATE) and high-water-mark writes. Default 1 s. */
  readonly checkpointIntervalMs?: number;
  /** Create the spool when the directory holds none. Default true; inspection commands pass false. */
  readonly create?: boolean;
  /** Never modify the spool (inspection commands): no rewrapping, no checkpoint, no rollback repair. */
  readonly readOnly?: boolean;
  /**
   * Hard cap on the database file (PRAGMA max_page_count), a safety net below the disk's
   * size; reaching it behaves like a full disk (evict-and-retry or drop, counted). Default none.
   */
  readonly maxDbBytes?: number;
  /**
   * Retention limit to record and enforce (spool.maxAgeSeconds; null: none). Omit to leave the
   * recorded one as it is (inspection commands, the drain's connection).
   */
  readonly maxAgeSeconds?: number | null;
  /** Space kept allocated in the directory and given back on a full disk (space-reserve.ts). Default: the spool.reserveBytes setting's; 0: none. */
  readonly reserveBytes?: number;
  /** SQLite busy timeout for contention between instances. Default 5 s. */
  readonly busyTimeoutMs?: number;
  /** Longest close(), append() and useCompressor() wait for batches out on the compressor thread before dropping them (counted). Default 10 s. */
  readonly compressorWaitMs?: number;
  /**
   * Binds the audit trail (src/flow/audit.ts) to this instance's database connection: every
   * sealing, delivery, parking, eviction, shredding and rekeying is recorded in the transaction
   * that does it. The composition root wires it (src/audit/trail.ts); none: nothing recorded.
   */
  readonly audit?: (db: Database.Database) => AuditLog;
  /**
   * Commit this instance's batches already parked with this reason, so no drain ever leases
   * them (`sealflow attest`'s canaries); removed by SpoolReader.discardHeld. Default: none.
   */
  readonly holdNewBatches?: string;
  readonly clock?: () => number;
  /** Timer for the idle checkpoint tick (tests inject their own). Defaults to an unref'd setInterval. */
  readonly setInterval?: (fn: () => void, ms: number) => unknown;
  readonly clearInterval?: (handle: unknown) => void;
  readonly logger?: Logger;
}

export type { AppendDone, AppendResult, LeasedBatch } from '../flow/pipeline.js';
export type { CompressionStats } from './append-queue.js';
export type { BackgroundCheckpoints } from './checkpoints.js';
export { SEAL_FORMAT_BROTLI, SEAL_FORMAT_DEFLATE, SEAL_FORMAT_NONE, type Compression } from './compression.js';
export type { ExportedBatch, SpoolStatus, VerifyFailure, VerifyReport } from './inspector.js';
export { PARK_REASON_INTEGRITY } from './reader.js';
export type { SynchronousMode } from './store.js';
export type { FullPolicy } from './writer.js';
export { batchAd } from './chain.js';
export { SPOOL_DB_FILE, SPOOL_HWM_FILE, SPOOL_RESERVE_FILE };

/*
 * The settings' defaults come from the schema (DEFAULTS). synchronous defaults to FULL: a
 * committed batch survives a power cut. NORMAL trades that for fewer fsyncs: in WAL mode a
 * commit is still safe from a process crash and the file is never corrupted, but commits
 * since the last checkpoint (≤ 1.25 × checkpointIntervalMs, 1.25 s, kept by the idle tick; see
 * invariant 2) can be lost to a power cut. FULL costs one WAL fsync per batch (2–4 ms of wall
 * time on this machine's disk; bench/spool.ts shows both).
 */
/**
 * Checkpoint (TRUNCATE) at least this often: with synchronous=NORMAL it bounds what a power cut
 * can take (commits since the last WAL sync), and it keeps the WAL small.
 */
const DEFAULT_CHECKPOINT_INTERVAL_MS = 1_000;
const DEFAULT_BUSY_TIMEOUT_MS = 5_000;
/** close(), append() and useCompressor() wait at most this long for batches out on the compressor thread; later ones are dropped (counted). */
const DEFAULT_COMPRESSOR_WAIT_MS = 10_000;
const KEK_BYTES = 32;
const SPOOL_ID_BYTES = 16;

export class Spool {
  readonly path: string;
  readonly writer: SpoolWriter;
  readonly reader: SpoolReader;
  readonly inspector: SpoolInspector;
  readonly checkpoints: Checkpoints;
  readonly decoderState: DecoderStateStore;
  readonly retention: Retention;
  private readonly keyring: Keyring;
  private readonly chain: Chain;
  private readonly reserve: SpaceReserve;

  private constructor(
    private readonly store: SpoolStore,
    meta: MetaRow,
    keks: readonly Uint8Array[],
    options: SpoolOptions,
  ) {
    this.path = store.path;
    const quotaBytes = options.quotaBytes ?? DEFAULTS.spool.quotaBytes;
    const keyring = new Keyring(store, meta, keks, options.epochMs ?? DEFAULTS.spool.epochSeconds * 1000, () => {
      this.checkpoints.keysShredded();
    });
    const chain = new Chain(store, keyring, join(options.dir, SPOOL_HWM_FILE));
    const reserve = new SpaceReserve(join(options.dir, SPOOL_RESERVE_FILE), store.readOnly ? 0 : (options.reserveBytes ?? DEFAULTS.spool.reserveBytes), store.rateLog);
    const checkpoints = new Checkpoints(store, chain, reserve, {
      intervalMs: options.checkpointIntervalMs ?? DEFAULT_CHECKPOINT_INTERVAL_MS,
      setInterval: options.setInterval ?? ((fn: () => void, ms: number) => setInterval(fn, ms).unref()),
      clearInterval: options.clearInterval ?? ((h: unknown) => clearInterval(h as NodeJS.Timeout)),
    });
    this.keyring = keyring;
    this.chain = chain;
    this.checkpoints = checkpoints;
    this.inspector = new SpoolInspector(store, keyring, chain, checkpoints, quotaBytes);
    this.writer = new SpoolWriter(store, keyring, chain, checkpoints, reserve, {
      quotaBytes,
      fullPolicy: options.fullPolicy ?? DEFAULTS.spool.fullPolicy,
      sealFormat: sealFormatOf(options.compression),
      compressorWaitMs: options.compressorWaitMs ?? DEFAULT_COMPRESSOR_WAIT_MS,
      holdReason: options.holdNewBatches ?? null,
    });
    this.reader = new SpoolReader(store, keyring, chain, checkpoints, reserve, () => this.inspector.status());
    this.reserve = reserve;
    this.decoderState = new DecoderStateStore(store, keyring);
    this.retention = new Retention(store, chain, keyring, () => {
      this.checkpoints.keysShredded();
    });
  }

  /**
   * Opens (or creates) the spool in `options.dir`. Throws SpoolError(ERR_SPOOL_KEY) when no
   * configured KEK matches the spool or a wrapped key does not unwrap; never replaces an
   * existing spool.
   */
  static async open(options: SpoolOptions): Promise<Spool> {
    await sodiumReady();
    const create = options.create ?? true;
    const readOnly = options.readOnly ?? false;
    const dbPath = join(options.dir, SPOOL_DB_FILE);
    if (!existsSync(dbPath)) {
      if (!create) throw new SpoolError(SpoolErrorCode.Io, `no spool at ${dbPath}: check the data directory setting`, { path: dbPath });
      mkdirSync(options.dir, { recursive: true, mode: 0o700 });
    }
    const keks = [options.kek, ...(options.previousKeks ?? [])];
    for (const k of keks) if (k.length !== KEK_BYTES) throw new SpoolError(SpoolErrorCode.Key, 'a key-encryption key must be 32 bytes');
    const synchronous = options.synchronous ?? DEFAULTS.spool.synchronous;
    const busyTimeoutMs = options.busyTimeoutMs ?? DEFAULT_BUSY_TIMEOUT_MS;
    let db: Database.Database | null = null;
    try {
      db = openDatabase({ path: dbPath, create, synchronous, busyTimeoutMs, maxDbBytes: options.maxDbBytes });
      const clock = options.clock ?? Date.now;
      let meta = loadOrInit(db, options.kek, create && !readOnly, clock());
      if (!readOnly) {
        migrateRetentionColumns(db);
        meta = db.prepare('SELECT * FROM meta WHERE id = 1').get() as MetaRow;
      }
      if (new Uint8Array(meta.spool_id).length !== SPOOL_ID_BYTES) throw new SpoolError(SpoolErrorCode.Format, `${dbPath}: spool id is malformed`);
      const store = new SpoolStore(db, { readOnly, synchronous, busyTimeoutMs, clock, logger: (options.logger ?? silentLogger()).child({ component: 'spool' }), audit: readOnly ? undefined : options.audit });
      const spool = new Spool(store, meta, keks, options);
      spool.chain.checkAnchor(meta);
      spool.chain.checkRollback(meta);
      if (!readOnly && spool.keyring.wrappedByOldKek) spool.keyring.rewrapSpoolKey();
      if (!readOnly && options.maxAgeSeconds !== undefined) spool.retention.setLimit(options.maxAgeSeconds);
      spool.reserve.ensure();
      spool.checkpoints.start();
      return spool;
    } catch (err) {
      db?.close();
      if (err instanceof SpoolError) throw err;
      const code = sqliteCode(err);
      if (code === 'SQLITE_NOTADB' || code === 'SQLITE_CORRUPT') {
        throw new SpoolError(SpoolErrorCode.Format, `${dbPath} is not a usable spool database (${code}): restore it from a backup or point the spool directory elsewhere; it was left untouched`, { path: dbPath }, { cause: err });
      }
      if (code !== null) throw new SpoolError(SpoolErrorCode.Io, `cannot open the spool database ${dbPath} (${code}): ${(err as Error).message}`, { path: dbPath }, { cause: err });
      throw err;
    }
  }

  /**
   * Graceful: commits what the writer has queued (waiting at most compressorWaitMs for the
   * compressor thread), lets this appender's epoch end, checkpoints (TRUNCATE, writing the
   * high-water mark), closes the database and wipes every key. Idempotent.
   */
  close(): void {
    if (this.store.isClosed) return;
    this.writer.close();
    try {
      // Delivered batches whose ack failed on a full disk: removed now if space has returned.
      this.reader.retryAcks();
      // This appender will not use its epoch again: let it be shredded as soon as it is empty.
      if (!this.store.readOnly) this.keyring.endCurrentEpoch(this.store.clock());
      this.checkpoints.checkpoint(true);
    } catch (err) {
      this.store.rateLog.log('warn', 'close', { event: 'spool.close_failed', code: sqliteCode(err) }, 'spool close: final checkpoint failed');
    }
    this.shut();
  }

  /**
   * Forced (a stop deadline passed): batches still queued are dropped (counted) without waiting
   * for the compressor thread, and the database closes without a final checkpoint of ours
   * (committed batches are safe: SQLite checkpoints when its last connection closes, and the
   * WAL is replayed on the next open otherwise). Idempotent; nothing to do after close().
   */
  destroy(): void {
    if (this.store.isClosed) return;
    this.writer.destroy();
    this.shut();
  }

  private shut(): void {
    this.checkpoints.close();
    this.store.close();
    this.keyring.destroy();
  }
}

/** Reads the meta row, creating the spool (schema, identity, wrapped spool key, empty anchor) in a new database. */
function loadOrInit(db: Database.Database, currentKek: Uint8Array, mayCreate: boolean, nowMs: number): MetaRow {
  const hasMeta = (): boolean => db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'").get() !== undefined;
  if (!hasMeta()) {
    const tables = db.prepare("SELECT count(*) AS n FROM sqlite_master WHERE type = 'table'").get() as { n: number };
    if (tables.n > 0) throw new SpoolError(SpoolErrorCode.Format, `${db.name} is not a sealflow spool (it has other tables); point the data directory elsewhere`);
    if (!mayCreate) throw new SpoolError(SpoolErrorCode.Format, `${db.name} holds no spool`);
    db.transaction(() => {
      if (hasMeta()) return;
      db.exec(SCHEMA_SQL);
      const spoolId = randomBytes(SPOOL_ID_BYTES);
      const kek = new Kek(currentKek, spoolId);
      const spoolKey = randomKey();
      const anchorKey = subkey(spoolKey, KDF_ANCHOR);
      db.prepare(
        'INSERT INTO meta (id, schema_version, spool_id, kek_fp, spool_key, created_min, anchor_id, anchor_tag, anchor_mac) VALUES (1, ?, ?, ?, ?, ?, 0, ?, ?)',
      ).run(SPOOL_SCHEMA_VERSION, spoolId, kek.fingerprint, kek.wrap(spoolKey, spoolKeyAd(spoolId)), Math.floor(nowMs / MINUTE_MS), ZERO_TAG, anchorMac(anchorKey, spoolId, 0, ZERO_TAG));
      wipe(spoolKey);
      wipe(anchorKey);
      kek.destroy();
    }).immediate();
  }
  const meta = db.prepare('SELECT * FROM meta WHERE id = 1').get() as MetaRow | undefined;
  if (meta === undefined) throw new SpoolError(SpoolErrorCode.Format, `${db.name}: the spool's meta row is missing; the database is damaged`);
  if (meta.schema_version !== SPOOL_SCHEMA_VERSION) {
    throw new SpoolError(SpoolErrorCode.Format, `${db.name}: spool schema version ${meta.schema_version} is not supported by this sealflow (expects ${SPOOL_SCHEMA_VERSION})`);
  }
  return meta;
}
