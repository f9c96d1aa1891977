import type { z } from 'zod';
import { ConfigError, ConfigErrorCode } from '../flow/errors.js';
import { ConfigSchema, SECRET_SETTINGS } from './schema.js';

/**
 * The environment layer: SEALFLOW_* variables mapped onto configuration keys.
 *
 * Mapping (generated from the schema, so every setting has exactly one variable):
 * - `SEALFLOW_` + the dotted path with each key in UPPER_SNAKE_CASE and `__` between levels:
 *   `spool.quotaBytes` ← SEALFLOW_SPOOL__QUOTA_BYTES, `dataDir` ← SEALFLOW_DATA_DIR,
 *   `listeners.tls.enabled` ← SEALFLOW_LISTENERS__TLS__ENABLED.
 * - Numbers as decimal text; booleans as true/false (also 1/0, yes/no, on/off); lists of
 *   scalars comma-separated (`10.0.0.0/8,192.0.2.1`) or as a JSON array; lists of objects and
 *   secret sources as JSON (`[{"port":9995}]`, `{"file":"/run/keys/kek"}`).
 * - Secret shortcuts: SEALFLOW_SPOOL_KEK (the value itself), SEALFLOW_SPOOL_KEK_FILE (a path),
 *   SEALFLOW_SPOOL_KEK_COMMAND (a command run without a shell: a JSON argv array, words split
 *   on whitespace, or {"command": [...], "passEnv": [...]} naming the variables it may see);
 *   likewise SEALFLOW_SPOOL_PREVIOUS_KEK* (one entry of spool.previousKeks),
 *   SEALFLOW_FUSION_NETOSECRET*, SEALFLOW_ADMIN_TOKEN*, SEALFLOW_PSEUDONYMIZE_KEY* and
 *   SEALFLOW_AUDIT_SIGNING_KEY*. At most one of each trio may be set.
 * - SEALFLOW_CONFIG names the config file when --config is not given.
 * - A SEALFLOW_ variable that is a setting's name with single underscores, or a nested name
 *   (`SEALFLOW_SPOOL__…`) that matches no setting, is an error (a typo must not be ignored);
 *   other SEALFLOW_ names belong to other tools and are left alone.
 */

export const ENV_PREFIX = 'SEALFLOW_';
export const CONFIG_PATH_ENV = 'SEALFLOW_CONFIG';

/** How a variable's text becomes a value. */
export type EnvValueKind = 'string' | 'number' | 'boolean' | 'list' | 'json';

export interface EnvSetting {
  /** The environment variable name. */
  readonly env: string;
  /** Key path into the configuration. */
  readonly path: readonly string[];
  readonly kind: EnvValueKind;
  /** The value is (the source of) a secret: never echoed. */
  readonly secret: boolean;
  readonly description: string;
}

/** A secret shortcut trio (value / _FILE / _COMMAND) for one secret setting. */
export interface SecretShortcut {
  readonly env: string;
  readonly path: readonly string[];
  /** The setting is a list of sources; the shortcut sets it to a list of one. */
  readonly list?: boolean;
}

export const SECRET_SHORTCUTS: readonly SecretShortcut[] = [
  { env: 'SEALFLOW_SPOOL_KEK', path: ['spool', 'kek'] },
  { env: 'SEALFLOW_SPOOL_PREVIOUS_KEK', path: ['spool', 'previousKeks'], list: true },
  { env: 'SEALFLOW_FUSION_NETOSECRET', path: ['drain', 'fusion', 'netosecret'] },
  { env: 'SEALFLOW_ADMIN_TOKEN', path: ['admin', 'token'] },
  { env: 'SEALFLOW_PSEUDONYMIZE_KEY', path: ['privacy', 'pseudonymize', 'key'] },
  { env: 'SEALFLOW_AUDIT_SIGNING_KEY', path: ['audit', 'signingKey'] },
];

/** The result of reading the environment: a partial config and which variable set which path. */
export interface EnvLayer {
  /** A partial ConfigInput (unvalidated: values are converted from text, not checked). */
  readonly layer: Readonly<Record<string, unknown>>;
  /** Dotted path → the variable that set it. */
  readonly sources: ReadonlyMap<string, string>;
}

type AnySchema = z.core.$ZodType;

/** Strips optional/default/prefault/nullable wrappers. */
export function unwrapSchema(schema: AnySchema): AnySchema {
  let s = schema;
  for (;;) {
    const def = s._zod.def as { type: string; innerType?: AnySchema };
    if ((def.type === 'optional' || def.type === 'default' || def.type === 'prefault' || def.type === 'nullable') && def.innerType !== undefined) {
      s = def.innerType;
    } else {
      return s;
    }
  }
}

