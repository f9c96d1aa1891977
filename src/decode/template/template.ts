import type { DecodeError } from '../../flow/errors.js';
import type { FieldSpec } from '../../flow/flow-record.js';
import type { ByteReader } from '../byte-reader.js';

/** A (Options) Template as an IPFIX/v9 message declares it, before it is compiled. */
export interface TemplateDefinition {
  /** ≥ 256 (RFC 7011 §3.4.1, RFC 3954 §5.2). */
  readonly templateId: number;
  readonly fields: readonly FieldSpec[];
  /** Number of leading scope fields; 0 for a plain template, ≥ 1 for an options template. */
  readonly scopeFieldCount: number;
  readonly isOptions: boolean;
  /** Offset of the template record within the message, for errors. */
  readonly offset: number;
}

/** What a template withdrawal names (RFC 7011 §8.1: one template, or all of a set kind). */
export type WithdrawalScope = 'one' | 'allTemplates' | 'allOptionsTemplates';

/** The header fields of an IPFIX message or NetFlow v9 packet that decoding depends on. */
export interface MessageHeader {
  /** 9 or 10. */
  readonly version: number;
  /** Export time, Unix seconds. */
  readonly exportTimeS: number;
  readonly sequence: number;
  /** IPFIX Observation Domain ID or v9 Source ID. */
  readonly observationDomainId: number;
  /** v9 sysUpTime at export (ms); -1 when the header has none (IPFIX). */
  readonly uptimeMs: number;
}

/**
 * Receives the content of one message as its wire parser walks it. The wire parsers
 * (ipfix/, netflow9/) only frame and validate; the receiver owns template state and records.
 */
export interface SetSink {
  begin(header: MessageHeader): void;
  template(def: TemplateDefinition): void;
  withdraw(templateId: number, scope: WithdrawalScope, offset: number): void;
  /** A data set for `templateId`; `body` covers exactly the set's records and padding. */
  data(templateId: number, body: ByteReader): void;
  /** A problem confined to one set or template record; parsing continues with the next one. */
  error(err: DecodeError): void;
}

/** Limits the wire parsers enforce while reading template records. */
export interface TemplateParseLimits {
  readonly maxFieldsPerTemplate: number;
}

/** Smallest template/data set ID; lower IDs are set types (RFC 7011 §3.3.2, RFC 3954 §5.3). */
export const MIN_DATA_SET_ID = 256;
