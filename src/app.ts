/**
 * The composition root: builds every stage from the validated configuration and wires them
 * through the interfaces in src/flow/pipeline.ts. Nothing else imports across stages.
 *
 *   UDP / TLS / DTLS listeners ──PacketSink──▶ IngestChannel ══(worker thread)══▶
 *     DecodeService → FlowFilter → Batcher → Spool (sealed batches in SQLite)
 *   Spool (second connection, main thread) ──lease/ack──▶ Drain ──HTTPS──▶ Fusion
 *
 * Start order (producers last): ingest worker (opens the spool: a wrong key fails here, before
 * any socket is bound) → drain → tee → listeners → admin endpoint → stats line.
 * Stop order (producers first): listeners → tee → ingest worker (flushes the in-memory batch
 * into the spool, persists decoder state, closes its connection) → drain (leased batches
 * released) → spool → admin. A deadline bounds the whole stop; past it the caller exits and
 * the step that overran is named.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { AuditService, configHash } from './audit/audit-service.js';
import type { DeviceKey } from './audit/device-key.js';
import { AuditTrail } from './audit/trail.js';
import { redactConfig } from './config/redact-config.js';
import type { Config } from './config/schema.js';
import { Drain } from './drain/drain.js';
import { drainSettingsFromConfig, type DrainRuntimeExtras } from './drain/drain-config.js';
import type { FusionCredentials } from './drain/netosecret.js';
import { PrefixSet } from './flow/cidr.js';
import { DtlsListener } from './ingest/dtls/dtls-listener.js';
import { TlsListener } from './ingest/tls/tls-listener.js';
import { ExporterTrust, trustSettingsFromConfig, type ExporterTrustSettings } from './ingest/trust/exporter-trust.js';
import { UdpTee } from './ingest/udp/tee.js';
import { UdpListener } from './ingest/udp/udp-listener.js';
import { AdminServer, type Readiness } from './observability/admin-server.js';
import { buildInfo } from './observability/build-info.js';
import { certificateExpiries, type CertificateExpiry } from './observability/certificate-expiry.js';
import type { LossListener } from './flow/loss.js';
import { LossLedger } from './observability/loss-ledger.js';
import { LOSS_LEDGER_FILE } from './observability/loss-ledger-file.js';
import { Metrics } from './observability/metrics.js';
import { collectProbeMetrics, lossSamples, type ProbeSnapshot } from './observability/probe-metrics.js';
import { statsDocument } from './observability/stats-document.js';
import { historySample, RecentWarnings, StatusHistory } from './observability/status-history.js';
import { renderStatusPage } from './observability/status-page.js';
import { StatsLine, type StatsLineText, type StatsSummary } from './observability/stats-line.js';
import { IngestWorker } from './ingest-worker/ingest-worker.js';
import type { IngestWorkerInit, IngestWorkerStats } from './ingest-worker/messages.js';
import { SEALFLOW_VERSION } from './observability/build-info.js';
import { Spool, SPOOL_DB_FILE } from './spool/spool.js';

export interface AppOptions {
  readonly config: Config;
  readonly logger: Logger;
  /** Resolved spool KEKs: current first, then previous ones (rotation). */
  readonly keks: readonly Uint8Array[];
  /** Fusion credentials; null when the drain is disabled. */
  readonly credentials: FusionCredentials | null;
  readonly drainExtras?: DrainRuntimeExtras;
  readonly adminToken?: Buffer | undefined;
  /** Print accepted records as NDJSON on stdout too (NetoFlow's dumprecords). */
  readonly stdoutRecords?: boolean;
  readonly onStatusLine?: (line: StatsLineText) => void;
  /** Extra sections for /stats (e.g. the embedded Fusion stand-in's counters). */
  readonly extraStats?: () => Record<string, unknown>;
  /** Where other threads' JSON log lines are written (LogOutput.write); standard error without it. */
  readonly logLine?: (jsonLine: string) => void;
  /** Warnings and errors of every thread for the status page (fed by the log destination); none shown without it. */
  readonly recentWarnings?: RecentWarnings;
  /** A component died (the ingest worker): the caller stops the app and exits non-zero. */
  readonly onFatal?: (err: Error) => void;
  /** Gets the loss ledger's reports (what was lost, by reason, per period): the audit trail's port. */
  readonly onLoss?: LossListener;
  /** The resolved master pseudonymisation key when privacy.pseudonymize is configured (handed to the ingest worker only). */
  readonly pseudonymizeKey?: Uint8Array | null;
  /** The device signing key for the audit trail's digests (the app owns it from here); null or absent: unsigned. */
  readonly signingKey?: DeviceKey | null;
}

