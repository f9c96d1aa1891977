import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';

/**
 * The metrics registry: prom-client on a private Registry (never the global one, so tests and
 * several app instances in one process do not share counters), plus collectors that export
 * modules' own stats() snapshots at scrape time, so listeners, decoders, the spool and the
 * drain never import prom-client.
 *
 * Invariant: every label set is bounded. Each metric accepts at most `maxLabelValues` distinct
 * values per label; later new values are folded into the value "other" (and counted in
 * sealflow_metrics_label_overflow_total), so a spoofed-source flood or a buggy exporter cannot
 * grow memory or the scrape without bound. Label values are never flow data: exporter
 * addresses, listener names, reasons, codes.
 */

export const METRIC_PREFIX = 'sealflow_';
/** Distinct values per label per metric: enough for every exporter of a branch office, small enough for any TSDB. */
export const DEFAULT_MAX_LABEL_VALUES = 200;
/** The label value distinct values beyond the cap are folded into. */
export const OVERFLOW_LABEL_VALUE = 'other';

export type Labels = Readonly<Record<string, string>>;

/** One exported value of a collector. */
export interface MetricSample {
  /** Full metric name (will be sanitised to [a-zA-Z_:][a-zA-Z0-9_:]*). */
  readonly name: string;
  readonly help?: string;
  readonly type?: 'counter' | 'gauge';
  readonly labels?: Labels;
  readonly value: number | bigint;
}

/** A nested stats() object (any interface): numbers, bigints and booleans are exported; strings and nulls are skipped. */
export type StatsSnapshot = object;

/** How a plain stats snapshot is turned into samples. Paths are dotted keys from the snapshot root (no array indices). */
export interface FlattenOptions {
  /**
   * Sub-objects / arrays whose entries become a label instead of a name segment:
   * `{ 'dropsByReason': 'reason' }` turns `{dropsByReason: {oversize: 3}}` into
   * `<prefix>_drops_by_reason{reason="oversize"} 3`; `{ 'exporters': { label: 'exporter', key: 'address' } }`
   * turns an array of objects into series labelled by each item's `address`. Arrays without
   * an entry here are skipped.
   */
  readonly labels?: Readonly<Record<string, LabelRule>>;
  /** Leaf keys that are monotonic counters (exported as `<name>_total`, TYPE counter). Keys ending in "Total" are counters too. */
  readonly counters?: readonly string[];
  /** Infer labels for arrays and maps without an explicit rule (default true; see flattenStats). */
  readonly auto?: boolean;
}

export type CollectorFn = () => readonly MetricSample[] | StatsSnapshot;

export interface MetricsOptions {
  readonly maxLabelValues?: number;
  /** Export process metrics (CPU, memory, event loop lag, GC) as sealflow_process_* / sealflow_nodejs_*. Default true. */
  readonly processMetrics?: boolean;
}

/** Remembers the distinct values seen per label and folds the excess into "other". */
class LabelBudget {
  private readonly seen = new Map<string, Set<string>>();
  constructor(
    private readonly max: number,
    private readonly onOverflow: () => void,
  ) {}

