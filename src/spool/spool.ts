import { chmodSync, existsSync, mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import type { Logger } from 'pino';
import { batchRecordCount } from '../batch/decoder.js';
import { SpoolError, SpoolErrorCode } from '../flow/errors.js';
import type { AppendDone, AppendResult, BatchSink, BatchSource, LeasedBatch } from '../flow/pipeline.js';
import { RateLimitedLog } from '../observability/rate-limited-log.js';
import { silentLogger } from '../observability/logger.js';
import type { BatchCompressor } from './batch-compressor.js';
import type { DurableMark } from './wal-checkpointer.js';
import { compressBatch, decompressBatch, isSealFormat, SEAL_FORMAT_NONE, sealFormatOf, type Compression } from './compression.js';
import { HighWaterMarkFile } from './high-water-mark.js';
import {
  KDF_ANCHOR, KDF_DECODER_STATE, KDF_HWM, Kek, NONCE_BYTES, TAG_BYTES,
  equalBytes, mac, open as openSeal, openBlob, randomBytes, randomKey, seal, sealBlob, sodiumReady, subkey, wipe,
} from './spool-crypto.js';
import { BATCH_STATE_ACKED, SCHEMA_SQL, SPOOL_SCHEMA_VERSION } from './spool-schema.js';

/**
 * The encrypted spool: a durable FIFO of sealed record batches in SQLite (WAL).
 *
 * Invariants
 * 1. Nothing but ciphertext and non-identifying metadata reaches the database (see
 *    spool-schema.ts); plaintext batches exist only in memory.
 * 2. A batch is durable once `append` returns its id (its transaction committed) against a
 *    process crash (SIGKILL, OOM, panic) in every mode. Against a power cut or kernel crash:
 *    with synchronous=FULL (default) none; with NORMAL commits since the last completed
 *    checkpoint (this thread's, or a complete one of a background checkpointer, see
 *    useBackgroundCheckpoints) can be lost: one is due `checkpointIntervalMs` (1 s) after the
 *    last, checked at each commit and by an idle tick four times per interval, so ≤ 1.25
 *    intervals (while a reader pins the WAL no checkpoint completes, and the window grows).
 *    Records still in the Batcher (≤ its max age, 1 s by default) or queued for a group commit
 *    (≤ 20 ms) are not yet committed in either mode. So the power-cut window is ≤ batch age with
 *    FULL (1 s by default), ≤ batch age + 1.25 checkpoint intervals (2.25 s) with NORMAL.
 * 3. Batches leave storage only by `ack` (delivered), quota eviction (counted) or never.
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

export type FullPolicy = 'drop-oldest' | 'drop-newest';
export type SynchronousMode = 'normal' | 'full' | 'extra';

export interface SpoolOptions {
  /** Data directory; the spool is `<dir>/spool.db` (+ -wal, -shm) and `<dir>/spool.hwm`. */
  readonly dir: string;
  /** The key-encryption key (32 bytes), see resolveKek(). */
  readonly kek: Uint8Array;
  /** Earlier KEKs still accepted for unwrapping during a rotation. */
  readonly previousKeks?: readonly Uint8Array[];
  /** Byte quota over the stored batches (ciphertext + nonce + tag). Default 1 GiB. */
  readonly quotaBytes?: number;
  /** What to do when a new batch does not fit the quota. Default 'drop-oldest'. */
  readonly fullPolicy?: FullPolicy;
  /** SQLite synchronous mode (see invariant 2). Default 'full'. */
  readonly synchronous?: SynchronousMode;
  /** Compression of new batches (both are always readable). Default 'brotli'. */
  readonly compression?: Compression;
  /** Lifetime of an epoch data key. Default 1 h. */
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
  /** SQLite busy timeout for contention between instances. Default 5 s. */
  readonly busyTimeoutMs?: number;
  /** Longest close(), append() and useCompressor() wait for batches out on the compressor thread before dropping them (counted). Default 10 s. */
  readonly compressorWaitMs?: number;
  readonly clock?: () => number;
  /** Timer for the idle checkpoint tick (tests inject their own). Defaults to an unref'd setInterval. */
  readonly setInterval?: (fn: () => void, ms: number) => unknown;
  readonly clearInterval?: (handle: unknown) => void;
  readonly logger?: Logger;
}

export type { AppendDone, AppendResult, LeasedBatch } from '../flow/pipeline.js';

/** A batch as `spool export` reads it: verified batch-format bytes, in chain order. */
export interface ExportedBatch {
  readonly id: number;
  readonly batch: Uint8Array;
  readonly recordCount: number;
}

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
  readonly lastBatchId: number;
  readonly epochs: number;
  readonly leased: number;
  readonly parkedBatches: number;
  readonly parkedRecords: number;
  readonly parkedByReason: Readonly<Record<string, number>>;
  readonly tombstones: number;
  readonly evictedBatches: number;
  readonly evictedRecords: number;
  readonly droppedBatches: number;
  readonly droppedRecords: number;
  readonly shreddedEpochs: number;
  /** Since this instance opened. */
  readonly quarantined: number;
  readonly ioErrors: number;
  readonly ackMisses: number;
  readonly rollback: { readonly expectedAtLeast: number; readonly found: number } | null;
  readonly synchronous: SynchronousMode;
}

/** The source of durable marks for useBackgroundCheckpoints() (WalCheckpointer). */
export interface BackgroundCheckpoints {
  durableMark(): DurableMark | null;
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
  readonly rollback: { readonly expectedAtLeast: number; readonly found: number } | null;
  /** Problems with spool.hwm (missing, unreadable, bad MAC). */
  readonly hwmProblem: string | null;
}

export { SEAL_FORMAT_BROTLI, SEAL_FORMAT_DEFLATE, SEAL_FORMAT_NONE, type Compression } from './compression.js';
export const SPOOL_DB_FILE = 'spool.db';
export const SPOOL_HWM_FILE = 'spool.hwm';

const DEFAULT_QUOTA_BYTES = 1024 * 1024 * 1024;
const DEFAULT_EPOCH_MS = 3_600_000;
/**
 * FULL (as the spool.synchronous setting defaults): a committed batch survives a power cut.
 * NORMAL trades that for fewer fsyncs: in WAL mode a commit is still safe from a process crash
 * and the file is never corrupted, but commits since the last checkpoint (≤ 1.25 × checkpointIntervalMs,
 * 1.25 s, kept by the idle tick; see Invariant 2) can be lost to a power cut. FULL costs one WAL fsync per batch
 * (2–4 ms of wall time on this machine's disk; bench/spool.ts shows both).
 */
const DEFAULT_SYNCHRONOUS: SynchronousMode = 'full';
/**
 * Checkpoint (TRUNCATE) at least this often: with synchronous=NORMAL it bounds what a power cut
 * can take (commits since the last WAL sync), and it keeps the WAL small.
 */
const DEFAULT_CHECKPOINT_INTERVAL_MS = 1_000;
/**
 * Idle ticks per checkpoint interval. A commit made right after a checkpoint is covered by the
 * next one, due an interval later; on an idle spool only the tick notices, so the power-cut
 * window with NORMAL is the interval plus one tick period (a tick per interval would make it
 * up to two intervals, depending on the tick's phase). When nothing is uncheckpointed a tick
 * returns at once.
 */
const IDLE_TICKS_PER_INTERVAL = 4;
/** 16 KiB pages: a sealed batch spans a quarter of the overflow pages it would with 4 KiB ones (less CPU per append, measured). */
const PAGE_SIZE_BYTES = 16_384;
const DEFAULT_BUSY_TIMEOUT_MS = 5_000;
/**
 * A checkpoint of this thread's own that could not complete is tried again after this long,
 * doubling with each further failure up to the checkpoint interval (see Spool.checkpoint).
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
/** WAL file is truncated back to at most this after a checkpoint. */
const JOURNAL_SIZE_LIMIT_BYTES = 64 * 1024 * 1024;
/** Times stored in columns are minutes (coarse, non-identifying). */
const MINUTE_MS = 60_000;
/** An ended epoch is shredded only this long after its end, so an appender racing the clock never loses its key. */
const SHRED_GRACE_MINUTES = 2;
/**
 * Batches at most in flight on the compressor thread; beyond, a new batch is compressed on the
 * appending thread (still committed in order). Bounds the serialized copies held in memory.
 */
const MAX_COMPRESSOR_JOBS = 4;
/** While jobs are out, results are also polled on a timer this often (the appending thread may be idle). */
const COMPRESSOR_POLL_MS = 1;
/**
 * Group commit of batches stored uncompressed (overload), and with synchronous=full of every
 * batch (see commitReady): such a batch is ready at once, and committing each on its own costs
 * one WAL sync per batch with synchronous=full (several ms each on a busy disk, on the thread
 * that is already behind) and a round of locks and WAL-index updates with normal. So it waits
 * for more — at most GROUP_COMMIT_MS, or until GROUP_COMMIT_BATCHES are ready — and the ready
 * batches commit in one transaction (one sync).
 * Durability is unchanged in kind: a batch is durable once its commit returns and `done`
 * reports it; before that it is lost on a crash like the Batcher's pending records.
 */
const GROUP_COMMIT_MS = 20;
const GROUP_COMMIT_BATCHES = 8;
/** close(), append() and useCompressor() wait at most this long for batches out on the compressor thread; later ones are dropped (counted). */
const DEFAULT_COMPRESSOR_WAIT_MS = 10_000;
/** Atomics.wait target for 1 ms sleeps while waiting for the compressor thread (never notified). */
const SLEEP_CELL = new Int32Array(new SharedArrayBuffer(4));