/** A bound listener, for the start-up banner. */
export interface BoundEndpoint {
  readonly transport: 'udp' | 'tls' | 'dtls' | 'admin';
  readonly name: string;
  readonly address: string;
  readonly port: number;
}

/** The status page's charts sample at most this often (and at the stats line's interval when it is shorter). */
const HISTORY_PERIOD_MS = 10_000;
/** An exporter heard from within this window is active (status line, status page). */
const ACTIVE_EXPORTER_WINDOW_MS = 5 * 60_000;

/** Drain's own grace within the stop deadline: in-flight uploads may finish, then are aborted. */
const DRAIN_STOP_SHARE = 0.5;
/** How often the loss ledger reads the modules' counters and writes its file (the ingest worker reports once a second). */
const LOSS_LEDGER_FLUSH_MS = 1000;

export class App {
  private readonly config: Config;
  private readonly log: Logger;
  private readonly metrics = new Metrics();
  private worker: IngestWorker | null = null;
  private audit: AuditService | null = null;
  /** Recorded as probe.stopped's reason (run.ts names the signal or the fatal error). */
  stopReason = 'stop';
  private drainSpool: Spool | null = null;
  private drain: Drain | null = null;
  private tee: UdpTee | null = null;
  private udp: UdpListener | null = null;
  private tls: TlsListener | null = null;
  private dtls: DtlsListener | null = null;
  private admin: AdminServer | null = null;
  private statsLine: StatsLine | null = null;
  private ledger: LossLedger | null = null;
  private ledgerTimer: NodeJS.Timeout | null = null;
  private readonly endpoints: BoundEndpoint[] = [];
  private readonly build = buildInfo();
  private certificates: readonly CertificateExpiry[] = [];
  /** The drain.fusion.caFile the drain trusts now (SIGHUP may change it). */
  private drainCaFile: string | null;
  private readonly startedAtMs = Date.now();
  private readonly history: StatusHistory;
  private historyTimer: NodeJS.Timeout | null = null;
  private state: 'new' | 'starting' | 'running' | 'stopping' | 'stopped' = 'new';
  private closePromise: Promise<void> | null = null;
  /** The step of stop() in progress, named when the deadline passes. */
  currentStep = '';

  constructor(private readonly options: AppOptions) {
    this.config = options.config;
    this.drainCaFile = options.config.drain.fusion.caFile ?? null;
    this.log = options.logger;
    const statsMs = options.config.stats.intervalSeconds * 1000;
    this.history = new StatusHistory(statsMs > 0 ? Math.min(statsMs, HISTORY_PERIOD_MS) : HISTORY_PERIOD_MS);
  }

  bound(): readonly BoundEndpoint[] {
    return this.endpoints;
  }

