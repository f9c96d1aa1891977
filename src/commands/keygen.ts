import { randomBytes } from 'node:crypto';
import type { CommandMain } from './command.js';
import { ExitCode, parseCommandArgs } from './command.js';
import { SEED_BYTES } from '../audit/device-key.js';
import { SIGNING_KEY_ENV } from '../audit/signing-key-source.js';
import { PSEUDONYMIZE_KEY_BYTES, PSEUDONYMIZE_KEY_ENV } from '../privacy/key-source.js';
import { KEK_BYTES, KEK_ENV } from '../spool/kek-source.js';

const HELP = `usage: sealflow keygen [--purpose spool|pseudonymize|audit]

Prints a new random key (base64) on stdout.
  --purpose spool         (default) a spool key-encryption key (KEK, ${KEK_BYTES} bytes). Give it to
                          sealflow as one of:
                            ${KEK_ENV}=<base64>            (environment)
                            ${KEK_ENV}_FILE=<path>         (a file holding it: Docker/Kubernetes secret, systemd credential)
                            ${KEK_ENV}_COMMAND=<command>   (a command printing it, run without a shell)
                          Losing the KEK makes the spooled flows unrecoverable; never write it next to the spool.
  --purpose pseudonymize  a master pseudonymisation key (${PSEUDONYMIZE_KEY_BYTES} bytes) for privacy.pseudonymize.key
                          (or ${PSEUDONYMIZE_KEY_ENV}, _FILE, _COMMAND). Whoever holds it can
                          re-identify every pseudonym (\`sealflow reidentify\`): keep it on site, apart
                          from the spool and never with the data's recipients.
  --purpose audit         the device signing key (an Ed25519 seed, ${SEED_BYTES} bytes) for audit.signingKey
                          (or ${SIGNING_KEY_ENV}, _FILE, _COMMAND): it signs the audit trail's
                          digests, deletion receipts, attestations and evidence packs. Keep it
                          where the probe's operators cannot read it; \`sealflow audit pubkey\`
                          prints what the auditor gets.
`;

const KEY_BYTES = { spool: KEK_BYTES, pseudonymize: PSEUDONYMIZE_KEY_BYTES, audit: SEED_BYTES } as const;
const ADVICE = {
  spool: `sealflow keygen: new spool KEK printed on stdout. Store it in your secret manager and pass it as ${KEK_ENV}, ${KEK_ENV}_FILE or ${KEK_ENV}_COMMAND; keep it off the spool's disk and out of shell history.\n`,
  pseudonymize: `sealflow keygen: new master pseudonymisation key printed on stdout. Store it in your secret manager (not on the spool's disk) and point privacy.pseudonymize.key (or ${PSEUDONYMIZE_KEY_ENV}_FILE / _COMMAND) at it; it re-identifies every pseudonym.\n`,
  audit: `sealflow keygen: new device signing key printed on stdout. Store it in your secret manager (not in the data directory) and point audit.signingKey (or ${SIGNING_KEY_ENV}_FILE / _COMMAND) at it; give the auditor what \`sealflow audit pubkey\` prints.\n`,
} as const;

/** `sealflow keygen`: a fresh key on stdout, advice on stderr (so `> file` captures only the key). */
export const main: CommandMain = (argv, io) => {
  const parsed = parseCommandArgs('keygen', HELP, argv, io, { purpose: { type: 'string' }, help: { type: 'boolean', short: 'h' } });
  if (typeof parsed === 'number') return Promise.resolve(parsed);
  const purpose = parsed.values.purpose ?? 'spool';
  if (purpose !== 'spool' && purpose !== 'pseudonymize' && purpose !== 'audit') {
    io.stderr.write(`sealflow keygen: --purpose must be spool, pseudonymize or audit, got ${JSON.stringify(purpose)}\n\n${HELP}`);
    return Promise.resolve(ExitCode.Usage);
  }
  const key = randomBytes(KEY_BYTES[purpose]);
  io.stdout.write(`${key.toString('base64')}\n`);
  key.fill(0);
  io.stderr.write(ADVICE[purpose]);
  return Promise.resolve(ExitCode.Ok);
};
