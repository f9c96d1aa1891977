import { SpoolError, SpoolErrorCode } from '../flow/errors.js';
import { NO_SPAN, type AppendDone, type AppendResult, type BatchSink, type BatchSpan, type DropReason } from '../flow/pipeline.js';
import { AppendQueue, type BatchFacts, type CompressionStats, type QueuedBatch } from './append-queue.js';
import type { BatchCompressor } from './batch-compressor.js';
import type { Chain } from './chain.js';
import type { Checkpoints } from './checkpoints.js';
import { batchDigest, compressBatch } from './compression.js';
import type { Keyring } from './keyring.js';
import type { SpaceReserve } from './space-reserve.js';
import { NONCE_BYTES, TAG_BYTES } from './spool-crypto.js';
import { BATCH_STATE_ACKED, BATCH_STATE_PARKED, BATCH_STATE_READY } from './spool-schema.js';
import type { EvictReason } from '../flow/audit.js';
import { isStorageError, MINUTE_MS, SCAN_PAGE_ROWS, sqliteCode, type SpoolStore } from './store.js';

/**
 * The spool's writer (the ingest worker's BatchSink): compresses, seals and commits batches of
 * batch-format bytes it never reads, in the order they come (the hash chain's order), within
 * the byte quota. Storage problems never throw: quota, disk-full and I/O errors drop the batch
 * and say so in its result, with the reason (invariants 1–3 of spool.ts). Drops are counted by
 * whoever takes the results (the ingest worker's loss ledger), not in the database: a full
 * disk cannot record its own failures. Evictions are counted in the database too (status()),
 * in the transaction that evicts.
 */

export type FullPolicy = 'drop-oldest' | 'drop-newest';

export interface WriterOptions {
  /** Byte quota over the stored batches (ciphertext + nonce + tag). */
  readonly quotaBytes: number;
  /** What to do when a new batch does not fit the quota. */
  readonly fullPolicy: FullPolicy;
  /** Seal format byte of new batches (compression.ts). */
  readonly sealFormat: number;
  /** Longest close(), append() and useCompressor() wait for batches out on the compressor thread. */
  readonly compressorWaitMs: number;
  /** Commit new batches parked with this reason (never leased; see SpoolOptions.holdNewBatches); null: ready. */
  readonly holdReason: string | null;
}

const NOTHING: AppendResult = Object.freeze({ id: null, records: 0, droppedRecords: 0, evictedBatches: 0, evictedRecords: 0, evictedDiskFullRecords: 0, dropReason: null });

/** A dropped batch's result. */
function dropped(n: number, dropReason: DropReason): AppendResult {
  return { id: null, records: n, droppedRecords: n, evictedBatches: 0, evictedRecords: 0, evictedDiskFullRecords: 0, dropReason };
}

export class SpoolWriter implements BatchSink {
  readonly quotaBytes: number;
  private readonly fullPolicy: FullPolicy;
  private readonly sealFormat: number;
  private readonly holdReason: string | null;
  private readonly queue: AppendQueue;
  /** The database's page cap as opened (spool.maxDbBytes, else SQLite's own), and whether it is held at the current size now (see holdGrowth). */
  private readonly pageCap: number;
  private growthHeld = false;

  constructor(
    private readonly store: SpoolStore,
    private readonly keyring: Keyring,
    private readonly chain: Chain,
    private readonly checkpoints: Checkpoints,
    private readonly reserve: SpaceReserve,
    options: WriterOptions,
  ) {
    this.quotaBytes = options.quotaBytes;
    this.fullPolicy = options.fullPolicy;
    this.sealFormat = options.sealFormat;
    this.pageCap = store.db.pragma('max_page_count', { simple: true }) as number;
    this.holdReason = options.holdReason;
    this.queue = new AppendQueue(
      {
        store: (compressed, records, format, facts) => this.storeOne(compressed, records, format, facts),
        commitGroup: (group) => this.commitGroup(group),
        encodeFailed: (err, records) => this.encodeFailed(err, records),
      },
      { sealFormat: options.sealFormat, synchronous: store.synchronous, compressorWaitMs: options.compressorWaitMs, rateLog: store.rateLog, isClosed: () => store.isClosed },
    );
  }

  /** Whether append/enqueue take batches now (open and not read-only). */
  get writable(): boolean {
    return !this.store.isClosed && !this.store.readOnly;
  }