  async start(): Promise<void> {
    if (this.state !== 'new') throw new Error('App.start() called twice');
    this.state = 'starting';
    const c = this.config;
    const startedAtMs = Date.now();
    mkdirSync(c.spool.dir, { recursive: true, mode: 0o700 });

    // 1. Ingest worker: opens the appending spool connection (key check happens here).
    this.worker = new IngestWorker(ingestWorkerInit(this.config, this.options.keks, this.options.stdoutRecords ?? false, this.options.pseudonymizeKey ?? null));
    if (this.options.logLine !== undefined) this.worker.setLogOutput(this.options.logLine);
    this.worker.setFatalHandler((err) => {
      this.log.fatal({ err: err.message }, 'ingest worker died');
      this.options.onFatal?.(err);
    });
    await this.worker.ready();

    // The loss ledger, in the spool directory (the worker has just checked the key there).
    this.ledger = new LossLedger({ path: join(c.spool.dir, LOSS_LEDGER_FILE), logger: this.log.child({ component: 'loss' }) });
    if (this.options.onLoss !== undefined) this.ledger.onReport(this.options.onLoss);
    this.ledgerTimer = setInterval(() => this.flushLedger(), LOSS_LEDGER_FLUSH_MS);
    this.ledgerTimer.unref();

    // The audit trail's own connection (lifecycle events and signed digests); the spool's
    // connections record theirs in their transactions (src/audit/trail.ts).
    this.audit = new AuditService({
      dbPath: join(c.spool.dir, SPOOL_DB_FILE),
      key: this.options.signingKey ?? null,
      digestIntervalMs: c.audit.digestIntervalSeconds * 1000,
      retentionMs: c.audit.retentionDays * 86_400_000,
      logger: this.log.child({ component: 'audit' }),
    });
    this.audit.begin({ configHash: configHash(redactConfig(c)), version: SEALFLOW_VERSION, startedAtMs });
    // The trail records what the ledger reports lost (reasons and counts per period, never flow data).
    this.ledger.onReport((r) => this.audit?.record({ kind: 'loss.reported', fromMs: r.fromMs, toMs: r.toMs, records: r.lost.records, packets: r.lost.packets }));

    // 2. Drain (second spool connection in this thread).
    if (c.drain.enabled && this.options.credentials !== null) {
      this.drainSpool = await Spool.open({
        dir: c.spool.dir,
        kek: this.options.keks[0] ?? new Uint8Array(0),
        previousKeks: this.options.keks.slice(1),
        quotaBytes: c.spool.quotaBytes,
        fullPolicy: c.spool.fullPolicy,
        reserveBytes: c.spool.reserveBytes,
        synchronous: c.spool.synchronous,
        epochMs: c.spool.epochSeconds * 1000,
        create: false,
        audit: (db) => new AuditTrail(db),
        logger: this.log.child({ component: 'spool-drain' }),
      });
      this.drain = new Drain({
        source: this.drainSpool.reader,
        credentials: this.options.credentials,
        settings: drainSettingsFromConfig(c.drain, this.options.drainExtras ?? {}),
        logger: this.log,
      });
      this.drain.start();
      // The ingest worker says when batches are committed: the drain wakes at once (its idle poll is only a fallback).
      this.worker.onCommitted(() => this.drain?.notify());
    } else if (c.drain.enabled) {
      this.log.warn('drain enabled but no Fusion credentials (drain.fusion.netosecret): records are spooled, not uploaded');
    } else {
      this.log.info('drain disabled: records are spooled only (use `sealflow drain --once` to upload later)');
    }

    // 3. Listeners, producers last.
    const sink = this.worker.channel;
    if (c.tees.length > 0) {
      const tees = c.tees.map((t) => ({
        targets: t.targets,
        ...(t.exporters === undefined ? {} : { exporters: t.exporters }),
        ...(t.listenerPort === undefined ? {} : { listenerPort: t.listenerPort }),
      }));
      this.tee = new UdpTee({ tees, logger: this.log.child({ component: 'tee' }) });
      await this.tee.start();
      this.log.info('tees forward datagrams from sealflow\'s own address (Node.js has no raw sockets to preserve the exporter\'s source address)');
    }
    if (c.listeners.udp.length > 0) {
      this.udp = new UdpListener({
        endpoints: c.listeners.udp.map((u) => ({ name: u.name ?? `udp-${u.port}`, address: u.address, port: u.port, receiveBufferBytes: u.receiveBufferBytes, maxDatagramBytes: u.maxDatagramBytes })),
        allowlist: PrefixSet.parse(c.listeners.allowlist),
        sink,
        logger: this.log.child({ component: 'udp' }),
        tee: this.tee,
        receiver: c.listeners.udpReceiver,
      });
      await this.udp.start();
      for (const a of this.udp.addresses()) this.endpoints.push({ transport: 'udp', ...a });
    }
    if (c.listeners.tls.enabled) {
      const t = c.listeners.tls;
      this.tls = new TlsListener(
        {
          host: t.address,
          port: t.port,
          trust: this.trustSettings('tls'),
          settingPrefix: 'listeners.tls',
          limits: {
            maxConnections: t.maxConnections,
            maxConnectionsPerSource: t.maxConnectionsPerSource,
            handshakesPerSecond: t.handshakesPerSecond,
            handshakeTimeoutMs: t.handshakeTimeoutMs,
            idleTimeoutMs: t.idleTimeoutMs,
            maxMessageBytes: t.maxMessageBytes,
          },
        },
        { sink, logger: this.log },
      );
      await this.tls.start();
      const a = this.tls.address();
      this.endpoints.push({ transport: 'tls', name: 'ipfix-tls', address: a.address, port: a.port });
    }
    if (c.listeners.dtls.enabled) {
      const d = c.listeners.dtls;
      this.dtls = new DtlsListener({
        address: d.address,
        port: d.port,
        trust: ExporterTrust.load(this.trustSettings('dtls'), 'listeners.dtls'),
        sink,
        logger: this.log,
        maxSessions: d.maxSessions,
        maxSessionsPerSource: d.maxSessionsPerSource,
        handshakesPerSecond: d.handshakesPerSecond,
        handshakeTimeoutMs: d.handshakeTimeoutMs,
        idleTimeoutMs: d.idleTimeoutMs,
        maxDatagramBytes: d.maxDatagramBytes,
      });
      const a = await this.dtls.start();
      this.endpoints.push({ transport: 'dtls', name: 'ipfix-dtls', address: a.address, port: a.port });
    }

    // 4. Observability.
    this.certificates = certificatesOf(c);
    this.metrics.registerCollector('probe', (emit) => {
      collectProbeMetrics(this.snapshot(), emit);
    });
    if (c.admin.enabled) {
      this.admin = new AdminServer({
        address: c.admin.address,
        port: c.admin.port,
        token: this.options.adminToken,
        metrics: this.metrics,
        stats: () => this.stats(),
        statusPage: () => this.statusPage(),
        readiness: () => this.readiness(),
        logger: this.log.child({ component: 'admin' }),
      });
      const a = await this.admin.start();
      this.endpoints.push({ transport: 'admin', name: 'admin', address: a.address, port: a.port });
    }
    this.statsLine = new StatsLine({
      intervalSeconds: c.stats.intervalSeconds,
      summary: () => this.summary(),
      logger: this.log.child({ component: 'stats' }),
      ...(this.options.onStatusLine === undefined ? {} : { onLine: this.options.onStatusLine }),
    });
    this.statsLine.start();
    this.sampleHistory();
    this.historyTimer = setInterval(() => {
      this.sampleHistory();
    }, this.history.periodMs);
    this.historyTimer.unref();
    this.state = 'running';
  }