export interface CompressionStats {
  readonly offThread: number;
  readonly inline: number;
  readonly bypassed: number;
}

/** One queued batch (enqueue) between its arrival and its commit. */
interface QueuedAppend {
  readonly seq: number;
  readonly records: number;
  /** Seal format of `compressed` (the spool's, or SEAL_FORMAT_NONE when compression was bypassed). */
  readonly format: number;
  compressed: Uint8Array | null;
  failed: Error | null;
  /** Set when its group has committed (see commitGroup); reported by commitQueued's loop. */
  committed?: AppendResult;
  readonly done: AppendDone;
}

/** A queued batch is ready to commit (compressed) or to report (failed). */
function isReady(e: QueuedAppend): boolean {
  return e.compressed !== null || e.failed !== null;
}

/** Park reasons are metadata shown by `spool status`; long strings are cut. */
const MAX_PARK_REASON_LENGTH = 200;
export const PARK_REASON_INTEGRITY = 'integrity';
/** Rows read per step while evicting or leasing. */
const SCAN_PAGE_ROWS = 256;
/** Size of the associated data of a sealed batch. */
const AD_BYTES = 1 + 16 + 8 + 8 + TAG_BYTES;
const SPOOL_ID_BYTES = 16;
const ZERO_TAG = new Uint8Array(TAG_BYTES);

interface MetaRow {
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
  dropped_batches: number;
  dropped_records: number;
  shredded_epochs: number;
  hwm_seen: number;
  rollback_expected: number | null;
  rollback_found: number | null;
}

interface BatchRow {
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
const BATCH_WITH_PAYLOAD = 'SELECT b.*, p.data AS payload FROM batches b LEFT JOIN payloads p ON p.id = b.id';

interface EpochRow {
  id: number;
  kek_fp: Uint8Array;
  wrapped: Uint8Array;
  ends_min: number;
}

interface CurrentEpoch {
  readonly id: number;
  readonly key: Uint8Array;
  readonly endsAtMs: number;
}

function u64be(out: Uint8Array, pos: number, v: number): void {
  new DataView(out.buffer, out.byteOffset, out.byteLength).setBigUint64(pos, BigInt(v), false);
}

function spoolKeyAd(spoolId: Uint8Array): Uint8Array {
  return Buffer.concat([Buffer.from('sealflow spool key\0'), spoolId]);
}

function epochKeyAd(spoolId: Uint8Array, epoch: number): Uint8Array {
  const ad = new Uint8Array(SPOOL_ID_BYTES + 8);
  ad.set(spoolId, 0);
  u64be(ad, SPOOL_ID_BYTES, epoch);
  return Buffer.concat([Buffer.from('sealflow epoch key\0'), ad]);
}

/** Associated data of batch `id`: format ‖ spool id ‖ batch id ‖ epoch ‖ previous tag. */
export function batchAd(format: number, spoolId: Uint8Array, id: number, epoch: number, prevTag: Uint8Array): Uint8Array {
  const ad = new Uint8Array(AD_BYTES);
  ad[0] = format;
  ad.set(spoolId, 1);
  u64be(ad, 1 + SPOOL_ID_BYTES, id);
  u64be(ad, 1 + SPOOL_ID_BYTES + 8, epoch);
  ad.set(prevTag, 1 + SPOOL_ID_BYTES + 16);
  return ad;
}

/** Domain separation of the two MACs keyed by the anchor key: a tombstone's MAC is never a valid anchor MAC. */
const MAC_DOMAIN_ANCHOR = 0x41;
const MAC_DOMAIN_ACK = 0x4b;

function chainMessage(domain: number, spoolId: Uint8Array, id: number, tag: Uint8Array): Uint8Array {
  const m = new Uint8Array(1 + SPOOL_ID_BYTES + 8 + TAG_BYTES);
  m[0] = domain;
  m.set(spoolId, 1);
  u64be(m, 1 + SPOOL_ID_BYTES, id);
  m.set(tag, 1 + SPOOL_ID_BYTES + 8);
  return m;
}

/** MAC message of the chain anchor: the last batch removed from the front. */
function anchorMessage(spoolId: Uint8Array, id: number, tag: Uint8Array): Uint8Array {
  return chainMessage(MAC_DOMAIN_ANCHOR, spoolId, id, tag);
}

/** MAC message of a tombstone: batch `id` (with `tag`) was acknowledged by a key holder. */
function ackMessage(spoolId: Uint8Array, id: number, tag: Uint8Array): Uint8Array {
  return chainMessage(MAC_DOMAIN_ACK, spoolId, id, tag);
}

function sqliteCode(err: unknown): string | null {
  const c = (err as { code?: unknown }).code;
  return typeof c === 'string' ? c : null;
}

function isStorageError(err: unknown): boolean {
  const c = sqliteCode(err);
  return c !== null && (c.startsWith('SQLITE_FULL') || c.startsWith('SQLITE_IOERR') || c.startsWith('SQLITE_BUSY') || c.startsWith('SQLITE_CANTOPEN') || c.startsWith('SQLITE_READONLY') || c.startsWith('SQLITE_LOCKED'));
}

export class Spool implements BatchSink, BatchSource {
  readonly path: string;
  private readonly hwm: HighWaterMarkFile;
  private readonly clock: () => number;
  private readonly logger: Logger;
  private readonly rateLog: RateLimitedLog;
  private readonly quotaBytes: number;
  private readonly fullPolicy: FullPolicy;
  private readonly epochMs: number;
  private readonly checkpointIntervalMs: number;
  private readonly compressorWaitMs: number;
  private readonly readOnly: boolean;
  private readonly synchronous: SynchronousMode;
  private readonly sealFormat: number;
  /** queued batches in flush order; committed strictly from the front (the hash chain's order). */
  private readonly queue: QueuedAppend[] = [];
  private queueWaiters: (() => void)[] = [];
  private nextSeq = 0;
  private compressor: BatchCompressor | null = null;
  /** Sequence numbers of queued batches out on the compressor thread. */
  private readonly jobs = new Set<number>();
  private pollTimer: NodeJS.Timeout | null = null;
  /** Pending group commit of ready batches (see GROUP_COMMIT_MS). */
  private groupTimer: NodeJS.Timeout | null = null;
  private bypassCompression = false;
  private readonly compressionCounts = { offThread: 0, inline: 0, bypassed: 0 };
  private readonly leased = new Set<number>();
  private readonly statements = new Map<string, Database.Statement>();
  private shredPending = false;
  /** Commits since the last checkpoint (the idle tick checkpoints them). */
  private dirty = false;
  /** See useBackgroundCheckpoints(). */
  private background: BackgroundCheckpoints | null = null;
  private lastHwmWriteMs = 0;
  /** Checkpoints run on this thread (close, shredding, and when the background checkpointer is behind or absent). */
  private inlineCheckpoints = 0;
  /** Of those, the ones that could not complete (busy), and when the next try is due (see checkpoint()). */
  private busyCheckpoints = 0;
  private checkpointRetryAtMs = 0;
  private checkpointFailuresInRow = 0;
  private readonly busyTimeoutMs: number;
  private tickHandle: unknown = null;
  private readonly setTick: (fn: () => void, ms: number) => unknown;
  private readonly clearTick: (handle: unknown) => void;
  /** The KEK new wraps use (options.kek); the others only unwrap. */
  private readonly currentKek: Kek;
  private readonly epochKeys = new Map<number, Uint8Array>();
  private current: CurrentEpoch | null = null;
  private closed = false;
  private lastCheckpointMs: number;
  private hwmWritten = 0;
  private hwmSeen = false;
  private quarantined = 0;
  private ioErrors = 0;
  private ackMisses = 0;
  private rollback: { expectedAtLeast: number; found: number } | null = null;
  private hwmProblem: string | null = null;

  private constructor(
    private readonly db: Database.Database,
    options: SpoolOptions,
    private readonly spoolId: Uint8Array,
    private readonly keks: readonly Kek[],
    private readonly spoolKey: Uint8Array,
    private readonly anchorKey: Uint8Array,
    private readonly hwmKey: Uint8Array,
    private readonly stateKey: Uint8Array,
  ) {
    const currentKek = keks[0];
    if (currentKek === undefined) throw new SpoolError(SpoolErrorCode.Key, 'no key-encryption key given');
    this.currentKek = currentKek;
    this.path = join(options.dir, SPOOL_DB_FILE);
    this.hwm = new HighWaterMarkFile(join(options.dir, SPOOL_HWM_FILE), hwmKey, spoolId);
    this.clock = options.clock ?? Date.now;
    this.logger = (options.logger ?? silentLogger()).child({ component: 'spool' });
    this.rateLog = new RateLimitedLog(this.logger, { windowMs: 60_000, burst: 5, maxKeys: 64, now: this.clock });
    this.quotaBytes = options.quotaBytes ?? DEFAULT_QUOTA_BYTES;
    this.fullPolicy = options.fullPolicy ?? 'drop-oldest';
    this.epochMs = options.epochMs ?? DEFAULT_EPOCH_MS;
    this.checkpointIntervalMs = options.checkpointIntervalMs ?? DEFAULT_CHECKPOINT_INTERVAL_MS;
    this.busyTimeoutMs = Math.trunc(options.busyTimeoutMs ?? DEFAULT_BUSY_TIMEOUT_MS);
    this.compressorWaitMs = options.compressorWaitMs ?? DEFAULT_COMPRESSOR_WAIT_MS;
    this.readOnly = options.readOnly ?? false;
    this.synchronous = options.synchronous ?? DEFAULT_SYNCHRONOUS;
    this.sealFormat = sealFormatOf(options.compression);
    this.lastCheckpointMs = this.clock();
    this.setTick = options.setInterval ?? ((fn: () => void, ms: number) => setInterval(fn, ms).unref());
    this.clearTick = options.clearInterval ?? ((h: unknown) => clearInterval(h as NodeJS.Timeout));
  }

