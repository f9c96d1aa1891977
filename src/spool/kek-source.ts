import { resolveSecret, type ResolveSecretOptions } from '../config/secrets.js';
import type { SecretSource } from '../config/schema.js';
import { ConfigError, ConfigErrorCode } from '../flow/errors.js';
import { parseBase64Key } from '../flow/key-text.js';

/**
 * The spool's key-encryption key (KEK): its one format and the one way to read it, whatever
 * the source ({env}, {file}, {command} through src/config/secrets.ts, or the shortcuts
 * SEALFLOW_SPOOL_KEK[_FILE|_COMMAND] that the configuration maps onto spool.kek) and whichever
 * command needs it (`run`, `spool`, `rekey`, `drain`, `config check`). The KEK never touches the
 * spool's disk: it is held in memory.
 *
 * Format: 32 bytes as base64 (standard or URL-safe alphabet, padding optional), on one line;
 * surrounding whitespace and lines starting with `#` are ignored (the development key that
 * `npm start` writes begins with such a warning line). A file may instead hold the 32 raw bytes.
 */

export const KEK_BYTES = 32;
/** Environment variable prefix of the spool KEK (the value itself, _FILE, _COMMAND). */
export const KEK_ENV = 'SEALFLOW_SPOOL_KEK';
/** Environment variable prefix of an earlier KEK still accepted during a rotation. */
export const PREVIOUS_KEK_ENV = 'SEALFLOW_SPOOL_PREVIOUS_KEK';
/** Environment variable prefix of the new KEK for `sealflow rekey`. */
export const NEW_KEK_ENV = 'SEALFLOW_SPOOL_NEW_KEK';

const HOW_TO_FIX = "expected 32 bytes as base64 on one line, as printed by 'sealflow keygen' (lines starting with # are ignored)";

/** Decodes a base64 KEK; null when it is not exactly 32 bytes of valid base64. */
export function parseKekText(text: string): Uint8Array | null {
  return parseBase64Key(text, KEK_BYTES);
}

/**
 * The KEK in a secret's bytes as stored (whitespace included). Throws ConfigError naming
 * `setting`; the message never contains key material.
 */
export function parseKekSecret(bytes: Uint8Array, setting: string): Uint8Array {
  const lines = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('latin1').split(/\r?\n/);
  const text = lines.filter((l) => !l.trimStart().startsWith('#')).join('');
  // 32 bytes that are not base64 text are a raw key (base64 of 32 bytes is 43 or more characters).
  const kek = parseKekText(text) ?? (bytes.length === KEK_BYTES ? new Uint8Array(bytes) : null);
  if (kek === null) throw new ConfigError(ConfigErrorCode.Secret, setting, `${setting}: not a valid key-encryption key; ${HOW_TO_FIX}`);
  return kek;
}

/** Reads and parses a KEK from its source. */
export async function resolveKek(source: SecretSource, setting: string, options: ResolveSecretOptions = {}): Promise<Uint8Array> {
  const bytes = await resolveSecret(source, setting, { ...options, keepWhitespace: true });
  try {
    return parseKekSecret(bytes, setting);
  } finally {
    bytes.fill(0);
  }
}

/** The spool slice of the configuration that names its keys. */
export interface SpoolKeySettings {
  readonly kek?: SecretSource | undefined;
  readonly previousKeks: readonly SecretSource[];
}

/** ResolveSecretOptions, plus the variables that set settings (LoadedConfig.origins) to name them in errors. */
export interface SpoolKeyOptions extends ResolveSecretOptions {
  readonly origins?: ReadonlyMap<string, string>;
}

/** The current KEK (spool.kek) and the earlier ones still accepted (spool.previousKeks). */
export async function resolveSpoolKeks(spool: SpoolKeySettings, options: SpoolKeyOptions = {}): Promise<{ kek: Uint8Array; previousKeks: Uint8Array[] }> {
  const label = (path: string, name = path): string => {
    const origin = options.origins?.get(path);
    return origin === undefined ? name : `${name} (from ${origin})`;
  };
  if (spool.kek === undefined) {
    throw new ConfigError(
      ConfigErrorCode.Secret,
      'spool.kek',
      `spool.kek: no key-encryption key configured; set ${KEK_ENV}_FILE (or ${KEK_ENV} / ${KEK_ENV}_COMMAND, or spool.kek in the config) to a key made with 'sealflow keygen'`,
    );
  }
  const kek = await resolveKek(spool.kek, label('spool.kek'), options);
  const previousKeks: Uint8Array[] = [];
  for (const [i, source] of spool.previousKeks.entries()) previousKeks.push(await resolveKek(source, label('spool.previousKeks', `spool.previousKeks[${i}]`), options));
  return { kek, previousKeks };
}