  /**
   * Graceful stop in reverse start order. Idempotent: a second call returns the same promise.
   * The caller enforces the deadline (see `currentStep` for what overran), then destroy().
   */
  close(): Promise<void> {
    this.closePromise ??= this.shutdown();
    return this.closePromise;
  }

  /**
   * Forced stop (the deadline passed, or a second signal): the ingest worker ends now (committed
   * batches are safe, its open batch is lost), in-flight uploads are aborted (their batches stay
   * in the spool), the drain's spool connection closes. Idempotent.
   */
  async destroy(): Promise<void> {
    await this.worker?.destroy();
    await this.drain?.destroy();
    this.drainSpool?.destroy();
    this.closeLedger();
    this.audit?.destroy();
  }

  private async shutdown(): Promise<void> {
    this.state = 'stopping';
    const step = async (name: string, fn: () => Promise<void> | void): Promise<void> => {
      this.currentStep = name;
      try {
        await fn();
      } catch (err) {
        this.log.error({ step: name, err: (err as Error).message }, 'error while stopping');
      }
    };
    this.statsLine?.close();
    if (this.historyTimer !== null) clearInterval(this.historyTimer);
    await step('udp listeners', () => this.udp?.close());
    await step('tls listener', () => this.tls?.close());
    await step('dtls listener', () => this.dtls?.close());
    await step('tee', () => this.tee?.close());
    await step('ingest worker (flush batch into the spool)', () => this.worker?.close());
    const graceMs = Math.max(100, Math.floor(this.config.shutdown.deadlineMs * DRAIN_STOP_SHARE));
    await step('drain (release leased batches)', () => this.drain?.close(graceMs));
    await step('spool', () => this.drainSpool?.close());
    await step('admin endpoint', () => this.admin?.close());
    await step('loss ledger', () => this.closeLedger());
    // After the ledger's last report, which it records; the final digest signs everything.
    await step('audit trail (final digest)', () => this.audit?.close(this.stopReason));
    // The last word: the totals after everything stopped (the same as `sealflow spool status` shows now).
    if (this.config.stats.intervalSeconds > 0) this.statsLine?.tick();
    this.currentStep = '';
    this.state = 'stopped';
  }