  bound(labels: Labels | undefined): Record<string, string> {
    const out: Record<string, string> = {};
    if (labels === undefined) return out;
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

/** A counter whose label values are bounded. */
export class BoundedCounter {
  constructor(
    private readonly counter: Counter,
    private readonly budget: LabelBudget,
  ) {}
  inc(labels?: Labels, value = 1): void {
    this.counter.inc(this.budget.bound(labels), value);
  }
}

/** A gauge whose label values are bounded. */
export class BoundedGauge {
  constructor(
    private readonly gauge: Gauge,
    private readonly budget: LabelBudget,
  ) {}
  set(value: number, labels?: Labels): void {
    this.gauge.set(this.budget.bound(labels), value);
  }
  inc(labels?: Labels, value = 1): void {
    this.gauge.inc(this.budget.bound(labels), value);
  }
  dec(labels?: Labels, value = 1): void {
    this.gauge.dec(this.budget.bound(labels), value);
  }
}

function snake(key: string): string {
  return key
    .replace(/([a-z0-9])([A-Z])/g, '$1_$2')
    .replace(/[^A-Za-z0-9_]/g, '_')
    .toLowerCase();
}

export function sanitizeMetricName(name: string): string {
  const s = name.replace(/[^A-Za-z0-9_:]/g, '_');
  return /^[A-Za-z_:]/.test(s) ? s : `_${s}`;
}

function sanitizeLabelName(name: string): string {
  const s = name.replace(/[^A-Za-z0-9_]/g, '_');
  return /^[A-Za-z_]/.test(s) ? s : `_${s}`;
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

function toNumber(v: unknown): number | null {
  if (typeof v === 'number') return v;
  if (typeof v === 'bigint') return Number(v);
  if (typeof v === 'boolean') return v ? 1 : 0;
  return null;
}

type LabelRule = string | { readonly label: string; readonly key: string };

/** Fields that identify an item of a stats array, in order of preference; the first present becomes its label. */
const ITEM_ID_KEYS = ['name', 'address', 'identity', 'source', 'exporter', 'listener', 'target', 'id', 'code', 'reason'] as const;
/** A struct's keys are camelCase identifiers; anything else (reason codes, addresses, ERR_ codes) marks a map. */
const STRUCT_KEY = /^[a-z][a-zA-Z0-9]*$/;

/** The label rule inferred for an array or map without an explicit one, or null (struct / unlabelled array). */
function inferRule(key: string, node: object): LabelRule | null {
  if (Array.isArray(node)) {
    const first: unknown = node.find((x: unknown) => typeof x === 'object' && x !== null);
    if (first === undefined) return null;
    const item = first as Record<string, unknown>;
    const id = ITEM_ID_KEYS.find((k) => typeof item[k] === 'string' || typeof item[k] === 'number');
    return id === undefined ? null : { label: id, key: id };
  }
  const keys = Object.keys(node);
  if (keys.length === 0 || keys.every((k) => STRUCT_KEY.test(k))) return null;
  // errorsByCode → code, dropsByReason → reason; otherwise a neutral "kind".
  const by = /By([A-Z][a-zA-Z0-9]*)$/.exec(key);
  return by?.[1] === undefined ? 'kind' : snake(by[1]);
}

/**
 * Turns a nested stats snapshot into samples named `<prefix>_<snake path>`. Numbers, bigints
 * and booleans (0/1) are exported; strings and nulls are skipped. Without explicit rules
 * (FlattenOptions.labels), an array of objects is labelled by its items' first identifying
 * field (name, address, identity, …) and an object whose keys are not camelCase identifiers
 * (reason codes, addresses) is a map labelled `<x>` for a key ending in `By<X>`, else `kind`.
 * Label values are bounded by the registry's per-label cap at render time.
 */
export function flattenStats(prefix: string, snapshot: object, options: FlattenOptions = {}): MetricSample[] {
  const out: MetricSample[] = [];
  const counters = new Set(options.counters ?? []);
  const labelRules = options.labels ?? {};
  const auto = options.auto !== false;
  const walk = (node: unknown, keyPath: string[], nameParts: string[], labels: Record<string, string>, isRoot: boolean): void => {
    const dotted = keyPath.join('.');
    if (typeof node === 'object' && node !== null && !isRoot) {
      const lastKey = [...keyPath].reverse().find((k) => k !== '*') ?? '';
      const rule = labelRules[dotted] ?? (auto ? inferRule(lastKey, node) : null);
      if (rule !== null && Array.isArray(node)) {
        if (typeof rule === 'string') return;
        for (const item of node as unknown[]) {
          if (typeof item !== 'object' || item === null) continue;
          const keyValue = (item as Record<string, unknown>)[rule.key];
          if (typeof keyValue !== 'string' && typeof keyValue !== 'number') continue;
          const itemLabels = { ...labels, [sanitizeLabelName(rule.label)]: String(keyValue) };
          for (const [k, v] of Object.entries(item)) {
            if (k !== rule.key) walk(v, [...keyPath, k], [...nameParts, snake(k)], itemLabels, false);
          }
        }
        return;
      }
      if (rule !== null) {
        const label = sanitizeLabelName(typeof rule === 'string' ? rule : rule.label);
        // The key of a map entry is a label value, not a name segment ('*' marks the level in paths).
        for (const [k, v] of Object.entries(node)) walk(v, [...keyPath, '*'], nameParts, { ...labels, [label]: k }, false);
        return;
      }
      if (Array.isArray(node)) return;
    }
    const value = toNumber(node);
    if (value !== null) {
      const leaf = [...keyPath].reverse().find((k) => k !== '*') ?? '';
      const isCounter = counters.has(leaf) || leaf.endsWith('Total');
      let name = sanitizeMetricName([prefix, ...nameParts].join('_'));
      if (isCounter && !name.endsWith('_total')) name += '_total';
      out.push({ name, type: isCounter ? 'counter' : 'gauge', help: `${prefix} ${dotted}`, labels, value });
      return;
    }
    if (typeof node !== 'object' || node === null || Array.isArray(node)) return;
    for (const [k, v] of Object.entries(node)) walk(v, [...keyPath, k], [...nameParts, snake(k)], labels, false);
  };
  walk(snapshot, [], [], {}, true);
  return out;
}

interface CollectorEntry {
  readonly collect: CollectorFn;
  readonly options: FlattenOptions;
}

export class Metrics {
  readonly registry: Registry;
  readonly contentType: string;
  private readonly maxLabelValues: number;
  private readonly collectors = new Map<string, CollectorEntry>();
  /** Per collector metric name: its label budget (persistent across scrapes so "other" is stable). */
  private readonly collectorBudgets = new Map<string, LabelBudget>();
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
    if (options.processMetrics !== false) collectDefaultMetrics({ register: this.registry, prefix: METRIC_PREFIX });
  }

  private budget(metric: string): LabelBudget {
    // The overflow counter's own label is the metric name: bounded by the code, not by input.
    return new LabelBudget(this.maxLabelValues, () => {
      this.overflow.inc({ metric });
    });
  }

  /** A counter named `sealflow_<name>` (name should end in _total). */
  counter(name: string, help: string, labelNames: readonly string[] = []): BoundedCounter {
    const full = METRIC_PREFIX + name;
    const c = new Counter({ name: full, help, labelNames: [...labelNames], registers: [this.registry] });
    return new BoundedCounter(c, this.budget(full));
  }

  /** A gauge named `sealflow_<name>`. */
  gauge(name: string, help: string, labelNames: readonly string[] = []): BoundedGauge {
    const full = METRIC_PREFIX + name;
    const g = new Gauge({ name: full, help, labelNames: [...labelNames], registers: [this.registry] });
    return new BoundedGauge(g, this.budget(full));
  }

  /**
   * Exports `collect()`'s result at every scrape, as metrics named `sealflow_<name>_…`.
   * `collect` returns either samples (names used as given, prefixed with sealflow_ when
   * missing) or a plain stats snapshot flattened with `options` (see flattenStats).
   * Registering a name again replaces the earlier collector.
   */
  registerCollector(name: string, collect: CollectorFn, options: FlattenOptions = {}): void {
    this.collectors.set(name, { collect, options });
  }

  unregisterCollector(name: string): void {
    this.collectors.delete(name);
  }

  private collectorSamples(): MetricSample[] {
    const out: MetricSample[] = [];
    for (const [name, entry] of this.collectors) {
      let result: readonly MetricSample[] | StatsSnapshot;
      try {
        result = entry.collect();
      } catch {
        this.collectorErrors.inc({ collector: name });
        continue;
      }
      if (Array.isArray(result)) {
        for (const s of result as readonly MetricSample[]) out.push(s.name.startsWith(METRIC_PREFIX) ? s : { ...s, name: METRIC_PREFIX + s.name });
      } else {
        out.push(...flattenStats(METRIC_PREFIX + snake(name), result, entry.options));
      }
    }
    return out;
  }

  /** Prometheus text exposition (format 0.0.4) of every metric and collector. */
  async render(): Promise<string> {
    const collected = this.collectorSamples();
    const taken = new Set(this.registry.getMetricsAsArray().map((m) => m.name));
    interface Family {
      help: string;
      type: 'counter' | 'gauge';
      series: Map<string, { labels: Record<string, string>; value: number }>;
    }
    const families = new Map<string, Family>();
    for (const s of collected) {
      const name = sanitizeMetricName(s.name);
      if (taken.has(name)) continue;
      const value = toNumber(s.value);
      if (value === null) continue;
      let fam = families.get(name);
      if (fam === undefined) {
        fam = { help: s.help ?? name, type: s.type ?? 'gauge', series: new Map() };
        families.set(name, fam);
      }
      let budget = this.collectorBudgets.get(name);
      if (budget === undefined) {
        budget = this.budget(name);
        this.collectorBudgets.set(name, budget);
      }
      const raw: Record<string, string> = {};
      for (const [k, v] of Object.entries(s.labels ?? {})) raw[sanitizeLabelName(k)] = v;
      const labels = budget.bound(raw);
      const key = JSON.stringify(Object.entries(labels).sort(([a], [b]) => (a < b ? -1 : 1)));
      const existing = fam.series.get(key);
      // Series folded into "other" are summed: the total across exporters stays right.
      if (existing !== undefined) existing.value += value;
      else fam.series.set(key, { labels, value });
    }
    const lines: string[] = [];
    for (const [name, fam] of families) {
      lines.push(`# HELP ${name} ${escapeHelp(fam.help)}`, `# TYPE ${name} ${fam.type}`);
      for (const { labels, value } of fam.series.values()) {
        const entries = Object.entries(labels);
        const labelText = entries.length === 0 ? '' : `{${entries.map(([k, v]) => `${k}="${escapeLabelValue(v)}"`).join(',')}}`;
        lines.push(`${name}${labelText} ${formatValue(value)}`);
      }
    }
    // The registry is rendered last so the overflow/error counters bumped above are current.
    const base = await this.registry.metrics();
    return base + (lines.length > 0 ? lines.join('\n') + '\n' : '');
  }
}
