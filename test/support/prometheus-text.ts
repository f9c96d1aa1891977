/**
 * A strict parser of the Prometheus text exposition format 0.0.4, for tests: it throws on
 * anything a Prometheus server would reject (bad metric/label names, bad escapes, a sample
 * before its family's TYPE or a family split in two, duplicate series, unparsable values),
 * so "the /metrics output parses" means something.
 * Reference: https://prometheus.io/docs/instrumenting/exposition_formats/#text-based-format
 */

export type MetricType = 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped';

export interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

export interface Family {
  readonly name: string;
  type: MetricType;
  help: string | null;
  readonly samples: Sample[];
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const TYPES = new Set<string>(['counter', 'gauge', 'histogram', 'summary', 'untyped']);

function parseValue(text: string, line: number): number {
  // Prometheus parses values with Go's strconv.ParseFloat: NaN/Inf/Infinity in any case.
  const lower = text.toLowerCase();
  if (lower === 'nan') return NaN;
  if (lower === '+inf' || lower === 'inf' || lower === '+infinity' || lower === 'infinity') return Infinity;
  if (lower === '-inf' || lower === '-infinity') return -Infinity;
  if (!/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(text)) throw new Error(`line ${line}: bad value ${JSON.stringify(text)}`);
  return Number(text);
}

/** The family a sample name belongs to (histogram/summary samples carry suffixes). */
function familyOf(name: string, families: Map<string, Family>): Family | undefined {
  const direct = families.get(name);
  if (direct !== undefined) return direct;
  for (const suffix of ['_bucket', '_sum', '_count']) {
    if (!name.endsWith(suffix)) continue;
    const f = families.get(name.slice(0, -suffix.length));
    if (f !== undefined && (f.type === 'histogram' || f.type === 'summary') && !(suffix === '_bucket' && f.type === 'summary')) return f;
  }
  return undefined;
}

function parseLabels(text: string, line: number): Record<string, string> {
  const labels: Record<string, string> = {};
  let i = 0;
  while (i < text.length) {
    const eq = text.indexOf('=', i);
    if (eq < 0) throw new Error(`line ${line}: label without "="`);
    const name = text.slice(i, eq).trim();
    if (!LABEL_NAME.test(name)) throw new Error(`line ${line}: bad label name ${JSON.stringify(name)}`);
    if (Object.hasOwn(labels, name)) throw new Error(`line ${line}: label ${name} repeated`);
    if (text[eq + 1] !== '"') throw new Error(`line ${line}: label value must be quoted`);
    let j = eq + 2;
    let value = '';
    for (;;) {
      const c = text[j];
      if (c === undefined) throw new Error(`line ${line}: unterminated label value`);
      if (c === '"') break;
      if (c === '\\') {
        const n = text[j + 1];
        if (n === '\\') value += '\\';
        else if (n === '"') value += '"';
        else if (n === 'n') value += '\n';
        else throw new Error(`line ${line}: bad escape \\${n ?? ''}`);
        j += 2;
        continue;
      }
      if (c === '\n') throw new Error(`line ${line}: raw newline in label value`);
      value += c;
      j++;
    }
    labels[name] = value;
    i = j + 1;
    if (text[i] === ',') i++;
    else if (i < text.length) throw new Error(`line ${line}: expected "," between labels`);
  }
  return labels;
}

export function parsePrometheusText(text: string): Map<string, Family> {
  if (text.length > 0 && !text.endsWith('\n')) throw new Error('exposition must end with a newline');
  const families = new Map<string, Family>();
  const closed = new Set<string>();
  const seriesSeen = new Set<string>();
  let current: Family | null = null;
  const lines = text.split('\n');
  lines.pop();
  lines.forEach((raw, idx) => {
    const line = idx + 1;
    if (raw.trim() === '') return;
    if (raw.startsWith('#')) {
      const m = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(raw);
      if (m === null) return; // a plain comment
      const [, kind, name = '', rest = ''] = m;
      if (!METRIC_NAME.test(name)) throw new Error(`line ${line}: bad metric name ${JSON.stringify(name)}`);
      if (closed.has(name)) throw new Error(`line ${line}: family ${name} appears twice`);
      let fam = families.get(name);
      if (fam === undefined) {
        if (current !== null) closed.add(current.name);
        fam = { name, type: 'untyped', help: null, samples: [] };
        families.set(name, fam);
        current = fam;
      } else if (fam !== current) {
        throw new Error(`line ${line}: family ${name} is not contiguous`);
      }
      if (kind === 'TYPE') {
        if (!TYPES.has(rest)) throw new Error(`line ${line}: bad type ${JSON.stringify(rest)}`);
        if (fam.samples.length > 0) throw new Error(`line ${line}: TYPE after samples of ${name}`);
        fam.type = rest as MetricType;
      } else {
        if (fam.help !== null) throw new Error(`line ${line}: second HELP for ${name}`);
        if (/\\[^\\n]/.test(rest.replace(/\\\\/g, ''))) throw new Error(`line ${line}: bad escape in HELP`);
        fam.help = rest.replace(/\\n/g, '\n').replace(/\\\\/g, '\\');
      }
      return;
    }
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)( -?\d+)?$/.exec(raw);
    if (m === null) throw new Error(`line ${line}: not a sample: ${JSON.stringify(raw)}`);
    const [, name = '', , labelText, valueText = ''] = m;
    const labels = labelText === undefined ? {} : parseLabels(labelText, line);
    let fam = familyOf(name, families);
    if (fam === undefined) {
      if (closed.has(name)) throw new Error(`line ${line}: family ${name} appears twice`);
      if (current !== null) closed.add(current.name);
      fam = { name, type: 'untyped', help: null, samples: [] };
      families.set(name, fam);
      current = fam;
    } else if (fam !== current) {
      throw new Error(`line ${line}: sample of ${fam.name} outside its family block`);
    }
    const key = name + JSON.stringify(Object.entries(labels).sort(([a], [b]) => (a < b ? -1 : 1)));
    if (seriesSeen.has(key)) throw new Error(`line ${line}: duplicate series ${key}`);
    seriesSeen.add(key);
    fam.samples.push({ name, labels, value: parseValue(valueText, line) });
  });
  return families;
}

/** The value of one series, or undefined. `labels` must match exactly. */
export function sampleValue(families: Map<string, Family>, name: string, labels: Readonly<Record<string, string>> = {}): number | undefined {
  for (const fam of families.values()) {
    for (const s of fam.samples) {
      if (s.name !== name) continue;
      const a = Object.entries(s.labels);
      if (a.length === Object.keys(labels).length && a.every(([k, v]) => labels[k] === v)) return s.value;
    }
  }
  return undefined;
}