  /** Reads the modules' loss counters into the ledger and writes its file. */
  private flushLedger(): void {
    this.snapshot();
    this.ledger?.flush();
  }

  /** The ledger's last reading, report and write. Idempotent. */
  private closeLedger(): void {
    if (this.ledgerTimer !== null) clearInterval(this.ledgerTimer);
    this.ledgerTimer = null;
    this.snapshot();
    this.ledger?.close();
  }

  /** SIGHUP: certificates, CRLs, identity allowlists, the UDP allowlist, flow filters and the drain's CA file (drain.fusion.caFile: the file read again, or the one the setting now names). */
  reload(newConfig: Config): void {
    const c = newConfig;
    const tryReload = (what: string, fn: () => void): void => {
      try {
        fn();
        this.log.info({ what }, 'reloaded');
      } catch (err) {
        this.log.error({ what, err: (err as Error).message }, 'reload failed; keeping the previous settings');
      }
    };
    if (this.udp !== null) tryReload('udp allowlist', () => this.udp?.reload(PrefixSet.parse(c.listeners.allowlist)));
    if (this.tls !== null) tryReload('tls trust', () => this.tls?.reload(this.trustSettings('tls', c)));
    if (this.dtls !== null) tryReload('dtls trust', () => this.dtls?.reload(ExporterTrust.load(this.trustSettings('dtls', c), 'listeners.dtls')));
    tryReload('flow filters', () => this.worker?.reload({ filters: c.filters }));
    const caFile = c.drain.fusion.caFile ?? null;
    if (this.drain !== null && (caFile !== null || this.drainCaFile !== null)) {
      tryReload('drain.fusion.caFile', () => {
        this.drain?.reloadCa(caFile);
        this.drainCaFile = caFile;
      });
    }
    this.certificates = certificatesOf(c);
    this.audit?.reloaded(configHash(redactConfig(c)));
  }

  private trustSettings(which: 'tls' | 'dtls', config: Config = this.config): ExporterTrustSettings {
    return trustSettingsFromConfig(config.listeners[which]);
  }

  private workerStats(): IngestWorkerStats | null {
    return this.worker?.stats() ?? null;
  }

  /** Every module's typed stats now; null for modules not running. */
  snapshot(): ProbeSnapshot {
    const modules = {
      build: this.build,
      certificates: this.certificates,
      worker: this.workerStats(),
      channel: this.worker?.channel.stats() ?? null,
      udp: this.udp?.stats() ?? null,
      tls: this.tls?.stats() ?? null,
      dtls: this.dtls?.stats() ?? null,
      drain: this.drain?.stats() ?? null,
      quarantinedRecords: this.drainSpool?.reader.quarantinedRecords ?? null,
    };
    // Every reading of the counters goes through the ledger, so what /metrics shows is never behind what was read.
    this.ledger?.observe(lossSamples(modules));
    return { ...modules, loss: this.ledger?.totals() ?? null };
  }

  /** The /stats document (src/observability/stats-document.ts). No flow data: counters, exporter addresses and identities only. */
  stats(): Record<string, unknown> {
    return statsDocument({ ...this.snapshot(), state: this.state, nowMs: Date.now(), ...(this.options.extraStats === undefined ? {} : { extra: this.options.extraStats() }) });
  }

  private sampleHistory(): void {
    const now = Date.now();
    const snap = this.snapshot();
    this.history.add(historySample(snap, now));
    this.history.noteExporters(snap.worker?.exporters ?? [], now);
  }

  /** The status page (src/observability/status-page.ts). */
  statusPage(): string {
    return renderStatusPage({
      snapshot: this.snapshot(),
      state: this.state,
      startedAtMs: this.startedAtMs,
      nowMs: Date.now(),
      endpoints: this.endpoints.filter((e) => e.transport !== 'admin'),
      history: this.history,
      warnings: this.options.recentWarnings?.list() ?? [],
      activeWindowMs: ACTIVE_EXPORTER_WINDOW_MS,
    });
  }

