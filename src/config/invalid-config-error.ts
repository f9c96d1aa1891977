import type { z } from 'zod';
import { ConfigError, ConfigErrorCode } from '../flow/errors.js';
import { objectShape, unwrapSchema } from './env-layer.js';
import { ConfigSchema, SECRET_SETTINGS } from './schema.js';

/**
 * Every problem found while validating a configuration, reported together in one error so an
 * operator fixes them in one pass. Each problem names the key as a dotted path with array
 * indices (`listeners.udp[1].port`, the same form the filter compiler uses), the bad value
 * (never for a secret setting) and what is allowed, plus the environment variable or flag that
 * supplied the value when it did not come from the config file.
 */

export type IssuePath = readonly (string | number)[];

export interface ConfigIssue {
  readonly path: IssuePath;
  /** What is wrong and what is allowed, without the key (e.g. 'must be at most 65535; got 70000'). */
  readonly message: string;
  /** Where the value came from when not the config file (e.g. 'SEALFLOW_SPOOL__QUOTA_BYTES'). */
  readonly origin?: string;
}

/** `['listeners', 'udp', 1, 'port']` → `listeners.udp[1].port`. */
export function formatPath(path: IssuePath): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else out += out === '' ? seg : `.${seg}`;
  }
  return out === '' ? '(top level)' : out;
}

/** Whether a path is, or lies under, a secret setting (spool.kek, admin.token, …). */
export function isSecretIssuePath(path: IssuePath): boolean {
  const keys = path.filter((s): s is string => typeof s === 'string').join('.');
  return SECRET_SETTINGS.some((s) => keys === s || keys.startsWith(s + '.'));
}

export function formatIssue(issue: ConfigIssue): string {
  const origin = issue.origin === undefined ? '' : ` (from ${issue.origin})`;
  return `${formatPath(issue.path)}: ${issue.message}${origin}`;
}

export class InvalidConfigError extends ConfigError {
  readonly issues: readonly ConfigIssue[];
  constructor(issues: readonly ConfigIssue[], where: string | null) {
    const first = issues[0];
    const place = where === null ? '' : ` in ${where}`;
    const message =
      issues.length === 1 && first !== undefined
        ? `invalid configuration${place}: ${formatIssue(first)}`
        : `invalid configuration${place} (${issues.length} problems):\n${issues.map((i) => `  - ${formatIssue(i)}`).join('\n')}`;
    super(ConfigErrorCode.Invalid, first === undefined ? '' : formatPath(first.path), message, { problems: issues.length });
    this.name = 'InvalidConfigError';
    this.issues = issues;
  }
}

const MAX_SHOWN_VALUE_CHARS = 60;

/** A short, safe rendering of a bad value for a message. */
export function showValue(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null';
  if (Array.isArray(value)) return `a list of ${value.length}`;
  if (typeof value === 'object') return 'a mapping';
  if (typeof value === 'string') {
    const s = value.length > MAX_SHOWN_VALUE_CHARS ? value.slice(0, MAX_SHOWN_VALUE_CHARS) + '…' : value;
    return JSON.stringify(s);
  }
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') return String(value);
  return typeof value;
}

type AnySchema = z.core.$ZodType;

/** The schema node at a path (through arrays and wrappers), or null. */
export function schemaAt(path: IssuePath): AnySchema | null {
  let s: AnySchema = ConfigSchema;
  for (const seg of path) {
    const inner = unwrapSchema(s);
    const def = inner._zod.def as { type: string; element?: AnySchema };
    if (typeof seg === 'number') {
      if (def.type !== 'array' || def.element === undefined) return null;
      s = def.element;
    } else {
      const shape = objectShape(inner);
      const next = shape?.[seg];
      if (next === undefined) return null;
      s = next;
    }
  }
  return s;
}

function editDistance(a: string, b: string): number {
  const prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0] ?? 0;
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const up = prev[j] ?? 0;
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      prev[j] = Math.min(up + 1, (prev[j - 1] ?? 0) + 1, diag + cost);
      diag = up;
    }
  }
  return prev[b.length] ?? 0;
}

/** Up to this many edits apart counts as a likely typo worth suggesting (fewer for short keys, where 3 edits make any word). */
const MAX_SUGGESTION_DISTANCE = 3;
const CHARS_PER_ALLOWED_EDIT = 3;

