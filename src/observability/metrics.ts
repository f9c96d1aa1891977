import { collectDefaultMetrics, Counter, Registry } from 'prom-client';

/**
 * The metrics registry: prom-client on a private Registry (never the global one, so tests and
 * several app instances in one process do not share counters), plus collectors that turn the
 * modules' typed stats() snapshots into samples of *declared* families at scrape time, so
 * listeners, decoders, the spool and the drain never import prom-client.
 *
 * Conventions (https://prometheus.io/docs/practices/naming/), enforced when a family is
 * declared and checked by `promtool check metrics` on a live probe in the tests:
 * - a counter's name ends in `_total`, a gauge's never does;
 * - base units spelled out (`_seconds`, `_bytes`, `_timestamp_seconds`), no `_ms`/`_sec`;
 * - every family has a sentence of HELP and is declared once;
 * - rates are PromQL's job (`rate()`), configuration values are not metrics.
 *
 * Invariant: every label set is bounded. Each family accepts at most `maxLabelValues`
 * distinct values per label; later new values are folded into the value "other" (summed, and
 * counted in sealflow_metrics_label_overflow_total), so a spoofed-source flood or a buggy
 * exporter cannot grow memory or the scrape without bound. Label values are never flow data:
 * exporter addresses, listener names, reasons, codes.
 */

export const METRIC_PREFIX = 'sealflow_';
/** Distinct values per label per metric: enough for every exporter of a branch office, small enough for any TSDB. */
export const DEFAULT_MAX_LABEL_VALUES = 200;
/** The label value distinct values beyond the cap are folded into. */
export const OVERFLOW_LABEL_VALUE = 'other';

export type Labels = Readonly<Record<string, string>>;
export type MetricType = 'counter' | 'gauge';

/** A declared metric family (see family()). */
export interface MetricFamily {
  readonly name: string;
  readonly type: MetricType;
  readonly help: string;
  readonly labelNames: readonly string[];
  /** How series folded into "other" combine: summed (counts) or the largest kept (timestamps). */
  readonly fold: 'sum' | 'max';
}

const METRIC_NAME = /^[a-z_][a-z0-9_]*$/;
const LABEL_NAME = /^[a-z_][a-z0-9_]*$/;
/** Unit spellings promtool calls abbreviated, and their siblings. */
const ABBREVIATED_UNIT = /_(ms|msec|millis|milliseconds|us|ns|sec|secs|per_sec|kb|mb|gb|kib|mib|gib|pct|percent)(_|$)/;

/**
 * Declares a family named `sealflow_<name>`. Throws on a name that breaks the conventions
 * above: a programming error, caught by the unit tests before any scrape.
 */
export function family(name: string, type: MetricType, help: string, labelNames: readonly string[] = [], fold: 'sum' | 'max' = 'sum'): MetricFamily {
  const full = METRIC_PREFIX + name;
  if (!METRIC_NAME.test(full)) throw new Error(`metric ${full}: want lower-case snake_case`);
  if (type === 'counter' && !full.endsWith('_total')) throw new Error(`metric ${full}: a counter's name ends in _total`);
  if (type === 'gauge' && full.endsWith('_total')) throw new Error(`metric ${full}: only counters end in _total`);
  if (ABBREVIATED_UNIT.test(full)) throw new Error(`metric ${full}: spell out the base unit (_seconds, _bytes)`);
  if (help.trim().length < 10 || help.includes(full)) throw new Error(`metric ${full}: HELP must say what it counts`);
  for (const l of labelNames) if (!LABEL_NAME.test(l) || l.startsWith('__')) throw new Error(`metric ${full}: bad label name ${l}`);
  return Object.freeze({ name: full, type, help, labelNames: Object.freeze([...labelNames]), fold });
}

/**
 * Where a collector puts its samples. A null/undefined value is skipped (a figure that does
 * not exist right now, e.g. kernel drops where /proc has no row). Labels must be exactly the
 * family's label names.
 */
export type SampleSink = (family: MetricFamily, value: number | bigint | null | undefined, labels?: Labels) => void;

export type Collector = (emit: SampleSink) => void;

export interface MetricsOptions {
  readonly maxLabelValues?: number;
  /** Export process metrics (CPU, memory, event loop lag, GC) as sealflow_process_* / sealflow_nodejs_*. Default true. */
  readonly processMetrics?: boolean;
}

/**
 * prom-client's default Node.js metrics include three gauges named `_total` (the count of
 * active handles/requests/resources, kept for compatibility); the same figures are exported
 * by type without the suffix (sealflow_nodejs_active_handles{type}), so these are removed.
 */
const MISNAMED_DEFAULT_GAUGES = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'];

/** Remembers the distinct values seen per label and folds the excess into "other". */
class LabelBudget {
  private readonly seen = new Map<string, Set<string>>();
  constructor(
    private readonly max: number,
    private readonly onOverflow: () => void,
  ) {}

  bound(labels: Labels): Record<string, string> {
    const out: Record<string, string> = {};
    for (const [k, v] of Object.entries(labels)) {
      let set = this.seen.get(k);
      if (set === undefined) {
        set = new Set();
        this.seen.set(k, set);
      }
      if (set.has(v)) {
        out[k] = v;
      } else if (set.size < this.max) {
        set.add(v);
        out[k] = v;
      } else {
        out[k] = OVERFLOW_LABEL_VALUE;
        this.onOverflow();
      }
    }
    return out;
  }
}