  /**
   * Starts the idle checkpoint tick (once open succeeded). Without it, the last commits before an
   * idle period would wait in an unsynced WAL (synchronous=NORMAL) until the next write: the
   * power-cut window must not depend on traffic.
   */
  private startTick(): void {
    if (!this.readOnly) this.tickHandle = this.setTick(() => this.tick(), Math.max(1, Math.floor(this.checkpointIntervalMs / IDLE_TICKS_PER_INTERVAL)));
  }

  /**
   * Opens (or creates) the spool in `options.dir`. Throws SpoolError(ERR_SPOOL_KEY) when no
   * configured KEK matches the spool or a wrapped key does not unwrap; never replaces an
   * existing spool.
   */
  static async open(options: SpoolOptions): Promise<Spool> {
    await sodiumReady();
    const create = options.create ?? true;
    const dbPath = join(options.dir, SPOOL_DB_FILE);
    if (!existsSync(dbPath)) {
      if (!create) throw new SpoolError(SpoolErrorCode.Io, `no spool at ${dbPath}: check the data directory setting`, { path: dbPath });
      mkdirSync(options.dir, { recursive: true, mode: 0o700 });
    }
    const allKeks = [options.kek, ...(options.previousKeks ?? [])];
    for (const k of allKeks) if (k.length !== 32) throw new SpoolError(SpoolErrorCode.Key, 'a key-encryption key must be 32 bytes');
    let db: Database.Database;
    try {
      db = new Database(dbPath, { fileMustExist: !create });
    } catch (err) {
      throw new SpoolError(SpoolErrorCode.Io, `cannot open the spool database ${dbPath}: ${(err as Error).message}`, { path: dbPath }, { cause: err });
    }
    try {
      try {
        chmodSync(dbPath, 0o600);
      } catch {
        // Best effort: the file holds only ciphertext; permissions are defence in depth.
      }
      db.pragma(`busy_timeout = ${Math.trunc(options.busyTimeoutMs ?? DEFAULT_BUSY_TIMEOUT_MS)}`);
      // Takes effect only when the file is new (before WAL mode and the first table).
      db.pragma(`page_size = ${PAGE_SIZE_BYTES}`);
      db.pragma('journal_mode = WAL');
      db.pragma(`synchronous = ${(options.synchronous ?? DEFAULT_SYNCHRONOUS).toUpperCase()}`);
      db.pragma('secure_delete = ON');
      db.pragma('temp_store = MEMORY');
      db.pragma(`journal_size_limit = ${JOURNAL_SIZE_LIMIT_BYTES}`);
      if (options.maxDbBytes !== undefined) {
        const pageSize = db.pragma('page_size', { simple: true }) as number;
        db.pragma(`max_page_count = ${Math.max(1, Math.floor(options.maxDbBytes / pageSize))}`);
      }
      const clock = options.clock ?? Date.now;
      const meta = Spool.loadOrInit(db, options.kek, create && options.readOnly !== true, clock());
      const spoolId = new Uint8Array(meta.spool_id);
      if (spoolId.length !== SPOOL_ID_BYTES) throw new SpoolError(SpoolErrorCode.Format, `${dbPath}: spool id is malformed`);
      const keks = allKeks.map((k) => new Kek(k, spoolId));
      const wrapper = keks.find((k) => equalBytes(k.fingerprint, meta.kek_fp));
      if (wrapper === undefined) {
        throw new SpoolError(
          SpoolErrorCode.Key,
          `the key-encryption key does not match the one this spool (${dbPath}) is encrypted with: set the spool KEK (SEALFLOW_SPOOL_KEK, _FILE or _COMMAND) to the original key, or pass it as a previous KEK during a rotation; the spool was left untouched`,
          { path: dbPath },
        );
      }
      const spoolKey = wrapper.unwrap(meta.spool_key, spoolKeyAd(spoolId));
      if (spoolKey === null) {
        throw new SpoolError(SpoolErrorCode.Key, `the wrapped spool key in ${dbPath} is corrupted (the KEK matches but the key does not unwrap); restore the database from a backup — the spool was left untouched`, { path: dbPath });
      }
      const spool = new Spool(db, options, spoolId, keks, spoolKey, subkey(spoolKey, KDF_ANCHOR), subkey(spoolKey, KDF_HWM), subkey(spoolKey, KDF_DECODER_STATE));
      spool.unwrapAllEpochs();
      spool.checkAnchor(meta);
      spool.checkRollback(meta);
      if (!spool.readOnly && wrapper !== spool.currentKek) spool.rewrapSpoolKey();
      spool.startTick();
      return spool;
    } catch (err) {
      db.close();
      if (err instanceof SpoolError) throw err;
      const code = sqliteCode(err);
      if (code === 'SQLITE_NOTADB' || code === 'SQLITE_CORRUPT') {
        throw new SpoolError(SpoolErrorCode.Format, `${dbPath} is not a usable spool database (${code}): restore it from a backup or point the spool directory elsewhere; it was left untouched`, { path: dbPath }, { cause: err });
      }
      if (code !== null) throw new SpoolError(SpoolErrorCode.Io, `cannot open the spool database ${dbPath} (${code}): ${(err as Error).message}`, { path: dbPath }, { cause: err });
      throw err;
    }
  }

  private static loadOrInit(db: Database.Database, currentKek: Uint8Array, mayCreate: boolean, nowMs: number): MetaRow {
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
        ).run(SPOOL_SCHEMA_VERSION, spoolId, kek.fingerprint, kek.wrap(spoolKey, spoolKeyAd(spoolId)), Math.floor(nowMs / MINUTE_MS), ZERO_TAG, mac(anchorKey, anchorMessage(spoolId, 0, ZERO_TAG)));
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

  /** A prepared statement, compiled once per instance. */
  private q(sql: string): Database.Statement {
    let st = this.statements.get(sql);
    if (st === undefined) {
      st = this.db.prepare(sql);
      this.statements.set(sql, st);
    }
    return st;
  }

  // ---------------------------------------------------------------- keys

  private kekFor(fp: Uint8Array): Kek | undefined {
    return this.keks.find((k) => equalBytes(k.fingerprint, fp));
  }

  private unwrapEpoch(row: EpochRow): Uint8Array {
    const kek = this.kekFor(row.kek_fp);
    if (kek === undefined) {
      throw new SpoolError(
        SpoolErrorCode.Key,
        `the data key of epoch ${row.id} in ${this.path} is wrapped by a key-encryption key that is not configured: pass that KEK as a previous KEK (or run 'sealflow rekey' with it); the spool was left untouched`,
        { epoch: row.id },
      );
    }
    const key = kek.unwrap(row.wrapped, epochKeyAd(this.spoolId, row.id));
    if (key === null) {
      throw new SpoolError(SpoolErrorCode.Key, `the wrapped data key of epoch ${row.id} in ${this.path} is corrupted (it does not unwrap with the matching KEK); restore the database from a backup — the spool was left untouched`, { epoch: row.id });
    }
    return key;
  }

  private unwrapAllEpochs(): void {
    const rows = this.q('SELECT id, kek_fp, wrapped, ends_min FROM epochs ORDER BY id').all() as EpochRow[];
    for (const row of rows) this.epochKeys.set(row.id, this.unwrapEpoch(row));
  }

  /** The data key of `epoch`, loading epochs created by another instance; null when it is gone (shredded) or broken. */
  private epochKey(epoch: number): Uint8Array | null {
    const cached = this.epochKeys.get(epoch);
    if (cached !== undefined) return cached;
    const row = this.q('SELECT id, kek_fp, wrapped, ends_min FROM epochs WHERE id = ?').get(epoch) as EpochRow | undefined;
    if (row === undefined) return null;
    try {
      const key = this.unwrapEpoch(row);
      this.epochKeys.set(epoch, key);
      return key;
    } catch (err) {
      this.rateLog.log('error', 'epoch-key', { event: 'spool.epoch_key_unusable', epoch, err: (err as Error).message }, 'epoch data key unusable');
      return null;
    }
  }

  private rewrapSpoolKey(): void {
    const kek = this.currentKek;
    this.q('UPDATE meta SET kek_fp = ?, spool_key = ? WHERE id = 1').run(kek.fingerprint, kek.wrap(this.spoolKey, spoolKeyAd(this.spoolId)));
  }

  /**
   * Rewraps the spool key and every epoch key under the current KEK (options.kek), so the
   * previous KEKs can be retired. Returns the number of epoch keys rewrapped.
   */
  rewrapAll(): number {
    this.assertOpen();
    if (this.readOnly) throw new SpoolError(SpoolErrorCode.Io, 'the spool was opened read-only');
    const kek = this.currentKek;
    let n = 0;
    this.db.transaction(() => {
      this.rewrapSpoolKey();
      const rows = this.q('SELECT id, kek_fp, wrapped, ends_min FROM epochs').all() as EpochRow[];
      const update = this.q('UPDATE epochs SET kek_fp = ?, wrapped = ? WHERE id = ?');
      for (const row of rows) {
        const key = this.epochKeys.get(row.id) ?? this.unwrapEpoch(row);
        update.run(kek.fingerprint, kek.wrap(key, epochKeyAd(this.spoolId, row.id)), row.id);
        n++;
      }
    }).immediate();
    this.checkpoint(true);
    return n;
  }

