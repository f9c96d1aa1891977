import { createRequire } from 'node:module';
import { pino, type Logger, type LoggerOptions, type DestinationStream, type Level } from 'pino';
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
}

/** pino-pretty loaded on first use only: commands that never print pretty logs do not pay for it. */
function loadPinoPretty(): typeof PinoPretty {
  return createRequire(import.meta.url)('pino-pretty') as typeof PinoPretty;
}

/**
 * Logs go to stderr (fd 2) by default, so stdout stays clean for data a command prints
 * (`run --stdout` records, `decode` NDJSON, `spool export`).
 */
export function createLogger(settings: LoggerSettings, destination?: DestinationStream): Logger {
  const options: LoggerOptions = {
    level: settings.level,
    base: { service: 'sealflow' },
    redact: { paths: [...REDACT_PATHS], censor: '[redacted]' },
    timestamp: pino.stdTimeFunctions.isoTime,
  };
  if (settings.syslog !== undefined) {
    // Both streams see the JSON line; pretty printing happens in-process for the terminal copy only.
    const main = destination ?? (settings.pretty ? loadPinoPretty()({ colorize: true, translateTime: 'SYS:standard', destination: 2 }) : pino.destination({ dest: 2, sync: false }));
    const level = settings.level as Level;
    return pino(options, pino.multistream([{ stream: main, level }, { stream: settings.syslog, level }]));
  }
  if (destination !== undefined) return pino(options, destination);
  if (settings.pretty) {
    return pino({ ...options, transport: { target: 'pino-pretty', options: { colorize: true, translateTime: 'SYS:standard', destination: 2 } } });
  }
  return pino(options, pino.destination({ dest: 2, sync: false }));
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
