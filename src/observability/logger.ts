import { createRequire } from 'node:module';
import { pino, type Logger, type LoggerOptions, type DestinationStream } from 'pino';
import type PinoPretty from 'pino-pretty';

/**
 * The process logger: pino JSON lines, one child per component (`logger.child({ component })`),
 * with redaction of every path that could carry a secret. Components never log flow data
 * (addresses/ports of flows) and never log key material; redaction is the second line of
 * defence for mistakes, not the first.
 */
export type { Logger } from 'pino';

/** Paths censored in every log line (pino fast-redact syntax). */
export const REDACT_PATHS: readonly string[] = [
  'kek', '*.kek', 'key', '*.key', 'keys', '*.keys', 'secret', '*.secret', 'sharedsecret', '*.sharedsecret',
  'netosecret', '*.netosecret', 'password', '*.password', 'token', '*.token', 'access_token', '*.access_token',
  'refresh_token', '*.refresh_token', 'authorization', '*.authorization', 'headers.authorization',
  '*.headers.authorization', 'privateKey', '*.privateKey', 'private_key', '*.private_key', 'appkey', '*.appkey',
  'jwt', '*.jwt', 'bearer', '*.bearer', 'adminToken', '*.adminToken', 'config.spool.kek', 'config.drain.netosecret',
];

export interface LoggerSettings {
  readonly level: string;
  /** Pretty, human-readable output (for a terminal); JSON lines otherwise. */
  readonly pretty: boolean;
  /** A second destination receiving every JSON line (src/observability/syslog-destination.ts). */
  readonly syslog?: DestinationStream;
  /** Sees every JSON line too (the status page's recent warnings). */
  readonly tap?: (jsonLine: string) => void;
}

/**
 * A terminal shows one line per event: extra fields on the same line, not as an indented
 * object; `stats` is left out because the stats line's message already says it.
 */
const PRETTY_OPTIONS = { colorize: true, translateTime: 'SYS:standard', destination: 2, sync: true, singleLine: true, ignore: 'service,stats' } as const;

/** pino-pretty loaded on first use only: commands that never print pretty logs do not pay for it. */
function loadPinoPretty(): typeof PinoPretty {
  return createRequire(import.meta.url)('pino-pretty') as typeof PinoPretty;
}

/**
 * The process's log output: the logger of this thread, and `write` for the JSON lines other
 * threads send here (the ingest worker posts its lines to the main thread), so every thread's
 * lines take the same way out: pretty on a terminal or JSON, the syslog copy, the tap.
 */
export interface LogOutput {
  readonly logger: Logger;
  /** Writes one JSON log line (newline-terminated) from another thread. */
  write(jsonLine: string): void;
}

/**
 * Logs go to stderr (fd 2) by default, so stdout stays clean for data a command prints
 * (`run --stdout` records, `decode` NDJSON, `spool export`). Pretty printing happens in this
 * process (pino-pretty as a stream, not a transport thread), so lines of every thread are
 * formatted alike and in order.
 */
export function createLogOutput(settings: LoggerSettings, destination?: DestinationStream): LogOutput {
  const options: LoggerOptions = {
    level: settings.level,
    base: { service: 'sealflow' },
    redact: { paths: [...REDACT_PATHS], censor: '[redacted]' },
    timestamp: pino.stdTimeFunctions.isoTime,
  };
  const main: DestinationStream = destination ?? (settings.pretty ? loadPinoPretty()(PRETTY_OPTIONS) : pino.destination({ dest: 2, sync: false }));
  const outputs = settings.syslog === undefined ? [main] : [main, settings.syslog];
  const tap = settings.tap;
  // Every output is at the logger's level, so one fan-out stream replaces pino.multistream.
  const stream: DestinationStream & { flush?: (cb: (err?: Error) => void) => void } =
    outputs.length === 1 && tap === undefined
      ? main
      : {
          write(line: string): void {
            for (const o of outputs) o.write(line);
            tap?.(line);
          },
          // logger.flush() (before exit) reaches every output that buffers.
          flush(cb: (err?: Error) => void): void {
            for (const o of outputs) {
              try {
                (o as { flushSync?: () => void }).flushSync?.();
              } catch {
                // A file destination still opening has nothing buffered to lose.
              }
            }
            cb();
          },
        };
  return { logger: pino(options, stream), write: (line) => stream.write(line) };
}

export function createLogger(settings: LoggerSettings, destination?: DestinationStream): Logger {
  return createLogOutput(settings, destination).logger;
}

/** A logger that discards everything (tests and tools that must stay quiet). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}

/** The `log` block of the configuration (src/config): level and output format. */
export interface LogSettingsConfig {
  readonly level: string;
  readonly format: 'auto' | 'json' | 'pretty';
}

/** LoggerSettings for a `log` config block; format "auto" is pretty when standard error (where logs go) is a terminal. */
export function loggerSettingsFromConfig(log: LogSettingsConfig, stderrIsTty?: boolean): LoggerSettings {
  // isTTY is undefined (not false) when stderr is a pipe or file.
  const tty: unknown = stderrIsTty ?? process.stderr.isTTY;
  return { level: log.level, pretty: log.format === 'pretty' || (log.format === 'auto' && tty === true) };
}
