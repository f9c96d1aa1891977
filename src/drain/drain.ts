/**
 * The drain: spool → Fusion over HTTPS.
 *
 * Invariants (the reason this module exists):
 * 1. A batch leaves the spool only by `ack`, and `ack` is called only after every chunk of
 *    the batch was answered 2xx. Everything else is `release` (retry later, oldest first) or
 *    `park` (Fusion rejected it permanently; kept encrypted, visible in `spool status`).
 * 2. Every leased batch ends in exactly one of ack / release / park, also on stop and on
 *    errors thrown by the encoder or the spool (`handle` has a catch-all that releases).
 * 3. Each chunk carries an Idempotency-Key that is a pure function of the batch and the
 *    chunk's record range, so a resend after a lost response can be deduplicated by Fusion.
 *    Chunks of a split batch that already got 2xx are remembered (in memory, bounded) and not
 *    resent while the process lives; after a restart the keys cover them.
 * 4. No hot loop: every failed request is followed by a backoff (full jitter, capped); auth
 *    failures back off in FusionAuth and fail fast while blocked; parking consumes the batch.
 * 5. Bounded memory: at most `concurrency` batches are leased at a time; the memory of
 *    partially delivered batches is capped.
 *
 * What each upload answer leads to (retry / park / renew the token): see chunk-upload.ts.
 */
import type { Logger } from 'pino';
import type { DrainError } from '../flow/errors.js';
import { silentLogger } from '../observability/logger.js';
import { RateLimitedLog } from '../observability/rate-limited-log.js';
import { fullJitterMs, RateMeter, TokenBucket } from './backoff.js';
import { deviceBody, type DeviceRegistration } from './device-registration.js';
import type { BatchSource, BatchSourceStatus, DeliveryReceipt, LeasedBatch } from '../flow/pipeline.js';
import { errorText, FusionAuth, serverMessage } from './fusion-auth.js';
import { FusionHttp } from './fusion-http.js';
import { uploadChunk, USER_AGENT, type ChunkResult, type RetryReason, type UploadTarget } from './chunk-upload.js';
import { UploadPool } from './upload-pool.js';
import { decodeBatch } from '../batch/decoder.js';
import type { FusionCredentials } from './netosecret.js';
import { idempotencyKey, UploadEncoder, type EncodedChunk, type EncodeTimings } from './upload-encoder.js';
import { systemClock, type DrainClock } from './drain-clock.js';
import { resolveDrainSettings, type DeepPartial, type DrainSettings } from './drain-settings.js';
import { emptyRetries, type DrainStats } from './drain-stats.js';

export { systemClock, type DrainClock } from './drain-clock.js';
export { DEFAULT_DRAIN_SETTINGS, DEFAULT_UPLOAD_URL, resolveDrainSettings, type DeepPartial, type DrainSettings } from './drain-settings.js';
export type { DrainStats } from './drain-stats.js';

/** Remembered partially-delivered batches; beyond this the oldest is forgotten (its keys still dedupe). */
const MAX_PARTIAL_BATCHES = 4096;

/** Longest Retry-After honoured: a misconfigured "come back tomorrow" must not stall a probe for a day. */
const MAX_RETRY_AFTER_MS = 60 * 60_000;

export interface DrainOnceOptions {
  /** Give up after this many consecutive failed attempts (NetoFlow retries 5 times). */
  readonly maxConsecutiveFailures?: number;
  /** Called after each batch outcome (progress display). */
  readonly onProgress?: (stats: DrainStats) => void;
}

export interface DrainOnceResult {
  readonly stats: DrainStats;
  /** True when the spool was emptied of drainable batches without giving up. */
  readonly complete: boolean;
}

export interface DrainOptions {
  readonly source: BatchSource;
  readonly credentials: FusionCredentials;
  readonly settings?: DeepPartial<DrainSettings> | DrainSettings;
  readonly logger?: Logger;
  readonly clock?: DrainClock;
  /** [0, 1); Math.random by default. */
  readonly random?: () => number;
}