  // ---------------------------------------------------------------- chain anchor & rollback

  private meta(): MetaRow {
    return this.q('SELECT * FROM meta WHERE id = 1').get() as MetaRow;
  }

  private anchorValid(meta: MetaRow): boolean {
    return equalBytes(mac(this.anchorKey, anchorMessage(this.spoolId, meta.anchor_id, meta.anchor_tag)), meta.anchor_mac);
  }

  private checkAnchor(meta: MetaRow): void {
    if (!this.anchorValid(meta)) {
      this.logger.error({ event: 'spool.anchor_invalid', anchorId: meta.anchor_id }, 'the spool chain anchor fails its MAC: batches were removed from the front of the spool without the key');
    }
  }

  private setAnchor(id: number, tag: Uint8Array): void {
    this.q('UPDATE meta SET anchor_id = ?, anchor_tag = ?, anchor_mac = ? WHERE id = 1').run(id, tag, mac(this.anchorKey, anchorMessage(this.spoolId, id, tag)));
  }

  private sequence(table: 'batches' | 'epochs'): number {
    const row = this.q('SELECT seq FROM sqlite_sequence WHERE name = ?').get(table) as { seq: number } | undefined;
    return row?.seq ?? 0;
  }

  /** Reads spool.hwm (see high-water-mark.ts); records what is wrong with it in hwmProblem. */
  private readHwm(): number | null {
    const mark = this.hwm.read();
    this.hwmProblem = mark.problem;
    return mark.seq;
  }

  private writeHwm(seq: number): void {
    if (seq <= this.hwmWritten) return;
    try {
      this.hwm.write(seq);
      this.hwmWritten = seq;
      if (!this.hwmSeen) {
        // From now on a missing mark file is itself a finding (see verify()).
        this.q('UPDATE meta SET hwm_seen = 1 WHERE id = 1').run();
        this.hwmSeen = true;
      }
    } catch (err) {
      this.rateLog.log('warn', 'hwm', { event: 'spool.hwm_write_failed', err: (err as Error).message }, 'cannot write the spool high-water mark');
    }
  }

  private checkRollback(meta: MetaRow): void {
    this.hwmSeen = meta.hwm_seen === 1;
    if (meta.rollback_expected !== null && meta.rollback_found !== null) {
      this.rollback = { expectedAtLeast: meta.rollback_expected, found: meta.rollback_found };
    }
    const hwm = this.readHwm();
    if (hwm === null) {
      if (this.hwmSeen) this.logger.error({ event: 'spool.hwm_missing', problem: this.hwmProblem }, 'the spool high-water mark file is missing or invalid: rollback detection is blind until the next checkpoint');
      return;
    }
    this.hwmWritten = hwm;
    const seq = this.sequence('batches');
    if (seq >= hwm) return;
    this.rollback = { expectedAtLeast: hwm, found: seq };
    this.logger.error(
      { event: 'spool.rollback_detected', expectedAtLeast: hwm, found: seq },
      'the spool database is older than its high-water mark: an older copy was restored; batches committed after it are missing and acknowledged ones may be sent again',
    );
    if (this.readOnly) return;
    // Keep ids unique: continue after the highest id ever committed, and record the incident.
    this.db.transaction(() => {
      const updated = this.q("UPDATE sqlite_sequence SET seq = ? WHERE name = 'batches'").run(hwm);
      if (updated.changes === 0) this.q("INSERT INTO sqlite_sequence (name, seq) VALUES ('batches', ?)").run(hwm);
      this.q('UPDATE meta SET rollback_expected = ?, rollback_found = ? WHERE id = 1').run(hwm, seq);
    }).immediate();
  }

  // ---------------------------------------------------------------- append

  /**
   * Compresses, seals and commits one batch (batch-format bytes, never read here) after any
   * queued ones. Never throws for storage problems: quota, disk-full and I/O errors drop the
   * batch and are counted in the result and in status().
   */
  append(batch: Uint8Array, recordCount: number): AppendResult {
    this.assertWritable();
    if (recordCount === 0) return { id: null, records: 0, droppedRecords: 0, evictedBatches: 0, evictedRecords: 0, dropReason: null };
    // Queued batches commit first, so the chain follows the order batches were closed in.
    this.commitAllQueued();
    let compressed: Uint8Array;
    try {
      compressed = compressBatch(this.sealFormat, batch);
    } catch (err) {
      return this.encodeFailed(err, recordCount);
    }
    return this.store(compressed, recordCount, this.sealFormat);
  }

  /**
   * Lets queued batches compress on `compressor`'s thread (null: on this thread). The caller
   * owns the thread; detach it (null) after settled() before stopping it.
   */
  useCompressor(compressor: BatchCompressor | null): void {
    this.commitAllQueued();
    this.compressor = compressor;
  }

  /**
   * Queued appends, for the ingest worker: the batch is compressed on the compressor thread
   * (see batch-compressor.ts), so this thread only seals and commits. Batches commit strictly
   * in queue order (the hash chain), each once its compression and every earlier batch's are
   * done; `done` gets each result, in that order, on this thread, from enqueue(),
   * pollQueued() or the poll and group-commit timers (uncompressed batches, and with
   * synchronous full all batches, commit in groups, see GROUP_COMMIT_MS). Not durable until
   * then: on a crash, what is queued is lost like the Batcher's open batch (milliseconds'
   * worth). close() and append() first commit what is queued (waiting, at most the
   * compressorWaitMs option, 10 s by default, for what the thread has not returned);
   * settled() waits for the queue. `batch` must own its whole ArrayBuffer (it is transferred).
   */
  enqueue(batch: Uint8Array, recordCount: number, done: AppendDone): void {
    this.assertWritable();
    this.pollQueued();
    if (recordCount === 0) {
      done(null, { id: null, records: 0, droppedRecords: 0, evictedBatches: 0, evictedRecords: 0, dropReason: null });
      return;
    }
    this.enqueuePlain(batch, recordCount, done);
  }

  /** A batch that could not be serialized: earlier queued batches keep their place, it is reported (dropped, counted) after them. */
  reject(recordCount: number, err: unknown, done: AppendDone): void {
    this.assertWritable();
    this.queue.push({ seq: this.nextSeq++, records: recordCount, format: this.sealFormat, compressed: null, failed: err as Error, done });
    this.commitQueued();
  }

  /** Whether append/enqueue take batches now (open and not read-only). */
  get writable(): boolean {
    return !this.closed && !this.readOnly;
  }

  private assertWritable(): void {
    this.assertOpen();
    if (this.readOnly) throw new SpoolError(SpoolErrorCode.Io, 'the spool was opened read-only');
  }

  /** Queues a serialized batch (owning its buffer): stored as is under overload, else compressed on the thread or here. */
  private enqueuePlain(plain: Uint8Array, n: number, done: AppendDone): void {
    if (this.bypassCompression || this.sealFormat === SEAL_FORMAT_NONE) {
      // Overloaded (or compression 'none'): store it as is rather than spend CPU the ingest path lacks.
      this.queue.push({ seq: this.nextSeq++, records: n, format: SEAL_FORMAT_NONE, compressed: plain, failed: null, done });
      if (this.sealFormat !== SEAL_FORMAT_NONE) this.compressionCounts.bypassed++;
      this.commitSoon();
      return;
    }
    const entry: QueuedAppend = { seq: this.nextSeq++, records: n, format: this.sealFormat, compressed: null, failed: null, done };
    this.queue.push(entry);
    if (this.compressor?.alive !== true || this.jobs.size >= MAX_COMPRESSOR_JOBS) {
      this.compressionCounts.inline++;
      this.compressNow(entry, plain);
      this.commitReady();
      return;
    }
    this.compressionCounts.offThread++;
    this.compressor.submit(entry.seq, this.sealFormat, plain);
    this.jobs.add(entry.seq);
    this.armPoll();
  }

  /** Takes every result the compressor thread has finished and commits what is ready, in order. Cheap when nothing is out. */
  pollQueued(): void {
    if (this.takeResults()) this.commitReady();
  }

  /**
   * Commits what is ready at the front of the queue. With synchronous=full (or extra) a commit
   * costs a WAL fsync (~10 ms on a busy disk, measured ~14% of the ingest worker's wall time at
   * 1.75 M records/s), so compressed batches also wait for a group like uncompressed ones (see
   * GROUP_COMMIT_MS): 20 ms more (a timer on this thread, later while it is busy) before they
   * are durable and reported. With normal a commit does not sync, and they commit at once.
   */
  private commitReady(): void {
    if (this.synchronous === 'normal') {
      this.commitQueued();
      return;
    }
    if (this.readyAtFront() > 0) this.commitSoon();
  }

  /** Moves finished compressor results into their queue entries; true when there was any. */
  private takeResults(): boolean {
    if (this.jobs.size === 0 || this.compressor === null) return false;
    let r = this.compressor.poll();
    if (r === undefined) {
      if (this.compressor.alive) return false;
      // The thread ended with batches still out: they are lost (dropped and counted, never
      // waited for), and later batches compress on this thread.
      this.rateLog.log('error', 'compressor', { event: 'spool.compressor_ended', batches: this.jobs.size }, 'batch compressor thread ended; its pending batches are dropped (counted) and compression continues on this thread');
      for (const e of this.queue) if (this.jobs.has(e.seq)) e.failed = new SpoolError(SpoolErrorCode.Io, 'the batch compressor thread ended before returning the batch');
      this.jobs.clear();
      this.compressor = null;
      return true;
    }
    while (r !== undefined) {
      // A seq still in `jobs` belongs to a queued batch not yet compressed (commitAllQueued clears both together).
      if (this.jobs.delete(r.seq)) {
        const seq = r.seq;
        const entry = this.queue.find((e) => e.seq === seq);
        if (entry !== undefined) {
          if (r.out !== null) entry.compressed = r.out;
          else entry.failed = new SpoolError(SpoolErrorCode.Format, `batch compression failed: ${r.error ?? 'unknown error'}`);
        }
      }
      r = this.compressor.poll();
    }
    return true;
  }

