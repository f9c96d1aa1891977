/**
 * The ingest worker thread: packet frames in → DecodeService → FlowFilter → Batcher →
 * encrypted Spool (this thread's own SQLite connection). It owns every CPU-heavy step of the
 * ingest path so the main thread's socket callbacks stay lean (product decision: the UDP
 * receive loop only receives).
 *
 * Invariants:
 * - Frames are processed in the order posted, and each is acknowledged after its records
 *   have been handed to the batcher (the main thread's flow control counts on it).
 * - Records exist in plaintext only in this thread's memory; they reach disk only through
 *   the spool writer (sealed), and stdout only when `stdoutRecords` was asked for.
 * - On 'stop' the in-memory batch is flushed into the spool, decoder state is persisted
 *   (sealed) and the spool closed before 'stopped' is posted.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { pino } from 'pino';
import { DecodeService, type DecodeOutcome } from '../decode/decode-service.js';
import { compileFilters, type FiltersConfig } from '../filter/compile-filters.js';
import { FlowFilter } from '../filter/flow-filter.js';
import type { ExporterPacket } from '../flow/exporter-packet.js';
import type { FlowRecord } from '../flow/flow-record.js';
import { FusionJsonWriter } from '../flow/fusion-record.js';
import type { RecordSink } from '../flow/pipeline.js';
import { createLogger } from '../observability/logger.js';
import { RateLimitedLog } from '../observability/rate-limited-log.js';
import { Batcher } from './batcher.js';
import { FusedSetWriter } from './fused-writer.js';
import { Spool } from '../spool/spool.js';
import { batchAeadEngine } from '../spool/spool-crypto.js';
import { WalCheckpointer } from '../spool/wal-checkpointer.js';
import { BatchCompressor } from '../spool/batch-compressor.js';
import { isSealflowError } from '../flow/errors.js';
import { lowerThreadPriority } from '../flow/thread-priority.js';
import { OverloadGauge } from './overload.js';
import type { ExporterStats, IngestWorkerInit, IngestWorkerStats, MainToWorker, WorkerToMain } from './ingest-protocol.js';
import { unpackFrame } from './packet-frame.js';

/** How often the worker reports statistics to the main thread. */
const STATS_INTERVAL_MS = 1000;
/**
 * Age of a frame's oldest packet (receive → this thread) beyond which ingest counts as
 * overloaded, and below which it no longer does. Normally a few ms (the channel's frame delay);
 * the channel's hard limit (128 MiB) is about a second of backlog at 1.75 M records/s.
 */
const OVERLOAD_ENTER_LAG_MS = 250;
const OVERLOAD_LEAVE_LAG_MS = 50;
/** How often held (template-less) data and expired templates are swept. */
const EXPIRE_INTERVAL_MS = 1000;
/** Exporters tracked individually in /stats; beyond this they are aggregated (a spoofing flood must not grow memory). */
const MAX_TRACKED_EXPORTERS = 4096;
const OTHER_EXPORTERS = 'other';

interface ExporterCounters {
  exporter: string;
  identity: string | null;
  transport: string;
  packets: number;
  records: number;
  decodeErrors: number;
  sequenceLost: number;
  lastSeenMs: number;
}

/** Prints accepted records as NDJSON Fusion records, then passes them on. */
class StdoutRecordSink implements RecordSink {
  private readonly json = new FusionJsonWriter();
  constructor(private readonly downstream: RecordSink) {}
  accept(records: readonly FlowRecord[]): void {
    if (records.length > 0) process.stdout.write(this.json.ndjson(records));
    this.downstream.accept(records);
  }
}

function post(msg: WorkerToMain): void {
  parentPort?.postMessage(msg);
}

