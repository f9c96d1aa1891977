import { createWriteStream, existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { publicKeyPem, parsePublicKey, signingReady } from '../audit/device-key.js';
import { databaseSource, exportFileSource, writeExport } from '../audit/export.js';
import { AuditNotary } from '../audit/notary.js';
import { loadDeviceKey } from '../audit/signing-key-source.js';
import { AuditTrail } from '../audit/trail.js';
import { verifyTrail, type VerifyReport } from '../audit/verify.js';
import { loadConfig, type LoadedConfig } from '../config/load.js';
import { isSealflowError } from '../flow/errors.js';
import { SPOOL_DB_FILE } from '../spool/spool.js';
import type { CommandIo, CommandMain } from './command.js';
import { ExitCode, parseCommandArgs } from './command.js';

const HELP = `usage: sealflow audit <pubkey|verify|export> [options]

  pubkey [--pem]            the device signing key's public key (base64, or PEM for openssl)
                            and its key id: give it to the auditor once, out of band
  export [--out FILE]       the audit trail, its signed digests and deletion receipts as JSON
                            lines, ending with a seal signed now (needs the signing key)
  verify --pubkey KEY [FILE] [--since TIME] [--json]
                            checks an export FILE (or, without one, the spool database in the
                            data directory) offline with only the public key: every event's
                            hash and link, every digest's signature and range, the receipts and
                            the seal; lists failures and gaps. KEY: base64, PEM, or a file
                            holding either. TIME: ISO 8601 or Unix milliseconds.

options:
  --config PATH     configuration file (default: $SEALFLOW_CONFIG, else the embedded setup)
  --data-dir DIR    data directory (the spool database is DIR/spool/spool.db)
  -h, --help

Exit codes: 0 ok, 1 verification failed, 64 usage, 65 unreadable input, 66 no trail, 78 key/config problem.
See docs/audit.md.
`;

async function loadFor(values: { config?: string | undefined; 'data-dir'?: string | undefined }, io: CommandIo): Promise<LoadedConfig> {
  return loadConfig({
    configPath: values.config,
    env: io.env,
    overrides: values['data-dir'] === undefined ? {} : { dataDir: values['data-dir'] },
    overridesOrigin: 'command-line flags',
    embeddedWhenNoFile: true,
  });
}

function dbPathOf(loaded: LoadedConfig): string {
  return join(loaded.config.spool.dir, SPOOL_DB_FILE);
}

function readPublicKey(arg: string): Uint8Array | null {
  const direct = parsePublicKey(arg);
  if (direct !== null) return direct;
  if (!existsSync(arg)) return null;
  return parsePublicKey(readFileSync(arg, 'utf8'));
}

function parseTime(text: string): number | null {
  if (/^\d+$/.test(text)) return Number(text);
  const t = Date.parse(text);
  return Number.isNaN(t) ? null : t;
}

const iso = (ms: number | null): string => (ms === null ? '…' : new Date(ms).toISOString());

/** The human form of a verification report. */
export function reportText(r: VerifyReport): string {
  const lines = [
    `audit trail ${r.source}`,
    `  verdict          ${r.ok ? 'VERIFIED' : 'FAILED'} with key ${r.keyId}`,
    `  events           ${r.events}${r.firstEventSeq === null ? '' : ` (${r.firstEventSeq}..${r.lastEventSeq ?? ''})`}, signed through ${r.signedThroughSeq}`,
    `  digests          ${r.digests} valid; receipts ${r.receipts}; export seal ${r.sealed ? 'present' : 'none'}`,
    `  event kinds      ${Object.entries(r.kinds).map(([k, n]) => `${k} ${n}`).join(', ') || '-'}`,
  ];
  if (r.failures.length > 0) {
    lines.push('failures:');
    for (const f of r.failures) lines.push(`  [${f.code}] ${f.message}`);
  }
  if (r.gaps.length > 0) {
    lines.push('gaps:');
    for (const g of r.gaps) lines.push(`  [${g.kind}] ${iso(g.fromMs)} → ${iso(g.toMs)}: ${g.detail}`);
  }
  return lines.join('\n') + '\n';
}

export const main: CommandMain = async (argv, io) => {
  const [sub, ...rest] = argv;
  if (sub === undefined || sub === '--help' || sub === '-h') {
    io.stdout.write(HELP);
    return sub === undefined ? ExitCode.Usage : ExitCode.Ok;
  }
  const parsed = parseCommandArgs(
    `audit ${sub}`,
    HELP,
    rest,
    io,
    {
      config: { type: 'string' },
      'data-dir': { type: 'string' },
      pem: { type: 'boolean' },
      out: { type: 'string' },
      pubkey: { type: 'string' },
      since: { type: 'string' },
      json: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
    sub === 'verify',
  );
  if (typeof parsed === 'number') return parsed;
  const { values, positionals } = parsed;
  try {
    switch (sub) {
      case 'pubkey': {
        const loaded = await loadFor(values, io);
        const key = await loadDeviceKey(loaded.config, { env: io.env, warn: (m) => io.stderr.write(`sealflow audit: warning: ${m}\n`) });
        if (key === null) {
          io.stderr.write('sealflow audit pubkey: audit.signingKey is not configured (set SEALFLOW_AUDIT_SIGNING_KEY_FILE to a key made with `sealflow keygen`)\n');
          return ExitCode.Config;
        }
        io.stdout.write(values.pem === true ? publicKeyPem(key.publicKey) : `${key.publicKeyBase64}\nkey id ${key.keyId}\n`);
        key.destroy();
        return ExitCode.Ok;
      }
      case 'export':
        return await exportTrail(values, io);
      case 'verify':
        return await verify(values, positionals, io);
      default:
        io.stderr.write(`sealflow audit: unknown subcommand ${JSON.stringify(sub)}\n\n${HELP}`);
        return ExitCode.Usage;
    }
  } catch (err) {
    io.stderr.write(`sealflow audit ${sub}: ${(err as Error).message}\n`);
    return isSealflowError(err) && err.code.startsWith('ERR_CONFIG') ? ExitCode.Config : ExitCode.Software;
  }
};

async function exportTrail(values: { config?: string | undefined; 'data-dir'?: string | undefined; out?: string | undefined }, io: CommandIo): Promise<number> {
  const loaded = await loadFor(values, io);
  const path = dbPathOf(loaded);
  if (!existsSync(path)) {
    io.stderr.write(`sealflow audit export: no spool database at ${path}: check --data-dir / --config\n`);
    return ExitCode.NoInput;
  }
  const key = await loadDeviceKey(loaded.config, { env: io.env, warn: (m) => io.stderr.write(`sealflow audit: warning: ${m}\n`) });
  if (key === null) io.stderr.write('sealflow audit export: warning: audit.signingKey is not configured: the export has no seal, so a verifier cannot tell whether it was cut off\n');
  const db = new Database(path, { readonly: true, fileMustExist: true });
  const out: NodeJS.WritableStream = values.out === undefined ? io.stdout : createWriteStream(values.out, { mode: 0o600 });
  try {
    db.pragma('busy_timeout = 5000');
    if (db.prepare("SELECT 1 FROM sqlite_master WHERE name = 'audit_events'").get() === undefined) {
      io.stderr.write(`sealflow audit export: ${path} has no audit trail yet (it is created when the probe first runs)\n`);
      return ExitCode.NoInput;
    }
    const notary = key === null ? null : new AuditNotary(new AuditTrail(db), key);
    const lines: string[] = [];
    const seal = writeExport(db, notary, (l) => lines.push(l));
    for (let i = 0; i < lines.length; i += 1000) {
      if (!out.write(lines.slice(i, i + 1000).join('\n') + '\n')) await new Promise<void>((resolve) => out.once('drain', resolve));
    }
    io.stderr.write(`sealflow audit export: ${seal.events} events, ${seal.digests} digests, ${seal.receipts} deletion receipts${notary === null ? ' (unsealed)' : ', sealed'}\n`);
    return ExitCode.Ok;
  } finally {
    db.close();
    key?.destroy();
    if (out !== io.stdout) await new Promise<void>((resolve) => out.end(resolve));
  }
}

async function verify(values: { config?: string | undefined; 'data-dir'?: string | undefined; pubkey?: string | undefined; since?: string | undefined; json?: boolean | undefined }, positionals: readonly string[], io: CommandIo): Promise<number> {
  if (values.pubkey === undefined) {
    io.stderr.write(`sealflow audit verify: --pubkey is required (the output of \`sealflow audit pubkey\`, obtained from the device's owner)\n\n${HELP}`);
    return ExitCode.Usage;
  }
  const publicKey = readPublicKey(values.pubkey);
  if (publicKey === null) {
    io.stderr.write('sealflow audit verify: --pubkey is not an Ed25519 public key (base64 of 32 bytes, a PEM public key, or a file holding one)\n');
    return ExitCode.Usage;
  }
  let sinceMs: number | undefined;
  if (values.since !== undefined) {
    const t = parseTime(values.since);
    if (t === null) {
      io.stderr.write(`sealflow audit verify: --since ${JSON.stringify(values.since)} is not a time (ISO 8601 or Unix milliseconds)\n`);
      return ExitCode.Usage;
    }
    sinceMs = t;
  }
  if (positionals.length > 1) {
    io.stderr.write('sealflow audit verify: give at most one export file\n');
    return ExitCode.Usage;
  }
  await signingReady();
  let report: VerifyReport;
  const file = positionals[0];
  if (file !== undefined) {
    if (!existsSync(file)) {
      io.stderr.write(`sealflow audit verify: ${file} does not exist\n`);
      return ExitCode.NoInput;
    }
    report = verifyTrail(exportFileSource(file), publicKey, sinceMs === undefined ? {} : { sinceMs });
  } else {
    const loaded = await loadFor(values, io);
    const path = dbPathOf(loaded);
    if (!existsSync(path)) {
      io.stderr.write(`sealflow audit verify: no spool database at ${path}: give an export file or --data-dir\n`);
      return ExitCode.NoInput;
    }
    const db = new Database(path, { readonly: true, fileMustExist: true });
    try {
      db.pragma('busy_timeout = 5000');
      const options = { digestIntervalMs: loaded.config.audit.digestIntervalSeconds * 1000, ...(sinceMs === undefined ? {} : { sinceMs }) };
      report = db.transaction(() => verifyTrail(databaseSource(db), publicKey, options)).deferred();
    } finally {
      db.close();
    }
  }
  io.stdout.write(values.json === true ? JSON.stringify(report, null, 2) + '\n' : reportText(report));
  return report.ok ? ExitCode.Ok : ExitCode.Failure;
}