/** How a delivery attempt ended; a delivered batch carries what Fusion answered (the audit trail keeps it). */
type BatchOutcome = Exclude<ChunkResult, { kind: 'ok' }> | { readonly kind: 'ok'; readonly receipt: DeliveryReceipt };

export class Drain {
  readonly settings: DrainSettings;
  private readonly source: BatchSource;
  private readonly credentials: FusionCredentials;
  private readonly http: FusionHttp;
  private readonly auth: FusionAuth;
  private readonly target: UploadTarget;
  private readonly pool: UploadPool | null;
  /** Pool mode: bytes already sent put the bucket in debt; no dispatch before this time. */
  private paceUntilMs = 0;
  /** Pool mode: the gzip level the last reply reported (each worker adapts its own). */
  private poolGzipLevel: number | null = null;
  private readonly encoder: UploadEncoder;
  private readonly clock: DrainClock;
  private readonly random: () => number;
  private readonly log: Logger;
  private readonly noisy: RateLimitedLog;
  private readonly byteBucket: TokenBucket | null;
  private readonly recordBucket: TokenBucket | null;
  private readonly recordMeter = new RateMeter();
  private readonly byteMeter = new RateMeter();

  private state: DrainStats['state'] = 'idle';
  private loopDone: Promise<void> | null = null;
  private closing: Promise<void> | null = null;
  /** Aborts sleeps (backoff, idle, pacing) when stopping. */
  private readonly stopSleeps = new AbortController();
  /** Aborts in-flight HTTP requests: only when the stop deadline passes. */
  private readonly abortRequests = new AbortController();
  private wake = new AbortController();
  /** Aborted by reloadCa(): a backoff sleep ends at once. */
  private retryNow = new AbortController();
  private readonly inFlight = new Set<number>();
  /** batch id → idempotency keys of its chunks that already got 2xx. */
  private readonly partial = new Map<number, Set<string>>();
  private notBeforeMs = 0;
  private consecutiveFailures = 0;
  private readonly registeredDevices = new Set<string>();
  /** idempotencyScope + the spool's id (a new spool file restarts batch ids). */
  private keyScope: string | null = null;

  private counters = {
    deliveredBatches: 0,
    deliveredRecords: 0,
    deliveredBytes: 0,
    deliveredRawBytes: 0,
    requests: 0,
    retries: emptyRetries(),
    parkedBatches: 0,
    parkedRecords: 0,
    parkedByStatus: {} as Record<string, number>,
    chunksSkipped: 0,
    lastSuccessAtMs: null as number | null,
    lastErrorAtMs: null as number | null,
    lastError: null as string | null,
    devicesRegistered: 0,
    deviceRegistrationFailures: 0,
  };

  constructor(options: DrainOptions) {
    this.settings = Object.isFrozen(options.settings) ? (options.settings as DrainSettings) : resolveDrainSettings(options.settings);
    this.source = options.source;
    this.credentials = options.credentials;
    this.clock = options.clock ?? systemClock;
    this.random = options.random ?? Math.random;
    this.log = (options.logger ?? silentLogger()).child({ component: 'drain' });
    this.noisy = new RateLimitedLog(this.log, { windowMs: 60_000, burst: 5, maxKeys: 64, now: () => this.clock.now() });
    this.encoder = new UploadEncoder(this.settings.encoder);
    this.http = new FusionHttp(this.settings.tls);
    this.auth = new FusionAuth(this.credentials, this.http, this.settings.auth, () => this.clock.now(), this.random);
    this.target = { http: this.http, uploadUrl: this.settings.uploadUrl, forbiddenRetryAfterMs: this.settings.auth.backoff.baseMs };
    this.pool = this.settings.uploadWorkers === 0
      ? null
      : new UploadPool(this.settings.uploadWorkers, { encoder: this.settings.encoder, tls: this.settings.tls, uploadUrl: this.settings.uploadUrl, forbiddenRetryAfterMs: this.target.forbiddenRetryAfterMs });
    const now = this.clock.now();
    this.byteBucket = this.settings.maxBytesPerSecond === null ? null : new TokenBucket(this.settings.maxBytesPerSecond, now);
    this.recordBucket = this.settings.maxRecordsPerSecond === null ? null : new TokenBucket(this.settings.maxRecordsPerSecond, now);
  }

