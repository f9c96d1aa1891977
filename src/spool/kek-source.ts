import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { ConfigError, ConfigErrorCode } from '../flow/errors.js';
import { parseBase64Key } from '../flow/key-text.js';

/**
 * Where the spool's key-encryption key (KEK) comes from. The KEK never touches the spool's
 * disk: it is read from the environment, from a file (Docker/Kubernetes secrets, systemd
 * credentials) or from the stdout of a command (a secret manager's CLI), and held in memory.
 *
 * Format everywhere: 32 bytes as base64 (standard or URL-safe alphabet, padding optional,
 * surrounding whitespace ignored). A file may also hold the 32 raw bytes.
 * `setting` is the name reported in errors (environment variable or config path).
 */
export type KekSource =
  | { readonly kind: 'value'; readonly setting: string; readonly value: string }
  | { readonly kind: 'file'; readonly setting: string; readonly path: string }
  | { readonly kind: 'command'; readonly setting: string; readonly argv: readonly string[]; readonly timeoutMs?: number };

export const KEK_BYTES = 32;
/** Environment variable prefix of the spool KEK (the value itself, _FILE, _COMMAND). */
export const KEK_ENV = 'SEALFLOW_SPOOL_KEK';
/** Environment variable prefix of the new KEK for `sealflow rekey`. */
export const NEW_KEK_ENV = 'SEALFLOW_SPOOL_NEW_KEK';
/** A KEK command that has not answered by then is killed (a hung secret-manager CLI must not hang start-up forever). */
export const DEFAULT_KEK_COMMAND_TIMEOUT_MS = 15_000;
/** Largest key file / command output read: a base64 key is 44 bytes, this leaves room for whitespace. */
const MAX_KEK_TEXT_BYTES = 4096;

const HOW_TO_FIX = "create one with 'sealflow keygen' and store it in your secret manager";

function secretError(setting: string, message: string, cause?: unknown): ConfigError {
  return new ConfigError(ConfigErrorCode.Secret, setting, `${setting}: ${message}`, {}, cause === undefined ? undefined : { cause });
}

/** Decodes a base64 KEK; null when it is not exactly 32 bytes of valid base64. */
export function parseKekText(text: string): Uint8Array | null {
  return parseBase64Key(text, KEK_BYTES);
}

/**
 * Splits a KEK command into argv. It is run without a shell: either a JSON array of strings
 * (`["vault","kv","get","-field=kek","secret/sealflow"]`) or words separated by whitespace.
 */
export function parseKekCommand(setting: string, text: string): string[] {
  const t = text.trim();
  let argv: unknown;
  if (t.startsWith('[')) {
    try {
      argv = JSON.parse(t);
    } catch (err) {
      throw secretError(setting, 'is not a valid JSON array of strings', err);
    }
  } else {
    argv = t.split(/\s+/).filter((w) => w.length > 0);
  }
  if (!Array.isArray(argv) || argv.length === 0 || !argv.every((a): a is string => typeof a === 'string')) {
    throw secretError(setting, 'must name a command to run (a JSON array of strings, or words separated by spaces)');
  }
  return argv;
}

/**
 * Chooses the KEK source from the environment: `${prefix}` (base64 value), `${prefix}_FILE`
 * (path) or `${prefix}_COMMAND`. Exactly one must be set; a missing or ambiguous setting is
 * a ConfigError naming the variables.
 */
export function kekSourceFromEnv(env: NodeJS.ProcessEnv, prefix: string = KEK_ENV): KekSource {
  const value = env[prefix];
  const file = env[`${prefix}_FILE`];
  const command = env[`${prefix}_COMMAND`];
  const set = [value, file, command].filter((v) => v !== undefined && v !== '').length;
  if (set === 0) {
    throw secretError(prefix, `the spool key-encryption key is not set: set ${prefix} (base64), ${prefix}_FILE (path to a file holding it) or ${prefix}_COMMAND (a command printing it); ${HOW_TO_FIX}`);
  }
  if (set > 1) throw secretError(prefix, `set only one of ${prefix}, ${prefix}_FILE and ${prefix}_COMMAND`);
  if (value !== undefined && value !== '') return { kind: 'value', setting: prefix, value };
  if (file !== undefined && file !== '') return { kind: 'file', setting: `${prefix}_FILE`, path: file };
  const setting = `${prefix}_COMMAND`;
  return { kind: 'command', setting, argv: parseKekCommand(setting, command ?? '') };
}

