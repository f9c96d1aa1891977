import { readFileSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import type { AttestReport } from '../attest/attest.js';
import { parsePublicKey, signingReady } from '../audit/device-key.js';
import { exportLinesSource } from '../audit/export.js';
import { verifyDocument, type Signed } from '../audit/notary.js';
import { loadDeviceKey } from '../audit/signing-key-source.js';
import { verifyTrail } from '../audit/verify.js';
import { loadConfig } from '../config/load.js';
import { buildPack, verifyPack } from '../evidence/pack.js';
import { isSealflowError } from '../flow/errors.js';
import { reportText } from './audit.js';
import type { CommandIo, CommandMain } from './command.js';
import { ExitCode, parseCommandArgs } from './command.js';

const HELP = `usage: sealflow evidence --out FILE [--config PATH] [--data-dir DIR] [--digests-only]
       sealflow evidence verify --pubkey KEY FILE

Writes one signed archive (tar) for an auditor: the latest attestation report, the audit
trail with its signed digests and deletion receipts and the verifier instructions, the
effective configuration (secrets redacted) and its hash, a CycloneDX SBOM, component
versions and a control map (PCI DSS 4.0, HIPAA, GDPR, DORA). Needs the device signing key.
Run \`sealflow attest\` first so the pack holds a current attestation.

verify checks a pack offline with only the public key: the manifest's signature, every file,
the audit trail (as \`sealflow audit verify\`), the attestation report's signature, and that
the configuration's hash is the one the trail last recorded.

options:
  --out FILE        where the archive goes (written mode 0600)
  --digests-only    leave the trail's events out (digests and receipts only)
  --config PATH     configuration file (default: $SEALFLOW_CONFIG, else the embedded setup)
  --data-dir DIR    data directory
  --pubkey KEY      (verify) base64, PEM, or a file holding one
Exit codes: 0 ok, 1 verification failed, 64 usage, 78 key/config problem.
`;

export const main: CommandMain = async (argv, io) => {
  if (argv[0] === 'verify') return verify(argv.slice(1), io);
  const parsed = parseCommandArgs('evidence', HELP, argv, io, {
    out: { type: 'string' },
    config: { type: 'string' },
    'data-dir': { type: 'string' },
    'digests-only': { type: 'boolean' },
    help: { type: 'boolean', short: 'h' },
  });
  if (typeof parsed === 'number') return parsed;
  const { values } = parsed;
  if (values.out === undefined) {
    io.stderr.write(`sealflow evidence: --out FILE is required\n\n${HELP}`);
    return ExitCode.Usage;
  }
  try {
    const { config } = await loadConfig({
      configPath: values.config,
      env: io.env,
      overrides: values['data-dir'] === undefined ? {} : { dataDir: values['data-dir'] },
      overridesOrigin: 'command-line flags',
      embeddedWhenNoFile: true,
    });
    const key = await loadDeviceKey(config, { env: io.env, warn: (m) => void io.stderr.write(`sealflow evidence: warning: ${m}\n`) });
    if (key === null) {
      io.stderr.write('sealflow evidence: audit.signingKey is not configured: an evidence pack must be signed\n');
      return ExitCode.Config;
    }
    try {
      const { archive, manifest } = await buildPack({ config, key, digestsOnly: values['digests-only'] === true });
      writeFileSync(values.out, archive, { mode: 0o600 });
      io.stdout.write(`sealflow evidence: ${values.out}: ${manifest.files.length} files, ${archive.length} bytes, signed by key ${manifest.keyId}\n`);
      if (!manifest.files.some((f) => f.path === 'attest/report.json')) io.stderr.write('sealflow evidence: warning: no attestation report yet (run `sealflow attest` first)\n');
      return ExitCode.Ok;
    } finally {
      key.destroy();
    }
  } catch (err) {
    io.stderr.write(`sealflow evidence: ${(err as Error).message}\n`);
    return isSealflowError(err) && err.code.startsWith('ERR_CONFIG') ? ExitCode.Config : ExitCode.Software;
  }
};

async function verify(argv: readonly string[], io: CommandIo): Promise<number> {
  const parsed = parseCommandArgs('evidence verify', HELP, argv, io, { pubkey: { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } }, true);
  if (typeof parsed === 'number') return parsed;
  const file = parsed.positionals[0];
  const keyArg = parsed.values.pubkey;
  const pub = keyArg === undefined ? null : (parsePublicKey(keyArg) ?? (() => {
    try {
      return parsePublicKey(readFileSync(keyArg, 'utf8'));
    } catch {
      return null;
    }
  })());
  if (file === undefined || pub === null) {
    io.stderr.write(`sealflow evidence verify: give --pubkey KEY and the archive\n\n${HELP}`);
    return ExitCode.Usage;
  }
  await signingReady();
  const pack = verifyPack(readFileSync(file), pub);
  const problems = [...pack.problems];
  const out: string[] = [`evidence pack ${file}`];
  if (pack.manifest !== null) out.push(`  made ${new Date(pack.manifest.createdAtMs).toISOString()} by sealflow ${pack.manifest.sealflowVersion}, spool ${pack.manifest.spoolId}, key ${pack.manifest.keyId}`);
  out.push(`  manifest and files: ${pack.problems.length === 0 ? 'VERIFIED' : 'FAILED'}`);
  // The trail inside, as `audit verify` would.
  const trail = pack.files.get('audit/trail.jsonl');
  if (trail !== undefined && trail.length > 0) {
    const lines = Buffer.from(trail).toString('utf8').split('\n').filter((l) => l.trim() !== '');
    const report = verifyTrail(exportLinesSource('audit/trail.jsonl', () => lines), pub);
    if (!report.ok) problems.push(...report.failures.map((f) => `audit/trail.jsonl: ${f.message}`));
    out.push(reportText(report).trimEnd().replace(/^/gm, '  '));
    // The configuration in the pack is the one the trail last recorded as loaded.
    const loaded = lines.map((l) => JSON.parse(l) as { type: string; kind?: string; fields?: { configHash?: string } }).filter((l) => l.type === 'event' && l.kind === 'config.loaded').at(-1);
    const effective = pack.files.get('config/effective.json');
    if (loaded !== undefined && effective !== undefined) {
      const hash = createHash('sha256').update(effective).digest('hex');
      if (hash !== loaded.fields?.configHash) out.push(`  note: config/effective.json (SHA-256 ${hash}) differs from the configuration the trail last recorded as loaded (${loaded.fields?.configHash ?? '?'}): changed since the last start or reload`);
      else out.push(`  configuration: matches the trail's last config.loaded (${hash})`);
    }
  }
  const attest = pack.files.get('attest/report.json');
  if (attest !== undefined) {
    const doc = JSON.parse(Buffer.from(attest).toString('utf8')) as Signed<AttestReport>;
    const ok = typeof doc.signature === 'string' && verifyDocument(pub, doc);
    if (!ok) problems.push('attest/report.json: signature does not verify');
    out.push(`  attestation: ${ok ? 'signature valid' : 'signature INVALID'}; it says ${doc.body.passed ? 'PASSED' : 'FAILED'} at ${new Date(doc.body.finishedAtMs).toISOString()}`);
  }
  if (problems.length > 0) out.push('failures:', ...problems.map((p) => `  ${p}`));
  out.push(problems.length === 0 ? 'VERIFIED' : 'FAILED');
  io.stdout.write(out.join('\n') + '\n');
  return problems.length === 0 ? ExitCode.Ok : ExitCode.Failure;
}
