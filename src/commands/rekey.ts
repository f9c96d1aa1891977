import type { CommandMain } from './command.js';
import { ExitCode, parseCommandArgs } from './command.js';
import { shortcutSource } from '../config/env-layer.js';
import { SecretSourceSchema, type SecretSource } from '../config/schema.js';
import { ConfigError, ConfigErrorCode } from '../flow/errors.js';
import { KEK_ENV, NEW_KEK_ENV, resolveKek } from '../spool/kek-source.js';
import type { Spool } from '../spool/spool.js';
import { loadSpoolCommandConfig, openConfiguredSpool, SPOOL_KEY_HELP, SPOOL_LOCATION_ARGS, SPOOL_LOCATION_OPTIONS, spoolCommandExit } from './spool-access.js';

const HELP = `usage: sealflow rekey (--new-kek-file PATH | with ${NEW_KEK_ENV}[_FILE|_COMMAND] set) [options]

Rewraps the spool key and every epoch data key under a new key-encryption key. Batches are
not re-encrypted (their data keys do not change), so this is quick at any spool size.

Rotation without downtime:
  1. sealflow keygen > new.kek (into your secret manager)
  2. run the probe with the new KEK as current and the old one as previous
     (spool.previousKeks, or SEALFLOW_SPOOL_PREVIOUS_KEK...): new epochs are wrapped with the new KEK
  3. sealflow rekey --new-kek-file new.kek     (the old KEK as spool.kek / ${KEK_ENV}...)
  4. drop the previous KEK from the configuration

options:
  --new-kek-file PATH   file holding the new KEK (base64)
${SPOOL_LOCATION_OPTIONS}
  -h, --help
${SPOOL_KEY_HELP}
Exit codes: 0 ok, 64 usage, 66 no spool, 78 key/config problem.
`;

/** The new KEK's source: --new-kek-file, else SEALFLOW_SPOOL_NEW_KEK[_FILE|_COMMAND]. */
function newKekSource(file: string | undefined, env: NodeJS.ProcessEnv): { source: SecretSource; setting: string } {
  if (file !== undefined) return { source: { file }, setting: '--new-kek-file' };
  const found = shortcutSource(env, NEW_KEK_ENV);
  if (found === null) {
    throw new ConfigError(ConfigErrorCode.Secret, NEW_KEK_ENV, `${NEW_KEK_ENV}: no new key-encryption key; give --new-kek-file PATH or set ${NEW_KEK_ENV}, ${NEW_KEK_ENV}_FILE or ${NEW_KEK_ENV}_COMMAND (make one with 'sealflow keygen')`);
  }
  const source = SecretSourceSchema.safeParse(found.source);
  if (!source.success) throw new ConfigError(ConfigErrorCode.Secret, found.variable, `${found.variable}: ${source.error.issues[0]?.message ?? 'not a secret source'}`);
  return { source: source.data, setting: found.variable };
}

export const main: CommandMain = async (argv, io) => {
  const parsed = parseCommandArgs('rekey', HELP, argv, io, { 'new-kek-file': { type: 'string' }, ...SPOOL_LOCATION_ARGS, help: { type: 'boolean', short: 'h' } });
  if (typeof parsed === 'number') return parsed;
  const { values } = parsed;
  let spool: Spool;
  try {
    const next = newKekSource(values['new-kek-file'], io.env);
    const newKek = await resolveKek(next.source, next.setting, { env: io.env });
    spool = await openConfiguredSpool(await loadSpoolCommandConfig(values, io, false), io, { readOnly: false, newKek });
  } catch (err) {
    return spoolCommandExit('rekey', io, err);
  }
  try {
    const n = spool.inspector.rewrapAll();
    io.stderr.write(`sealflow rekey: spool key and ${n} epoch keys rewrapped under the new KEK; configure it as spool.kek (or ${KEK_ENV}...) and retire the old one\n`);
    return ExitCode.Ok;
  } catch (err) {
    return spoolCommandExit('rekey', io, err);
  } finally {
    spool.close();
  }
};