export function objectShape(schema: AnySchema): Readonly<Record<string, AnySchema>> | null {
  const def = unwrapSchema(schema)._zod.def as { type: string; shape?: Record<string, AnySchema> };
  return def.type === 'object' && def.shape !== undefined ? def.shape : null;
}

/** camelCase → UPPER_SNAKE (`maxConnectionsPerSource` → MAX_CONNECTIONS_PER_SOURCE, `pinSha256` → PIN_SHA256). */
export function upperSnake(key: string): string {
  return key.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase();
}

export function envNameFor(path: readonly string[]): string {
  return ENV_PREFIX + path.map(upperSnake).join('__');
}

function isSecretPath(path: readonly string[]): boolean {
  return SECRET_SETTINGS.includes(path.join('.'));
}

function kindOf(schema: AnySchema): EnvValueKind {
  const inner = unwrapSchema(schema);
  const def = inner._zod.def as { type: string; element?: AnySchema };
  switch (def.type) {
    case 'number':
      return 'number';
    case 'boolean':
      return 'boolean';
    case 'string':
    case 'enum':
      return 'string';
    case 'array': {
      const el = def.element === undefined ? null : (unwrapSchema(def.element)._zod.def as { type: string }).type;
      return el === 'string' || el === 'number' || el === 'union' || el === 'enum' ? 'list' : 'json';
    }
    default:
      return 'json';
  }
}

function describeOf(schema: AnySchema): string {
  // zod 4 keeps describe() text in the global registry; walk wrappers until one has it.
  let s: AnySchema | undefined = schema;
  while (s !== undefined) {
    const d = (s as { description?: string }).description;
    if (typeof d === 'string') return d;
    const def = s._zod.def as { innerType?: AnySchema };
    s = def.innerType;
  }
  return '';
}

let cachedTable: readonly EnvSetting[] | null = null;

/** Every setting reachable through the generic mapping, in schema order. */
export function envSettings(): readonly EnvSetting[] {
  if (cachedTable !== null) return cachedTable;
  const out: EnvSetting[] = [];
  const walk = (schema: AnySchema, path: string[]): void => {
    const shape = objectShape(schema);
    if (shape !== null && !isSecretPath(path)) {
      for (const [k, v] of Object.entries(shape)) walk(v, [...path, k]);
      return;
    }
    out.push({ env: envNameFor(path), path, kind: kindOf(schema), secret: isSecretPath(path), description: describeOf(schema) });
  };
  walk(ConfigSchema, []);
  cachedTable = out;
  return out;
}

function envError(variable: string, message: string): ConfigError {
  return new ConfigError(ConfigErrorCode.Invalid, variable, `${variable}: ${message}`, { env: variable });
}

const TRUE_WORDS = new Set(['true', '1', 'yes', 'on']);
const FALSE_WORDS = new Set(['false', '0', 'no', 'off']);
const DECIMAL = /^-?\d+(\.\d+)?$/;

/**
 * Converts a variable's text. Text that does not fit the kind is passed through unchanged so
 * schema validation reports it (naming the key and the variable) like any other bad value.
 */
function convert(setting: EnvSetting, text: string): unknown {
  switch (setting.kind) {
    case 'number':
      return DECIMAL.test(text.trim()) ? Number(text.trim()) : text;
    case 'boolean': {
      const t = text.trim().toLowerCase();
      if (TRUE_WORDS.has(t)) return true;
      if (FALSE_WORDS.has(t)) return false;
      return text;
    }
    case 'string':
      return text;
    case 'list': {
      const t = text.trim();
      if (t.startsWith('[')) return parseJson(setting, t);
      if (t === '') return [];
      return t.split(',').map((item) => {
        const v = item.trim();
        return DECIMAL.test(v) ? Number(v) : v;
      });
    }
    case 'json':
      return parseJson(setting, text);
  }
}

function parseJson(setting: EnvSetting, text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    const shown = setting.secret ? '' : ` (got ${JSON.stringify(text.length > 80 ? text.slice(0, 80) + '…' : text)})`;
    throw envError(setting.env, `must be JSON${shown}; e.g. ${setting.secret ? '{"file":"/path"}' : '[{"port":9995}]'}`);
  }
}

/**
 * A *_COMMAND value: a JSON argv array, words separated by whitespace (no quoting, no shell),
 * or a JSON object {"command": [...], "passEnv": [...]} (validated by the schema).
 */
