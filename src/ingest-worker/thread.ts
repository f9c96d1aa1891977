/**
 * The ingest worker thread's composition root (see README.md in this folder): packet frames
 * in → DecodeService → FlowFilter → Batcher (and fused writers) → the spool's writer, on this
 * thread's own SQLite connection. It owns every CPU-heavy step of the ingest path so the main
 * thread's socket callbacks stay lean (product decision: the UDP receive loop only receives).
 *
 * Build order: logger → spool (a wrong key fails start-up here, before any socket is bound)
 * → helper threads (WAL checkpointer, batch compressor; each optional) → decode service (with
 * the state saved last time) → batch outcomes → batcher → packet loop (flow filter, fused
 * writers) → overload gauge → timers; then 'ready'.
 * Stop order ('stop'): timers → held data counted → batcher closed (its open batch queued) →
 * queued batches committed → decoder state saved → final statistics → compressor detached and
 * closed → checkpointer detached and closed → spool closed → 'stopped'.
 *
 * Invariants:
 * - Frames are processed in the order posted, and each is acknowledged after its records
 *   have been handed to the batcher (the main thread's flow control counts on it).
 * - Records exist in plaintext only in this thread's memory; they reach disk only through
 *   the spool writer (sealed), and stdout only when `stdoutRecords` was asked for.
 * - On 'stop' the open batch is committed to the spool, decoder state is persisted (sealed)
 *   and the spool closed before 'stopped' is posted.
 */
import { workerData } from 'node:worker_threads';
import type { Logger } from 'pino';
import { DecodeService } from '../decode/decode-service.js';
import { auditingPrivacyEventSink } from '../audit/privacy-events.js';
import { AuditTrail } from '../audit/trail.js';
import { NO_AUDIT, type AuditLog } from '../flow/audit.js';
import { isSealflowError } from '../flow/errors.js';
import { parentChannel, startupError } from '../flow/module-worker.js';
import { lowerThreadPriority } from '../flow/thread-priority.js';
import { createLogger } from '../observability/logger.js';
import { loggingPrivacyEventSink } from '../privacy/events.js';
import { compilePseudonymPolicy } from '../privacy/policy.js';
import { Pseudonymizer } from '../privacy/pseudonymizer.js';
import { RateLimitedLog } from '../observability/rate-limited-log.js';
import { BatchCompressor } from '../spool/batch-compressor.js';
import { Spool } from '../spool/spool.js';
import { batchAeadEngine } from '../spool/spool-crypto.js';
import { WalCheckpointer } from '../spool/wal-checkpointer.js';
import { BatchOutcomes } from './batch-outcomes.js';
import { Batcher } from './batcher.js';
import type { IngestWorkerInit, IngestWorkerStats, MainToWorker, WorkerToMain } from './messages.js';
import { OverloadGauge } from './overload.js';
import { PacketLoop } from './packet-loop.js';

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
/** How often batches past spool.maxAgeSeconds are looked for (ages are kept at minute resolution). */
const RETENTION_INTERVAL_MS = 30_000;
/** Decoder state is saved at most this often, whatever the setting asks. */
const MIN_DECODER_STATE_INTERVAL_MS = 1000;

const parent = parentChannel<MainToWorker, WorkerToMain>();

/** The helper threads; each is optional (without it, its work runs on this thread). */
interface Helpers {
  readonly walCheckpointer: WalCheckpointer | null;
  readonly compressor: BatchCompressor | null;
}