  readiness(): Readiness {
    const reasons: string[] = [];
    if (this.state !== 'running') reasons.push(`state ${this.state}`);
    if (this.workerStats() === null) reasons.push('ingest worker has not reported yet');
    // The drain's state is reported on /stats but does not make the probe unready: with the
    // uplink down, accepting and spooling flows is exactly what it is for.
    return { ready: reasons.length === 0, reasons };
  }

  private summary(): StatsSummary {
    const s = this.snapshot();
    const w = s.worker;
    const spool = w?.spool ?? null;
    const d = s.drain;
    const activeSince = Date.now() - ACTIVE_EXPORTER_WINDOW_MS;
    return {
      exporters: (w?.exporters ?? []).filter((e) => e.lastSeenMs >= activeSince).length,
      records: w?.records ?? 0,
      lost: s.loss ?? { records: {}, packets: {} },
      spoolRecords: spool?.records ?? 0,
      spoolBytes: spool?.bytes ?? 0,
      drainLagMs: spool?.oldestAgeMs ?? null,
      uploaded: d?.deliveredRecords ?? 0,
      drainState: d === null ? 'disabled' : d.consecutiveFailures > 0 ? 'backoff' : d.state === 'running' ? 'ok' : d.state,
    };
  }

}

/** The ingest worker's start-up data from the configuration (also `sealflow attest`'s canary run). */
export function ingestWorkerInit(c: Config, keks: readonly Uint8Array[], stdoutRecords: boolean, pseudonymizeKey: Uint8Array | null): IngestWorkerInit {
  return {
    logLevel: c.log.level,
    decode: {
      templateLifetimeMs: c.decode.templateLifetimeSeconds * 1000,
      maxTemplatesPerSession: c.decode.maxTemplatesPerSession,
      maxFieldsPerTemplate: c.decode.maxFieldsPerTemplate,
      pendingHoldMs: c.decode.pendingHoldMs,
      maxPendingRecordsPerSession: c.decode.maxPendingRecordsPerSession,
      maxSessions: c.decode.maxSessions,
      maxStateBytes: c.decode.maxStateBytes,
      maxStateBytesPerExporter: c.decode.maxStateBytesPerExporter,
      tunnelLayer: c.decode.tunnelLayer,
      sflowOctets: c.decode.sflowOctets,
    },
    filters: c.filters,
    spool: {
      dir: c.spool.dir,
      keks,
      quotaBytes: c.spool.quotaBytes,
      fullPolicy: c.spool.fullPolicy,
      reserveBytes: c.spool.reserveBytes,
      synchronous: c.spool.synchronous,
      epochMs: c.spool.epochSeconds * 1000,
      maxAgeSeconds: c.spool.maxAgeSeconds ?? null,
    },
    batch: { maxRecords: c.spool.batch.maxRecords, maxBytes: c.spool.batch.maxBytes, maxAgeMs: c.spool.batch.maxAgeMs },
    stdoutRecords,
    decoderStateIntervalMs: 10_000,
    pseudonymize: pseudonymizeInit(c, pseudonymizeKey),
  };
}

function pseudonymizeInit(c: Config, masterKey: Uint8Array | null): IngestWorkerInit['pseudonymize'] {
  const p = c.privacy.pseudonymize;
  if (p === undefined) return null;
  if (masterKey === null) throw new Error('privacy.pseudonymize is configured but no key was resolved');
  return { masterKey, rotation: p.rotation, epochSeconds: c.spool.epochSeconds, cacheEntries: p.cacheEntries, policy: { fields: p.fields, rules: p.rules } };
}

/** The certificate files the probe presents or trusts, by setting, for expiry monitoring. */
function certificatesOf(c: Config): CertificateExpiry[] {
  const tls = c.listeners.tls;
  const dtls = c.listeners.dtls;
  return certificateExpiries({
    ...(tls.enabled ? { 'listeners.tls.certFile': tls.certFile, 'listeners.tls.caFile': tls.caFile } : {}),
    ...(dtls.enabled ? { 'listeners.dtls.certFile': dtls.certFile ?? tls.certFile, 'listeners.dtls.caFile': dtls.caFile ?? tls.caFile } : {}),
    ...(c.drain.enabled ? { 'drain.fusion.caFile': c.drain.fusion.caFile } : {}),
  });
}