function parseCommand(variable: string, text: string): Record<string, unknown> {
  const t = text.trim();
  if (t.startsWith('[') || t.startsWith('{')) {
    let v: unknown;
    try {
      v = JSON.parse(t);
    } catch {
      throw envError(variable, 'must be a JSON array of strings, a JSON object {"command": [...], "passEnv": [...]}, or whitespace-separated words');
    }
    if (typeof v === 'object' && v !== null && !Array.isArray(v)) return v as Record<string, unknown>;
    if (!Array.isArray(v) || v.length === 0 || !v.every((x) => typeof x === 'string' && x !== '')) {
      throw envError(variable, 'must be a non-empty JSON array of non-empty strings');
    }
    return { command: v as string[] };
  }
  const words = t.split(/\s+/).filter((w) => w !== '');
  if (words.length === 0) throw envError(variable, 'is empty; give the command to run, e.g. ["systemd-creds","cat","kek"]');
  return { command: words };
}

/**
 * The secret source a shortcut trio sets — `prefix` (the value: {env: prefix}), `prefix`_FILE
 * or `prefix`_COMMAND — and the variable that set it; null when none is set. Also used for
 * trios that are not settings (SEALFLOW_SPOOL_NEW_KEK for `sealflow rekey`).
 */
export function shortcutSource(env: NodeJS.ProcessEnv, prefix: string): { readonly source: unknown; readonly variable: string } | null {
  const names = [prefix, `${prefix}_FILE`, `${prefix}_COMMAND`];
  const set = names.filter((n) => env[n] !== undefined && env[n] !== '');
  if (set.length > 1) throw envError(set.join(', '), `set only one of ${names.join(', ')}`);
  const variable = set[0];
  if (variable === undefined) return null;
  const text = env[variable] ?? '';
  if (variable === prefix) return { source: { env: prefix }, variable };
  if (variable.endsWith('_FILE')) return { source: { file: text.trim() }, variable };
  return { source: parseCommand(variable, text), variable };
}

function setPath(target: Record<string, unknown>, path: readonly string[], value: unknown): void {
  let node = target;
  const last = path[path.length - 1];
  if (last === undefined) return;
  for (const k of path.slice(0, -1)) {
    const next = node[k];
    if (typeof next === 'object' && next !== null && !Array.isArray(next)) {
      node = next as Record<string, unknown>;
    } else {
      const fresh: Record<string, unknown> = {};
      node[k] = fresh;
      node = fresh;
    }
  }
  node[last] = value;
}

/** Builds the environment layer. Throws ConfigError naming the variable for malformed or unknown ones. */
export function readEnvLayer(env: NodeJS.ProcessEnv): EnvLayer {
  const table = envSettings();
  const byName = new Map(table.map((s) => [s.env, s]));
  const layer: Record<string, unknown> = {};
  const sources = new Map<string, string>();
  const shortcutNames = new Set<string>([CONFIG_PATH_ENV]);

  for (const sc of SECRET_SHORTCUTS) {
    for (const n of [sc.env, `${sc.env}_FILE`, `${sc.env}_COMMAND`]) shortcutNames.add(n);
    const found = shortcutSource(env, sc.env);
    if (found === null) continue;
    setPath(layer, sc.path, sc.list === true ? [found.source] : found.source);
    sources.set(sc.path.join('.'), found.variable);
  }

  const topPrefixes = Object.keys(ConfigSchema.shape).map(upperSnake);
  for (const name of Object.keys(env).sort()) {
    if (!name.startsWith(ENV_PREFIX) || shortcutNames.has(name)) continue;
    const text = env[name];
    if (text === undefined) continue;
    const setting = byName.get(name);
    if (setting === undefined) {
      // Two kinds of typo are errors: a nested name (with "__") under a real section that
      // matches no setting, and a setting spelled with single underscores. Anything else is
      // some other tool's SEALFLOW_ variable (SEALFLOW_SPOOL_NEW_KEK for rekey, test seeds).
      const rest = name.slice(ENV_PREFIX.length);
      const flat = rest.replace(/__/g, '_');
      const guess = table.find((s) => s.env.slice(ENV_PREFIX.length).replace(/__/g, '_') === flat);
      const nestedUnderSection = rest.includes('__') && topPrefixes.some((p) => rest.startsWith(p + '__'));
      if (guess !== undefined || nestedUnderSection) {
        const hint = guess === undefined ? 'see `sealflow config schema --env` for the list' : `did you mean ${guess.env}?`;
        throw envError(name, `is not a sealflow setting; ${hint}`);
      }
      continue;
    }
    const existing = sources.get(setting.path.join('.'));
    if (existing !== undefined) throw envError(name, `conflicts with ${existing}; set only one of them`);
    setPath(layer, setting.path, convert(setting, text));
    sources.set(setting.path.join('.'), name);
  }
  return { layer, sources };
}
