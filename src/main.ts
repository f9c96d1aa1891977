/** Process entry: runs the CLI with the real process streams and sets the exit code. */
import type { CommandIo } from './commands/command.js';
import { ExitCode } from './commands/command.js';
import { main } from './cli.js';

const io: CommandIo = { stdin: process.stdin, stdout: process.stdout, stderr: process.stderr, env: process.env };
// A reader that stops early (`sealflow decode FILE | head`) closes the pipe: end quietly, as a
// program killed by SIGPIPE would, instead of an unhandled 'error' event and its stack trace.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(ExitCode.Ok);
  throw err;
});
main(process.argv.slice(2), io).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    const e = err as { code?: unknown; message?: unknown };
    io.stderr.write(`sealflow: fatal: ${String(e.message ?? err)}\n`);
    process.exitCode = typeof e.code === 'string' && e.code.startsWith('ERR_CONFIG') ? ExitCode.Config : ExitCode.Software;
  },
);
