import { randomBytes } from 'node:crypto';
import type { CommandMain } from './command.js';
import { ExitCode, parseCommandArgs } from './command.js';
import { KEK_BYTES, KEK_ENV } from '../spool/kek-source.js';

const HELP = `usage: sealflow keygen

Prints a new random spool key-encryption key (KEK, ${KEK_BYTES} bytes, base64) on stdout.
Store it in your secret manager and give it to sealflow as one of:
  ${KEK_ENV}=<base64>            (environment)
  ${KEK_ENV}_FILE=<path>         (a file holding it: Docker/Kubernetes secret, systemd credential)
  ${KEK_ENV}_COMMAND=<command>   (a command printing it, run without a shell)
Losing the KEK makes the spooled flows unrecoverable; never write it next to the spool.
`;

/** `sealflow keygen`: a fresh KEK on stdout, advice on stderr (so `> file` captures only the key). */
export const main: CommandMain = (argv, io) => {
  const parsed = parseCommandArgs('keygen', HELP, argv, io, { help: { type: 'boolean', short: 'h' } });
  if (typeof parsed === 'number') return Promise.resolve(parsed);
  const key = randomBytes(KEK_BYTES);
  io.stdout.write(`${key.toString('base64')}\n`);
  key.fill(0);
  io.stderr.write(
    `sealflow keygen: new spool KEK printed on stdout. Store it in your secret manager and pass it as ${KEK_ENV}, ${KEK_ENV}_FILE or ${KEK_ENV}_COMMAND; keep it off the spool's disk and out of shell history.\n`,
  );
  return Promise.resolve(ExitCode.Ok);
};
