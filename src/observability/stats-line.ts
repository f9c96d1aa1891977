import type { LossCounts } from '../flow/loss.js';
import type { Logger } from './logger.js';

/**
 * The periodic one-line stats summary (NetoFlow's `statsinterval`): every interval, one info
 * log line with the figures an operator scans for — how many exporters are sending, records
 * per second in and out, what was lost (the loss ledger's totals, with the largest reasons),
 * spool depth and how far the drain lags. Rates are computed from the difference of cumulative
 * counters between two ticks, so nothing is reset and the line agrees with /stats and /metrics.
 */

/** The figures the line is built from; the composition root derives them from the same stats() as /stats. */
export interface StatsSummary {
  /** Exporters seen within the activity window (all transports). */
  readonly exporters: number;
  /** Cumulative records decoded and accepted by the filters. */
  readonly records: number;
  /** The loss ledger's totals by reason (records and packets). */
  readonly lost: LossCounts;
  /** Records and bytes waiting in the spool. */
  readonly spoolRecords: number;
  readonly spoolBytes: number;
  /** Age of the oldest unacknowledged spooled record, in ms; null when the spool is empty. */
  readonly drainLagMs: number | null;
  /** Cumulative records acknowledged by Fusion. */
  readonly uploaded: number;
  /** Drain state word, e.g. "ok", "backoff", "auth-failed", "disabled". */
  readonly drainState?: string;
}

export interface StatsLineFields {
  readonly exporters: number;
  readonly recordsPerSecond: number;
  readonly uploadedPerSecond: number;
  /** Loss ledger totals: records and packets, and every non-zero reason. */
  readonly lostRecords: number;
  readonly lostPackets: number;
  readonly lostByReason: Readonly<Record<string, number>>;
  readonly spoolRecords: number;
  readonly spoolBytes: number;
  readonly drainLagMs: number | null;
  readonly drainState: string | null;
}

export interface StatsLineText {
  readonly text: string;
  readonly fields: StatsLineFields;
}

interface Previous {
  readonly summary: StatsSummary;
  readonly atMs: number;
}

const KIB = 1024;
const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'] as const;

export function formatBytes(n: number): string {
  let v = n;
  let i = 0;
  while (v >= KIB && i < UNITS.length - 1) {
    v /= KIB;
    i++;
  }
  return i === 0 ? `${v} B` : `${v.toFixed(1)} ${UNITS[i] ?? ''}`;
}

export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(1)}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(Math.floor(s % 60)).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

/** Reasons shown on the line per unit, largest first; the rest are in `lostByReason` and /metrics. */
const LINE_REASONS = 2;

/** `360000 rec (disk_full 320000, quota_eviction 40000)`: a unit's total and its largest reasons. */
function lossText(counts: Readonly<Partial<Record<string, number>>>, unit: string): { total: number; text: string } {
  const reasons = Object.entries(counts).filter((e): e is [string, number] => (e[1] ?? 0) > 0).sort((a, b) => b[1] - a[1]);
  const total = reasons.reduce((a, [, n]) => a + n, 0);
  if (total === 0) return { total, text: `0 ${unit}` };
  const shown = reasons.slice(0, LINE_REASONS).map(([r, n]) => `${r} ${n}`);
  if (reasons.length > LINE_REASONS) shown.push(`+${reasons.length - LINE_REASONS} more`);
  return { total, text: `${total} ${unit} (${shown.join(', ')})` };
}

function rate(now: number, before: number | undefined, seconds: number): number {
  if (before === undefined || seconds <= 0 || now < before) return 0;
  return Math.round(((now - before) / seconds) * 10) / 10;
}

/**
 * Builds the line. `previous` (the summary at the last tick) gives the rates; without it
 * (first tick) rates are 0. A counter that went backwards (component restarted) gives 0.
 */
export function formatStatsLine(current: StatsSummary, previous: Previous | null, nowMs: number): StatsLineText {
  const seconds = previous === null ? 0 : (nowMs - previous.atMs) / 1000;
  const lostRecords = lossText(current.lost.records, 'rec');
  const lostPackets = lossText(current.lost.packets, 'pkt');
  const lostByReason: Record<string, number> = {};
  for (const [r, n] of [...Object.entries(current.lost.records), ...Object.entries(current.lost.packets)] as [string, number | undefined][]) if (n !== undefined && n > 0) lostByReason[r] = n;
  const fields: StatsLineFields = {
    exporters: current.exporters,
    recordsPerSecond: rate(current.records, previous?.summary.records, seconds),
    uploadedPerSecond: rate(current.uploaded, previous?.summary.uploaded, seconds),
    lostRecords: lostRecords.total,
    lostPackets: lostPackets.total,
    lostByReason,
    spoolRecords: current.spoolRecords,
    spoolBytes: current.spoolBytes,
    drainLagMs: current.drainLagMs,
    drainState: current.drainState ?? null,
  };
  const lag = current.drainLagMs === null ? 'none' : formatDuration(current.drainLagMs);
  const state = current.drainState === undefined ? '' : ` (${current.drainState})`;
  const text =
    `exporters ${fields.exporters} | in ${fields.recordsPerSecond} rec/s | out ${fields.uploadedPerSecond} rec/s | lost ${lostRecords.text} ${lostPackets.text}` +
    ` | spool ${fields.spoolRecords} rec ${formatBytes(fields.spoolBytes)} | drain lag ${lag}${state}`;
  return { text, fields };
}

export interface StatsLineOptions {
  /** Seconds between lines; 0 disables. */
  readonly intervalSeconds: number;
  readonly summary: () => StatsSummary;
  readonly logger: Logger;
  readonly now?: () => number;
  /** Called with every line as well (e.g. the `npm start` live status on a TTY). */
  readonly onLine?: (line: StatsLineText) => void;
}

/** Logs formatStatsLine() every interval. start()/stop() are idempotent; the timer never keeps the process alive. */
export class StatsLine {
  private timer: NodeJS.Timeout | null = null;
  private previous: Previous | null = null;
  private readonly now: () => number;

  constructor(private readonly options: StatsLineOptions) {
    this.now = options.now ?? Date.now;
  }

  start(): void {
    if (this.timer !== null || this.options.intervalSeconds <= 0) return;
    this.previous = { summary: this.options.summary(), atMs: this.now() };
    this.timer = setInterval(() => {
      this.tick();
    }, this.options.intervalSeconds * 1000);
    this.timer.unref();
  }

  /** Emits one line now (also used by tests and at shutdown). */
  tick(): StatsLineText | null {
    let summary: StatsSummary;
    try {
      summary = this.options.summary();
    } catch (err) {
      this.options.logger.warn({ err }, 'stats summary failed');
      return null;
    }
    const at = this.now();
    const line = formatStatsLine(summary, this.previous, at);
    this.previous = { summary, atMs: at };
    this.options.logger.info({ stats: line.fields }, `stats: ${line.text}`);
    this.options.onLine?.(line);
    return line;
  }

  /** Stops the periodic line. Idempotent. */
  close(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }
}
