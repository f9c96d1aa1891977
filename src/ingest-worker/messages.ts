import type { DecodeServiceStats } from '../decode/decode-service.js';
import type { SflowOctets } from '../decode/sflow/sflow.js';
import type { LayerPolicy } from '../decode/template/layer-policy.js';
import type { FiltersConfig } from '../filter/compile-filters.js';
import type { FlowFilterStats } from '../filter/flow-filter.js';
import type { LossCounts } from '../flow/loss.js';
import type { StartupMessage } from '../flow/module-worker.js';
import type { Rotation } from '../privacy/key-schedule.js';
import type { PseudonymPolicyConfig } from '../privacy/policy.js';
import type { PseudonymizerStats } from '../privacy/pseudonymizer.js';
import type { CompressionStats, FullPolicy, SpoolStatus } from '../spool/spool.js';
import type { WalCheckpointerStats } from '../spool/wal-checkpointer.js';
import type { BatcherCounters } from './batcher.js';
import type { PacketFrame } from './packet-frame.js';

/**
 * Everything that crosses between the main thread and the ingest worker: the start-up data,
 * the messages each way (tagged by `type`, see src/flow/module-worker.ts) and the statistics
 * snapshot, typed end to end.
 */

/** Structured-clone-safe start-up data for the ingest worker. */
export interface IngestWorkerInit {
  readonly logLevel: string;
  readonly decode: {
    readonly templateLifetimeMs: number;
    readonly maxTemplatesPerSession: number;
    readonly maxFieldsPerTemplate: number;
    readonly pendingHoldMs: number;
    readonly maxPendingRecordsPerSession: number;
    readonly maxSessions: number;
    readonly maxStateBytes: number;
    readonly maxStateBytesPerExporter: number;
    readonly tunnelLayer: LayerPolicy;
    readonly sflowOctets: SflowOctets;
  };
  /** Flow filter configuration (plain data, compiled and validated in the worker). */
  readonly filters: FiltersConfig;
  readonly spool: {
    /** Spool directory (spool.db, its WAL, and the sealed high-water-mark file). */
    readonly dir: string;
    /** Key-encryption keys: current first, then previous ones still accepted for unwrapping. */
    readonly keks: readonly Uint8Array[];
    readonly quotaBytes: number;
    readonly fullPolicy: FullPolicy;
    /** Space kept for a full disk (spool.reserveBytes). */
    readonly reserveBytes: number;
    readonly synchronous: 'normal' | 'full';
    readonly epochMs: number;
    /** spool.maxAgeSeconds: batches older are shredded (null: no age limit). */
    readonly maxAgeSeconds: number | null;
    /** Commit every batch parked with this reason (`sealflow attest`'s canaries; see SpoolOptions.holdNewBatches). */
    readonly holdNewBatches?: string;
  };
  readonly batch: { readonly maxRecords: number; readonly maxBytes: number; readonly maxAgeMs: number };
  /** Also print every accepted record as an NDJSON Fusion record on stdout (NetoFlow's dumprecords). */
  readonly stdoutRecords: boolean;
  /** How often decoder state (templates, sampling, uptime anchors) is persisted, ms. */
  readonly decoderStateIntervalMs: number;
  /** privacy.pseudonymize with its master key resolved (memory only: workerData is never written anywhere); null when not configured. */
  readonly pseudonymize: PseudonymizeInit | null;
}

export interface PseudonymizeInit {
  readonly masterKey: Uint8Array;
  readonly rotation: Rotation;
  readonly epochSeconds: number;
  readonly cacheEntries: number;
  readonly policy: PseudonymPolicyConfig;
}

export interface ExporterStats {
  readonly exporter: string;
  readonly identity: string | null;
  readonly transport: string;
  readonly packets: number;
  readonly records: number;
  readonly decodeErrors: number;
  readonly sequenceLost: number;
  readonly lastSeenMs: number;
}

/** The spool's status as the ingest worker's connection sees it, with its own checkpoint counts. */
export type IngestSpoolStats = SpoolStatus & { readonly inlineCheckpoints: number; readonly busyCheckpoints: number };

/** Statistics snapshot the worker posts periodically; the app exports it on /stats and /metrics. */
export interface IngestWorkerStats {
  readonly atMs: number;
  readonly packets: number;
  readonly records: number;
  readonly recordsFiltered: number;
  readonly decodeErrors: Readonly<Record<string, number>>;
  readonly decode: DecodeServiceStats;
  readonly filter: FlowFilterStats;
  readonly batcher: BatcherCounters;
  readonly spool: IngestSpoolStats;
  /** The background WAL checkpointer's counters, null when it is not running. */
  readonly walCheckpointer: WalCheckpointerStats | null;
  /** Batches compressed on the compressor thread / inline / stored uncompressed under overload, and whether ingest is overloaded now. */
  readonly compression: CompressionStats & { readonly overloaded: boolean };
  readonly exporters: readonly ExporterStats[];
  /** What this thread lost since it started, by reason (the loss ledger on the main thread adds it up). */
  readonly loss: LossCounts;
  /** The pseudonymiser's counters and the key in force (fingerprint and period only); null when not configured. */
  readonly pseudonymize: PseudonymizerStats | null;
}

export type MainToWorker =
  | { readonly type: 'frame'; readonly id: number; readonly frame: PacketFrame }
  | { readonly type: 'end-session'; readonly sessionKey: string }
  | { readonly type: 'reload'; readonly filters: FiltersConfig }
  | { readonly type: 'stop' };

export type WorkerToMain =
  | StartupMessage
  /** A frame is processed; its payload buffer comes back (transferred) for reuse when the worker could return it. */
  | { readonly type: 'ack'; readonly id: number; readonly payloads?: ArrayBuffer }
  /** Batches up to `lastBatchId` are committed (durable): the drain has something to deliver. At most one per turn of the worker's event loop. */
  | { readonly type: 'committed'; readonly lastBatchId: number }
  | { readonly type: 'stats'; readonly stats: IngestWorkerStats }
  /** One JSON log line of this thread: the main thread writes it where its own lines go (pretty on a terminal, syslog, the status page). */
  | { readonly type: 'log'; readonly line: string }
  | { readonly type: 'stopped'; readonly stats: IngestWorkerStats };
