import type { Logger } from 'pino';
import { renameSync } from 'node:fs';
import { PACKET_LOSS_REASONS, RECORD_LOSS_REASONS, type LossCounts, type LossListener, type LossReport, type PacketLossReason, type RecordLossReason } from '../flow/loss.js';
import { LedgerFile, readLedgerFile } from './loss-ledger-file.js';
import { RateLimitedLog } from './rate-limited-log.js';

/**
 * The loss ledger: one account of every record and packet that will not reach Fusion, by
 * reason (src/flow/loss.ts), for the whole probe. /metrics (sealflow_records_lost_total and
 * sealflow_packets_lost_total), /stats, the status line and `sealflow spool status` all show
 * its totals, so they cannot disagree; an audit trail subscribes to its reports.
 *
 * The modules keep counting where the loss happens (the spool writer's results, the flow
 * filter, the decoder, the ingest channel, the kernel, the drain); the composition root reads
 * their counters as samples (source, value) and the ledger adds what each source gained since
 * its last reading to the totals. Hence:
 * - totals never decrease: a source that reads lower than before restarted (its new value is
 *   new loss); a source that has no figure right now (null) is skipped;
 * - the totals continue across restarts: they are persisted in the spool directory
 *   (loss-ledger-file.ts, written in place so that a full disk can still be counted) at each
 *   flush, and a new process starts from them.
 * A report (what was lost, by reason, since the previous report) goes to the subscribers and
 * the log at most once per `reportIntervalMs`, and at close.
 */

export type LossSample =
  | { readonly unit: 'records'; readonly reason: RecordLossReason; readonly source: string; readonly value: number | null }
  | { readonly unit: 'packets'; readonly reason: PacketLossReason; readonly source: string; readonly value: number | null };

export interface LossTotals extends LossCounts {
  readonly records: Readonly<Record<RecordLossReason, number>>;
  readonly packets: Readonly<Record<PacketLossReason, number>>;
  /** When the ledger was created (its totals count from then), Unix ms. */
  readonly sinceMs: number;
}

export interface LossLedgerOptions {
  /** The ledger file (spool.loss in the spool directory); null keeps the totals in memory only. */
  readonly path: string | null;
  readonly logger: Logger;
  /** Default one minute. */
  readonly reportIntervalMs?: number;
  readonly now?: () => number;
}

const DEFAULT_REPORT_INTERVAL_MS = 60_000;

function zeros<K extends string>(keys: readonly K[]): Record<K, number> {
  const out = {} as Record<K, number>;
  for (const k of keys) out[k] = 0;
  return out;
}

/** Reasons with a non-zero difference a − b. */
function delta<K extends string>(a: Readonly<Record<K, number>>, b: Readonly<Record<K, number>>): Partial<Record<K, number>> {
  const out: Partial<Record<K, number>> = {};
  for (const k of Object.keys(a) as K[]) {
    const d = a[k] - b[k];
    if (d > 0) out[k] = d;
  }
  return out;
}

export class LossLedger {
  private readonly records: Record<RecordLossReason, number> = zeros(RECORD_LOSS_REASONS);
  private readonly packets: Record<PacketLossReason, number> = zeros(PACKET_LOSS_REASONS);
  /** Reasons a newer sealflow wrote to the file: carried forward untouched. */
  private foreign: { records: Record<string, number>; packets: Record<string, number> } = { records: {}, packets: {} };
  private sinceMs: number;
  /** Each source's last reading, by `unit|reason|source`. */
  private readonly last = new Map<string, number>();
  private file: LedgerFile | null = null;
  private dirty = false;
  private lastReport: { atMs: number; records: Record<RecordLossReason, number>; packets: Record<PacketLossReason, number> };
  private readonly listeners: LossListener[] = [];
  private readonly now: () => number;
  private readonly reportIntervalMs: number;
  private readonly log: Logger;
  private readonly fileLog: RateLimitedLog;
  private closed = false;
  /** False when the file exists but cannot be read: it is never overwritten then. */
  private persistable = true;

  constructor(private readonly options: LossLedgerOptions) {
    this.now = options.now ?? Date.now;
    this.reportIntervalMs = options.reportIntervalMs ?? DEFAULT_REPORT_INTERVAL_MS;
    this.log = options.logger;
    this.fileLog = new RateLimitedLog(options.logger);
    this.sinceMs = this.now();
    this.load();
    this.lastReport = { atMs: this.now(), records: { ...this.records }, packets: { ...this.packets } };
  }

  /** Subscribes to the reports (the audit trail's port). */
  onReport(listener: LossListener): void {
    this.listeners.push(listener);
  }

  /** Adds what each source gained since its last reading. Cheap: call it whenever fresh counters are at hand. */
  observe(samples: Iterable<LossSample>): void {
    for (const s of samples) {
      if (s.value === null) continue;
      const key = `${s.unit}|${s.reason}|${s.source}`;
      const prev = this.last.get(key);
      this.last.set(key, s.value);
      // First reading: the source counted from 0 in this process. Lower than before: it restarted.
      const gained = prev === undefined || s.value < prev ? s.value : s.value - prev;
      if (gained <= 0) continue;
      if (s.unit === 'records') this.records[s.reason] += gained;
      else this.packets[s.reason] += gained;
      this.dirty = true;
    }
  }

