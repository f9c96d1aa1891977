import { execFile } from 'node:child_process';
import { readFile, stat } from 'node:fs/promises';
import { ConfigError, ConfigErrorCode } from '../flow/errors.js';
import type { SecretSource } from './schema.js';

/**
 * Resolving secret sources ({env}, {file}, {command}) into bytes, at the moment a component
 * needs them. Invariants: the secret value never appears in an error, a warning or a log
 * line (errors name the setting and the source, e.g. the file path or argv[0]); a command
 * runs without a shell, with a timeout and a capped output size, and with a minimal
 * environment — PATH, LANG and the variables its own setting names (passEnv) — so no other
 * secret of the probe's environment (a KEK in SEALFLOW_SPOOL_KEK) reaches it; surrounding
 * whitespace is trimmed (keys and netosecrets are text: base64 / base64url) unless the caller
 * asks for the bytes as stored; an empty result is an error.
 */

export type { SecretSource } from './schema.js';

/** A KMS/TPM helper that takes longer than this is treated as failed (start must not hang). */
export const SECRET_COMMAND_TIMEOUT_MS = 10_000;
/** Secrets are short text (a 32-byte key in base64 is 44 bytes); more output is a mistake, not a key. */
export const MAX_SECRET_BYTES = 64 * 1024;
/** Group/other permission bits: a secret file readable by them is reported (not refused: containers mount them 0444). */
const GROUP_OTHER_BITS = 0o077;

export interface ResolveSecretOptions {
  /** Environment for {env} sources (default: process.env). */
  readonly env?: NodeJS.ProcessEnv;
  /** Called with a message naming the setting when a secret file is group/other-accessible. */
  readonly warn?: (message: string) => void;
  readonly timeoutMs?: number;
  /** Return the bytes as stored, surrounding whitespace included (a binary key file). Default false. */
  readonly keepWhitespace?: boolean;
}

/** PATH for a secret command when the probe's environment has none. */
const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** The environment a secret command runs with: PATH, LANG and the variables its setting names. */
export function secretCommandEnvironment(passEnv: readonly string[] | undefined, env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = { PATH: env.PATH ?? DEFAULT_PATH };
  for (const name of ['LANG', ...(passEnv ?? [])]) {
    const v = env[name];
    if (v !== undefined) out[name] = v;
  }
  return out;
}

/**
 * The warning for a private file (secret, private key) that group or other users may access,
 * or null. Reported, not refused: containers and Kubernetes mount secrets 0444 / 0644.
 */
export function groupOtherModeWarning(path: string, setting: string, mode: number): string | null {
  if ((mode & GROUP_OTHER_BITS) === 0) return null;
  const octal = (mode & 0o777).toString(8).padStart(3, '0');
  return `${setting}: secret file ${path} has mode ${octal} and is readable by group/other users; chmod 600 it (or 400)`;
}

/** A printable description of where a secret comes from, with command arguments hidden. */
export function describeSecretSource(source: SecretSource): string {
  if ('env' in source) return `environment variable ${source.env}`;
  if ('file' in source) return `file ${source.file}`;
  return `command ${source.command[0] ?? ''}`;
}

function secretError(setting: string, message: string, cause?: unknown): ConfigError {
  return new ConfigError(ConfigErrorCode.Secret, setting, `${setting}: ${message}`, {}, cause === undefined ? undefined : { cause });
}

function trimmed(setting: string, where: string, raw: Buffer, keepWhitespace = false): Buffer {
  let start = 0;
  let end = raw.length;
  // ASCII whitespace only: 0x09-0x0d and space.
  const ws = (b: number | undefined): boolean => b === 0x20 || (b !== undefined && b >= 0x09 && b <= 0x0d);
  while (start < end && ws(raw[start])) start++;
  while (end > start && ws(raw[end - 1])) end--;
  if (end === start) throw secretError(setting, `${where} is empty`);
  return keepWhitespace ? Buffer.from(raw) : Buffer.from(raw.subarray(start, end));
}

/** Resolves a secret source into its bytes. Throws ConfigError (code ERR_CONFIG_SECRET) naming `setting`. */
export async function resolveSecret(source: SecretSource, setting: string, options: ResolveSecretOptions = {}): Promise<Buffer> {
  if ('env' in source) {
    const value = (options.env ?? process.env)[source.env];
    if (value === undefined) throw secretError(setting, `environment variable ${source.env} is not set`);
    return trimmed(setting, `environment variable ${source.env}`, Buffer.from(value, 'utf8'));
  }
  if ('file' in source) return resolveFile(source.file, setting, options);
  return resolveCommand(source.command, source.passEnv, setting, options);
}

async function resolveFile(path: string, setting: string, options: ResolveSecretOptions): Promise<Buffer> {
  let info;
  try {
    info = await stat(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw secretError(setting, `secret file ${path} does not exist`, err);
    if (code === 'EACCES') throw secretError(setting, `secret file ${path} is not readable by this user`, err);
    throw secretError(setting, `cannot access secret file ${path} (${code ?? 'error'})`, err);
  }
  if (!info.isFile()) throw secretError(setting, `secret file ${path} is not a regular file`);
  if (info.size > MAX_SECRET_BYTES) throw secretError(setting, `secret file ${path} is larger than ${MAX_SECRET_BYTES} bytes; it is not a secret`);
  const modeWarning = groupOtherModeWarning(path, setting, info.mode);
  if (modeWarning !== null) options.warn?.(modeWarning);
  let raw: Buffer;
  try {
    raw = await readFile(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EACCES') throw secretError(setting, `secret file ${path} is not readable by this user`, err);
    throw secretError(setting, `cannot read secret file ${path} (${code ?? 'error'})`, err);
  }
  try {
    return trimmed(setting, `secret file ${path}`, raw, options.keepWhitespace);
  } finally {
    raw.fill(0);
  }
}

function resolveCommand(argv: readonly string[], passEnv: readonly string[] | undefined, setting: string, options: ResolveSecretOptions): Promise<Buffer> {
  const [file, ...args] = argv;
  if (file === undefined) return Promise.reject(secretError(setting, 'secret command is empty'));
  const timeout = options.timeoutMs ?? SECRET_COMMAND_TIMEOUT_MS;
  return new Promise((resolve, reject) => {
    execFile(
      file,
      args,
      { encoding: 'buffer', timeout, maxBuffer: MAX_SECRET_BYTES, shell: false, windowsHide: true, env: secretCommandEnvironment(passEnv, options.env ?? process.env) },
      (err, stdout) => {
        if (err !== null) {
          // Never include stdout/stderr: a failing helper may have printed part of the secret.
          const e = err as { killed?: boolean; code?: unknown };
          let why: string;
          if (e.code === 'ENOENT') why = 'was not found (give an absolute path or fix PATH)';
          else if (e.code === 'EACCES') why = 'is not executable';
          else if (e.killed === true) why = `did not finish within ${timeout} ms`;
          else if (e.code === 'ERR_CHILD_PROCESS_STDIO_MAXBUFFER') why = `printed more than ${MAX_SECRET_BYTES} bytes`;
          else if (typeof e.code === 'number') why = `exited with status ${e.code}`;
          else why = 'failed';
          reject(secretError(setting, `secret command ${file} ${why}`));
          return;
        }
        try {
          resolve(trimmed(setting, `output of secret command ${file}`, stdout, options.keepWhitespace));
        } catch (trimErr) {
          reject(trimErr instanceof Error ? trimErr : new Error(String(trimErr)));
        } finally {
          stdout.fill(0);
        }
      },
    );
  });
}