async function startHelpers(spool: Spool, logger: Logger, spoolLog: RateLimitedLog): Promise<Helpers> {
  // Keeps this thread's WAL short and its checkpoint copies and fsyncs off this thread (see
  // wal-checkpointer.ts).
  let walCheckpointer: WalCheckpointer | null = null;
  try {
    walCheckpointer = await WalCheckpointer.start(spool.path, (message, code) => {
      spoolLog.log('warn', `wal-checkpoint:${code ?? 'unknown'}`, { event: 'spool.wal_checkpoint_failed', code, err: message }, 'background WAL checkpoint failed');
    });
    spool.checkpoints.useBackground(walCheckpointer);
  } catch (err) {
    logger.warn({ event: 'spool.wal_checkpointer_unavailable', err: (err as Error).message }, 'background WAL checkpointer did not start; the spool checkpoints on the ingest thread');
  }
  // Compression of sealed batches on its own thread (see batch-compressor.ts).
  let compressor: BatchCompressor | null = null;
  try {
    compressor = await BatchCompressor.start();
    spool.writer.useCompressor(compressor);
  } catch (err) {
    logger.warn({ event: 'spool.compressor_unavailable', err: (err as Error).message }, 'batch compressor thread did not start; the spool compresses on the ingest thread');
  }
  return { walCheckpointer, compressor };
}

/** Detaches the helper threads (after the queue is committed) and stops them: the spool's own final checkpoint and close are then the last to touch the WAL. */
async function stopHelpers(spool: Spool, helpers: Helpers): Promise<void> {
  spool.writer.useCompressor(null);
  await helpers.compressor?.close();
  spool.checkpoints.useBackground(null);
  await helpers.walCheckpointer?.close();
}

function decodeService(init: IngestWorkerInit, spool: Spool, logger: Logger): DecodeService {
  const service = new DecodeService(
    {
      templateLifetimeMs: init.decode.templateLifetimeMs,
      maxTemplatesPerSession: init.decode.maxTemplatesPerSession,
      maxFieldsPerTemplate: init.decode.maxFieldsPerTemplate,
      pendingHoldMs: init.decode.pendingHoldMs,
      maxPendingRecordsPerSession: init.decode.maxPendingRecordsPerSession,
      maxSessions: init.decode.maxSessions,
      maxStateBytes: init.decode.maxStateBytes,
      maxStateBytesPerExporter: init.decode.maxStateBytesPerExporter,
    },
    // Nothing after decoding here reads `raw` (filters, the batch format and stdout use the decoded
    // fields), and it must stay off: frame buffers are handed back to the main thread after each frame.
    { rawRecords: false, layerPolicy: init.decode.tunnelLayer, sflowOctets: init.decode.sflowOctets },
  );
  // A holding worker (`sealflow attest`) runs beside the probe: the probe's decoder state is not its own.
  const saved = init.spool.holdNewBatches === undefined ? spool.decoderState.load() : null;
  if (saved !== null) {
    try {
      service.importState(saved);
      logger.info({ bytes: saved.length }, 'decoder state restored from the spool (templates, sampling, uptime anchors)');
    } catch (err) {
      logger.warn({ code: isSealflowError(err) ? err.code : 'unknown' }, 'persisted decoder state unusable; starting with empty template state');
    }
  }
  return service;
}

