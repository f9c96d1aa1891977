import { parseArgs, type ParseArgsConfig } from 'node:util';

/**
 * The contract between the CLI entry (src/main.ts) and each subcommand module in this folder.
 * A command gets its own argv (after the command name) and returns the process exit code;
 * it writes results to stdout and diagnostics to stderr, never flow data to disk.
 */
export interface CommandIo {
  /** Input for commands that read "-" (decode); absent: such an argument is a usage error. */
  readonly stdin?: NodeJS.ReadableStream;
  readonly stdout: NodeJS.WritableStream;
  readonly stderr: NodeJS.WritableStream;
  readonly env: NodeJS.ProcessEnv;
}

export type CommandMain = (argv: readonly string[], io: CommandIo) => Promise<number>;

/** sysexits(3) codes used by the CLI. */
export const ExitCode = {
  Ok: 0,
  /** Something failed (e.g. `decode` met malformed input). */
  Failure: 1,
  Usage: 64,
  DataErr: 65,
  NoInput: 66,
  Software: 70,
  IoErr: 74,
  Config: 78,
} as const;

type ParseArgsOptions = NonNullable<ParseArgsConfig['options']>;
/** What node:util parseArgs returns for a command's option table. */
export type ParsedCommandArgs<O extends ParseArgsOptions> = ReturnType<typeof parseArgs<{ args: string[]; options: O; strict: true; allowPositionals: boolean }>>;

/**
 * Parses a command's argv strictly. On an unknown or malformed option it prints the problem
 * and the help text to stderr and returns the exit code 64; on --help/-h it prints the help to
 * stdout and returns 0. The option table must contain `help: { type: 'boolean', short: 'h' }`.
 * Positionals are an error (parseArgs's own message) unless `allowPositionals` is set.
 */
export function parseCommandArgs<O extends ParseArgsOptions>(
  command: string,
  help: string,
  argv: readonly string[],
  io: CommandIo,
  options: O,
  allowPositionals = false,
): ParsedCommandArgs<O> | number {
  let parsed: ParsedCommandArgs<O>;
  try {
    parsed = parseArgs({ args: [...argv], options, strict: true, allowPositionals });
  } catch (err) {
    io.stderr.write(`sealflow ${command}: ${(err as Error).message}\n\n${help}`);
    return ExitCode.Usage;
  }
  if ((parsed.values as Record<string, unknown>).help === true) {
    io.stdout.write(help);
    return ExitCode.Ok;
  }
  return parsed;
}
