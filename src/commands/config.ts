import { X509Certificate } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { stringify as toYaml } from 'yaml';
import { loadConfig, type LoadedConfig } from '../config/load.js';
import { redactConfig } from '../config/redact-config.js';
import { describeSecretSource, resolveSecret, type SecretSource } from '../config/secrets.js';
import { configJsonSchema, envList, settingsMarkdown } from '../config/settings-table.js';
import { ConfigError, ConfigErrorCode } from '../flow/errors.js';
import { ExporterTrust, trustSettingsFromConfig } from '../ingest/trust/exporter-trust.js';
import type { CommandIo, CommandMain } from './command.js';
import { ExitCode, parseCommandArgs } from './command.js';

/**
 * `sealflow config check [--config PATH] [--json]`: loads the configuration exactly as
 * `sealflow run` would (file ← SEALFLOW_* environment; with no file, the embedded `npm start`
 * configuration), resolves every secret source and loads the TLS/DTLS certificates, keys, CA
 * bundles and CRLs with the listeners' own loader to prove they are usable, and prints the effective
 * configuration with secrets redacted. Exit 0 when valid, 78 (EX_CONFIG) with every problem
 * listed when not.
 *
 * `sealflow config schema [--markdown | --env]`: the JSON Schema of the config file (for
 * editors: yaml-language-server `# yaml-language-server: $schema=...`), the README settings
 * table, or the list of environment variables.
 */

const USAGE = `usage: sealflow config check [--config PATH] [--json]
       sealflow config schema [--markdown | --env]

check   validate the configuration (file, then SEALFLOW_* environment), resolve every
        secret source, load the TLS/DTLS certificates and keys, print the effective
        configuration with secrets redacted
        --config PATH   YAML/JSON config file (default: $SEALFLOW_CONFIG; none: the
                        embedded development configuration that \`npm start\` runs)
        --json          print JSON instead of YAML
schema  print the JSON Schema of the config file
        --markdown      print the settings table (setting, variable, default, description)
        --env           print the SEALFLOW_* environment variables and their settings
exit status: 0 valid, 78 invalid configuration, 64 usage error
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

interface SecretSetting {
  readonly setting: string;
  readonly source: SecretSource;
}

function secretSettings(loaded: LoadedConfig): SecretSetting[] {
  const c = loaded.config;
  const out: SecretSetting[] = [];
  if (c.spool.kek !== undefined) out.push({ setting: 'spool.kek', source: c.spool.kek });
  c.spool.previousKeks.forEach((s, i) => out.push({ setting: `spool.previousKeks[${i}]`, source: s }));
  if (c.drain.enabled && !c.drain.fusion.embeddedSim && c.drain.fusion.netosecret !== undefined) {
    out.push({ setting: 'drain.fusion.netosecret', source: c.drain.fusion.netosecret });
  }
  if (c.admin.enabled && c.admin.token !== undefined) out.push({ setting: 'admin.token', source: c.admin.token });
  return out;
}

/**
 * Loads the TLS/DTLS trust material exactly as the listeners will (same loader, same checks:
 * key matches certificate, CA bundle parses, CRLs parse, identities valid), and the Fusion CA
 * bundle. Throws ConfigError naming the setting. Returns notes for the header.
 */
function checkCertificates(loaded: LoadedConfig): string[] {
  const c = loaded.config;
  const notes: string[] = [];
  for (const kind of ['tls', 'dtls'] as const) {
    const l = c.listeners[kind];
    if (!l.enabled) continue;
    const files = [l.certFile, l.keyFile, l.caFile];
    if (c.development.generatePki && files.some((f) => f === undefined || !existsSync(f))) {
      notes.push(`listeners.${kind}: development PKI will be created on first start`);
      continue;
    }
    ExporterTrust.load(trustSettingsFromConfig(l), `listeners.${kind}`);
    notes.push(`listeners.${kind}: certificate, key, CA bundle and ${l.crlFiles.length} CRL file(s) ok`);
  }
  const caFile = c.drain.fusion.caFile;
  if (c.drain.enabled && caFile !== undefined) {
    let pem: string;
    try {
      pem = readFileSync(caFile, 'utf8');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? 'error';
      throw new ConfigError(ConfigErrorCode.Certificate, 'drain.fusion.caFile', `drain.fusion.caFile: cannot read ${caFile} (${code})`, {}, { cause: err });
    }
    try {
      new X509Certificate(pem);
    } catch (err) {
      throw new ConfigError(ConfigErrorCode.Certificate, 'drain.fusion.caFile', `drain.fusion.caFile: ${caFile} does not start with a PEM certificate`, {}, { cause: err });
    }
    notes.push('drain.fusion.caFile: ok');
  }
  return notes;
}

async function check(argv: readonly string[], io: CommandIo): Promise<number> {
  const parsed = parseCommandArgs('config', USAGE, argv, io, { config: { type: 'string', short: 'c' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } });
  if (typeof parsed === 'number') return parsed;
  const { values } = parsed;
  const warn = (message: string): void => {
    io.stderr.write(`sealflow config check: warning: ${message}\n`);
  };
  try {
    const loaded = await loadConfig({ configPath: values.config, env: io.env, embeddedWhenNoFile: true });
    for (const w of loaded.warnings) warn(w);
    const notes: string[] = [];
    for (const { setting, source } of secretSettings(loaded)) {
      const devKek = setting === 'spool.kek' && loaded.config.development.generateKek && 'file' in source && !existsSync(source.file);
      if (devKek) {
        notes.push(`secret ${setting}: development key ${describeSecretSource(source)} will be created on first start`);
        continue;
      }
      await resolveSecret(source, setting, { env: io.env, warn });
      notes.push(`secret ${setting}: ok (${describeSecretSource(source)})`);
    }
    notes.push(...checkCertificates(loaded));
    const header = [
      `# sealflow effective configuration (secrets redacted)`,
      `# base: ${loaded.configPath !== null ? `config file ${loaded.configPath}` : loaded.embedded ? 'embedded development configuration (no config file)' : 'schema defaults'}`,
      ...[...loaded.origins].map(([path, origin]) => `# ${path} set by ${origin}`),
      ...notes.map((n) => `# ${n}`),
    ];
    const redacted = redactConfig(loaded.config);
    if (values.json === true) io.stdout.write(JSON.stringify(redacted, null, 2) + '\n');
    else io.stdout.write(header.join('\n') + '\n' + toYaml(redacted, { lineWidth: 0 }));
    return ExitCode.Ok;
  } catch (err) {
    if (err instanceof ConfigError) {
      io.stderr.write(`sealflow config check: ${err.message}\n`);
      return ExitCode.Config;
    }
    throw err;
  }
}
