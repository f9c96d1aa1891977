import type { ProbeSnapshot } from './probe-metrics.js';

/**
 * The last hour of the probe in memory, for the status page's charts: a fixed-size ring of
 * cumulative counters and levels sampled at a fixed period, and the recent warning log lines.
 * Nothing here is flow data; memory is bounded by the capacities.
 */

export const HISTORY_WINDOW_MS = 3_600_000;
/** Samples kept at most (one hour at one a second). */
const MAX_SAMPLES = 3_600;

export interface HistorySample {
  readonly atMs: number;
  /** Cumulative: records decoded, records acknowledged by Fusion, records and packets lost (every reason but filter). */
  readonly decoded: number;
  readonly delivered: number;
  readonly lost: number;
  /** Levels. */
  readonly spoolRecords: number;
  readonly oldestAgeSeconds: number;
}

/** A rate or level series for a chart: [atMs, value] points. */
export type Series = readonly (readonly [number, number])[];

export interface HistorySeries {
  readonly recordsIn: Series;
  readonly recordsOut: Series;
  readonly lost: Series;
  readonly spoolRecords: Series;
}

export function historySample(s: ProbeSnapshot, atMs: number): HistorySample {
  // The loss ledger's totals; records the filters drop on purpose are not loss.
  let lost = 0;
  for (const [reason, v] of Object.entries(s.loss?.records ?? {})) if (reason !== 'filter') lost += v;
  for (const v of Object.values(s.loss?.packets ?? {})) lost += v;
  return {
    atMs,
    decoded: s.worker?.decode.records ?? 0,
    delivered: s.drain?.deliveredRecords ?? 0,
    lost,
    spoolRecords: s.worker?.spool.records ?? 0,
    oldestAgeSeconds: (s.worker?.spool.oldestAgeMs ?? 0) / 1000,
  };
}

/** An exporter's record count at the last two samples, for its rate. */
interface ExporterCount {
  readonly atMs: number;
  readonly records: number;
}

export function exporterKey(e: { readonly transport: string; readonly exporter: string; readonly identity: string | null }): string {
  return `${e.transport}|${e.exporter}|${e.identity ?? ''}`;
}

export class StatusHistory {
  private readonly samples: (HistorySample | undefined)[];
  private next = 0;
  private count = 0;
  private exportersBefore = new Map<string, ExporterCount>();
  private exportersNow = new Map<string, ExporterCount>();

  constructor(readonly periodMs: number) {
    this.samples = new Array<HistorySample | undefined>(Math.min(MAX_SAMPLES, Math.max(2, Math.ceil(HISTORY_WINDOW_MS / periodMs) + 1)));
  }

  add(sample: HistorySample): void {
    this.samples[this.next] = sample;
    this.next = (this.next + 1) % this.samples.length;
    this.count = Math.min(this.count + 1, this.samples.length);
  }

  /** Remembers each exporter's record count at this sample (the table is bounded by the ingest worker). */
  noteExporters(exporters: readonly { readonly transport: string; readonly exporter: string; readonly identity: string | null; readonly records: number }[], atMs: number): void {
    this.exportersBefore = this.exportersNow;
    this.exportersNow = new Map(exporters.map((e) => [exporterKey(e), { atMs, records: e.records }]));
  }

  /** Records per second of an exporter between the last two samples; null before two samples. */
  exporterRate(key: string): number | null {
    const a = this.exportersBefore.get(key);
    const b = this.exportersNow.get(key);
    if (b === undefined) return null;
    if (a === undefined) return null;
    return b.atMs > a.atMs ? Math.max(0, b.records - a.records) / ((b.atMs - a.atMs) / 1000) : null;
  }

  /** Oldest first. */
  list(): HistorySample[] {
    const out: HistorySample[] = [];
    for (let i = 0; i < this.count; i++) {
      const s = this.samples[(this.next - this.count + i + this.samples.length) % this.samples.length];
      if (s !== undefined) out.push(s);
    }
    return out;
  }

  /** Per-second rates between consecutive samples (a counter that went backwards gives 0) and the spool level. */
  series(): HistorySeries {
    const list = this.list();
    const rate = (pick: (s: HistorySample) => number): Series => {
      const out: [number, number][] = [];
      for (let i = 1; i < list.length; i++) {
        const a = list[i - 1];
        const b = list[i];
        if (a === undefined || b === undefined || b.atMs <= a.atMs) continue;
        out.push([b.atMs, Math.max(0, pick(b) - pick(a)) / ((b.atMs - a.atMs) / 1000)]);
      }
      return out;
    };
    return {
      recordsIn: rate((s) => s.decoded),
      recordsOut: rate((s) => s.delivered),
      lost: rate((s) => s.lost),
      spoolRecords: list.map((s) => [s.atMs, s.spoolRecords] as const),
    };
  }
}

export interface RecentLogLine {
  readonly atMs: number;
  readonly level: 'warn' | 'error' | 'fatal';
  readonly component: string | null;
  readonly msg: string;
}

const LEVELS: Readonly<Record<number, RecentLogLine['level']>> = { 40: 'warn', 50: 'error', 60: 'fatal' };

/** The last warnings and errors of every thread (fed with the JSON log lines), newest last. */
export class RecentWarnings {
  private readonly lines: RecentLogLine[] = [];

  constructor(private readonly capacity = 20) {}

  /** Takes one pino JSON line; anything below warn, or not JSON, is ignored. */
  add(jsonLine: string): void {
    if (!jsonLine.includes('"level":4') && !jsonLine.includes('"level":5') && !jsonLine.includes('"level":6')) return;
    let o: { level?: unknown; time?: unknown; msg?: unknown; component?: unknown };
    try {
      o = JSON.parse(jsonLine) as typeof o;
    } catch {
      return;
    }
    const level = typeof o.level === 'number' ? LEVELS[o.level] : undefined;
    if (level === undefined) return;
    const atMs = typeof o.time === 'string' ? Date.parse(o.time) : typeof o.time === 'number' ? o.time : Date.now();
    this.lines.push({ atMs, level, component: typeof o.component === 'string' ? o.component : null, msg: typeof o.msg === 'string' ? o.msg : '' });
    if (this.lines.length > this.capacity) this.lines.shift();
  }

  list(): readonly RecentLogLine[] {
    return this.lines;
  }
}
