/**
 * The contract between the CLI entry (src/main.ts) and each subcommand module in this folder.
 * A command gets its own argv (after the command name) and returns the process exit code;
 * it writes results to stdout and diagnostics to stderr, never flow data to disk.
 */
export interface CommandIo {
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