  /** Starts draining in the background until stop(). */
  start(): void {
    if (this.state !== 'idle') throw new Error(`drain: start() in state ${this.state}`);
    this.state = 'running';
    this.loopDone = this.loop(null).catch((err: unknown) => {
      this.log.error({ event: 'drain.loop_failed', err: errorText(err) }, 'drain loop failed');
    });
    this.log.info({ event: 'drain.started', uploadUrl: this.settings.uploadUrl, concurrency: this.settings.concurrency }, 'drain started');
  }

  /** Drains what the spool holds now, then stops (for `sealflow drain --once` and tests). */
  async drainOnce(options: DrainOnceOptions = {}): Promise<DrainOnceResult> {
    if (this.state !== 'idle') throw new Error(`drain: drainOnce() in state ${this.state}`);
    this.state = 'running';
    const maxFailures = options.maxConsecutiveFailures ?? 5;
    let gaveUp = false;
    try {
      this.loopDone = this.loop({ maxFailures, onProgress: options.onProgress ?? null, gaveUp: () => (gaveUp = true) });
      await this.loopDone;
    } finally {
      this.state = 'stopped';
      await this.http.close().catch(() => undefined);
      await this.pool?.close();
    }
    return { stats: this.stats(), complete: !gaveUp };
  }

  /**
   * SIGHUP: reads drain.fusion.caFile (`caFile`, the setting's current value) on every upload
   * thread and retries at once instead of waiting out a backoff that a trust problem caused.
   * Throws the ConfigError naming drain.fusion.caFile when the file is unusable; the previous
   * CA stays in use.
   */
  reloadCa(caFile: string | null): void {
    this.http.reloadCa(caFile);
    this.pool?.reloadCa(caFile);
    this.auth.resetBackoff();
    this.notBeforeMs = 0;
    this.retryNow.abort();
    this.retryNow = new AbortController();
  }

  /** Wakes an idle drain (the spool just got a batch). */
  notify(): void {
    this.wake.abort();
  }

  /**
   * Graceful stop: no new leases; in-flight uploads may finish within `graceMs`, after which
   * they are aborted; every leased batch not acked or parked is released. Idempotent (a second
   * call returns the first one's promise).
   */
  close(graceMs = 5000): Promise<void> {
    this.closing ??= this.shutdown(graceMs);
    return this.closing;
  }

  /** Forced stop: in-flight uploads are aborted now (their batches are released, never acked) and the upload workers end. Idempotent. */
  async destroy(): Promise<void> {
    this.abortRequests.abort();
    await this.pool?.destroy();
    await this.close(0);
  }

  private async shutdown(graceMs: number): Promise<void> {
    if (this.state === 'stopped') return;
    if (this.state === 'idle') {
      this.state = 'stopped';
      await this.http.destroy();
      await this.pool?.destroy();
      return;
    }
    this.state = 'stopping';
    this.stopSleeps.abort();
    this.wake.abort();
    const done = this.loopDone ?? Promise.resolve();
    const timer = new AbortController();
    const finished = await Promise.race([done.then(() => true), systemClock.sleep(graceMs, timer.signal).then(() => false)]);
    timer.abort();
    if (!finished) {
      if (!this.abortRequests.signal.aborted) this.log.warn({ event: 'drain.stop_forced', inFlight: this.inFlight.size }, 'drain: in-flight uploads overran the stop deadline; aborting them (their batches are released)');
      this.abortRequests.abort();
      // Workers' requests cannot see the signal: end the threads, their jobs reject and release.
      await this.pool?.destroy();
      await done;
    }
    await this.http.destroy();
    await this.pool?.close();
    this.state = 'stopped';
    this.log.info({ event: 'drain.stopped' }, 'drain stopped');
  }

