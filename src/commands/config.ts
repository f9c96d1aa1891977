import { stringify as toYaml } from 'yaml';
import { loadConfig } from '../config/load.js';
import { redactConfig } from '../config/redact-config.js';
import { configJsonSchema, envList, settingsMarkdown } from '../config/settings-table.js';
import { ConfigError } from '../flow/errors.js';
import { preflight } from '../preflight.js';
import type { CommandIo, CommandMain } from './command.js';
import { ExitCode, parseCommandArgs } from './command.js';

/**
 * `sealflow config check [--config PATH] [--json] [--strict]`: loads the configuration exactly
 * as `sealflow run` would (file ← SEALFLOW_* environment; with no file, the embedded `npm start`
 * configuration) and runs every check `run` runs before it binds (src/preflight.ts: files,
 * certificates and keys with the listeners' own loader, every secret resolved and parsed,
 * ports the process may not bind), then prints the effective configuration with secrets
 * redacted. Exit 0 when `run` would start, 78 (EX_CONFIG) with every problem listed when not;
 * warnings (a private file readable by others) fail only with --strict.
 *
 * `sealflow config schema [--markdown | --env]`: the JSON Schema of the config file (for
 * editors: yaml-language-server `# yaml-language-server: $schema=...`), the README settings
 * table, or the list of environment variables.
 */

const USAGE = `usage: sealflow config check [--config PATH] [--json] [--strict]
       sealflow config schema [--markdown | --env]

check   every check \`sealflow run\` makes before it binds: the configuration (file, then
        SEALFLOW_* environment), the files it names, the TLS/DTLS certificates and keys,
        every secret resolved and parsed, ports this process may not bind; all problems at
        once; then the effective configuration with secrets redacted
        --config PATH   YAML/JSON config file (default: $SEALFLOW_CONFIG; none: the
                        embedded development configuration that \`npm start\` runs)
        --json          print JSON instead of YAML
        --strict        warnings (a private key or secret file readable by others) fail too
schema  print the JSON Schema of the config file
        --markdown      print the settings table (setting, variable, default, description)
        --env           print the SEALFLOW_* environment variables and their settings
exit status: 0 \`run\` would start, 78 configuration problem(s), 64 usage error
`;

function usageError(io: CommandIo, message: string): number {
  io.stderr.write(`sealflow config: ${message}\n\n${USAGE}`);
  return ExitCode.Usage;
}

export const main: CommandMain = async (argv, io) => {
  const [sub, ...rest] = argv;
  if (sub === undefined || sub === '--help' || sub === '-h' || sub === 'help') {
    io.stdout.write(USAGE);
    return sub === undefined ? ExitCode.Usage : ExitCode.Ok;
  }
  if (sub === 'check') return check(rest, io);
  if (sub === 'schema') return schema(rest, io);
  return usageError(io, `unknown subcommand ${JSON.stringify(sub)}`);
};

function schema(argv: readonly string[], io: CommandIo): number {
  const parsed = parseCommandArgs('config', USAGE, argv, io, { markdown: { type: 'boolean' }, env: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } });
  if (typeof parsed === 'number') return parsed;
  const { values } = parsed;
  if (values.markdown === true && values.env === true) return usageError(io, '--markdown and --env are exclusive');
  if (values.markdown === true) io.stdout.write(settingsMarkdown());
  else if (values.env === true) io.stdout.write(envList());
  else io.stdout.write(JSON.stringify(configJsonSchema(), null, 2) + '\n');
  return ExitCode.Ok;
}

async function check(argv: readonly string[], io: CommandIo): Promise<number> {
  const parsed = parseCommandArgs('config', USAGE, argv, io, { config: { type: 'string', short: 'c' }, json: { type: 'boolean' }, strict: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } });
  if (typeof parsed === 'number') return parsed;
  const { values } = parsed;
  let loaded;
  try {
    loaded = await loadConfig({ configPath: values.config, env: io.env, embeddedWhenNoFile: true });
  } catch (err) {
    if (err instanceof ConfigError) {
      io.stderr.write(`sealflow config check: ${err.message}\n`);
      return ExitCode.Config;
    }
    throw err;
  }
  const { report, secrets } = await preflight(loaded, { env: io.env, developmentFilesCreated: false });
  for (const k of secrets?.keks ?? []) k.fill(0);
  secrets?.adminToken?.fill(0);
  for (const w of report.warnings) io.stderr.write(`sealflow config check: warning: ${w}\n`);
  const failing = values.strict === true ? [...report.problems, ...report.warnings] : report.problems;
  // One line per problem, all of them: each names its setting and the fix.
  for (const p of report.problems) io.stderr.write(`sealflow config check: ${p}\n`);
  if (failing.length > 0) return ExitCode.Config;
  const header = [
    `# sealflow effective configuration (secrets redacted)`,
    `# base: ${loaded.configPath !== null ? `config file ${loaded.configPath}` : loaded.embedded ? 'embedded development configuration (no config file)' : 'schema defaults'}`,
    ...[...loaded.origins].map(([path, origin]) => `# ${path} set by ${origin}`),
    ...report.notes.map((n) => `# ${n}`),
  ];
  const redacted = redactConfig(loaded.config);
  if (values.json === true) io.stdout.write(JSON.stringify(redacted, null, 2) + '\n');
  else io.stdout.write(header.join('\n') + '\n' + toYaml(redacted, { lineWidth: 0 }));
  return ExitCode.Ok;
}