  private armPoll(): void {
    if (this.pollTimer !== null) return;
    this.pollTimer = setTimeout(() => {
      this.pollTimer = null;
      if (this.closed) return;
      this.pollQueued();
      if (this.jobs.size > 0) this.armPoll();
    }, COMPRESSOR_POLL_MS);
  }

  /**
   * While on, queued batches are stored uncompressed (SEAL_FORMAT_NONE, still sealed): the
   * ingest worker turns it on when it falls behind, since compression is then CPU taken from
   * decoding on a machine that is about to drop records. Costs ~40% more bytes at rest for
   * those batches; they read back like any other.
   */
  setCompressionBypass(on: boolean): void {
    this.bypassCompression = on;
  }

  /**
   * Hands the periodic checkpoint to a background checkpointer (WalCheckpointer, whose own
   * connection checkpoints every ~100 ms; null: this thread checkpoints again, as without one).
   * With one, this thread no longer runs the TRUNCATE checkpoint every checkpointIntervalMs —
   * its copies and fsyncs (tens of ms on a loaded disk) were the ingest worker's largest wait —
   * and SQLite's automatic checkpoint on this connection only fires once the WAL reaches the
   * journal size limit (64 MiB), as a safety valve. Instead:
   * - the high-water mark is written (at most once per checkpointIntervalMs) with the batch id
   *   the checkpointer's last complete checkpoint made durable (see DurableMark);
   * - the power-cut window is unchanged: when no complete background checkpoint covers a commit
   *   older than checkpointIntervalMs, this thread checkpoints (TRUNCATE) as before;
   * - shredding a key and close() still checkpoint (TRUNCATE) here, so a shredded key's old
   *   pages leave the WAL at once.
   * The mark's time must be on this spool's clock (Date.now by default).
   */
  useBackgroundCheckpoints(source: BackgroundCheckpoints | null): void {
    this.assertOpen();
    if (this.readOnly) return;
    this.background = source;
    const pageSize = this.db.pragma('page_size', { simple: true }) as number;
    this.db.pragma(`wal_autocheckpoint = ${source === null ? SQLITE_WAL_AUTOCHECKPOINT_PAGES : Math.max(SQLITE_WAL_AUTOCHECKPOINT_PAGES, Math.floor(JOURNAL_SIZE_LIMIT_BYTES / pageSize))}`);
  }

  /** Checkpoints this spool ran on its own thread (see useBackgroundCheckpoints), and how many of them found the WAL busy (retried). */
  checkpointStats(): { readonly inline: number; readonly busy: number } {
    return { inline: this.inlineCheckpoints, busy: this.busyCheckpoints };
  }

  /** Queued batches by where they were compressed: on the compressor thread, on this thread, or not at all (bypass). */
  compressionStats(): CompressionStats {
    return { ...this.compressionCounts };
  }

  /** Resolves once every batch queued so far has been committed (or dropped) and reported. */
  settled(): Promise<void> {
    if (this.queue.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.queueWaiters.push(resolve));
  }

  /** Ready batches at the front of the queue not yet committed by a group. */
  private readyAtFront(): number {
    let k = 0;
    for (const e of this.queue) {
      if (!isReady(e) || e.committed !== undefined) break;
      k++;
    }
    return k;
  }

  /** Commits the ready batches now when GROUP_COMMIT_BATCHES are waiting, else within GROUP_COMMIT_MS. */
  private commitSoon(): void {
    if (this.readyAtFront() >= GROUP_COMMIT_BATCHES) {
      this.commitQueued();
      return;
    }
    this.armGroupTimer();
  }

  private armGroupTimer(): void {
    this.groupTimer ??= setTimeout(() => {
      this.groupTimer = null;
      if (!this.closed) this.commitQueued();
    }, GROUP_COMMIT_MS);
  }

  /**
   * Commits `group` (ready batches at the front of the queue) in one transaction and marks
   * each with its result; commitQueued's loop then reports them in order, exactly as it
   * reports batches committed one by one (so a `done` that throws leaves the rest queued and
   * reported on the next call). Should anything in the group throw, the transaction has rolled
   * back as a whole, nothing is marked, and the loop stores each batch on its own, with the
   * single-batch handling of storage errors (disk full: evict and retry; I/O: drop and count).
   */
  private commitGroup(group: readonly QueuedAppend[]): void {
    const results: AppendResult[] = [];
    try {
      this.db
        .transaction(() => {
          for (const e of group) results.push(e.compressed !== null ? this.commit(e.compressed, e.records, e.format) : this.encodeFailed(e.failed, e.records));
        })
        .immediate();
    } catch (err) {
      this.forgetRolledBackEpoch();
      this.rateLog.log('warn', 'group', { event: 'spool.group_commit_failed', code: sqliteCode(err) ?? 'unknown', batches: group.length }, 'group commit failed and rolled back; storing its batches one by one');
      return;
    }
    for (const [i, e] of group.entries()) {
      const r = results[i];
      if (r !== undefined) e.committed = r;
    }
    this.maintenance(false);
  }

  /** Appends (or drops) at the front of the queue while their compression is done; wakes settled() when it empties. */
  private commitQueued(): void {
    if (this.groupTimer !== null) {
      clearTimeout(this.groupTimer);
      this.groupTimer = null;
    }
    const ready = this.readyAtFront();
    if (ready >= 2 && !this.readOnly) this.commitGroup(this.queue.slice(0, ready));
    let head = this.queue[0];
    try {
      while (head !== undefined && isReady(head)) {
        this.queue.shift();
        const { compressed, failed, records: n, format, committed } = head;
        this.settle(head.done, () => committed ?? (compressed !== null ? this.store(compressed, n, format) : this.encodeFailed(failed, n)));
        head = this.queue[0];
      }
    } finally {
      // A `done` threw (it propagates to the caller): what is ready behind it is committed and reported soon, not left waiting for the next batch.
      head = this.queue[0];
      if (head !== undefined && isReady(head)) this.armGroupTimer();
    }
    if (this.queue.length === 0 && this.queueWaiters.length > 0) {
      const waiters = this.queueWaiters;
      this.queueWaiters = [];
      for (const w of waiters) w();
    }
  }

  /**
   * Commits every queued batch now, in order. Batches out on the compressor thread are waited
   * for (at most the compressorWaitMs option, 10 s by default); any that do not come back are dropped and counted.
   */
  private commitAllQueued(): void {
    if (this.queue.length === 0) return;
    // Batches out on the compressor thread were transferred there: wait for them (bounded).
    const deadline = Date.now() + this.compressorWaitMs;
    while (this.jobs.size > 0 && Date.now() < deadline) {
      if (!this.takeResults()) Atomics.wait(SLEEP_CELL, 0, 0, 1);
    }
    for (const entry of this.queue) {
      if (entry.compressed === null && entry.failed === null) entry.failed = new SpoolError(SpoolErrorCode.Io, 'the batch compressor thread did not return the batch in time');
    }
    // Late results, if any still come, are ignored.
    this.jobs.clear();
    this.commitQueued();
  }

  private compressNow(entry: QueuedAppend, plain: Uint8Array): void {
    try {
      entry.compressed = compressBatch(this.sealFormat, plain);
    } catch (err) {
      entry.failed = err as Error;
    }
  }

  /** Runs `step` and reports its result or exception to `done`; an exception thrown by `done` itself is not caught. */
  private settle(done: AppendDone, step: () => AppendResult): void {
    let result: AppendResult;
    try {
      result = step();
    } catch (err) {
      done(err, null);
      return;
    }
    done(null, result);
  }

  private encodeFailed(err: unknown, n: number): AppendResult {
    this.rateLog.log('error', 'encode', { event: 'spool.encode_failed', records: n, err: (err as Error).message }, 'batch could not be serialized or compressed; records dropped');
    this.countDropped(n);
    return { id: null, records: n, droppedRecords: n, evictedBatches: 0, evictedRecords: 0, dropReason: 'encode' };
  }

  /** Seals and commits a compressed batch; storage errors drop it (counted). */
  private store(compressed: Uint8Array, n: number, format: number): AppendResult {
    let result: AppendResult;
    try {
      result = this.commit(compressed, n, format);
    } catch (err) {
      if (!isStorageError(err)) throw err;
      result = this.retryAfterStorageError(err, compressed, n, format);
    }
    this.maintenance(false);
    return result;
  }

  private retryAfterStorageError(err: unknown, compressed: Uint8Array, n: number, format: number): AppendResult {
    this.forgetRolledBackEpoch();
    const code = sqliteCode(err) ?? 'unknown';
    // Disk full with drop-oldest: free what the batch needs (twice, for page slack) and retry once.
    if (code.startsWith('SQLITE_FULL') && this.fullPolicy === 'drop-oldest') {
      try {
        const freed = this.db.transaction(() => this.evictFront(2 * (compressed.length + NONCE_BYTES + TAG_BYTES))).immediate();
        const result = this.commit(compressed, n, format);
        return { ...result, evictedBatches: result.evictedBatches + freed.batches, evictedRecords: result.evictedRecords + freed.records };
      } catch (err2) {
        if (!isStorageError(err2)) throw err2;
        err = err2;
      }
    }
    this.ioErrors++;
    this.rateLog.log('error', `io:${code}`, { event: 'spool.append_failed', code: sqliteCode(err), records: n }, 'spool write failed; batch dropped');
    try {
      this.countDropped(n);
    } catch {
      // The counter lives on the same failing disk; the instance counter (ioErrors) still shows it.
    }
    return { id: null, records: n, droppedRecords: n, evictedBatches: 0, evictedRecords: 0, dropReason: 'io' };
  }

