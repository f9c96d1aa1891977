/**
 * The CLI: picks the subcommand, runs it, maps the outcome to an exit code. Each command
 * lives in src/commands/ and is loaded lazily so `sealflow decode` never pays for SQLite,
 * libsodium or the DTLS addon. The daemon itself is `sealflow run` (src/commands/run.ts,
 * which builds the app in src/app.ts, the composition root).
 */
import type { CommandIo, CommandMain } from './commands/command.js';
import { ExitCode } from './commands/command.js';

interface CommandEntry {
  readonly summary: string;
  readonly load: () => Promise<{ main: CommandMain }>;
}

const COMMANDS: Readonly<Record<string, CommandEntry>> = {
  run: { summary: 'run the probe: listeners, decode, encrypted spool, drain to Fusion', load: () => import('./commands/run.js') },
  decode: { summary: 'decode flow captures (.dat/.bin, .pcap, .ipfix) to NDJSON Fusion records', load: () => import('./commands/decode.js') },
  keygen: { summary: 'print a new key (base64): spool KEK, or --purpose pseudonymize', load: () => import('./commands/keygen.js') },
  reidentify: { summary: 'the real address behind a pseudonym (needs the pseudonymisation key; audited)', load: () => import('./commands/reidentify.js') },
  spool: { summary: 'inspect the encrypted spool: status | verify | export', load: () => import('./commands/spool.js') },
  rekey: { summary: 'rewrap the spool data keys under a new key-encryption key', load: () => import('./commands/rekey.js') },
  drain: { summary: 'drain the spool to Fusion (--once: what is spooled now, then exit)', load: () => import('./commands/drain.js') },
  'fusion-sim': { summary: 'run a local Fusion stand-in (HTTPS auth + upload) for tests and demos', load: () => import('./commands/fusion-sim.js') },
  config: { summary: 'configuration: check | schema', load: () => import('./commands/config.js') },
  health: { summary: "ask a running probe's admin endpoint whether it is healthy", load: () => import('./commands/health.js') },
  attest: { summary: 'self-attestation: posture checks, canaries through the spool, a disk scan; signed report', load: () => import('./commands/attest.js') },
  evidence: { summary: 'one signed archive for an auditor (attestation, trail, config, SBOM, control map) | verify', load: () => import('./commands/evidence.js') },
  audit: { summary: 'the signed audit trail: pubkey | verify | export', load: () => import('./commands/audit.js') },
  pki: { summary: 'create a development PKI (CA, collector and exporter certificates)', load: () => import('./commands/pki.js') },
};

function usage(): string {
  const lines = ['usage: sealflow <command> [options]', '', 'commands:'];
  for (const [name, c] of Object.entries(COMMANDS)) lines.push(`  ${name.padEnd(12)} ${c.summary}`);
  lines.push('', "run 'sealflow <command> --help' for a command's options");
  return lines.join('\n') + '\n';
}

export async function main(argv: readonly string[], io: CommandIo): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    io.stdout.write(usage());
    return name === undefined ? ExitCode.Usage : ExitCode.Ok;
  }
  if (name === '--version' || name === '-v') {
    io.stdout.write('sealflow 0.1.0\n');
    return ExitCode.Ok;
  }
  const entry = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
  if (entry === undefined) {
    io.stderr.write(`sealflow: unknown command ${JSON.stringify(name)}\n\n${usage()}`);
    return ExitCode.Usage;
  }
  const mod = await entry.load();
  return mod.main(rest, io);
}