  /** Compresses, seals and commits one batch after any queued ones. */
  append(batch: Uint8Array, recordCount: number, span: BatchSpan = NO_SPAN): AppendResult {
    this.store.assertWritable();
    if (recordCount === 0) return NOTHING;
    // Queued batches commit first, so the chain follows the order batches were closed in.
    this.queue.commitAll();
    let compressed: Uint8Array;
    let digest: string;
    try {
      digest = batchDigest(batch);
      compressed = compressBatch(this.sealFormat, batch);
    } catch (err) {
      return this.encodeFailed(err, recordCount);
    }
    return this.storeOne(compressed, recordCount, this.sealFormat, { digest, span });
  }

  /**
   * Queued appends, for the ingest worker: the batch is compressed on the compressor thread
   * (see batch-compressor.ts), so this thread only seals and commits; see AppendQueue. Not
   * durable until `done` reports it: on a crash, what is queued is lost like the Batcher's open
   * batch (milliseconds' worth). close() and append() first commit what is queued (waiting at
   * most compressorWaitMs for what the thread has not returned); settled() waits for the queue.
   * `batch` must own its whole ArrayBuffer (it is transferred).
   */
  enqueue(batch: Uint8Array, recordCount: number, done: AppendDone, span: BatchSpan = NO_SPAN): void {
    this.store.assertWritable();
    if (recordCount === 0) {
      this.queue.poll();
      done(null, NOTHING);
      return;
    }
    this.queue.enqueue(batch, recordCount, done, span);
  }

  reject(recordCount: number, err: unknown, done: AppendDone): void {
    this.store.assertWritable();
    this.queue.reject(recordCount, err, done);
  }

  /** Commits the batches the compressor thread has finished (the ingest worker calls it between frames, when its event loop turns rarely). */
  pollQueued(): void {
    this.queue.poll();
  }

  /**
   * Lets queued batches compress on `compressor`'s thread (null: on this thread). The caller
   * owns the thread; detach it (null) after settled() before stopping it.
   */
  useCompressor(compressor: BatchCompressor | null): void {
    this.queue.useCompressor(compressor);
  }

  /**
   * While on, queued batches are stored uncompressed (SEAL_FORMAT_NONE, still sealed): the
   * ingest worker turns it on when it falls behind, since compression is then CPU taken from
   * decoding on a machine that is about to drop records. Costs ~40% more bytes at rest for
   * those batches; they read back like any other.
   */
  setCompressionBypass(on: boolean): void {
    this.queue.setBypass(on);
  }

  compressionStats(): CompressionStats {
    return this.queue.stats();
  }

  /** Resolves once every batch queued so far has been committed (or dropped) and reported. */
  settled(): Promise<void> {
    return this.queue.settled();
  }

  /** Commits what is queued (graceful; the spool closes next). */
  close(): void {
    this.queue.close();
  }

  /** Drops what is queued (counted), without waiting for the compressor thread. */
  destroy(): void {
    this.queue.destroy();
  }

  /** A queued batch that failed before its commit: not serializable or compressible, or still queued when the writer was destroyed. */
  private encodeFailed(err: unknown, n: number): AppendResult {
    if (err instanceof SpoolError && err.code === SpoolErrorCode.Closed) {
      this.store.rateLog.log('warn', 'closed', { event: 'spool.batch_dropped', reason: 'closed', records: n }, 'batch still queued at a forced stop; records dropped');
      return dropped(n, 'closed');
    }
    this.store.rateLog.log('error', 'encode', { event: 'spool.encode_failed', records: n, err: (err as Error).message }, 'batch could not be serialized or compressed; records dropped');
    return dropped(n, 'encode');
  }

  /** Commits ready queued batches in one transaction (one WAL sync); null when it rolled back. */
  private commitGroup(group: readonly QueuedBatch[]): AppendResult[] | null {
    this.releaseGrowth();
    const results: AppendResult[] = [];
    try {
      this.store.db
        .transaction(() => {
          for (const e of group) results.push(e.compressed !== null ? this.commit(e.compressed, e.records, e.format, { digest: e.digest ?? '', span: e.span }) : this.encodeFailed(e.failed, e.records));
        })
        .immediate();
    } catch (err) {
      this.keyring.forgetRolledBackEpoch();
      this.store.rateLog.log('warn', 'group', { event: 'spool.group_commit_failed', code: sqliteCode(err) ?? 'unknown', batches: group.length }, 'group commit failed and rolled back; storing its batches one by one');
      return null;
    }
    this.checkpoints.afterWrite();
    return results;
  }

  /** Seals and commits a compressed batch; storage errors drop it (counted). */
  private storeOne(compressed: Uint8Array, n: number, format: number, facts: BatchFacts): AppendResult {
    this.releaseGrowth();
    let result: AppendResult;
    try {
      result = this.commit(compressed, n, format, facts);
    } catch (err) {
      if (!isStorageError(err)) throw err;
      result = this.retryAfterStorageError(err, compressed, n, format, facts);
    }
    this.checkpoints.afterWrite();
    return result;
  }

