import type Database from 'better-sqlite3';
import { AuditTrail } from '../audit/trail.js';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfig, type ConfigOverrides, type LoadedConfig } from '../config/load.js';
import { ConfigError, ConfigErrorCode, isSealflowError } from '../flow/errors.js';
import { KEK_ENV, resolveSpoolKeks } from '../spool/kek-source.js';
import { Spool } from '../spool/spool.js';
import { SPOOL_DB_FILE } from '../spool/store.js';
import type { CommandIo } from './command.js';
import { ExitCode } from './command.js';

/**
 * How the commands that work on a spool beside the probe (`spool`, `rekey`, `drain`) find it
 * and its keys: the configuration exactly as `sealflow run` loads it — `--config` or
 * $SEALFLOW_CONFIG, else the embedded development configuration of `npm start` (data
 * directory ./.sealflow, its development KEK) — then the SEALFLOW_* variables, then
 * `--data-dir` / `--spool-dir`. So after `npm start`, `sealflow spool status` in the same
 * directory needs no flags and reports the quota the probe runs with.
 */

export const SPOOL_LOCATION_OPTIONS = `  --config PATH    the configuration \`sealflow run\` uses (default: $SEALFLOW_CONFIG; with
                   neither, the development setup of \`npm start\`: ./.sealflow and its dev key)
  --data-dir DIR   the data directory; the spool is DIR/spool (overrides dataDir)
  --spool-dir DIR  the spool directory itself (overrides spool.dir)`;

export const SPOOL_KEY_HELP = `The key-encryption key is spool.kek of the configuration, or SEALFLOW_SPOOL_KEK[_FILE|_COMMAND];
during a rotation also spool.previousKeks, or SEALFLOW_SPOOL_PREVIOUS_KEK[_FILE|_COMMAND].`;

export interface SpoolLocationFlags {
  readonly config?: string | undefined;
  readonly 'data-dir'?: string | undefined;
  readonly 'spool-dir'?: string | undefined;
}

/** The parseArgs table entries for SpoolLocationFlags. */
export const SPOOL_LOCATION_ARGS = {
  config: { type: 'string' },
  'data-dir': { type: 'string' },
  'spool-dir': { type: 'string' },
} as const;

/**
 * Loads the configuration for a spool command. `needsFusion`: the command uploads (drain), so
 * a missing Fusion key is a configuration problem; the inspection commands do not need one.
 */
export function loadSpoolCommandConfig(flags: SpoolLocationFlags, io: CommandIo, needsFusion: boolean): Promise<LoadedConfig> {
  const overrides: ConfigOverrides = {
    ...(flags['data-dir'] === undefined ? {} : { dataDir: flags['data-dir'] }),
    ...(flags['spool-dir'] === undefined ? {} : { spool: { dir: flags['spool-dir'] } }),
  };
  return loadConfig({
    configPath: flags.config,
    env: io.env,
    overrides,
    overridesOrigin: 'command-line flags',
    embeddedWhenNoFile: true,
    compileFilters: null,
    checkDrainCredentials: needsFusion,
  });
}

/** Opens the configured spool (never creates one) with the configured keys and quota. */
export async function openConfiguredSpool(loaded: LoadedConfig, io: CommandIo, options: { readonly readOnly: boolean; readonly newKek?: Uint8Array }): Promise<Spool> {
  const c = loaded.config;
  if (!existsSync(join(c.spool.dir, SPOOL_DB_FILE))) {
    const hint = loaded.embedded ? ' (the development setup of `npm start` in this directory; pass --config for a production one)' : '';
    throw new SpoolNotFound(`no spool at ${c.spool.dir}${hint}: check spool.dir / dataDir, --data-dir or --spool-dir`);
  }
  const devKek = loaded.embedded && !loaded.origins.has('spool.kek') && c.spool.kek !== undefined && 'file' in c.spool.kek ? c.spool.kek.file : null;
  if (devKek !== null && !existsSync(devKek)) {
    throw new ConfigError(
      ConfigErrorCode.Secret,
      'spool.kek',
      `spool.kek: no key-encryption key configured: no --config or SEALFLOW_CONFIG, no ${KEK_ENV}[_FILE|_COMMAND], and no development key ${devKek} of \`npm start\`; pass the configuration \`sealflow run\` uses, or set ${KEK_ENV}_FILE`,
    );
  }
  const { kek, previousKeks } = await resolveSpoolKeks(c.spool, { env: io.env, warn: (m) => io.stderr.write(`warning: ${m}\n`), origins: loaded.origins });
  const keks = options.newKek === undefined ? { kek, previousKeks } : { kek: options.newKek, previousKeks: [kek, ...previousKeks] };
  // A writing command (rekey, drain) records what it does in the audit trail, as the probe does.
  return Spool.open({ dir: c.spool.dir, ...keks, create: false, readOnly: options.readOnly, quotaBytes: c.spool.quotaBytes, ...(options.readOnly ? {} : { audit: (db: Database.Database) => new AuditTrail(db) }) });
}

class SpoolNotFound extends Error {}

/** A configuration, key or missing-spool problem (spoolCommandExit maps it to 78 or 66). */
export function isSpoolAccessProblem(err: unknown): boolean {
  return err instanceof SpoolNotFound || (isSealflowError(err) && (err.code.startsWith('ERR_CONFIG') || err.code === 'ERR_SPOOL_KEY' || err.code === 'ERR_SPOOL_IO'));
}

/** Prints the problem and maps it to an exit code: 78 configuration/key, 66 no spool, 65 format, 70 else. */
export function spoolCommandExit(command: string, io: CommandIo, err: unknown): number {
  const e = err as { message?: unknown };
  io.stderr.write(`sealflow ${command}: ${String(e.message ?? err)}\n`);
  if (err instanceof SpoolNotFound) return ExitCode.NoInput;
  if (!isSealflowError(err)) return ExitCode.Software;
  if (err.code.startsWith('ERR_CONFIG') || err.code === 'ERR_SPOOL_KEY') return ExitCode.Config;
  if (err.code === 'ERR_SPOOL_IO') return ExitCode.NoInput;
  if (err.code === 'ERR_SPOOL_FORMAT') return ExitCode.DataErr;
  return ExitCode.Software;
}