  private countDropped(n: number): void {
    this.q('UPDATE meta SET dropped_batches = dropped_batches + 1, dropped_records = dropped_records + ? WHERE id = 1').run(n);
  }

  /** Seals `compressed` (in seal format `format`, bound into the associated data) and commits it. */
  private commit(compressed: Uint8Array, n: number, format: number): AppendResult {
    const size = compressed.length + NONCE_BYTES + TAG_BYTES;
    return this.db.transaction((): AppendResult => {
      const now = this.clock();
      const meta = this.meta();
      let evicted = { batches: 0, records: 0 };
      if (size > this.quotaBytes) {
        this.countDropped(n);
        this.rateLog.log('warn', 'oversize', { event: 'spool.batch_dropped', reason: 'oversize', records: n, bytes: size }, 'batch larger than the spool quota; dropped');
        return { id: null, records: n, droppedRecords: n, evictedBatches: 0, evictedRecords: 0, dropReason: 'oversize' };
      }
      if (meta.live_bytes + size > this.quotaBytes) {
        if (this.fullPolicy === 'drop-newest') {
          this.countDropped(n);
          this.rateLog.log('warn', 'quota', { event: 'spool.batch_dropped', reason: 'quota', records: n }, 'spool quota reached; new batch dropped (drop-newest)');
          return { id: null, records: n, droppedRecords: n, evictedBatches: 0, evictedRecords: 0, dropReason: 'quota' };
        }
        evicted = this.evictFront(meta.live_bytes + size - this.quotaBytes);
      }
      const epoch = this.ensureEpoch(now);
      const id = this.sequence('batches') + 1;
      const prev = this.q('SELECT id, tag FROM batches ORDER BY id DESC LIMIT 1').get() as { id: number; tag: Uint8Array } | undefined;
      const anchor = prev === undefined ? this.meta() : null;
      const prevId = prev?.id ?? anchor?.anchor_id ?? 0;
      const prevTag = prev?.tag ?? anchor?.anchor_tag ?? ZERO_TAG;
      const nonce = randomBytes(NONCE_BYTES);
      const sealed = seal(epoch.key, nonce, compressed, batchAd(format, this.spoolId, id, epoch.id, prevTag));
      this.q('INSERT INTO batches (id, format, epoch, state, records, bytes, created_min, attempts, prev_id, nonce, tag) VALUES (?, ?, ?, 0, ?, ?, ?, 0, ?, ?, ?)')
        .run(id, format, epoch.id, n, size, Math.floor(now / MINUTE_MS), prevId, nonce, sealed.tag);
      this.q('INSERT INTO payloads (id, data) VALUES (?, ?)').run(id, sealed.ciphertext);
      return { id, records: n, droppedRecords: 0, evictedBatches: evicted.batches, evictedRecords: evicted.records, dropReason: null };
    }).immediate();
  }

  /**
   * After a rolled-back append: an epoch created inside it no longer exists, so its cached key
   * is forgotten (and wiped) and the next append makes and wraps a new one. Otherwise another
   * spool instance could create an epoch with the same id and its own key, and this one would
   * seal with the stale key. If the check itself fails, only the current-epoch cache is dropped.
   */
  private forgetRolledBackEpoch(): void {
    const cur = this.current;
    if (cur === null) return;
    let gone: boolean;
    try {
      gone = this.q('SELECT 1 FROM epochs WHERE id = ?').get(cur.id) === undefined;
    } catch {
      this.current = null;
      return;
    }
    if (!gone) return;
    this.current = null;
    this.epochKeys.delete(cur.id);
    wipe(cur.key);
  }

  /** The epoch to seal with now: the current one while it lasts and its key row exists, else a new one. Runs inside the append transaction. */
  private ensureEpoch(now: number): CurrentEpoch {
    const cur = this.current;
    if (cur !== null && now < cur.endsAtMs && this.q('SELECT 1 FROM epochs WHERE id = ?').get(cur.id) !== undefined) return cur;
    if (cur !== null) this.q('UPDATE epochs SET ends_min = min(ends_min, ?) WHERE id = ?').run(Math.floor(now / MINUTE_MS), cur.id);
    const kek = this.currentKek;
    const id = this.sequence('epochs') + 1;
    const key = randomKey();
    const endsAtMs = now + this.epochMs;
    this.q('INSERT INTO epochs (id, kek_fp, wrapped, created_min, ends_min) VALUES (?, ?, ?, ?, ?)')
      .run(id, kek.fingerprint, kek.wrap(key, epochKeyAd(this.spoolId, id)), Math.floor(now / MINUTE_MS), Math.ceil(endsAtMs / MINUTE_MS));
    this.epochKeys.set(id, key);
    this.current = { id, key, endsAtMs };
    return this.current;
  }

  /**
   * Removes batches from the front of the chain until `needBytes` of live batches are freed
   * (quota eviction = crypto-shredding once their epoch empties). Runs inside a transaction.
   */
  private evictFront(needBytes: number): { batches: number; records: number } {
    let freed = 0;
    let batches = 0;
    let records = 0;
    let last: { id: number; tag: Uint8Array } | null = null;
    const page = this.q('SELECT id, state, records, bytes, tag FROM batches WHERE id > ? ORDER BY id LIMIT ?');
    let after = 0;
    while (freed < needBytes) {
      const rows = page.all(after, SCAN_PAGE_ROWS) as { id: number; state: number; records: number; bytes: number; tag: Uint8Array }[];
      if (rows.length === 0) break;
      for (const row of rows) {
        after = row.id;
        last = { id: row.id, tag: row.tag };
        if (row.state !== BATCH_STATE_ACKED) {
          freed += row.bytes;
          batches++;
          records += row.records;
          this.leased.delete(row.id);
        }
        if (freed >= needBytes) break;
      }
    }
    if (last === null) return { batches: 0, records: 0 };
    this.q('DELETE FROM batches WHERE id <= ?').run(last.id);
    this.q('DELETE FROM payloads WHERE id <= ?').run(last.id);
    this.setAnchor(last.id, last.tag);
    this.q('UPDATE meta SET evicted_batches = evicted_batches + ?, evicted_records = evicted_records + ? WHERE id = 1').run(batches, records);
    this.rateLog.log('warn', 'evicted', { event: 'spool.evicted', batches, records, bytes: freed }, 'spool quota reached; oldest batches dropped');
    this.shredEmptyEpochs(this.clock());
    return { batches, records };
  }

  // ---------------------------------------------------------------- lease / ack / release / park

  /**
   * Leases up to `maxBatches` of the oldest ready batches not leased by this instance,
   * decrypted, decompressed and verified (authentication and record count): their
   * batch-format bytes, which this module never decodes. A batch that fails verification is
   * parked as 'integrity' (quarantined, counted) and not returned.
   */
  lease(maxBatches: number): LeasedBatch[] {
    return this.leaseWith(maxBatches, (row, prevTag) => this.openPlain(row, prevTag), (row, batch) => ({
      id: row.id,
      batch,
      recordCount: row.records,
      createdAtMs: row.created_min * MINUTE_MS,
      attempts: row.attempts + 1,
      bytes: row.bytes,
    }));
  }

  private leaseWith<T, L>(maxBatches: number, open: (row: BatchRow, prevTag: Uint8Array) => T | string, make: (row: BatchRow, opened: T) => L): L[] {
    this.assertOpen();
    const out: L[] = [];
    if (maxBatches <= 0) return out;
    let after = 0;
    const page = this.q('SELECT * FROM batches WHERE state = 0 AND id > ? ORDER BY id LIMIT ?');
    const payload = this.q('SELECT data FROM payloads WHERE id = ?');
    const prevStmt = this.q('SELECT tag FROM batches WHERE id < ? ORDER BY id DESC LIMIT 1');
    while (out.length < maxBatches) {
      // One read transaction: the rows, their payloads, their predecessors' tags and the anchor
      // from one snapshot (another instance may evict from the front meanwhile). Payloads are
      // read only for batches not already leased here.
      const snapshot = this.db.transaction(() => {
        const rows = page.all(after, SCAN_PAGE_ROWS) as Omit<BatchRow, 'payload'>[];
        const anchorTag = this.meta().anchor_tag;
        const picked: { row: BatchRow; prevTag: Uint8Array }[] = [];
        let scannedTo: number | null = null;
        for (const r of rows) {
          scannedTo = r.id;
          if (this.leased.has(r.id)) continue;
          const data = (payload.get(r.id) as { data: Uint8Array } | undefined)?.data ?? null;
          picked.push({ row: { ...r, payload: data }, prevTag: (prevStmt.get(r.id) as { tag: Uint8Array } | undefined)?.tag ?? anchorTag });
          if (picked.length >= maxBatches - out.length) break;
        }
        return { picked, scannedTo };
      })();
      if (snapshot.scannedTo === null) break;
      after = snapshot.scannedTo;
      for (const { row, prevTag } of snapshot.picked) {
        const opened = open(row, prevTag);
        if (typeof opened === 'string') {
          this.quarantine(row.id, opened);
          continue;
        }
        this.writeQuietly('attempts', () => this.q('UPDATE batches SET attempts = attempts + 1 WHERE id = ?').run(row.id));
        this.leased.add(row.id);
        out.push(make(row, opened));
      }
    }
    return out;
  }

