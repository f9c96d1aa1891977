import type { PacketFrame } from './packet-frame.js';

/** Messages and start-up data between the main thread and the ingest worker. */

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
    readonly tunnelLayer: 'inner' | 'outer';
    readonly sflowOctets: 'ip' | 'frame';
  };
  /** Flow filter configuration (plain data, compiled in the worker). */
  readonly filters: unknown;
  readonly spool: {
    /** Spool directory (spool.db, its WAL, and the sealed high-water-mark file). */
    readonly dir: string;
    /** Key-encryption keys: current first, then previous ones still accepted for unwrapping. */
    readonly keks: readonly Uint8Array[];
    readonly quotaBytes: number;
    readonly fullPolicy: 'drop-oldest' | 'drop-newest';
    readonly synchronous: 'normal' | 'full';
    readonly epochMs: number;
  };
  readonly batch: { readonly maxRecords: number; readonly maxBytes: number; readonly maxAgeMs: number };
  /** Also print every accepted record as an NDJSON Fusion record on stdout (NetoFlow's dumprecords). */
  readonly stdoutRecords: boolean;
  /** How often decoder state (templates, sampling, uptime anchors) is persisted, ms. */
  readonly decoderStateIntervalMs: number;
}

/** Statistics snapshot the worker posts periodically; the app exports it on /stats and /metrics. */
export interface IngestWorkerStats {
  readonly atMs: number;
  readonly packets: number;
  readonly records: number;
  readonly recordsFiltered: number;
  readonly decodeErrors: Readonly<Record<string, number>>;
  readonly decode: unknown;
  readonly filter: unknown;
  readonly batcher: unknown;
  readonly spool: unknown;
  /** The background WAL checkpointer's counters, null when it is not running. */
  readonly walCheckpointer: unknown;
  /** Batches compressed on the compressor thread / inline / stored uncompressed under overload, and whether ingest is overloaded now. */
  readonly compression: unknown;
  readonly exporters: readonly ExporterStats[];
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

export type MainToWorker =
  | { readonly type: 'frame'; readonly id: number; readonly frame: PacketFrame }
  | { readonly type: 'end-session'; readonly sessionKey: string }
  | { readonly type: 'reload'; readonly filters: unknown }
  | { readonly type: 'stop' };

export type WorkerToMain =
  | { readonly type: 'ready' }
  /** A frame is processed; its payload buffer comes back (transferred) for reuse when the worker could return it. */
  | { readonly type: 'ack'; readonly id: number; readonly payloads?: ArrayBuffer }
  | { readonly type: 'stats'; readonly stats: IngestWorkerStats }
  | { readonly type: 'startup-error'; readonly message: string; readonly code: string; readonly setting: string | null }
  | { readonly type: 'stopped'; readonly stats: IngestWorkerStats };
