import { SECRET_SETTINGS, type Config } from './schema.js';

/**
 * A printable copy of a configuration for `sealflow config check`, logs and /stats. The
 * config never holds secret values (only where they come from), but two things in it can
 * still be sensitive: the arguments of a secret command (a KMS helper may take a token on its
 * command line) and credentials embedded in a URL (proxyUrl). Both are replaced here.
 */

export const REDACTED = '[redacted]';

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

function redactSource(v: unknown): Json {
  if (typeof v !== 'object' || v === null) return REDACTED;
  const s = v as Record<string, unknown>;
  if (typeof s.env === 'string') return { env: s.env };
  if (typeof s.file === 'string') return { file: s.file };
  if (Array.isArray(s.command)) {
    const [argv0, ...args] = s.command as unknown[];
    return { command: [typeof argv0 === 'string' ? argv0 : REDACTED, ...(args.length > 0 ? [`${REDACTED} (${args.length} argument${args.length === 1 ? '' : 's'})`] : [])] };
  }
  return REDACTED;
}

/** Replaces the user:password part of a URL ("http://user:pw@proxy:3128" → "http://[redacted]@proxy:3128"). */
export function redactUrl(text: string): string {
  return text.replace(/^([A-Za-z][A-Za-z0-9+.-]*:\/\/)[^@/?#]*@/, `$1${REDACTED}@`);
}

const URL_KEYS = new Set(['proxyUrl', 'uploadUrl']);

function walk(v: unknown, path: string): Json {
  if (SECRET_SETTINGS.includes(path)) {
    if (v === undefined) return null;
    return Array.isArray(v) ? v.map((s) => redactSource(s)) : redactSource(v);
  }
  if (Array.isArray(v)) return v.map((x) => walk(x, path));
  if (typeof v === 'object' && v !== null) {
    const out: Record<string, Json> = {};
    for (const [k, x] of Object.entries(v)) {
      if (x === undefined) continue;
      out[k] = URL_KEYS.has(k) && typeof x === 'string' ? redactUrl(x) : walk(x, path === '' ? k : `${path}.${k}`);
    }
    return out;
  }
  if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean' || v === null) return v;
  return typeof v === 'bigint' ? v.toString() : null;
}

/** A plain JSON copy of the configuration safe to print. */
export function redactConfig(config: Config): Record<string, Json> {
  return walk(config, '') as Record<string, Json>;
}
