import { createHash } from 'node:crypto';
import Database from 'better-sqlite3';
import type { Logger } from 'pino';
import type { AuditEvent, AuditLog } from '../flow/audit.js';
import { canonicalJson, type CanonicalValue } from './canonical-json.js';
import type { DeviceKey } from './device-key.js';
import { AuditNotary, digestHash } from './notary.js';
import { AuditTrail } from './trail.js';

/**
 * The audit trail as the main thread runs it (src/app.ts wires it): its own connection to the
 * spool database, the probe's lifecycle events (configuration, start, stop, crash recovery)
 * and the notary's schedule — a signed digest at start, every `digestIntervalMs` and at
 * stop, then retention. The spool's own connections (ingest worker, drain) record their
 * events through AuditTrail directly, in their transactions.
 *
 * Crash recovery: a run that ends without `probe.stopped` (SIGKILL, OOM, power cut) leaves its
 * last `probe.started` as the newest lifecycle event; the next start records
 * `probe.crash_recovered`, naming the last event the crashed run committed, and signs a digest
 * at once, so what that run wrote is signed within seconds of the restart.
 */

export interface AuditServiceOptions {
  /** The spool database (it must exist: the ingest worker creates it). */
  readonly dbPath: string;
  /** Null: events are chained but not signed (warned at start; an attestation finding). The service owns it (destroyed on close). */
  readonly key: DeviceKey | null;
  readonly digestIntervalMs: number;
  readonly retentionMs: number;
  readonly logger: Logger;
  readonly busyTimeoutMs?: number;
  readonly clock?: () => number;
}

/** The hash an auditor recomputes from the evidence pack's effective configuration: SHA-256 (hex) of its canonical JSON. */
export function configHash(redactedConfig: CanonicalValue): string {
  return createHash('sha256').update(canonicalJson(redactedConfig), 'utf8').digest('hex');
}

export class AuditService implements AuditLog {
  readonly trail: AuditTrail;
  readonly notary: AuditNotary | null;
  private readonly db: Database.Database;
  private readonly clock: () => number;
  private timer: NodeJS.Timeout | null = null;
  private closed = false;

  constructor(private readonly options: AuditServiceOptions) {
    this.clock = options.clock ?? Date.now;
    this.db = new Database(options.dbPath, { fileMustExist: true });
    try {
      this.db.pragma(`busy_timeout = ${Math.trunc(options.busyTimeoutMs ?? 5000)}`);
      this.trail = new AuditTrail(this.db, this.clock);
    } catch (err) {
      this.db.close();
      throw err;
    }
    this.notary = options.key === null ? null : new AuditNotary(this.trail, options.key, this.clock);
  }

  record(event: AuditEvent): void {
    if (!this.closed) this.trail.record(event);
  }

  /**
   * Start of a run: crash recovery if the previous run did not stop, the configuration, the
   * start, a first digest; then the digest timer. `startedAtMs`: when this run began (events
   * the spool recorded while opening, a rekey at start, are this run's).
   */
  begin(info: { readonly configHash: string; readonly version: string; readonly startedAtMs: number }): void {
    const lifecycle = this.trail.lastOf(['probe.started', 'probe.stopped']);
    if (lifecycle?.kind === 'probe.started') {
      const last = this.trail.lastBefore(info.startedAtMs);
      this.record({ kind: 'probe.crash_recovered', lastSeq: last?.seq ?? lifecycle.seq, lastKind: last?.kind ?? lifecycle.kind, lastAtMs: last?.atMs ?? lifecycle.atMs });
      this.options.logger.warn({ event: 'audit.crash_recovered', lastSeq: last?.seq ?? lifecycle.seq }, 'the previous run ended without a clean stop (recorded in the audit trail)');
    }
    this.record({ kind: 'config.loaded', configHash: info.configHash, reason: 'start' });
    this.record({ kind: 'probe.started', version: info.version, pid: process.pid, node: process.version });
    if (this.notary === null) {
      this.options.logger.warn({ event: 'audit.unsigned' }, 'audit.signingKey is not set: the audit trail is hash-chained but not signed (no digests, no deletion receipts); see docs/audit.md');
      return;
    }
    this.sign('start');
    this.timer = setInterval(() => this.tick(), this.options.digestIntervalMs);
    this.timer.unref();
  }

  /** SIGHUP: the configuration now in force. */
  reloaded(hash: string): void {
    this.record({ kind: 'config.loaded', configHash: hash, reason: 'reload' });
  }

  /** The periodic digest, then retention. Failures are logged; the next tick tries again. */
  tick(): void {
    if (this.closed) return;
    this.sign('periodic');
    try {
      const removed = this.notary?.prune(this.clock() - this.options.retentionMs) ?? 0;
      if (removed > 0) this.options.logger.info({ event: 'audit.pruned', events: removed }, 'audit events past retention removed (their digests remain)');
    } catch (err) {
      this.options.logger.error({ event: 'audit.prune_failed', err: (err as Error).message }, 'audit retention failed');
    }
  }

  /** Signs a digest now; logs its hash (with syslog configured, an anchor kept off the device). */
  sign(reason: string): void {
    if (this.notary === null || this.closed) return;
    try {
      const { digest, receipts } = this.notary.sign(reason);
      const b = digest.body;
      this.options.logger.info(
        { event: 'audit.digest_signed', digest: b.seq, reason, lastEventSeq: b.lastEventSeq, events: b.events, digestHash: digestHash(b), receipts: receipts.length },
        'audit trail digest signed',
      );
    } catch (err) {
      this.options.logger.error({ event: 'audit.digest_failed', reason, err: (err as Error).message }, 'could not sign an audit digest; retried at the next interval');
    }
  }

  /** Graceful: records the stop and signs the final digest. Idempotent. */
  close(reason: string): void {
    if (this.closed) return;
    try {
      this.record({ kind: 'probe.stopped', reason });
      this.sign('shutdown');
    } catch (err) {
      this.options.logger.error({ event: 'audit.stop_failed', err: (err as Error).message }, 'could not record the stop in the audit trail');
    }
    this.destroy();
  }

  /** Forced: closes the connection without recording anything (the next start records a crash recovery). Idempotent. */
  destroy(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    this.db.close();
    this.options.key?.destroy();
  }
}
