import { join, resolve } from 'node:path';
import { DEFAULTS } from '../config/defaults.js';

/**
 * Where the inspection commands (`sealflow spool`, `sealflow rekey`) find the spool without
 * loading the whole configuration (which would demand Fusion credentials they do not need).
 * The rules are the configuration's: spool.dir, else <dataDir>/spool, with dataDir from
 * SEALFLOW_DATA_DIR or './.sealflow' (src/config/schema.ts), relative to the working directory.
 */
export const DATA_DIR_ENV = 'SEALFLOW_DATA_DIR';
/** The environment form of the spool.dir setting (src/config/env-layer.ts naming). */
export const SPOOL_DIR_ENV = 'SEALFLOW_SPOOL__DIR';
export const DEFAULT_DATA_DIR = DEFAULTS.dataDir;
export const SPOOL_SUBDIR = 'spool';

export interface SpoolLocationFlags {
  readonly spoolDir?: string | undefined;
  readonly dataDir?: string | undefined;
}

/** --spool-dir, else --data-dir/spool, else $SEALFLOW_SPOOL__DIR, else ($SEALFLOW_DATA_DIR or ./.sealflow)/spool. */
export function resolveSpoolDir(flags: SpoolLocationFlags, env: NodeJS.ProcessEnv, cwd: string = process.cwd()): string {
  const nonEmpty = (v: string | undefined): string | undefined => (v === undefined || v === '' ? undefined : v);
  const explicit = nonEmpty(flags.spoolDir) ?? (nonEmpty(flags.dataDir) === undefined ? nonEmpty(env[SPOOL_DIR_ENV]) : undefined);
  if (explicit !== undefined) return resolve(cwd, explicit);
  return resolve(cwd, join(nonEmpty(flags.dataDir) ?? nonEmpty(env[DATA_DIR_ENV]) ?? DEFAULT_DATA_DIR, SPOOL_SUBDIR));
}