async function main(): Promise<void> {
  const init = workerData as IngestWorkerInit;
  lowerThreadPriority('ingest-worker');
  const logger = createLogger({ level: init.logLevel, pretty: false }, pino.destination({ dest: 2, sync: false })).child({ component: 'ingest-worker' });
  const decodeLog = new RateLimitedLog(logger.child({ stage: 'decode' }));
  const spoolLog = new RateLimitedLog(logger.child({ stage: 'spool' }));

  let spool: Spool;
  try {
    spool = await Spool.open({
      dir: init.spool.dir,
      kek: init.spool.keks[0] ?? new Uint8Array(0),
      previousKeks: init.spool.keks.slice(1),
      quotaBytes: init.spool.quotaBytes,
      fullPolicy: init.spool.fullPolicy,
      synchronous: init.spool.synchronous,
      epochMs: init.spool.epochMs,
      logger: logger.child({ component: 'spool' }),
    });
  } catch (err) {
    const e = err as { message?: string; code?: unknown; setting?: unknown };
    post({
      type: 'startup-error',
      message: e.message ?? String(err),
      code: typeof e.code === 'string' ? e.code : 'ERR_SPOOL_IO',
      setting: typeof e.setting === 'string' ? e.setting : null,
    });
    return;
  }

  logger.info(
    { event: 'spool.aead', engine: batchAeadEngine() },
    batchAeadEngine() === 'openssl'
      ? 'batches sealed with XChaCha20-Poly1305 (libsodium\'s construction): ChaCha20-Poly1305 by Node\'s OpenSSL, checked against libsodium at start-up'
      : 'batches sealed with XChaCha20-Poly1305 by libsodium (Node\'s OpenSSL lacks ChaCha20-Poly1305 or failed the check against libsodium)',
  );

  // Keeps this thread's WAL short and its checkpoint copies and fsyncs off this thread (see
  // wal-checkpointer.ts). Optional: without it the spool checkpoints inline as before.
  let walCheckpointer: WalCheckpointer | null = null;
  try {
    walCheckpointer = await WalCheckpointer.start(spool.path, (message, code) => {
      spoolLog.log('warn', `wal-checkpoint:${code ?? 'unknown'}`, { event: 'spool.wal_checkpoint_failed', code, err: message }, 'background WAL checkpoint failed');
    });
    spool.checkpoints.useBackground(walCheckpointer);
  } catch (err) {
    logger.warn({ event: 'spool.wal_checkpointer_unavailable', err: (err as Error).message }, 'background WAL checkpointer did not start; the spool checkpoints on the ingest thread');
  }

  // Compression of sealed batches on its own thread (see batch-compressor.ts). Optional:
  // without it the spool compresses on this thread.
  let compressor: BatchCompressor | null = null;
  try {
    compressor = await BatchCompressor.start();
    spool.writer.useCompressor(compressor);
  } catch (err) {
    logger.warn({ event: 'spool.compressor_unavailable', err: (err as Error).message }, 'batch compressor thread did not start; the spool compresses on the ingest thread');
  }

  const service = new DecodeService(
    {
      templateLifetimeMs: init.decode.templateLifetimeMs,
      maxTemplatesPerSession: init.decode.maxTemplatesPerSession,
      maxFieldsPerTemplate: init.decode.maxFieldsPerTemplate,
      pendingHoldMs: init.decode.pendingHoldMs,
      maxPendingRecordsPerSession: init.decode.maxPendingRecordsPerSession,
      maxSessions: init.decode.maxSessions,
    },
    // Nothing after decoding here reads `raw` (filters, the batch codec and stdout use the decoded
    // fields), and it must stay off: frame buffers are handed back to the main thread after each frame.
    { rawRecords: false, layerPolicy: init.decode.tunnelLayer, sflowOctets: init.decode.sflowOctets },
  );
  const saved = spool.decoderState.load();
  if (saved !== null) {
    try {
      service.importState(saved);
      logger.info({ bytes: saved.length }, 'decoder state restored from the spool (templates, sampling, uptime anchors)');
    } catch (err) {
      logger.warn({ code: isSealflowError(err) ? err.code : 'unknown' }, 'persisted decoder state unusable; starting with empty template state');
    }
  }

  const batcher = new Batcher(spool.writer, {
    maxRecords: init.batch.maxRecords,
    maxBytes: init.batch.maxBytes,
    maxAgeMs: init.batch.maxAgeMs,
    // Compression on the compressor thread: the ingest thread is the pipeline's bottleneck.
    queued: true,
    onAppend: (r) => {
      if (r.droppedRecords > 0 || r.evictedRecords > 0) {
        spoolLog.log('warn', `spool-${r.dropReason ?? 'evict'}`, { dropped: r.droppedRecords, evicted: r.evictedRecords, reason: r.dropReason }, 'spool full or failing: records dropped/evicted (counted)');
      }
    },
    onError: (err, n) => {
      // Spool errors carry codes and counts, never record contents, so the message is safe to log.
      spoolLog.log('error', 'spool-append-error', { records: n, code: isSealflowError(err) ? err.code : 'unknown', err: (err as Error).message }, 'spool append failed; batch dropped (counted)');
    },
  });
  const afterFilter: RecordSink = init.stdoutRecords ? new StdoutRecordSink(batcher) : batcher;
  const filter = new FlowFilter(compileFilters(init.filters as FiltersConfig), afterFilter);
  // The fused path: IPFIX/v9 records of compiled templates go from the packet bytes straight
  // into the spool's open batch, with no FlowRecord, unless the stdout copy needs them. Flow
  // filter rules run inside the fused writers (on the values the FlowRecord would have, counted
  // by the same FlowFilter); with none, the writers carry no filter code and the records are
  // counted as passed. Re-decided on every filter reload. Same bytes and counts either way.
  const fused = new FusedSetWriter(batcher);
  const useFusedPath = (): void => {
    fused.setFilter(filter.acceptsAll ? null : filter);
    service.setDirectSink(init.stdoutRecords ? null : fused);
  };
  useFusedPath();

  const exporters = new Map<string, ExporterCounters>();
  let packets = 0;
  let records = 0;
  const decodeErrors: Record<string, number> = {};

  // Consecutive packets mostly come from one exporter: remember the last lookup so the
  // steady state builds no key string per packet.
  let last: ExporterPacket | null = null;
  let lastCounters: ExporterCounters | null = null;
  const exporterOf = (p: ExporterPacket): ExporterCounters => {
    if (last !== null && lastCounters !== null && p.exporter === last.exporter && p.identity === last.identity && p.transport === last.transport) return lastCounters;
    const c = lookupExporter(p);
    last = p;
    lastCounters = c;
    return c;
  };
  const lookupExporter = (p: ExporterPacket): ExporterCounters => {
    const key = `${p.transport}|${p.exporter}|${p.identity ?? ''}`;
    let c = exporters.get(key);
    if (c === undefined) {
      const overflow = exporters.size >= MAX_TRACKED_EXPORTERS;
      const k = overflow ? OTHER_EXPORTERS : key;
      c = exporters.get(k);
      if (c === undefined) {
        c = { exporter: overflow ? OTHER_EXPORTERS : p.exporter, identity: overflow ? null : p.identity, transport: p.transport, packets: 0, records: 0, decodeErrors: 0, sequenceLost: 0, lastSeenMs: 0 };
        exporters.set(k, c);
      }
    }
    return c;
  };

  const handleOutcome = (outcome: DecodeOutcome, who: ExporterCounters | null): void => {
    if (outcome.directRecords > 0) {
      records += outcome.directRecords;
      if (who !== null) who.records += outcome.directRecords;
      // With rules loaded the fused writers called filter.admit() for each (filters reload only between frames).
      if (filter.acceptsAll) filter.passedUnseen(outcome.directRecords);
    }
    if (outcome.records.length > 0) {
      records += outcome.records.length;
      if (who !== null) who.records += outcome.records.length;
      filter.accept(outcome.records);
    }
    if (outcome.errorCount > 0) {
      if (who !== null) who.decodeErrors += outcome.errorCount;
      for (const e of outcome.errors) {
        decodeErrors[e.code] = (decodeErrors[e.code] ?? 0) + 1;
        decodeLog.log('warn', `${who?.exporter ?? '-'}|${e.code}`, { exporter: who?.exporter, transport: who?.transport, code: e.code, offset: e.offset, detail: e.message }, 'malformed flow data skipped');
      }
      const unlisted = outcome.errorCount - outcome.errors.length;
      if (unlisted > 0) decodeErrors.unlisted = (decodeErrors.unlisted ?? 0) + unlisted;
    }
    if (who !== null && outcome.sequenceLost > 0) who.sequenceLost += outcome.sequenceLost;
  };

  const snapshot = (): IngestWorkerStats => {
    const list: ExporterStats[] = [...exporters.values()].map((c) => ({ ...c }));
    const fstats = filter.stats();
    const checkpoints = spool.checkpoints.stats();
    return {
      atMs: Date.now(),
      packets,
      records,
      recordsFiltered: fstats.dropped,
      decodeErrors: { ...decodeErrors },
      decode: service.stats(),
      filter: fstats,
      batcher: batcher.counters(),
      spool: { ...spool.inspector.status(), inlineCheckpoints: checkpoints.inline, busyCheckpoints: checkpoints.busy },
      walCheckpointer: walCheckpointer?.stats() ?? null,
      compression: { ...spool.writer.compressionStats(), overloaded: overload.overloaded },
      exporters: list,
    };
  };

  const persistState = (): void => {
    try {
      spool.decoderState.save(service.exportState());
    } catch (err) {
      logger.warn({ code: isSealflowError(err) ? err.code : 'unknown' }, 'could not persist decoder state');
    }
  };

  const timers = [
    setInterval(() => post({ type: 'stats', stats: snapshot() }), STATS_INTERVAL_MS),
    setInterval(() => handleOutcome(service.expire(Date.now()), null), EXPIRE_INTERVAL_MS),
    setInterval(persistState, Math.max(1000, init.decoderStateIntervalMs)),
  ];

  // Falling behind (frames waiting in the channel) means records will soon be dropped at the
  // channel's hard limit: batches are then stored uncompressed, which frees the CPU compression
  // takes (see SpoolWriter.setCompressionBypass), until the backlog is gone. Hysteresis keeps it
  // from flapping; both transitions are logged.
  const overload = new OverloadGauge(OVERLOAD_ENTER_LAG_MS, OVERLOAD_LEAVE_LAG_MS, (on, lagMs) => {
    spool.writer.setCompressionBypass(on);
    if (on) spoolLog.log('warn', 'overload-on', { event: 'ingest.overload', lagMs }, 'ingest is falling behind: batches are stored uncompressed until it catches up');
    else spoolLog.log('info', 'overload-off', { event: 'ingest.overload_cleared', lagMs }, 'ingest caught up: batches are compressed again');
  });

  let stopping = false;
  parentPort?.on('message', (msg: MainToWorker) => {
    switch (msg.type) {
      case 'frame': {
        if (stopping) break;
        let oldestMs = -1;
        for (const p of unpackFrame(msg.frame)) {
          if (oldestMs < 0) oldestMs = p.receivedAtMs;
          packets++;
          const who = exporterOf(p);
          who.packets++;
          who.lastSeenMs = p.receivedAtMs;
          handleOutcome(service.decode(p), who);
        }
        // The payload buffer goes back to the main thread for reuse. Nothing here keeps a view
        // of it: records carry no raw views (rawRecords: false), held data sets are copies, and
        // any view left behind would be detached (empty), never showing other packets' bytes.
        parentPort?.postMessage({ type: 'ack', id: msg.id, payloads: msg.frame.payloads } satisfies WorkerToMain, [msg.frame.payloads]);
        // Commit the batches the compressor thread has finished: when this thread is busy its
        // event loop turns rarely, so results are polled here between frames.
        spool.writer.pollQueued();
        if (oldestMs >= 0) overload.observe(Date.now() - oldestMs);
        break;
      }
      case 'end-session':
        service.endSession(msg.sessionKey);
        break;
      case 'reload':
        try {
          filter.reload(compileFilters(msg.filters as FiltersConfig));
          useFusedPath();
          logger.info('flow filters reloaded');
        } catch (err) {
          logger.error({ err: (err as Error).message }, 'flow filter reload failed; keeping the previous rules');
        }
        break;
      case 'stop': {
        stopping = true;
        for (const t of timers) clearInterval(t);
        // Held data whose template never came is counted now rather than silently lost;
        // templates stay, so the persisted state lets UDP data decode right after a restart.
        handleOutcome(service.flushPending(), null);
        batcher.close();
        // Queued batches commit first (their compression is on the compressor thread), so the final
        // statistics count them. The checkpointer's connection closes next, so the spool's own
        // final checkpoint and close are the last to touch the WAL (and, as the last
        // connection, remove it).
        void (async (): Promise<void> => {
          let final: IngestWorkerStats | null = null;
          try {
            await spool.writer.settled();
            persistState();
            final = snapshot();
            spool.writer.useCompressor(null);
            await compressor?.close();
            spool.checkpoints.useBackground(null);
            await walCheckpointer?.stop();
          } catch (err) {
            logger.error({ err: (err as Error).message }, 'ingest worker stop: a helper thread did not stop cleanly');
          } finally {
            // Whatever happened above, the spool closes (committing anything still queued) and the main thread hears back.
            spool.close();
            post({ type: 'stopped', stats: final ?? snapshot() });
            parentPort?.close();
          }
        })();
        break;
      }
    }
  });
  post({ type: 'ready' });
}

void main();
