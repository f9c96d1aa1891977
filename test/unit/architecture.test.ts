/**
 * The dependency rules of docs/architecture.md, checked on the source: every relative import
 * (static, type-only, re-export and dynamic) of every file under src/ is resolved to a file,
 * and the folder it lands in must be one its importer may use. Plus: no import cycle between
 * files.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const SRC = resolve(dirname(fileURLToPath(import.meta.url)), '../../src');

/**
 * Who may import whom, by top-level folder of src/ ('.' = the entry files app.ts, main.ts,
 * cli.ts). A folder may always import itself. `config/defaults` is the one file of config/
 * that stages may read (every setting's default, from the schema).
 */
const ALLOWED: Readonly<Record<string, readonly string[]>> = {
  flow: [],
  batch: ['flow'],
  decode: ['flow', 'config/defaults'],
  filter: ['flow'],
  spool: ['flow', 'batch', 'observability', 'config/defaults'],
  drain: ['flow', 'batch', 'observability', 'config/defaults'],
  ingest: ['flow', 'observability', 'config/defaults'],
  // Pseudonymisation (privacy.pseudonymize): a stage of the ingest worker's.
  privacy: ['flow'],
  'ingest-worker': ['flow', 'batch', 'decode', 'filter', 'privacy', 'spool', 'audit', 'observability', 'config/defaults'],
  // The audit trail: what the stages record through flow/audit.ts's port, chained, signed, verified.
  audit: ['flow'],
  observability: ['flow', 'config/defaults'],
  config: ['flow'],
  // The Fusion stand-in speaks the drain's side of the protocol back (netosecret, JWT).
  'fusion-sim': ['flow', 'drain', 'observability', 'config/defaults'],
  // Composition roots of their own: attest wires a canary ingest path (listener, ingest worker,
  // spool) from the configuration; evidence gathers every part's output into one pack.
  attest: ['*'],
  evidence: ['*'],
  commands: ['*'],
  '.': ['*'],
};

/**
 * Bridges from the configuration to one stage, called only by composition roots (app.ts,
 * commands, preflight.ts): they read config/ beyond its defaults (the drain's settings and
 * credentials; the spool's keys and the pseudonymisation key from their secret sources).
 */
const CONFIG_BRIDGES: ReadonlySet<string> = new Set(['drain/drain-config.ts', 'privacy/key-source.ts', 'spool/kek-source.ts', 'audit/signing-key-source.ts']);

/**
 * Views over every stage's statistics, used only by the composition root: they may import the
 * stages' types (type-only imports, erased at run time), never their code.
 */
const STATS_VIEWS: ReadonlySet<string> = new Set(['observability/probe-metrics.ts']);

function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir).sort()) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) {
      if (name !== 'native') out.push(...sourceFiles(path));
    } else if (name.endsWith('.ts')) out.push(path);
  }
  return out;
}

const IMPORT = /(?:^|\n)\s*(?:import|export)\s(type\s)?[^'";]*?from\s*['"]([^'"]+)['"]|\bimport\(\s*['"]([^'"]+)['"]\s*\)|(?:^|\n)\s*import\s+['"]([^'"]+)['"]/g;

interface Import {
  readonly to: string;
  readonly typeOnly: boolean;
}

/** file (relative to src/) → the src files it imports. */
function importGraph(): Map<string, Import[]> {
  const graph = new Map<string, Import[]>();
  for (const file of sourceFiles(SRC)) {
    const deps: Import[] = [];
    for (const m of readFileSync(file, 'utf8').matchAll(IMPORT)) {
      const spec = m[2] ?? m[3] ?? m[4] ?? '';
      if (!spec.startsWith('.')) continue;
      const target = resolve(dirname(file), spec).replace(/\.js$/, '.ts');
      assert.ok(existsSync(target), `${relative(SRC, file)} imports ${spec}, which does not resolve to a file`);
      deps.push({ to: relative(SRC, target), typeOnly: m[1] !== undefined });
    }
    graph.set(relative(SRC, file), deps);
  }
  return graph;
}

function folderOf(file: string): string {
  const slash = file.indexOf('/');
  return slash < 0 ? '.' : file.slice(0, slash);
}

function allowed(from: string, { to, typeOnly }: Import): boolean {
  const a = folderOf(from);
  const b = folderOf(to);
  if (a === b) return true;
  if (STATS_VIEWS.has(from) && typeOnly) return true;
  const rules = ALLOWED[a];
  assert.ok(rules !== undefined, `src/${a}/ has no dependency rule in test/unit/architecture.test.ts: add one (and to docs/architecture.md)`);
  if (rules.includes('*')) return true;
  if (b === 'config') return rules.includes('config/defaults') && to === 'config/defaults.ts' ? true : CONFIG_BRIDGES.has(from);
  return rules.includes(b);
}

test('each folder imports only what docs/architecture.md allows (spool/ nothing of decode/ or filter/, drain/ nothing of spool/)', () => {
  const graph = importGraph();
  assert.ok(graph.size > 100, `${graph.size} source files found`);
  const broken: string[] = [];
  for (const [from, deps] of graph) for (const d of deps) if (!allowed(from, d)) broken.push(`${from} → ${d.to}${d.typeOnly ? ' (type)' : ''}`);
  assert.deepEqual(broken, []);
});

test('no import cycles between source files (type-only imports included)', () => {
  const graph = importGraph();
  // Tarjan's strongly connected components: a component of more than one file is a cycle.
  let next = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const cycles: string[][] = [];
  const visit = (v: string): void => {
    index.set(v, next);
    low.set(v, next);
    next++;
    stack.push(v);
    onStack.add(v);
    for (const { to: w } of graph.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v) ?? 0, low.get(w) ?? 0));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v) ?? 0, index.get(w) ?? 0));
    }
    if (low.get(v) !== index.get(v)) return;
    const component: string[] = [];
    let w: string | undefined;
    do {
      w = stack.pop();
      if (w === undefined) break;
      onStack.delete(w);
      component.push(w);
    } while (w !== v);
    if (component.length > 1) cycles.push(component.sort());
  };
  for (const v of graph.keys()) if (!index.has(v)) visit(v);
  assert.deepEqual(cycles, []);
});
