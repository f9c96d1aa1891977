import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CANARY_HOLD_REASON, defaultReportDir, runAttest, type AttestReport } from '../attest/attest.js';
import type { ResolvedSecret } from '../attest/posture.js';
import { renderAttestHtml } from '../attest/report-html.js';
import { parsePublicKey, signingReady } from '../audit/device-key.js';
import { verifyDocument, type Signed } from '../audit/notary.js';
import { loadDeviceKey } from '../audit/signing-key-source.js';
import { loadConfig } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { resolveSecret } from '../config/secrets.js';
import { ConfigError, ConfigErrorCode, isSealflowError } from '../flow/errors.js';
import { createLogger } from '../observability/logger.js';
import { parseKekSecret } from '../spool/kek-source.js';
import { parseBase64Key } from '../flow/key-text.js';
import { PSEUDONYMIZE_KEY_BYTES, PSEUDONYMIZE_KEY_SETTING } from '../privacy/key-source.js';
import type { CommandIo, CommandMain } from './command.js';
import { ExitCode, parseCommandArgs } from './command.js';

const HELP = `usage: sealflow attest [--config PATH] [--data-dir DIR] [--out DIR] [--scan PATH]... [--pid PID]...
       sealflow attest verify --pubkey KEY REPORT.json

Self-attestation against the live configuration and data directory: checks the posture (core
dumps, secrets in argv or readable files, development keys, admin endpoint, UDP allowlist,
TLS/DTLS floors, quota and retention), sends canary records over loopback through a real
ingest worker into the spool (held: never uploaded), scans every file of the data directory
(and each --scan path, e.g. log files) for the canaries in every encoding, then removes them
and destroys their key epoch. Safe beside a running probe.

Writes a signed JSON report and a one-page HTML report to --out (default DATA_DIR/attest/),
records the run in the audit trail, and prints the verdict.

options:
  --config PATH   configuration file (default: $SEALFLOW_CONFIG, else the embedded setup)
  --data-dir DIR  data directory
  --out DIR       where the reports go
  --scan PATH     also scan this file or directory (repeatable)
  --pid PID       the probe's process id for the core-dump check (default: the processes
                  holding the spool database open; none: this process's own limits)
  --pubkey KEY    (verify) the device's public key: base64, PEM, or a file holding one
Exit codes: 0 passed, 1 findings (or verify failed), 64 usage, 78 key/config problem.
`;

/** Every configured secret, resolved (for the argv and file checks), the KEKs and the pseudonymisation key parsed. */
async function resolveAll(config: Config, env: NodeJS.ProcessEnv, warn: (m: string) => void): Promise<{ secrets: ResolvedSecret[]; keks: Uint8Array[]; pseudonymizeKey: Uint8Array | null }> {
  const list: { setting: string; source: NonNullable<Config['spool']['kek']> }[] = [];
  if (config.spool.kek === undefined) throw new ConfigError(ConfigErrorCode.Secret, 'spool.kek', 'spool.kek: no key-encryption key configured (the canary run writes to the spool)');
  list.push({ setting: 'spool.kek', source: config.spool.kek });
  config.spool.previousKeks.forEach((source, i) => list.push({ setting: `spool.previousKeks[${i}]`, source }));
  if (config.drain.enabled && !config.drain.fusion.embeddedSim && config.drain.fusion.netosecret !== undefined) list.push({ setting: 'drain.fusion.netosecret', source: config.drain.fusion.netosecret });
  if (config.admin.enabled && config.admin.token !== undefined) list.push({ setting: 'admin.token', source: config.admin.token });
  if (config.audit.signingKey !== undefined) list.push({ setting: 'audit.signingKey', source: config.audit.signingKey });
  const pz = config.privacy.pseudonymize;
  if (pz !== undefined) list.push({ setting: PSEUDONYMIZE_KEY_SETTING, source: pz.key });
  const secrets: ResolvedSecret[] = [];
  const keks: Uint8Array[] = [];
  let pseudonymizeKey: Uint8Array | null = null;
  for (const { setting, source } of list) {
    const value = await resolveSecret(source, setting, { env, warn });
    secrets.push({ setting, source, value });
    if (setting.startsWith('spool.')) keks.push(parseKekSecret(value, setting));
    if (setting === PSEUDONYMIZE_KEY_SETTING) {
      pseudonymizeKey = parseBase64Key(value.toString('utf8').split('\n').filter((l) => !l.trimStart().startsWith('#')).join('').trim(), PSEUDONYMIZE_KEY_BYTES);
      if (pseudonymizeKey === null) throw new ConfigError(ConfigErrorCode.Secret, setting, `${setting}: not a valid pseudonymisation key (expected ${PSEUDONYMIZE_KEY_BYTES} bytes as base64)`);
    }
  }
  return { secrets, keks, pseudonymizeKey };
}

