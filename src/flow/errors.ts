/**
 * The error catalogue. Every error sealflow raises on purpose is a SealflowError with a stable
 * `code` (never reworded once published: metrics, logs and tests key on it) and context fields.
 * Messages never contain flow data or secrets: addresses of exporters are fine (they are in
 * the audit log anyway), flow addresses and key material are not.
 */

/** Decoder error codes: one per way a datagram/message can be malformed. Used as metric labels. */
export const DecodeErrorCode = {
  Truncated: 'ERR_DECODE_TRUNCATED',
  BadVersion: 'ERR_DECODE_BAD_VERSION',
  BadLength: 'ERR_DECODE_BAD_LENGTH',
  BadSetLength: 'ERR_DECODE_BAD_SET_LENGTH',
  BadSetId: 'ERR_DECODE_BAD_SET_ID',
  BadTemplate: 'ERR_DECODE_BAD_TEMPLATE',
  TemplateLimit: 'ERR_DECODE_TEMPLATE_LIMIT',
  FieldLimit: 'ERR_DECODE_FIELD_LIMIT',
  BadFieldLength: 'ERR_DECODE_BAD_FIELD_LENGTH',
  BadVarLength: 'ERR_DECODE_BAD_VARLEN',
  UnknownTemplate: 'ERR_DECODE_UNKNOWN_TEMPLATE',
  BadCount: 'ERR_DECODE_BAD_COUNT',
  BadRecord: 'ERR_DECODE_BAD_RECORD',
  BadFile: 'ERR_DECODE_BAD_FILE',
  /** Persisted decoder state (DecodeService.importState) is not a valid snapshot. */
  BadState: 'ERR_DECODE_BAD_STATE',
  /** A data set held for its template was dropped: the template never came, or the hold buffer was full. */
  PendingExpired: 'ERR_DECODE_PENDING_EXPIRED',
  /** New decoder state (session, domain, template, sampler, held set) did not fit the state budget and was refused (context: reason). */
  StateBudget: 'ERR_DECODE_STATE_BUDGET',
  /** Sessions of this or another exporter were evicted to make room for this packet's state (context: count per reason). */
  StateEvicted: 'ERR_DECODE_STATE_EVICTED',
} as const;
export type DecodeErrorCode = (typeof DecodeErrorCode)[keyof typeof DecodeErrorCode];

export const ConfigErrorCode = {
  Invalid: 'ERR_CONFIG_INVALID',
  File: 'ERR_CONFIG_FILE',
  Secret: 'ERR_CONFIG_SECRET',
  Certificate: 'ERR_CONFIG_CERT',
  /** A socket the configuration asks for cannot be bound (port in use, privileged port, address not on this host). */
  Bind: 'ERR_CONFIG_BIND',
} as const;
export type ConfigErrorCode = (typeof ConfigErrorCode)[keyof typeof ConfigErrorCode];

export const SpoolErrorCode = {
  Key: 'ERR_SPOOL_KEY',
  Integrity: 'ERR_SPOOL_INTEGRITY',
  Io: 'ERR_SPOOL_IO',
  Format: 'ERR_SPOOL_FORMAT',
  Closed: 'ERR_SPOOL_CLOSED',
} as const;
export type SpoolErrorCode = (typeof SpoolErrorCode)[keyof typeof SpoolErrorCode];

export const DrainErrorCode = {
  Credentials: 'ERR_DRAIN_CREDENTIALS',
  Auth: 'ERR_DRAIN_AUTH',
  Http: 'ERR_DRAIN_HTTP',
  Network: 'ERR_DRAIN_NETWORK',
  Tls: 'ERR_DRAIN_TLS',
} as const;
export type DrainErrorCode = (typeof DrainErrorCode)[keyof typeof DrainErrorCode];

export const IngestErrorCode = {
  Bind: 'ERR_INGEST_BIND',
  Native: 'ERR_INGEST_NATIVE',
  Framing: 'ERR_INGEST_FRAMING',
} as const;
export type IngestErrorCode = (typeof IngestErrorCode)[keyof typeof IngestErrorCode];

export type ErrorCode = DecodeErrorCode | ConfigErrorCode | SpoolErrorCode | DrainErrorCode | IngestErrorCode;

export type ErrorContext = Readonly<Record<string, string | number | boolean | null | undefined>>;

/** Base class of every deliberate sealflow error. */
export class SealflowError extends Error {
  readonly code: ErrorCode;
  readonly context: ErrorContext;
  constructor(code: ErrorCode, message: string, context: ErrorContext = {}, options?: ErrorOptions) {
    super(message, options);
    this.name = 'SealflowError';
    this.code = code;
    this.context = context;
  }
}

/**
 * A malformed flow message. `offset` is the byte offset within the datagram/message where the
 * problem was found, so `sealflow decode` can point at it.
 */
export class DecodeError extends SealflowError {
  declare readonly code: DecodeErrorCode;
  readonly offset: number;
  constructor(code: DecodeErrorCode, message: string, offset: number, context: ErrorContext = {}) {
    // No stack trace: a DecodeError describes input, not a bug (its stack would only name the
    // decoder), and capturing one is most of the cost of an error (≈ 12 µs against ≈ 1 µs,
    // measured) — malformed or held-over data can make one per data set, so a stream of bad
    // packets would otherwise cost far more CPU than good ones. A decoder bug that surfaces as
    // a DecodeError (a reader running past its end) is located by its message and offset.
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    try {
      super(code, message, { ...context, offset });
    } finally {
      Error.stackTraceLimit = limit;
    }
    this.name = 'DecodeError';
    this.offset = offset;
  }
}

/** A configuration, key or certificate problem. Message names the setting and how to fix it. */
export class ConfigError extends SealflowError {
  declare readonly code: ConfigErrorCode;
  /** The configuration key (dotted path) or environment variable at fault. */
  readonly setting: string;
  constructor(code: ConfigErrorCode, setting: string, message: string, context: ErrorContext = {}, options?: ErrorOptions) {
    super(code, message, { ...context, setting }, options);
    this.name = 'ConfigError';
    this.setting = setting;
  }
}

export class SpoolError extends SealflowError {
  declare readonly code: SpoolErrorCode;
  constructor(code: SpoolErrorCode, message: string, context: ErrorContext = {}, options?: ErrorOptions) {
    super(code, message, context, options);
    this.name = 'SpoolError';
  }
}

export class DrainError extends SealflowError {
  declare readonly code: DrainErrorCode;
  /** Whether retrying the same request later may succeed. */
  readonly retryable: boolean;
  constructor(code: DrainErrorCode, message: string, retryable: boolean, context: ErrorContext = {}, options?: ErrorOptions) {
    super(code, message, context, options);
    this.name = 'DrainError';
    this.retryable = retryable;
  }
}

export class IngestError extends SealflowError {
  declare readonly code: IngestErrorCode;
  constructor(code: IngestErrorCode, message: string, context: ErrorContext = {}, options?: ErrorOptions) {
    super(code, message, context, options);
    this.name = 'IngestError';
  }
}

export function isSealflowError(err: unknown): err is SealflowError {
  return err instanceof SealflowError;
}