  totals(): LossTotals {
    return { records: { ...this.records }, packets: { ...this.packets }, sinceMs: this.sinceMs };
  }

  /** Persists the totals when they changed, and reports when the interval is up. Never throws. */
  flush(): void {
    if (this.dirty) this.persist();
    if (this.now() - this.lastReport.atMs >= this.reportIntervalMs) this.report();
  }

  /** Last flush and report, then the file is synced to disk and closed. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.persist();
    this.report();
    try {
      this.file?.sync();
    } catch (err) {
      this.fileLog.log('error', 'ledger-sync', { event: 'loss.ledger_write_failed', path: this.options.path, code: (err as NodeJS.ErrnoException).code }, 'cannot sync the loss ledger file');
    }
    this.file?.close();
    this.file = null;
    this.fileLog.flush();
    this.closed = true;
  }

  private load(): void {
    const path = this.options.path;
    if (path === null) return;
    const read = readLedgerFile(path);
    if (read.state === null && read.problem === 'unreadable') {
      // Not replaced: it may be fine once readable (permissions); the totals stay in memory (and on /metrics).
      this.log.error({ event: 'loss.ledger_unreadable', path, code: read.code }, 'cannot read the loss ledger file; counting from zero in memory, the file is left as it is');
      this.persistable = false;
      return;
    }
    if (read.state === null) {
      if (read.problem === 'damaged') {
        const aside = `${path}.damaged-${this.now()}`;
        try {
          renameSync(path, aside);
        } catch {
          // replaced below anyway
        }
        this.log.error({ event: 'loss.ledger_damaged', path, movedTo: aside }, 'the loss ledger file is damaged (both slots fail their check); moved aside, counting from zero');
      }
      this.dirty = true;
      this.persist();
      return;
    }
    const s = read.state;
    this.sinceMs = s.sinceMs;
    const take = <K extends string>(into: Record<K, number>, from: Readonly<Record<string, number | undefined>>, foreign: Record<string, number>): void => {
      for (const [k, v] of Object.entries(from)) {
        if (v === undefined) continue;
        if (k in into) into[k as K] = v;
        else foreign[k] = v;
      }
    };
    this.foreign = { records: {}, packets: {} };
    take(this.records, s.counts.records, this.foreign.records);
    take(this.packets, s.counts.packets, this.foreign.packets);
    try {
      this.file = LedgerFile.open(path, read);
    } catch (err) {
      this.fileLog.log('error', 'ledger-open', { event: 'loss.ledger_write_failed', path, code: (err as NodeJS.ErrnoException).code }, 'cannot open the loss ledger file for writing; retried at each flush');
    }
  }

  /** Writes the totals (creating the file first if it is not there yet); on failure they stay dirty and the next flush retries. */
  private persist(): void {
    const path = this.options.path;
    if (path === null || !this.persistable || !this.dirty) return;
    const state = {
      sinceMs: this.sinceMs,
      updatedMs: this.now(),
      counts: { records: { ...this.foreign.records, ...this.records }, packets: { ...this.foreign.packets, ...this.packets } },
    };
    try {
      if (this.file === null) this.file = LedgerFile.create(path, state);
      else this.file.write(state);
      this.dirty = false;
    } catch (err) {
      this.fileLog.log('error', 'ledger-write', { event: 'loss.ledger_write_failed', path, code: (err as NodeJS.ErrnoException).code }, 'cannot write the loss ledger file; the totals stay in memory (and on /metrics) and are written at the next flush');
    }
  }

  private report(): void {
    const at = this.now();
    const lost = { records: delta(this.records, this.lastReport.records), packets: delta(this.packets, this.lastReport.packets) };
    const from = this.lastReport.atMs;
    this.lastReport = { atMs: at, records: { ...this.records }, packets: { ...this.packets } };
    const anyRecords = Object.keys(lost.records).length > 0;
    const anyPackets = Object.keys(lost.packets).length > 0;
    if (!anyRecords && !anyPackets) return;
    const report: LossReport = { fromMs: from, toMs: at, lost, totals: { records: { ...this.records }, packets: { ...this.packets } }, sinceMs: this.sinceMs };
    // Filtered records are dropped on purpose: a period with nothing else lost is not worth a warning.
    const unintended = anyPackets || Object.keys(lost.records).some((r) => r !== 'filter');
    this.log[unintended ? 'warn' : 'info']({ event: 'loss.report', periodSeconds: Math.round((at - from) / 1000), records: lost.records, packets: lost.packets }, 'records/packets lost in the period, by reason (totals on /metrics and in `sealflow spool status`)');
    for (const l of this.listeners) {
      try {
        l(report);
      } catch (err) {
        this.log.error({ event: 'loss.listener_failed', err: (err as Error).message }, 'a loss report subscriber failed');
      }
    }
  }
}