function escapeLabelValue(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

function escapeHelp(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}

interface Series {
  readonly labels: Record<string, string>;
  value: number;
}

export class Metrics {
  readonly registry: Registry;
  readonly contentType: string;
  private readonly maxLabelValues: number;
  private readonly collectors = new Map<string, Collector>();
  /** Per family: its label budget (persistent across scrapes so the kept values, and "other", are stable). */
  private readonly budgets = new Map<string, LabelBudget>();
  private readonly overflow: Counter;
  private readonly collectorErrors: Counter;

  constructor(options: MetricsOptions = {}) {
    this.registry = new Registry();
    this.contentType = this.registry.contentType;
    this.maxLabelValues = options.maxLabelValues ?? DEFAULT_MAX_LABEL_VALUES;
    this.overflow = new Counter({
      name: `${METRIC_PREFIX}metrics_label_overflow_total`,
      help: 'Label values folded into "other" because a metric reached its distinct-value cap',
      labelNames: ['metric'],
      registers: [this.registry],
    });
    this.collectorErrors = new Counter({
      name: `${METRIC_PREFIX}metrics_collector_errors_total`,
      help: 'Scrapes at which a stats collector threw (its metrics were left out)',
      labelNames: ['collector'],
      registers: [this.registry],
    });
    if (options.processMetrics !== false) {
      collectDefaultMetrics({ register: this.registry, prefix: METRIC_PREFIX });
      for (const n of MISNAMED_DEFAULT_GAUGES) this.registry.removeSingleMetric(METRIC_PREFIX + n);
    }
  }

  /**
   * Runs `collect` at every scrape. Registering a name again replaces the earlier collector.
   * A collector that throws is left out of that scrape and counted.
   */
  registerCollector(name: string, collect: Collector): void {
    this.collectors.set(name, collect);
  }

  unregisterCollector(name: string): void {
    this.collectors.delete(name);
  }

  private budget(name: string): LabelBudget {
    let b = this.budgets.get(name);
    if (b === undefined) {
      // The overflow counter's own label is the metric name: bounded by the code, not by input.
      b = new LabelBudget(this.maxLabelValues, () => {
        this.overflow.inc({ metric: name });
      });
      this.budgets.set(name, b);
    }
    return b;
  }

  /** Runs every collector; families in first-emitted order, series folded by label set. */
  private collect(): Map<MetricFamily, Map<string, Series>> {
    const out = new Map<MetricFamily, Map<string, Series>>();
    const byName = new Map<string, MetricFamily>();
    const taken = new Set(this.registry.getMetricsAsArray().map((m) => m.name));
    const add = (fam: MetricFamily, labels: Labels, v: number): void => {
      byName.set(fam.name, fam);
      let series = out.get(fam);
      if (series === undefined) {
        series = new Map();
        out.set(fam, series);
      }
      const bounded = this.budget(fam.name).bound(labels);
      const key = fam.labelNames.map((l) => bounded[l] ?? '').join('\u0000');
      const existing = series.get(key);
      // Series folded into "other" are summed, so the total across exporters stays right (timestamps: the latest).
      if (existing !== undefined) existing.value = fam.fold === 'max' ? Math.max(existing.value, v) : existing.value + v;
      else series.set(key, { labels: bounded, value: v });
    };
    for (const [collectorName, collect] of this.collectors) {
      // A collector's samples are kept only when it completes: no half-exported snapshot.
      const pending: { fam: MetricFamily; labels: Labels; value: number }[] = [];
      const declared = new Map<string, MetricFamily>();
      const emit: SampleSink = (fam, value, labels = {}) => {
        if (value === null || value === undefined) return;
        const other = byName.get(fam.name) ?? declared.get(fam.name);
        if ((other !== undefined && other !== fam) || taken.has(fam.name)) throw new Error(`metric ${fam.name} declared twice`);
        const keys = Object.keys(labels);
        if (keys.length !== fam.labelNames.length || !fam.labelNames.every((l) => l in labels)) {
          throw new Error(`metric ${fam.name}: labels {${keys.join(',')}} where {${fam.labelNames.join(',')}} are declared`);
        }
        declared.set(fam.name, fam);
        pending.push({ fam, labels, value: typeof value === 'bigint' ? Number(value) : value });
      };
      try {
        collect(emit);
      } catch {
        this.collectorErrors.inc({ collector: collectorName });
        continue;
      }
      for (const p of pending) add(p.fam, p.labels, p.value);
    }
    return out;
  }

  /** Prometheus text exposition (format 0.0.4) of every metric and collector. */
  async render(): Promise<string> {
    const lines: string[] = [];
    for (const [fam, series] of this.collect()) {
      lines.push(`# HELP ${fam.name} ${escapeHelp(fam.help)}`, `# TYPE ${fam.name} ${fam.type}`);
      for (const { labels, value } of series.values()) {
        const text = fam.labelNames.length === 0 ? '' : `{${fam.labelNames.map((l) => `${l}="${escapeLabelValue(labels[l] ?? '')}"`).join(',')}}`;
        lines.push(`${fam.name}${text} ${formatValue(value)}`);
      }
    }
    // The registry is rendered last so the overflow/error counters bumped above are current.
    const base = await this.registry.metrics();
    return base + (lines.length > 0 ? lines.join('\n') + '\n' : '');
  }
}