  private retryAfterStorageError(err: unknown, compressed: Uint8Array, n: number, format: number, facts: BatchFacts): AppendResult {
    this.keyring.forgetRolledBackEpoch();
    const code = sqliteCode(err) ?? 'unknown';
    if (code.startsWith('SQLITE_FULL')) this.holdGrowth();
    // Disk full, but the database file has free pages for the batch (the drain emptied it): only
    // the WAL lacks space. Spending the reserve costs nothing then: the checkpoint after the
    // commit needs no growth, so the WAL's space returns and the reserve is taken again.
    if (code.startsWith('SQLITE_FULL') && this.freeBytes() >= 2 * (compressed.length + NONCE_BYTES + TAG_BYTES)) {
      try {
        const spent = this.reserve.spend(() => this.commit(compressed, n, format, facts), () => this.checkpoints.checkpoint(false));
        if (spent !== null) return spent.value;
      } catch (err2) {
        if (!isStorageError(err2)) throw err2;
        this.keyring.forgetRolledBackEpoch();
        err = err2;
      }
    }
    // Disk full with drop-oldest: evict what the batch needs (twice, for page slack) and retry.
    // When that finds no room either (the eviction's and the commit's WAL frames need space
    // too), once more spending the space reserve: the evicted pages take the batch, so the
    // checkpoint after it returns the WAL's space and the reserve is taken again.
    const freed = { batches: 0, records: 0 };
    if (code.startsWith('SQLITE_FULL') && this.fullPolicy === 'drop-oldest') {
      const evictAndCommit = (): AppendResult => {
        // What the free pages do not already hold (an eviction before may have freed them).
        const need = 2 * (compressed.length + NONCE_BYTES + TAG_BYTES) - this.freeBytes();
        if (need > 0) {
          const f = this.store.db.transaction(() => this.evictFront(need, 'disk-full')).immediate();
          freed.batches += f.batches;
          freed.records += f.records;
        }
        return this.commit(compressed, n, format, facts);
      };
      try {
        let result: AppendResult;
        try {
          result = evictAndCommit();
        } catch (err2) {
          if (!(sqliteCode(err2) ?? '').startsWith('SQLITE_FULL')) throw err2;
          this.keyring.forgetRolledBackEpoch();
          const spent = this.reserve.spend(evictAndCommit, () => this.checkpoints.checkpoint(false));
          if (spent === null) throw err2;
          result = spent.value;
        }
        return { ...result, evictedBatches: result.evictedBatches + freed.batches, evictedRecords: result.evictedRecords + freed.records, evictedDiskFullRecords: result.evictedDiskFullRecords + freed.records };
      } catch (err2) {
        if (!isStorageError(err2)) throw err2;
        this.keyring.forgetRolledBackEpoch();
        err = err2;
      }
    }
    this.store.counters.ioErrors++;
    const final = sqliteCode(err) ?? 'unknown';
    this.store.rateLog.log('error', `io:${final}`, { event: 'spool.append_failed', code: final, records: n }, 'spool write failed; batch dropped (counted by the loss ledger)');
    // Counted by the caller (the loss ledger), not here: on a full disk the database cannot record its own failure.
    // Batches evicted before the commit failed are gone too: they are in the result.
    return { ...dropped(n, final.startsWith('SQLITE_FULL') ? 'disk-full' : 'io'), evictedBatches: freed.batches, evictedRecords: freed.records, evictedDiskFullRecords: freed.records };
  }

  /**
   * On a full filesystem the database file may not grow: pages it grew by now would be taken
   * from the space the checkpoints return (or from the reserve, which the next checkpoint then
   * cannot take back), and the steps that free space would find none. So its page cap is held
   * at its current size (a commit that needs more fails with SQLITE_FULL: evicted for or
   * dropped, as on a full disk) until the reserve is back and as much again is free.
   */
  private holdGrowth(): void {
    if (this.growthHeld || this.reserve.bytes <= 0) return;
    try {
      this.store.db.pragma(`max_page_count = ${this.store.db.pragma('page_count', { simple: true }) as number}`);
      this.growthHeld = true;
    } catch {
      // The next full-disk error tries again.
    }
  }

  /** Lets the database grow again once there is room (see holdGrowth). Cheap while it is not held. */
  private releaseGrowth(): void {
    if (!this.growthHeld || !this.reserve.roomToGrow()) return;
    try {
      this.store.db.pragma(`max_page_count = ${this.pageCap}`);
      this.growthHeld = false;
    } catch {
      // Tried again at the next append.
    }
  }