  /**
   * Runs a small metadata write; a storage error (disk full, I/O) is counted and logged instead
   * of thrown, so the drain keeps going (the write is retried naturally: an unacked batch stays).
   */
  private writeQuietly(what: string, fn: () => unknown): boolean {
    try {
      fn();
      return true;
    } catch (err) {
      if (!isStorageError(err)) throw err;
      this.ioErrors++;
      this.rateLog.log('error', `io:${what}`, { event: 'spool.write_failed', what, code: sqliteCode(err) }, 'spool metadata write failed');
      return false;
    }
  }

  /** Decrypts and decompresses one batch to its batch-format bytes; a string says why it failed. */
  private openPlain(row: BatchRow, prevTag: Uint8Array): Uint8Array | string {
    if (!isSealFormat(row.format)) return `unknown batch format ${row.format}`;
    if (row.payload === null) return 'sealed payload is missing';
    const key = this.epochKey(row.epoch);
    if (key === null) return `data key of epoch ${row.epoch} is missing`;
    const plain = openSeal(key, row.nonce, row.payload, row.tag, batchAd(row.format, this.spoolId, row.id, row.epoch, prevTag));
    if (plain === null) return 'authentication failed (batch altered or moved, or its predecessor removed or altered)';
    let bytes: Uint8Array;
    let count: number;
    try {
      bytes = decompressBatch(row.format, plain);
      count = batchRecordCount(bytes);
    } catch (err) {
      return `authenticated but undecodable: ${(err as Error).message}`;
    }
    // The header's count against the stored one; decodeBatch checks that exactly `count` records fill the batch.
    if (count !== row.records) return `record count ${count} differs from the stored ${row.records}`;
    return bytes;
  }

  private quarantine(id: number, reason: string): void {
    this.quarantined++;
    this.rateLog.log('error', 'quarantine', { event: 'spool.batch_quarantined', batchId: id, reason }, 'spool batch failed verification; parked as integrity');
    if (this.readOnly) return;
    this.writeQuietly('quarantine', () => this.q('UPDATE batches SET state = 1, park_reason = ? WHERE id = ? AND state = 0').run(PARK_REASON_INTEGRITY, id));
  }

  /** Acknowledges a delivered batch: it is removed (and its epoch key shredded if it was the last). A batch already gone is a counted no-op. */
  ack(id: number): void {
    this.assertOpen();
    this.leased.delete(id);
    const outcome = { removed: true };
    // A storage error leaves the batch in the spool (it is delivered again later: at-least-once).
    this.writeQuietly('ack', () => {
      outcome.removed = this.db.transaction((): boolean => {
        const row = this.q('SELECT state, tag FROM batches WHERE id = ?').get(id) as { state: number; tag: Uint8Array } | undefined;
        if (row === undefined || row.state === BATCH_STATE_ACKED) return false;
        this.q('UPDATE batches SET state = 2, park_reason = NULL, ack_mac = ? WHERE id = ?').run(mac(this.anchorKey, ackMessage(this.spoolId, id, row.tag)), id);
        this.q('DELETE FROM payloads WHERE id = ?').run(id);
        this.compactFront();
        this.shredEmptyEpochs(this.clock());
        return true;
      }).immediate();
    });
    if (!outcome.removed) this.ackMisses++;
    this.maintenance(false);
  }

  /** Deletes acknowledged rows at the front of the chain and moves the anchor past them. */
  private compactFront(): void {
    // Only tombstones whose ack MAC verifies are removed: a row turned into a tombstone
    // without the key stays, and verify() reports it.
    const page = this.q('SELECT id, state, tag, ack_mac FROM batches WHERE id > ? ORDER BY id LIMIT ?');
    let last: { id: number; tag: Uint8Array } | null = null;
    let after = 0;
    scan: for (;;) {
      const rows = page.all(after, SCAN_PAGE_ROWS) as { id: number; state: number; tag: Uint8Array; ack_mac: Uint8Array | null }[];
      if (rows.length === 0) break;
      for (const row of rows) {
        if (row.state !== BATCH_STATE_ACKED || !this.ackValid(row.id, row.tag, row.ack_mac)) break scan;
        last = { id: row.id, tag: row.tag };
        after = row.id;
      }
    }
    if (last === null) return;
    this.q('DELETE FROM batches WHERE id <= ?').run(last.id);
    this.q('DELETE FROM payloads WHERE id <= ?').run(last.id);
    this.setAnchor(last.id, last.tag);
  }

  private ackValid(id: number, tag: Uint8Array, ackMac: Uint8Array | null): boolean {
    return ackMac !== null && equalBytes(mac(this.anchorKey, ackMessage(this.spoolId, id, tag)), ackMac);
  }

  /** Destroys the keys of ended epochs that hold no live batch (crypto-shredding). Runs inside a transaction. */
  private shredEmptyEpochs(now: number): void {
    const cutoff = Math.floor(now / MINUTE_MS) - SHRED_GRACE_MINUTES;
    const ids = this.q('SELECT id FROM epochs WHERE ends_min < ? AND NOT EXISTS (SELECT 1 FROM batches WHERE batches.epoch = epochs.id AND batches.state != 2)')
      .all(cutoff) as { id: number }[];
    if (ids.length === 0) return;
    const del = this.q('DELETE FROM epochs WHERE id = ?');
    for (const { id } of ids) {
      if (this.current?.id === id) continue;
      del.run(id);
      const key = this.epochKeys.get(id);
      if (key !== undefined) wipe(key);
      this.epochKeys.delete(id);
      this.logger.info({ event: 'spool.epoch_shredded', epoch: id }, 'epoch data key destroyed');
    }
    this.q('UPDATE meta SET shredded_epochs = shredded_epochs + ? WHERE id = 1').run(ids.length);
    this.shredPending = true;
  }


  /** Returns a leased batch to the queue (delivery failed; retry later). */
  release(id: number): void {
    this.assertOpen();
    this.leased.delete(id);
  }

  /** Keeps a batch (encrypted) out of the queue, e.g. rejected by the receiver; visible in status. */
  park(id: number, reason: string): void {
    this.assertOpen();
    this.leased.delete(id);
    this.writeQuietly('park', () => this.q('UPDATE batches SET state = 1, park_reason = ? WHERE id = ? AND state = 0').run(reason.slice(0, MAX_PARK_REASON_LENGTH), id));
  }

  /** Puts parked batches back into the queue (all, or those parked for `reason`). Returns how many. */
  unpark(reason?: string): number {
    this.assertOpen();
    const r = reason === undefined
      ? this.q('UPDATE batches SET state = 0, park_reason = NULL WHERE state = 1').run()
      : this.q('UPDATE batches SET state = 0, park_reason = NULL WHERE state = 1 AND park_reason = ?').run(reason);
    return r.changes;
  }

  // ---------------------------------------------------------------- inspection

  status(): SpoolStatus {
    this.assertOpen();
    return this.db.transaction((): SpoolStatus => {
      const meta = this.meta();
      const parked = this.q('SELECT park_reason AS reason, count(*) AS n, total(records) AS r FROM batches WHERE state = 1 GROUP BY park_reason').all() as { reason: string | null; n: number; r: number }[];
      const parkedByReason: Record<string, number> = {};
      let parkedBatches = 0;
      let parkedRecords = 0;
      for (const p of parked) {
        parkedByReason[p.reason ?? ''] = p.n;
        parkedBatches += p.n;
        parkedRecords += p.r;
      }
      const oldest = this.q('SELECT created_min FROM batches WHERE state != 2 ORDER BY id LIMIT 1').get() as { created_min: number } | undefined;
      const epochs = (this.q('SELECT count(*) AS n FROM epochs').get() as { n: number }).n;
      const tombstones = (this.q('SELECT count(*) AS n FROM batches WHERE state = 2').get() as { n: number }).n;
      let fileBytes = 0;
      for (const f of [this.path, `${this.path}-wal`]) {
        try {
          fileBytes += statSync(f).size;
        } catch {
          // no WAL file right now
        }
      }
      return {
        spoolId: Buffer.from(this.spoolId).toString('hex'),
        batches: meta.live_batches,
        records: meta.live_records,
        bytes: meta.live_bytes,
        fileBytes,
        quotaBytes: this.quotaBytes,
        quotaUsed: meta.live_bytes / this.quotaBytes,
        oldestAgeMs: oldest === undefined ? null : Math.max(0, this.clock() - oldest.created_min * MINUTE_MS),
        lastBatchId: this.sequence('batches'),
        epochs,
        leased: this.leased.size,
        parkedBatches,
        parkedRecords,
        parkedByReason,
        tombstones,
        evictedBatches: meta.evicted_batches,
        evictedRecords: meta.evicted_records,
        droppedBatches: meta.dropped_batches,
        droppedRecords: meta.dropped_records,
        shreddedEpochs: meta.shredded_epochs,
        quarantined: this.quarantined,
        ioErrors: this.ioErrors,
        ackMisses: this.ackMisses,
        rollback: this.rollback,
        synchronous: this.synchronous,
      };
    })();
  }