async function main(): Promise<void> {
  const init = workerData as IngestWorkerInit;
  lowerThreadPriority('ingest-worker');
  // Lines go to the main thread, which writes them with its own (pretty, syslog, status page).
  const logger = createLogger({ level: init.logLevel, pretty: false }, { write: (line: string) => parent.post({ type: 'log', line }) }).child({ component: 'ingest-worker' });
  const decodeLog = new RateLimitedLog(logger.child({ stage: 'decode' }));
  const spoolLog = new RateLimitedLog(logger.child({ stage: 'spool' }));

  // The audit trail on this thread's spool connection (the spool records its own events; the privacy events below).
  let trail: AuditLog = NO_AUDIT;
  let spool: Spool;
  try {
    spool = await Spool.open({
      dir: init.spool.dir,
      kek: init.spool.keks[0] ?? new Uint8Array(0),
      previousKeks: init.spool.keks.slice(1),
      quotaBytes: init.spool.quotaBytes,
      fullPolicy: init.spool.fullPolicy,
      reserveBytes: init.spool.reserveBytes,
      synchronous: init.spool.synchronous,
      epochMs: init.spool.epochMs,
      maxAgeSeconds: init.spool.maxAgeSeconds,
      audit: (db) => (trail = new AuditTrail(db)),
      ...(init.spool.holdNewBatches === undefined ? {} : { holdNewBatches: init.spool.holdNewBatches }),
      logger: logger.child({ component: 'spool' }),
    });
  } catch (err) {
    parent.post(startupError(err, 'ERR_SPOOL_IO'));
    return;
  }
  logger.info(
    { event: 'spool.aead', engine: batchAeadEngine() },
    batchAeadEngine() === 'openssl'
      ? 'batches sealed with XChaCha20-Poly1305 (libsodium\'s construction): ChaCha20-Poly1305 by Node\'s OpenSSL, checked against libsodium at start-up'
      : 'batches sealed with XChaCha20-Poly1305 by libsodium (Node\'s OpenSSL lacks ChaCha20-Poly1305 or failed the check against libsodium)',
  );

  const helpers = await startHelpers(spool, logger, spoolLog);
  const service = decodeService(init, spool, logger);
  const outcomes = new BatchOutcomes(spoolLog, (lastBatchId) => parent.post({ type: 'committed', lastBatchId }));
  // Pseudonymisation (src/privacy): the key in force is stamped on each batch as it opens.
  const privacyEvents = auditingPrivacyEventSink(() => trail, loggingPrivacyEventSink(logger.child({ stage: 'privacy' })), (err, kind) =>
    logger.error({ event: 'audit.record_failed', kind, err: err.message }, 'could not record a privacy event in the audit trail'),
  );
  const pz = init.pseudonymize === null ? null : new Pseudonymizer({ ...init.pseudonymize, policy: compilePseudonymPolicy(init.pseudonymize.policy), events: privacyEvents }, Date.now());
  const batcher = new Batcher(spool.writer, {
    ...(pz === null ? {} : { keyStamp: () => pz.stamp }),
    maxRecords: init.batch.maxRecords,
    maxBytes: init.batch.maxBytes,
    maxAgeMs: init.batch.maxAgeMs,
    // Compression on the compressor thread: the ingest thread is the pipeline's bottleneck.
    queued: true,
    onAppend: (r) => outcomes.appended(r),
    onError: (err, n) => outcomes.failed(err, n),
  });
  const loop = new PacketLoop({ decode: service, batcher, filters: init.filters, stdoutRecords: init.stdoutRecords, decodeLog, pseudonymizer: pz });

  // Falling behind (frames waiting in the channel) means records will soon be dropped at the
  // channel's hard limit: batches are then stored uncompressed, which frees the CPU compression
  // takes (see SpoolWriter.setCompressionBypass), until the backlog is gone. Hysteresis keeps it
  // from flapping; both transitions are logged.
  const overload = new OverloadGauge(OVERLOAD_ENTER_LAG_MS, OVERLOAD_LEAVE_LAG_MS, (on, lagMs) => {
    spool.writer.setCompressionBypass(on);
    if (on) spoolLog.log('warn', 'overload-on', { event: 'ingest.overload', lagMs }, 'ingest is falling behind: batches are stored uncompressed until it catches up');
    else spoolLog.log('info', 'overload-off', { event: 'ingest.overload_cleared', lagMs }, 'ingest caught up: batches are compressed again');
  });

  // Retention: batches past spool.maxAgeSeconds are shredded here, on the appending connection
  // (records counted for the loss ledger as `retention`, since this thread started).
  let retentionExpiredRecords = 0;
  const expireOld = (): void => {
    const maxAgeSeconds = init.spool.maxAgeSeconds;
    if (maxAgeSeconds === null) return;
    try {
      const r = spool.retention.expire(Date.now());
      retentionExpiredRecords += r.records;
      if (r.batches > 0) privacyEvents({ kind: 'retention.expired', atMs: Date.now(), maxAgeSeconds, batches: r.batches, records: r.records });
    } catch (err) {
      spoolLog.log('warn', 'retention', { event: 'spool.retention_failed', code: isSealflowError(err) ? err.code : 'unknown', err: (err as Error).message }, 'retention pass failed; retried at the next interval');
    }
  };
  expireOld();

  const snapshot = (): IngestWorkerStats => {
    const counts = loop.counters();
    const filter = loop.filter.stats();
    const checkpoints = spool.checkpoints.stats();
    const decode = service.stats();
    return {
      atMs: Date.now(),
      packets: counts.packets,
      records: counts.records,
      recordsFiltered: filter.dropped,
      decodeErrors: counts.decodeErrors,
      decode,
      filter,
      batcher: batcher.counters(),
      spool: { ...spool.inspector.status(), inlineCheckpoints: checkpoints.inline, busyCheckpoints: checkpoints.busy },
      walCheckpointer: helpers.walCheckpointer?.stats() ?? null,
      compression: { ...spool.writer.compressionStats(), overloaded: overload.overloaded },
      exporters: counts.exporters,
      loss: {
        records: { ...outcomes.loss(), filter: filter.dropped, sequence_gap: decode.sequenceLost, retention: retentionExpiredRecords },
        packets: { decode_error: Object.values(counts.decodeErrors).reduce((a, b) => a + b, 0) },
      },
      pseudonymize: pz?.stats() ?? null,
    };
  };

  const persistState = (): void => {
    if (init.spool.holdNewBatches !== undefined) return;
    try {
      spool.decoderState.save(service.exportState());
    } catch (err) {
      logger.warn({ code: isSealflowError(err) ? err.code : 'unknown' }, 'could not persist decoder state');
    }
  };

  const timers = [
    setInterval(() => parent.post({ type: 'stats', stats: snapshot() }), STATS_INTERVAL_MS),
    setInterval(() => loop.expire(Date.now()), EXPIRE_INTERVAL_MS),
    setInterval(persistState, Math.max(MIN_DECODER_STATE_INTERVAL_MS, init.decoderStateIntervalMs)),
    setInterval(expireOld, RETENTION_INTERVAL_MS),
  ];

  const stop = async (): Promise<void> => {
    for (const t of timers) clearInterval(t);
    loop.flushHeld();
    batcher.close();
    // Queued batches commit first (their compression is on the compressor thread), so the final
    // statistics count them.
    let final: IngestWorkerStats | null = null;
    try {
      await spool.writer.settled();
      persistState();
      final = snapshot();
      await stopHelpers(spool, helpers);
    } catch (err) {
      logger.error({ err: (err as Error).message }, 'ingest worker stop: a helper thread did not stop cleanly');
    } finally {
      // Whatever happened above, the spool closes (committing anything still queued) and the main thread hears back.
      spool.close();
      pz?.destroy();
      parent.post({ type: 'stopped', stats: final ?? snapshot() });
      parent.close();
    }
  };

  let stopping = false;
  parent.on((msg) => {
    switch (msg.type) {
      case 'frame': {
        if (stopping) break;
        const oldestMs = loop.frame(msg.frame);
        // The payload buffer goes back to the main thread for reuse. Nothing here keeps a view
        // of it: records carry no raw views (rawRecords: false), held data sets are copies, and
        // any view left behind would be detached (empty), never showing other packets' bytes.
        parent.post({ type: 'ack', id: msg.id, payloads: msg.frame.payloads }, [msg.frame.payloads]);
        // Commit the batches the compressor thread has finished: when this thread is busy its
        // event loop turns rarely, so results are polled here between frames.
        spool.writer.pollQueued();
        if (oldestMs >= 0) overload.observe(Date.now() - oldestMs);
        break;
      }
      case 'end-session':
        loop.endSession(msg.sessionKey);
        break;
      case 'reload':
        try {
          loop.reload(msg.filters);
          logger.info('flow filters reloaded');
        } catch (err) {
          logger.error({ err: (err as Error).message }, 'flow filter reload failed; keeping the previous rules');
        }
        break;
      case 'stop':
        if (stopping) break;
        stopping = true;
        void stop();
        break;
    }
  });
  parent.post({ type: 'ready' });
}

void main();