function unknownKeyMessage(parent: IssuePath, key: string): string {
  const shape = objectShape(schemaAt(parent) ?? ConfigSchema);
  const allowed = shape === null ? [] : Object.keys(shape);
  const norm = (s: string): string => s.toLowerCase().replace(/[-_]/g, '');
  let best: string | null = null;
  let bestDist = Math.min(MAX_SUGGESTION_DISTANCE, Math.max(1, Math.floor(key.length / CHARS_PER_ALLOWED_EDIT))) + 1;
  for (const a of allowed) {
    const d = editDistance(norm(key), norm(a));
    if (d < bestDist) {
      best = a;
      bestDist = d;
    }
  }
  // A truncated key ("quota" for "quotaBytes") is far in edits but an obvious match.
  best ??= allowed.find((a) => key.length >= CHARS_PER_ALLOWED_EDIT && norm(a).startsWith(norm(key))) ?? null;
  const hint = best === null ? '' : `did you mean "${best}"? `;
  return `unknown key; ${hint}allowed keys: ${allowed.join(', ')}`;
}

function typeWord(expected: string): string {
  switch (expected) {
    case 'number':
      return 'a number';
    case 'int':
      return 'an integer';
    case 'string':
      return 'a string';
    case 'boolean':
      return 'true or false';
    case 'array':
      return 'a list';
    case 'object':
      return 'a mapping';
    default:
      return expected;
  }
}

function valueAt(root: unknown, path: IssuePath): unknown {
  let node = root;
  for (const seg of path) {
    if (typeof node !== 'object' || node === null) return undefined;
    node = (node as Record<string | number, unknown>)[seg];
  }
  return node;
}

/** Converts zod issues into ConfigIssues; `input` is the merged (pre-validation) object, `originOf` names non-file sources. */
export function issuesFromZod(zodIssues: readonly z.core.$ZodIssue[], input: unknown, originOf: (path: IssuePath) => string | undefined): ConfigIssue[] {
  const out: ConfigIssue[] = [];
  const push = (path: IssuePath, message: string): void => {
    const origin = originOf(path);
    out.push(origin === undefined ? { path, message } : { path, message, origin });
  };
  for (const issue of zodIssues) {
    const path = issue.path.filter((p): p is string | number => typeof p !== 'symbol');
    const secret = isSecretIssuePath(path);
    const value = valueAt(input, path);
    const got = secret ? '' : `; got ${showValue(value)}`;
    switch (issue.code) {
      case 'unrecognized_keys':
        for (const key of issue.keys) push([...path, key], unknownKeyMessage(path, key));
        break;
      case 'invalid_type':
        if (value === undefined) push(path, `is required (${typeWord(issue.expected)})`);
        else push(path, `must be ${typeWord(issue.expected)}${got}`);
        break;
      case 'too_small': {
        const min = String(issue.minimum);
        if (issue.origin === 'string') push(path, Number(issue.minimum) <= 1 ? 'must not be empty' : `must be at least ${min} characters`);
        else if (issue.origin === 'array' || issue.origin === 'set') push(path, `must have at least ${min} ${Number(issue.minimum) === 1 ? 'entry' : 'entries'}`);
        else push(path, `must be ${issue.inclusive === false ? 'greater than' : 'at least'} ${min}${got}`);
        break;
      }
      case 'too_big': {
        const max = String(issue.maximum);
        if (issue.origin === 'string') push(path, `must be at most ${max} characters`);
        else if (issue.origin === 'array' || issue.origin === 'set') push(path, `must have at most ${max} entries`);
        else push(path, `must be ${issue.inclusive === false ? 'less than' : 'at most'} ${max}${got}`);
        break;
      }
      case 'invalid_value':
        push(path, `must be one of ${issue.values.map((v) => JSON.stringify(v)).join(', ')}${got}`);
        break;
      case 'invalid_format':
        if (issue.format === 'url') {
          const https = path[path.length - 1] === 'uploadUrl';
          push(path, `must be an ${https ? 'https' : 'http or https'} URL${got}`);
        } else {
          push(path, `${issue.message}${got}`);
        }
        break;
      case 'invalid_union':
        push(path, issue.message === 'Invalid input' ? `has the wrong type${got}` : `${issue.message}${issue.message.includes('inline') ? '' : got}`);
        break;
      default:
        push(path, `${issue.message}${got}`);
    }
  }
  return out;
}