  stats(): DrainStats {
    const now = this.clock.now();
    let spool: BatchSourceStatus | null = null;
    try {
      spool = this.source.status();
    } catch {
      spool = null;
    }
    const recordsPerSec = this.recordMeter.rate(now);
    const c = this.counters;
    return {
      state: this.state,
      deliveredBatches: c.deliveredBatches,
      deliveredRecords: c.deliveredRecords,
      deliveredBytes: c.deliveredBytes,
      deliveredRawBytes: c.deliveredRawBytes,
      requests: c.requests,
      retries: { ...c.retries },
      parkedBatches: c.parkedBatches,
      parkedRecords: c.parkedRecords,
      parkedByStatus: { ...c.parkedByStatus },
      chunksSkipped: c.chunksSkipped,
      auth: { ...this.auth.stats, failures: { ...this.auth.stats.failures } },
      tlsPinMismatches: this.http.pinMismatches,
      inFlightBatches: this.inFlight.size,
      consecutiveFailures: this.consecutiveFailures,
      backoffRemainingMs: Math.max(0, this.notBeforeMs - now),
      lastSuccessAtMs: c.lastSuccessAtMs,
      lastErrorAtMs: c.lastErrorAtMs,
      lastError: c.lastError,
      recordsPerSec,
      bytesPerSec: this.byteMeter.rate(now),
      spool,
      etaMs: spool !== null && recordsPerSec > 0 ? Math.round((spool.records / recordsPerSec) * 1000) : spool?.records === 0 ? 0 : null,
      devicesRegistered: c.devicesRegistered,
      deviceRegistrationFailures: c.deviceRegistrationFailures,
      gzipLevel: this.settings.encoder.compression !== 'gzip' ? null : this.pool === null ? this.encoder.gzip.level : (this.poolGzipLevel ?? this.settings.encoder.gzipLevel),
    };
  }