const execFileAsync = promisify(execFile);

async function runCommand(argv: readonly string[], timeoutMs: number): Promise<string> {
  const [file, ...args] = argv;
  const { stdout } = await execFileAsync(file ?? '', args, { timeout: timeoutMs, maxBuffer: MAX_KEK_TEXT_BYTES, encoding: 'utf8', shell: false, windowsHide: true });
  return stdout;
}

/** Reads and validates the KEK from its source. Errors name the setting and never contain key material. */
export async function resolveKek(source: KekSource): Promise<Uint8Array> {
  switch (source.kind) {
    case 'value': {
      const kek = parseKekText(source.value);
      if (kek === null) throw secretError(source.setting, `must be ${KEK_BYTES} bytes encoded as base64 (44 characters); ${HOW_TO_FIX}`);
      return kek;
    }
    case 'file': {
      let bytes: Buffer;
      try {
        bytes = await readFile(source.path);
      } catch (err) {
        const code = (err as { code?: unknown }).code;
        throw secretError(source.setting, `cannot read the key file ${JSON.stringify(source.path)} (${typeof code === 'string' ? code : 'error'}); check the path and its permissions`, err);
      }
      if (bytes.length > MAX_KEK_TEXT_BYTES) throw secretError(source.setting, `the key file ${JSON.stringify(source.path)} is too large to be a key`);
      const kek = parseKekText(bytes.toString('latin1')) ?? (bytes.length === KEK_BYTES ? new Uint8Array(bytes) : null);
      bytes.fill(0);
      if (kek === null) throw secretError(source.setting, `the key file ${JSON.stringify(source.path)} must hold ${KEK_BYTES} bytes as base64 (or raw); ${HOW_TO_FIX}`);
      return kek;
    }
    case 'command': {
      let out: string;
      try {
        out = await runCommand(source.argv, source.timeoutMs ?? DEFAULT_KEK_COMMAND_TIMEOUT_MS);
      } catch (err) {
        // The error is not attached as a cause: it carries the command's stdout, which may hold the key.
        const e = err as { code?: unknown; killed?: unknown };
        const why = e.killed === true ? 'timed out' : typeof e.code === 'string' ? e.code : typeof e.code === 'number' ? `exit status ${e.code}` : 'failed';
        throw secretError(source.setting, `the key command ${JSON.stringify(source.argv[0] ?? '')} failed (${why}); it must print the base64 key on stdout and exit 0`);
      }
      const kek = parseKekText(out);
      if (kek === null) throw secretError(source.setting, `the key command ${JSON.stringify(source.argv[0] ?? '')} did not print ${KEK_BYTES} bytes as base64`);
      return kek;
    }
  }
}

/** Environment variable prefix of an earlier KEK still accepted during a rotation (optional). */
export const PREVIOUS_KEK_ENV = 'SEALFLOW_SPOOL_PREVIOUS_KEK';

function hasAny(env: NodeJS.ProcessEnv, prefix: string): boolean {
  return [prefix, `${prefix}_FILE`, `${prefix}_COMMAND`].some((k) => env[k] !== undefined && env[k] !== '');
}

/** The current KEK and, when SEALFLOW_SPOOL_PREVIOUS_KEK(_FILE/_COMMAND) is set, the previous one (CLI commands). */
export async function spoolKeksFromEnv(env: NodeJS.ProcessEnv): Promise<{ kek: Uint8Array; previousKeks: Uint8Array[] }> {
  const kek = await resolveKek(kekSourceFromEnv(env, KEK_ENV));
  const previousKeks = hasAny(env, PREVIOUS_KEK_ENV) ? [await resolveKek(kekSourceFromEnv(env, PREVIOUS_KEK_ENV))] : [];
  return { kek, previousKeks };
}

/** Kept here for the commands that import it from this module; see spool-location.ts. */
export { DATA_DIR_ENV } from './spool-location.js';
