import type { ExporterPacket } from './exporter-packet.js';
import type { FlowRecord } from './flow-record.js';

/**
 * The ports between stages. Ingest listeners hand packets to a PacketSink; the decode stage
 * hands records to a RecordSink (flow filters → batcher); the batcher hands batch-format bytes
 * (src/batch) to a BatchSink (the spool's writer); the drain takes sealed batches back from a
 * BatchSource (the spool's reader). The composition roots (src/app.ts on the main thread,
 * src/ingest-worker/ingest-worker.ts on the ingest worker) wire them, across a worker thread
 * where one is in between, so no stage imports another.
 */
export interface PacketSink {
  /**
   * Hands one packet on. Never blocks. Returns false when the next stage is above its
   * high-water mark: stream transports (TLS) pause reading until `onDrain` fires.
   */
  submit(packet: ExporterPacket): boolean;
  /** A transport session ended (TLS connection closed, DTLS association gone). */
  endSession(sessionKey: string): void;
  /** Registers a callback for when the sink falls back below its low-water mark. */
  onDrain(listener: () => void): void;
}

export interface RecordSink {
  /** Takes ownership of the records. */
  accept(records: readonly FlowRecord[]): void;
}

/**
 * Why a batch was dropped: refused by the quota (drop-newest) or larger than it; the disk (or
 * the database size cap) full; another storage error; not serializable or compressible (a bug);
 * still queued when the writer was destroyed (forced stop).
 */
export type DropReason = 'quota' | 'oversize' | 'disk-full' | 'io' | 'encode' | 'closed';

/** How the store took one batch. Every record of it is in exactly one of: committed, droppedRecords. */
export interface AppendResult {
  /** The committed batch id, or null when the batch was dropped. */
  readonly id: number | null;
  readonly records: number;
  /** Records of this batch that were dropped (see dropReason). */
  readonly droppedRecords: number;
  /** Batches/records evicted (drop-oldest) to make room for this one. */
  readonly evictedBatches: number;
  readonly evictedRecords: number;
  /** Of evictedRecords, those evicted because the disk was full (the rest made room within the quota). */
  readonly evictedDiskFullRecords: number;
  /** Why the batch was dropped, when it was. */
  readonly dropReason: DropReason | null;
}

/** The export times (Unix seconds) of a batch's earliest and latest records, for the audit trail; nulls when unknown. */
export interface BatchSpan {
  readonly firstExportS: number | null;
  readonly lastExportS: number | null;
}

export const NO_SPAN: BatchSpan = Object.freeze({ firstExportS: null, lastExportS: null });

/** Outcome of a queued append: exactly one of the two is set. */
export type AppendDone = (err: unknown, result: AppendResult | null) => void;

/**
 * Where closed batches go (the spool's writer). A batch is its batch-format bytes and record
 * count; the sink compresses, seals and commits it without reading it. Storage problems never
 * throw: they come back as a dropped result (counted by the sink).
 */
export interface BatchSink {
  /** Commits one batch now (after any queued ones, in order). */
  append(batch: Uint8Array, recordCount: number, span?: BatchSpan): AppendResult;
  /**
   * Queues one batch, which owns its whole ArrayBuffer (it may be transferred to a compressor
   * thread): committed in queue order, `done` called once with its result, on this thread.
   */
  enqueue(batch: Uint8Array, recordCount: number, done: AppendDone, span?: BatchSpan): void;
  /** A batch whose records could not be serialized: dropped and counted ('encode'), reported in queue order. */
  reject(recordCount: number, err: unknown, done: AppendDone): void;
  /** Whether it takes batches now (false once closed, or opened read-only). */
  readonly writable: boolean;
}

/** A sealed batch leased for delivery, decrypted and verified: batch-format bytes (src/batch). */
export interface LeasedBatch {
  readonly id: number;
  /** Batch-format bytes; `decodeBatch(batch)` gives the records. */
  readonly batch: Uint8Array;
  readonly recordCount: number;
  /** Minute resolution (only coarse times are stored). */
  readonly createdAtMs: number;
  /** Times this batch has been leased, this lease included. */
  readonly attempts: number;
  /** Stored size (ciphertext + nonce + tag). */
  readonly bytes: number;
}

export interface BatchSourceStatus {
  readonly batches: number;
  readonly records: number;
  readonly bytes: number;
  readonly oldestAgeMs?: number | null | undefined;
  /** A stable id of the store, when it has one (mixed into idempotency keys). */
  readonly spoolId?: string | undefined;
}

/** What Fusion answered for a batch the drain settles (the audit trail records it). */
export interface DeliveryReceipt {
  /** Upload requests the batch took (chunks). */
  readonly chunks: number;
  /** HTTP status of the last answer. */
  readonly status: number;
  /** The request id Fusion returned with the last answer, if any (x-request-id). */
  readonly requestId: string | null;
}

/**
 * Where the drain takes batches from (the spool's reader).
 *
 * Contract:
 * - `lease(n)` returns up to n batches that are not already leased, oldest first. A leased
 *   batch stays in the store (encrypted) until `ack`, `release` or `park`.
 * - `ack(id)` deletes (crypto-shreds) the batch: called only after Fusion answered 2xx for
 *   every chunk of it. When the store cannot delete it now (a full disk), the batch stays
 *   leased, so it is not delivered again, and the store retries the ack itself.
 * - `release(id)` returns the batch to the queue unchanged (it will be leased again, still
 *   oldest first); the store counts the attempt.
 * - `park(id, reason)` sets the batch aside, still encrypted, because Fusion rejected it
 *   permanently; it is never leased again and shows in `spool status`.
 */
export interface BatchSource {
  lease(maxBatches: number): LeasedBatch[];
  ack(id: number, receipt?: DeliveryReceipt): void;
  release(id: number): void;
  park(id: number, reason: string, receipt?: DeliveryReceipt): void;
  status(): BatchSourceStatus;
}