  /**
   * Registers an exporter with Fusion once per process (by name) when `registerDevices` is on.
   * Never throws for a network/HTTP problem (counted and logged); throws ConfigError for a
   * body Fusion would reject.
   */
  async registerDevice(device: DeviceRegistration): Promise<'registered' | 'exists' | 'disabled' | 'failed'> {
    if (!this.settings.registerDevices) return 'disabled';
    const body = deviceBody(device);
    if (this.registeredDevices.has(device.name)) return 'exists';
    const url = this.credentials.endpoint('/device');
    try {
      const token = await this.auth.token(this.abortRequests.signal);
      const res = await this.http.request(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${token}`, 'user-agent': USER_AGENT },
        body: JSON.stringify(body),
        signal: this.abortRequests.signal,
      });
      if (res.status === 401) this.auth.invalidate(token);
      if (res.status === 201 || res.status === 200 || res.status === 409) {
        this.registeredDevices.add(device.name);
        if (res.status === 409) return 'exists';
        this.counters.devicesRegistered++;
        this.log.info({ event: 'drain.device_registered', device: device.name }, 'registered exporter with Fusion');
        return 'registered';
      }
      this.counters.deviceRegistrationFailures++;
      this.noisy.log('warn', 'device', { event: 'drain.device_failed', device: device.name, status: res.status }, `Fusion device registration answered HTTP ${res.status}${serverMessage(res.body)}`);
      return 'failed';
    } catch (err) {
      this.counters.deviceRegistrationFailures++;
      this.noisy.log('warn', 'device', { event: 'drain.device_failed', device: device.name }, `Fusion device registration failed: ${errorText(err)}`);
      return 'failed';
    }
  }

  // --- the loop -------------------------------------------------------------------------

  private async loop(once: { maxFailures: number; onProgress: ((s: DrainStats) => void) | null; gaveUp: () => void } | null): Promise<void> {
    const running = new Map<number, Promise<void>>();
    const concurrency = this.settings.concurrency;
    while (this.state === 'running') {
      if (once !== null && this.consecutiveFailures >= once.maxFailures) {
        once.gaveUp();
        break;
      }
      const wait = this.notBeforeMs - this.clock.now();
      if (wait > 0) {
        // Backing off: let in-flight uploads finish first, then wait out the rest.
        if (running.size > 0) await Promise.race(running.values());
        else await this.clock.sleep(wait, AbortSignal.any([this.stopSleeps.signal, this.retryNow.signal]));
        continue;
      }
      if (running.size >= concurrency) {
        await Promise.race(running.values());
        continue;
      }
      let leased: LeasedBatch[];
      try {
        leased = this.source.lease(concurrency - running.size);
      } catch (err) {
        this.recordFailure({ kind: 'retry', reason: 'source', message: `spool lease failed: ${errorText(err)}`, retryAfterMs: null });
        continue;
      }
      if (leased.length === 0) {
        if (running.size > 0) {
          await Promise.race(running.values());
          continue;
        }
        if (once !== null) break;
        // A notify() since the last look means there may be a batch now: look again at once.
        if (this.wake.signal.aborted) {
          this.wake = new AbortController();
          continue;
        }
        await this.clock.sleep(this.settings.idlePollMs, AbortSignal.any([this.stopSleeps.signal, this.wake.signal]));
        continue;
      }
      for (const batch of leased) {
        this.inFlight.add(batch.id);
        const p = this.handle(batch).finally(() => {
          this.inFlight.delete(batch.id);
          running.delete(batch.id);
          if (once?.onProgress != null) once.onProgress(this.stats());
        });
        running.set(batch.id, p);
      }
    }
    await Promise.all(running.values());
  }

  /** Delivers one batch and settles it in the spool: exactly one of ack / park / release. */
  private async handle(batch: LeasedBatch): Promise<void> {
    let outcome: BatchOutcome;
    try {
      outcome = await this.deliver(batch);
    } catch (err) {
      outcome = { kind: 'retry', reason: 'encode', message: `batch ${batch.id}: ${errorText(err)}`, retryAfterMs: null };
    }
    try {
      if (outcome.kind === 'ok') {
        this.source.ack(batch.id, outcome.receipt);
        this.partial.delete(batch.id);
        this.counters.deliveredBatches++;
        this.counters.lastSuccessAtMs = this.clock.now();
        this.consecutiveFailures = 0;
      } else if (outcome.kind === 'park') {
        this.source.park(batch.id, outcome.message, { chunks: 0, status: outcome.status, requestId: null });
        this.partial.delete(batch.id);
        this.counters.parkedBatches++;
        this.counters.parkedRecords += batch.recordCount;
        const k = String(outcome.status);
        this.counters.parkedByStatus[k] = (this.counters.parkedByStatus[k] ?? 0) + 1;
        this.counters.lastErrorAtMs = this.clock.now();
        this.counters.lastError = outcome.message;
        this.log.error({ event: 'drain.batch_parked', batch: batch.id, records: batch.recordCount, status: outcome.status }, `Fusion rejected batch ${batch.id} permanently; parked: ${outcome.message}`);
      } else {
        this.source.release(batch.id);
        this.recordFailure(outcome);
      }
    } catch (err) {
      // The spool failed to settle the batch: it stays leased in the spool's view until the
      // spool is reopened (leases are not persistent), so nothing is lost; back off.
      this.recordFailure({ kind: 'retry', reason: 'source', message: `spool failed to settle batch ${batch.id}: ${errorText(err)}`, retryAfterMs: null });
    }
  }

  private recordFailure(f: Extract<ChunkResult, { kind: 'retry' }>): void {
    this.counters.retries[f.reason]++;
    this.counters.lastErrorAtMs = this.clock.now();
    this.counters.lastError = f.message;
    if (f.reason === 'aborted' && this.state !== 'running') return; // stopping, not a failure of Fusion
    this.consecutiveFailures++;
    const jitter = fullJitterMs(this.consecutiveFailures, this.settings.backoff, this.random);
    // A server's Retry-After is honoured even beyond the backoff cap, up to MAX_RETRY_AFTER_MS.
    const delay = f.retryAfterMs !== null ? Math.min(Math.max(f.retryAfterMs, jitter), Math.max(this.settings.backoff.capMs, MAX_RETRY_AFTER_MS)) : jitter;
    this.notBeforeMs = Math.max(this.notBeforeMs, this.clock.now() + delay);
    this.noisy.log('warn', f.reason, { event: 'drain.retry', reason: f.reason, delayMs: delay, consecutiveFailures: this.consecutiveFailures }, `drain: ${f.message}; retrying in ${delay} ms`);
  }

  private async deliver(batch: LeasedBatch): Promise<BatchOutcome> {
    if (this.keyScope === null) {
      let spoolId = '';
      try {
        spoolId = this.source.status().spoolId ?? '';
      } catch {
        spoolId = '';
      }
      this.keyScope = `${this.settings.idempotencyScope}/${spoolId}`;
    }
    const scope = this.keyScope;
    if (this.pool !== null) return this.deliverViaPool(this.pool, batch, scope);
    const timings: EncodeTimings = { compressMs: 0 };
    const chunks = await this.encoder.encode(decodeBatch(batch.batch), timings);
    const done = this.partial.get(batch.id);
    let answered: { status: number; requestId: string | null } = { status: 0, requestId: null };
    // Network time for the gzip level control: requests plus byte-cap waits (real time).
    let networkMs = 0;
    for (const chunk of chunks) {
      const key = idempotencyKey(scope, batch.id, batch.createdAtMs, chunk.first, chunk.end);
      if (done?.has(key) === true) {
        this.counters.chunksSkipped++;
        continue;
      }
      networkMs += await this.pace(chunk);
      // Stopping (the pacing sleep was cut short) or forced: do not start another upload.
      if (this.state !== 'running' || this.abortRequests.signal.aborted) return { kind: 'retry', reason: 'aborted', message: 'stopping', retryAfterMs: null };
      const t0 = performance.now();
      const result = await this.send(chunk, key, true);
      networkMs += performance.now() - t0;
      if (result.kind !== 'ok') return result;
      answered = result;
      const now = this.clock.now();
      this.counters.deliveredRecords += chunk.recordCount;
      this.counters.deliveredBytes += chunk.body.length;
      this.counters.deliveredRawBytes += chunk.rawBytes;
      this.recordMeter.add(chunk.recordCount, now);
      this.byteMeter.add(chunk.body.length, now);
      if (chunks.length > 1) this.rememberChunk(batch.id, key);
    }
    // A resumed batch compressed every chunk but sent only some: it would understate the network.
    if (done === undefined) this.encoder.gzip.observe(timings.compressMs, networkMs);
    return { kind: 'ok', receipt: { chunks: chunks.length, status: answered.status, requestId: answered.requestId } };
  }

  /**
   * Waits for the bandwidth and record-rate buckets. Returns the real time waited when the
   * byte cap was the binding one (0 otherwise): for the gzip level control that is network
   * time, since fewer bytes would have waited less; a record-rate wait is not.
   */
  private async pace(chunk: EncodedChunk): Promise<number> {
    const now = this.clock.now();
    const waitBytes = this.byteBucket?.take(chunk.body.length, now) ?? 0;
    const waitRecords = this.recordBucket?.take(chunk.recordCount, now) ?? 0;
    return this.sleepForCaps(waitBytes, waitRecords);
  }

  /** Sleeps max(waitBytes, waitRecords); the real ms slept when the byte wait was the longer, else 0. */
  private async sleepForCaps(waitBytes: number, waitRecords: number): Promise<number> {
    const wait = Math.max(waitBytes, waitRecords);
    if (wait <= 0) return 0;
    const t0 = performance.now();
    await this.clock.sleep(wait, this.stopSleeps.signal);
    return waitBytes >= waitRecords ? performance.now() - t0 : 0;
  }

  private async send(chunk: EncodedChunk, key: string, mayRenew: boolean): Promise<ChunkResult> {
    let token: string;
    try {
      token = await this.auth.token(this.abortRequests.signal);
    } catch (err) {
      return this.authFailure(err);
    }
    this.counters.requests++;
    const answer = await uploadChunk(this.target, chunk, key, token, () => this.clock.now(), this.abortRequests.signal);
    if (answer.kind !== 'unauthorized') return answer;
    // Token expired or revoked early: mint a new one and try once more right away.
    this.auth.invalidate(token);
    if (mayRenew) return this.send(chunk, key, false);
    return { kind: 'retry', reason: 'auth', message: answer.message, retryAfterMs: null };
  }

  /** Pool mode: one job per batch; 401 → new token and the job again (delivered chunks skipped). */
  private async deliverViaPool(pool: UploadPool, batch: LeasedBatch, scope: string): Promise<BatchOutcome> {
    const now = this.clock.now();
    const pacedMs = await this.sleepForCaps(this.paceUntilMs - now, this.recordBucket?.take(batch.recordCount, now) ?? 0);
    let lastMessage = '';
    for (let attempt = 0; attempt < 2; attempt++) {
      if (this.state !== 'running' || this.abortRequests.signal.aborted) return { kind: 'retry', reason: 'aborted', message: 'stopping', retryAfterMs: null };
      let token: string;
      try {
        token = await this.auth.token(this.abortRequests.signal);
      } catch (err) {
        return this.authFailure(err);
      }
      const done = this.partial.get(batch.id);
      let reply;
      try {
        reply = await pool.run({ batch: transferableBatch(batch), batchId: batch.id, createdAtMs: batch.createdAtMs, scope, skip: done === undefined ? [] : [...done], token, pacedMs });
      } catch (err) {
        return { kind: 'retry', reason: this.forced() ? 'aborted' : 'worker', message: `upload worker: ${errorText(err)}`, retryAfterMs: null };
      }
      this.counters.requests += reply.requests;
      this.counters.chunksSkipped += done?.size ?? 0;
      this.poolGzipLevel = reply.gzipLevel;
      const t = this.clock.now();
      let bytes = 0;
      for (const d of reply.done) {
        this.counters.deliveredRecords += d.records;
        this.counters.deliveredBytes += d.bytes;
        this.counters.deliveredRawBytes += d.rawBytes;
        this.recordMeter.add(d.records, t);
        this.byteMeter.add(d.bytes, t);
        bytes += d.bytes;
        if (d.multiChunk) this.rememberChunk(batch.id, d.key);
      }
      if (this.byteBucket !== null && bytes > 0) this.paceUntilMs = Math.max(this.paceUntilMs, t + this.byteBucket.take(bytes, t));
      const lastDone = reply.done.at(-1);
      if (reply.outcome.kind === 'ok') return { kind: 'ok', receipt: { chunks: reply.chunks, status: lastDone?.status ?? reply.outcome.status, requestId: lastDone?.requestId ?? null } };
      if (reply.outcome.kind !== 'unauthorized') return reply.outcome;
      this.auth.invalidate(token);
      lastMessage = reply.outcome.message;
    }
    return { kind: 'retry', reason: 'auth', message: lastMessage, retryAfterMs: null };
  }

  /** Whether stop() has given up waiting and aborted the uploads (read after awaits). */
  private forced(): boolean {
    return this.abortRequests.signal.aborted;
  }

  private rememberChunk(batchId: number, key: string): void {
    let done = this.partial.get(batchId);
    if (done === undefined) {
      if (this.partial.size >= MAX_PARTIAL_BATCHES) {
        const oldest = this.partial.keys().next();
        if (oldest.done !== true) this.partial.delete(oldest.value);
      }
      done = new Set();
      this.partial.set(batchId, done);
    }
    done.add(key);
  }

  private authFailure(err: unknown): Extract<ChunkResult, { kind: 'retry' }> {
    const e = err as DrainError;
    const retryAfter = typeof e.context.retryAfterMs === 'number' ? e.context.retryAfterMs : this.auth.backoffRemainingMs();
    return { kind: 'retry', reason: 'auth', message: errorText(err), retryAfterMs: retryAfter };
  }
}

/**
 * The batch-format bytes of a leased batch in a buffer of their own: the job transfers the
 * buffer to the worker, which detaches it here, so it must not be shared with anything else
 * (the leased bytes are a Node Buffer: a view into zlib's output or the shared allocation
 * pool). Each attempt gets its own copy; the leased batch stays intact for a retry.
 */
function transferableBatch(batch: LeasedBatch): Uint8Array {
  // new Uint8Array(view) copies into a fresh ArrayBuffer of exactly the view's length (a
  // Buffer's slice() would share the memory).
  return new Uint8Array(batch.batch);
}

export { USER_AGENT, type ChunkResult, type RetryReason };