  /** Bytes of the database file's free pages (what can be stored without growing it). */
  private freeBytes(): number {
    try {
      return (this.store.db.pragma('freelist_count', { simple: true }) as number) * (this.store.db.pragma('page_size', { simple: true }) as number);
    } catch {
      return 0;
    }
  }

  /** Seals `compressed` (in seal format `format`, bound into the associated data) and commits it, within the quota. */
  private commit(compressed: Uint8Array, n: number, format: number, facts: BatchFacts): AppendResult {
    const size = compressed.length + NONCE_BYTES + TAG_BYTES;
    const q = (sql: string) => this.store.q(sql);
    return this.store.db.transaction((): AppendResult => {
      const now = this.store.clock();
      const meta = this.store.meta();
      let evicted = { batches: 0, records: 0 };
      if (size > this.quotaBytes) {
        this.store.audit.record({ kind: 'batch.dropped', records: n, reason: 'oversize' });
        this.store.rateLog.log('warn', 'oversize', { event: 'spool.batch_dropped', reason: 'oversize', records: n, bytes: size }, 'batch larger than the spool quota; dropped');
        return dropped(n, 'oversize');
      }
      if (meta.live_bytes + size > this.quotaBytes) {
        if (this.fullPolicy === 'drop-newest') {
          this.store.audit.record({ kind: 'batch.dropped', records: n, reason: 'quota' });
          this.store.rateLog.log('warn', 'quota', { event: 'spool.batch_dropped', reason: 'quota', records: n }, 'spool quota reached; new batch dropped (drop-newest)');
          return dropped(n, 'quota');
        }
        evicted = this.evictFront(meta.live_bytes + size - this.quotaBytes, 'quota');
      }
      const epoch = this.keyring.ensureEpoch(now);
      const id = this.store.sequence('batches') + 1;
      const { prevId, prevTag } = this.chain.tail();
      const sealed = this.chain.seal(epoch.key, format, id, epoch.id, prevTag, compressed);
      const held = this.holdReason !== null;
      q('INSERT INTO batches (id, format, epoch, state, records, bytes, created_min, attempts, prev_id, park_reason, nonce, tag) VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?)')
        .run(id, format, epoch.id, held ? BATCH_STATE_PARKED : BATCH_STATE_READY, n, size, Math.floor(now / MINUTE_MS), prevId, this.holdReason, sealed.nonce, sealed.tag);
      q('INSERT INTO payloads (id, data) VALUES (?, ?)').run(id, sealed.ciphertext);
      const { firstExportS, lastExportS } = facts.span;
      this.store.audit.record({ kind: 'batch.sealed', batch: id, epoch: epoch.id, records: n, firstExportS, lastExportS, digest: facts.digest, held });
      return { id, records: n, droppedRecords: 0, evictedBatches: evicted.batches, evictedRecords: evicted.records, evictedDiskFullRecords: 0, dropReason: null };
    }).immediate();
  }

  /**
   * Removes batches from the front of the chain until `needBytes` of live batches are freed
   * (quota eviction = crypto-shredding once their epoch empties). Runs inside a transaction.
   */
  private evictFront(needBytes: number, reason: EvictReason): { batches: number; records: number } {
    let freed = 0;
    let batches = 0;
    let records = 0;
    let last: { id: number; tag: Uint8Array } | null = null;
    let first: number | null = null;
    const page = this.store.q('SELECT id, state, records, bytes, tag FROM batches WHERE id > ? ORDER BY id LIMIT ?');
    let after = 0;
    while (freed < needBytes) {
      const rows = page.all(after, SCAN_PAGE_ROWS) as { id: number; state: number; records: number; bytes: number; tag: Uint8Array }[];
      if (rows.length === 0) break;
      for (const row of rows) {
        after = row.id;
        last = { id: row.id, tag: row.tag };
        if (row.state !== BATCH_STATE_ACKED) {
          first ??= row.id;
          freed += row.bytes;
          batches++;
          records += row.records;
          this.store.leased.delete(row.id);
        }
        if (freed >= needBytes) break;
      }
    }
    if (last === null) return { batches: 0, records: 0 };
    this.chain.removeThrough(last.id, last.tag);
    this.store.q('UPDATE meta SET evicted_batches = evicted_batches + ?, evicted_records = evicted_records + ? WHERE id = 1').run(batches, records);
    if (batches > 0) this.store.audit.record({ kind: 'batch.evicted', firstBatch: first ?? last.id, lastBatch: last.id, batches, records, reason });
    this.store.rateLog.log('warn', 'evicted', { event: 'spool.evicted', batches, records, bytes: freed }, 'spool quota reached; oldest batches dropped');
    this.keyring.shredEmptyEpochs(this.store.clock());
    return { batches, records };
  }
}