  /** Walks the whole chain: the anchor MAC, every batch's tag, chain links and the high-water mark. */
  verify(): VerifyReport {
    this.assertOpen();
    const failures: VerifyFailure[] = [];
    const gaps: { afterId: number; beforeId: number; expectedPrevId: number }[] = [];
    const walk = this.db.transaction(() => {
      const meta = this.meta();
      let batches = 0;
      let verified = 0;
      let tombstones = 0;
      let records = 0;
      let prevId = meta.anchor_id;
      let prevTag: Uint8Array = meta.anchor_tag;
      for (const row of this.q(`${BATCH_WITH_PAYLOAD} ORDER BY b.id`).iterate() as IterableIterator<BatchRow>) {
        batches++;
        if (row.prev_id !== prevId) gaps.push({ afterId: prevId, beforeId: row.id, expectedPrevId: row.prev_id });
        if (row.state === BATCH_STATE_ACKED) {
          tombstones++;
          if (!this.ackValid(row.id, row.tag, row.ack_mac)) failures.push({ id: row.id, reason: 'marked acknowledged without the key (ack MAC does not verify): the batch was deleted' });
        } else {
          // Authentication and the record count; decoding is left to lease/export (it would make
          // verifying a large spool several times slower and proves nothing the tag does not).
          const opened = this.openPlain(row, prevTag);
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
      const seq = this.sequence('batches');
      if (prevId < seq && meta.rollback_expected === null) {
        failures.push({ id: seq, reason: `the newest batches ${prevId + 1}..${seq} are missing (removed from the end without the key)` });
      }
      return { batches, verified, tombstones, records, anchorOk: this.anchorValid(meta) };
    });
    const { batches, verified, tombstones, records, anchorOk } = walk();
    const hwm = this.readHwm();
    const hwmSeen = (this.q('SELECT hwm_seen FROM meta WHERE id = 1').get() as { hwm_seen: number }).hwm_seen === 1;
    let rollback = this.rollback;
    if (hwm !== null && this.sequence('batches') < hwm) rollback = { expectedAtLeast: hwm, found: this.sequence('batches') };
    if (!anchorOk) failures.push({ id: 0, reason: 'chain anchor MAC does not verify (batches removed from the front without the key)' });
    return {
      ok: failures.length === 0 && gaps.length === 0 && rollback === null && anchorOk && !(hwmSeen && this.hwmProblem !== null),
      batches,
      verified,
      tombstones,
      records,
      anchorOk,
      failures,
      gaps,
      rollback,
      hwmProblem: this.hwmProblem,
    };
  }

  /**
   * Every verifiable batch in chain order, as verified batch-format bytes (for `spool
   * export`); batches that fail verification are reported to `onFailure` and skipped.
   */
  *exportBatches(onFailure?: (failure: VerifyFailure) => void): Iterable<ExportedBatch> {
    this.assertOpen();
    const meta = this.meta();
    let prevTag: Uint8Array = meta.anchor_tag;
    let after = 0;
    const page = this.q(`${BATCH_WITH_PAYLOAD} WHERE b.id > ? ORDER BY b.id LIMIT ?`);
    for (;;) {
      const rows = page.all(after, SCAN_PAGE_ROWS) as BatchRow[];
      if (rows.length === 0) return;
      for (const row of rows) {
        after = row.id;
        if (row.state !== BATCH_STATE_ACKED) {
          const opened = this.openPlain(row, prevTag);
          if (typeof opened === 'string') onFailure?.({ id: row.id, reason: opened });
          else yield { id: row.id, batch: opened, recordCount: row.records };
        }
        prevTag = row.tag;
      }
    }
  }

  // ---------------------------------------------------------------- decoder state

  /** Stores the decoder state (templates, sampling, uptime anchors) encrypted; replaces the previous one. */
  saveDecoderState(state: Uint8Array): void {
    this.assertOpen();
    const blob = sealBlob(this.stateKey, state, this.decoderStateAd());
    this.q('INSERT OR REPLACE INTO decoder_state (id, blob) VALUES (1, ?)').run(blob);
  }

  /** The last saved decoder state, or null (none saved, or it fails authentication — logged). */
  loadDecoderState(): Uint8Array | null {
    this.assertOpen();
    const row = this.q('SELECT blob FROM decoder_state WHERE id = 1').get() as { blob: Uint8Array } | undefined;
    if (row === undefined) return null;
    const state = openBlob(this.stateKey, row.blob, this.decoderStateAd());
    if (state === null) this.logger.error({ event: 'spool.decoder_state_invalid' }, 'saved decoder state fails authentication; starting without it');
    return state;
  }

  private decoderStateAd(): Uint8Array {
    return Buffer.concat([Buffer.from('sealflow decoder state\0'), this.spoolId]);
  }

  // ---------------------------------------------------------------- maintenance & close

  /** Checkpoints (TRUNCATE) when due or after a key was shredded, then records the high-water mark. */
  private maintenance(force: boolean): void {
    this.dirty = true;
    const now = this.clock();
    if (!force) {
      if (this.background !== null && !this.shredPending) this.followBackground(now);
      if (!this.checkpointDue(now)) return;
    }
    this.checkpoint(force);
  }

  /**
   * Whether this thread should checkpoint now: a key was shredded, or commits are not known
   * checkpointed for checkpointIntervalMs — but not before a checkpoint that could not complete
   * is due for its retry (see checkpoint()).
   */
  private checkpointDue(now: number): boolean {
    if (now < this.checkpointRetryAtMs) return false;
    return this.shredPending || now - this.lastCheckpointMs >= this.checkpointIntervalMs;
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
    if (mark.seq > this.hwmWritten && now - this.lastHwmWriteMs >= this.checkpointIntervalMs) {
      this.lastHwmWriteMs = now;
      this.writeHwm(mark.seq);
    }
    return mark.seq;
  }

  /** The idle tick: checkpoints commits made since the last checkpoint even when no further write comes. */
  private tick(): void {
    if (this.closed || (!this.dirty && !this.shredPending)) return;
    const now = this.clock();
    if (this.background !== null && !this.shredPending) {
      const covered = this.followBackground(now);
      try {
        // Everything committed is covered by a complete background checkpoint: nothing left to do until the next write.
        if (covered >= this.sequence('batches') && covered <= this.hwmWritten) {
          this.dirty = false;
          return;
        }
      } catch {
        // The checkpoint below reports a failing database.
      }
    }
    if (this.checkpointDue(now)) this.checkpoint(false);
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
  private checkpoint(force: boolean): void {
    if (this.readOnly) return;
    this.inlineCheckpoints++;
    const now = this.clock();
    const shortWait = !force && this.busyTimeoutMs > CHECKPOINT_BUSY_TIMEOUT_MS;
    try {
      const seq = this.sequence('batches');
      if (shortWait) this.db.pragma(`busy_timeout = ${CHECKPOINT_BUSY_TIMEOUT_MS}`);
      let r: { busy: number; log: number; checkpointed: number }[];
      try {
        r = this.db.pragma('wal_checkpoint(TRUNCATE)') as { busy: number; log: number; checkpointed: number }[];
      } finally {
        if (shortWait) this.db.pragma(`busy_timeout = ${this.busyTimeoutMs}`);
      }
      if (r[0]?.busy === 0) {
        this.lastCheckpointMs = now;
        this.checkpointRetryAtMs = 0;
        this.checkpointFailuresInRow = 0;
        this.shredPending = false;
        this.dirty = false;
        // The database file is synced by a completed checkpoint, so `seq` is durable before the mark is written.
        this.writeHwm(seq);
        return;
      }
      this.busyCheckpoints++;
    } catch (err) {
      this.rateLog.log('warn', 'checkpoint', { event: 'spool.checkpoint_failed', code: sqliteCode(err) }, 'spool WAL checkpoint failed');
    }
    this.checkpointRetryAtMs = now + Math.min(CHECKPOINT_RETRY_MS * 2 ** this.checkpointFailuresInRow, this.checkpointIntervalMs);
    this.checkpointFailuresInRow = Math.min(this.checkpointFailuresInRow + 1, 30);
  }

  private assertOpen(): void {
    if (this.closed) throw new SpoolError(SpoolErrorCode.Closed, 'the spool is closed');
  }

  /** Checkpoints, writes the high-water mark, closes the database and wipes keys. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.commitAllQueued();
    if (this.pollTimer !== null) clearTimeout(this.pollTimer);
    if (this.groupTimer !== null) clearTimeout(this.groupTimer);
    this.compressor = null;
    try {
      if (!this.readOnly && this.current !== null) {
        // This appender will not use its epoch again: let it be shredded as soon as it is empty.
        this.q('UPDATE epochs SET ends_min = min(ends_min, ?) WHERE id = ?').run(Math.floor(this.clock() / MINUTE_MS), this.current.id);
      }
      this.checkpoint(true);
    } catch (err) {
      this.rateLog.log('warn', 'close', { event: 'spool.close_failed', code: sqliteCode(err) }, 'spool close: final checkpoint failed');
    }
    this.closed = true;
    if (this.tickHandle !== null) this.clearTick(this.tickHandle);
    this.leased.clear();
    this.db.close();
    for (const key of this.epochKeys.values()) wipe(key);
    this.epochKeys.clear();
    for (const k of [this.spoolKey, this.anchorKey, this.hwmKey, this.stateKey]) wipe(k);
    for (const k of this.keks) k.destroy();
    this.current = null;
  }

  /** Runs `PRAGMA integrity_check` (tests, `spool verify`). */
  integrityCheck(): string {
    this.assertOpen();
    const rows = this.db.pragma('integrity_check') as { integrity_check: string }[];
    return rows.map((r) => r.integrity_check).join('; ');
  }

  /** Rebuilds the database file (VACUUM), then truncates the WAL. */
  vacuum(): void {
    this.assertOpen();
    this.db.exec('VACUUM');
    this.checkpoint(true);
  }

  /** Ids currently leased by this instance. */
  leasedIds(): readonly number[] {
    return [...this.leased];
  }
}