export const main: CommandMain = async (argv, io) => {
  if (argv[0] === 'verify') return verify(argv.slice(1), io);
  const parsed = parseCommandArgs('attest', HELP, argv, io, {
    config: { type: 'string' },
    'data-dir': { type: 'string' },
    out: { type: 'string' },
    scan: { type: 'string', multiple: true },
    pid: { type: 'string', multiple: true },
    help: { type: 'boolean', short: 'h' },
  });
  if (typeof parsed === 'number') return parsed;
  const { values } = parsed;
  const pids = (values.pid ?? []).map(Number);
  if (pids.some((p) => !Number.isInteger(p) || p <= 0)) {
    io.stderr.write('sealflow attest: --pid takes a process id\n');
    return ExitCode.Usage;
  }
  const warn = (m: string): void => void io.stderr.write(`sealflow attest: warning: ${m}\n`);
  try {
    const { config } = await loadConfig({
      configPath: values.config,
      env: io.env,
      overrides: values['data-dir'] === undefined ? {} : { dataDir: values['data-dir'] },
      overridesOrigin: 'command-line flags',
      embeddedWhenNoFile: true,
    });
    const { secrets, keks, pseudonymizeKey } = await resolveAll(config, io.env, warn);
    const key = await loadDeviceKey(config, { env: io.env, warn });
    const logger = createLogger({ level: 'warn', pretty: false }, { write: (s: string) => void io.stderr.write(s) });
    const { report, signed } = await runAttest({ config, keks, pseudonymizeKey, key, secrets, extraScanPaths: values.scan ?? [], ...(pids.length > 0 ? { probePids: pids } : {}), logger });
    key?.destroy();
    for (const k of keks) k.fill(0);
    pseudonymizeKey?.fill(0);
    for (const s of secrets) s.value.fill(0);
    const dir = values.out ?? defaultReportDir(config);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const stamp = new Date(report.finishedAtMs).toISOString().replace(/[:.]/g, '-');
    const jsonName = `attest-${stamp}.json`;
    writeFileSync(join(dir, jsonName), JSON.stringify(signed ?? { body: report, signature: null }, null, 2) + '\n', { mode: 0o600 });
    writeFileSync(join(dir, `attest-${stamp}.html`), renderAttestHtml(report, signed, jsonName), { mode: 0o600 });
    io.stdout.write(summary(report, join(dir, jsonName)));
    return report.passed ? ExitCode.Ok : ExitCode.Failure;
  } catch (err) {
    io.stderr.write(`sealflow attest: ${(err as Error).message}\n`);
    return isSealflowError(err) && (err.code.startsWith('ERR_CONFIG') || err.code === 'ERR_SPOOL_KEY') ? ExitCode.Config : ExitCode.Software;
  }
};

function summary(r: AttestReport, path: string): string {
  const lines = [`sealflow attest: ${r.passed ? 'PASSED' : `FAILED (${r.findings.length} finding${r.findings.length === 1 ? '' : 's'})`}`];
  for (const c of r.checks) lines.push(`  ${c.status.toUpperCase().padEnd(4)} ${c.id.padEnd(18)} ${c.detail}`);
  lines.push(`report: ${path} (and .html); canaries held as '${CANARY_HOLD_REASON}', removed`);
  return lines.join('\n') + '\n';
}

async function verify(argv: readonly string[], io: CommandIo): Promise<number> {
  const parsed = parseCommandArgs('attest verify', HELP, argv, io, { pubkey: { type: 'string' }, help: { type: 'boolean', short: 'h' } }, true);
  if (typeof parsed === 'number') return parsed;
  const file = parsed.positionals[0];
  const pub = parsed.values.pubkey === undefined ? null : (parsePublicKey(parsed.values.pubkey) ?? parsePublicKey(readFileSync(parsed.values.pubkey, 'utf8')));
  if (file === undefined || pub === null) {
    io.stderr.write(`sealflow attest verify: give --pubkey KEY and a report file\n\n${HELP}`);
    return ExitCode.Usage;
  }
  await signingReady();
  const doc = JSON.parse(readFileSync(file, 'utf8')) as Signed<AttestReport>;
  const ok = typeof doc.signature === 'string' && verifyDocument(pub, doc);
  io.stdout.write(ok ? `signature valid; the report says ${doc.body.passed ? 'PASSED' : 'FAILED'} at ${new Date(doc.body.finishedAtMs).toISOString()}\n` : 'signature INVALID (altered, unsigned or signed by another key)\n');
  return ok ? ExitCode.Ok : ExitCode.Failure;
}
