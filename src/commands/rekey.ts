import type { CommandIo, CommandMain } from './command.js';
import { ExitCode, parseCommandArgs } from './command.js';
import { isSealflowError } from '../flow/errors.js';
import { KEK_ENV, NEW_KEK_ENV, kekSourceFromEnv, resolveKek, spoolKeksFromEnv } from '../spool/kek-source.js';
import { DATA_DIR_ENV, DEFAULT_DATA_DIR, SPOOL_DIR_ENV, resolveSpoolDir } from '../spool/spool-location.js';
import { Spool } from '../spool/spool.js';

const HELP = `usage: sealflow rekey (--new-kek-file PATH | with ${NEW_KEK_ENV}[_FILE|_COMMAND] set) [--data-dir DIR | --spool-dir DIR]

Rewraps the spool key and every epoch data key under a new key-encryption key. The current
KEK comes from ${KEK_ENV}, ${KEK_ENV}_FILE or ${KEK_ENV}_COMMAND. Batches are not
re-encrypted (their data keys do not change), so this is quick at any spool size.

Rotation without downtime:
  1. sealflow keygen > new.kek (into your secret manager)
  2. run the probe with the new KEK as current and the old one as previous
     (SEALFLOW_SPOOL_PREVIOUS_KEK...): new epochs are wrapped with the new KEK
  3. sealflow rekey --new-kek-file new.kek     (old KEK in ${KEK_ENV}...)
  4. drop the previous KEK from the configuration

options:
  --new-kek-file PATH   file holding the new KEK (base64)
  --data-dir DIR        the data directory; the spool is DIR/spool (as for \`sealflow run\`)
  --spool-dir DIR       the spool directory itself (the spool.dir setting)
                        default: $${SPOOL_DIR_ENV}, else ($${DATA_DIR_ENV} or ${DEFAULT_DATA_DIR})/spool
  -h, --help
Exit codes: 0 ok, 64 usage, 66 no spool, 78 key/config problem.
`;

function errorExit(io: CommandIo, err: unknown): number {
  const e = err as { message?: unknown };
  io.stderr.write(`sealflow rekey: ${String(e.message ?? err)}\n`);
  if (!isSealflowError(err)) return ExitCode.Software;
  if (err.code.startsWith('ERR_CONFIG') || err.code === 'ERR_SPOOL_KEY') return ExitCode.Config;
  if (err.code === 'ERR_SPOOL_IO') return ExitCode.NoInput;
  return ExitCode.Software;
}

export const main: CommandMain = async (argv, io) => {
  const parsed = parseCommandArgs('rekey', HELP, argv, io, { 'new-kek-file': { type: 'string' }, 'data-dir': { type: 'string' }, 'spool-dir': { type: 'string' }, help: { type: 'boolean', short: 'h' } });
  if (typeof parsed === 'number') return parsed;
  const { values } = parsed;
  const dir = resolveSpoolDir({ spoolDir: values['spool-dir'], dataDir: values['data-dir'] }, io.env);
  let spool: Spool;
  try {
    const newFile = values['new-kek-file'];
    const newKek = await resolveKek(newFile !== undefined ? { kind: 'file', setting: '--new-kek-file', path: newFile } : kekSourceFromEnv(io.env, NEW_KEK_ENV));
    const { kek, previousKeks } = await spoolKeksFromEnv(io.env);
    spool = await Spool.open({ dir, kek: newKek, previousKeks: [kek, ...previousKeks], create: false });
  } catch (err) {
    return errorExit(io, err);
  }
  try {
    const n = spool.inspector.rewrapAll();
    io.stderr.write(`sealflow rekey: spool key and ${n} epoch keys rewrapped under the new KEK; configure it as ${KEK_ENV} and retire the old one\n`);
    return ExitCode.Ok;
  } catch (err) {
    return errorExit(io, err);
  } finally {
    spool.close();
  }
};
