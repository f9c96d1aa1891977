import { resolveSecret, type ResolveSecretOptions } from '../config/secrets.js';
import type { SecretSource } from '../config/schema.js';
import { ConfigError, ConfigErrorCode } from '../flow/errors.js';
import { parseBase64Key } from '../flow/key-text.js';

/**
 * Reading the master pseudonymisation key from its secret source (privacy.pseudonymize.key,
 * or SEALFLOW_PSEUDONYMIZE_KEY / _FILE / _COMMAND): the same sources and text format as the
 * spool KEK — 32 bytes as base64, lines starting with '#' ignored (a banner) — resolved by
 * the one secret reader (src/config/secrets.ts), so the key is never a configuration value,
 * never logged, and never written by sealflow anywhere. A bridge from the configuration,
 * called only by composition roots (the commands).
 */

export const PSEUDONYMIZE_KEY_BYTES = 32;
export const PSEUDONYMIZE_KEY_ENV = 'SEALFLOW_PSEUDONYMIZE_KEY';
export const PSEUDONYMIZE_KEY_SETTING = 'privacy.pseudonymize.key';

export async function resolvePseudonymizeKey(source: SecretSource, options: ResolveSecretOptions = {}, setting = PSEUDONYMIZE_KEY_SETTING): Promise<Uint8Array> {
  const bytes = await resolveSecret(source, setting, options);
  const text = bytes.toString('utf8').split('\n').filter((l) => !l.trimStart().startsWith('#')).join('').trim();
  bytes.fill(0);
  const key = parseBase64Key(text, PSEUDONYMIZE_KEY_BYTES);
  if (key === null) {
    throw new ConfigError(ConfigErrorCode.Secret, setting, `${setting}: not a valid pseudonymisation key (expected ${PSEUDONYMIZE_KEY_BYTES} bytes as base64, as printed by 'sealflow keygen --purpose pseudonymize')`);
  }
  return key;
}
