/**
 * Information Element descriptions (RFC 7012 §3 abstract data types, §3.2 data type
 * semantics) as used by the generated table in ie-table.generated.ts.
 */

/** RFC 7012 §3.1 abstract data types (RFC 6313 adds the three list types). */
export type IeDataType =
  | 'octetArray'
  | 'unsigned8'
  | 'unsigned16'
  | 'unsigned32'
  | 'unsigned64'
  | 'signed8'
  | 'signed16'
  | 'signed32'
  | 'signed64'
  | 'float32'
  | 'float64'
  | 'boolean'
  | 'macAddress'
  | 'string'
  | 'dateTimeSeconds'
  | 'dateTimeMilliseconds'
  | 'dateTimeMicroseconds'
  | 'dateTimeNanoseconds'
  | 'ipv4Address'
  | 'ipv6Address'
  | 'basicList'
  | 'subTemplateList'
  | 'subTemplateMultiList';

/** One row of the generated table: [id, enterprise, name, type, semantics, units]. */
export type IeRow = readonly [number, number, string, IeDataType, string, string];

/** One Information Element definition. */
export interface InformationElement {
  /** Element ID without the enterprise bit (RFC 7011 §3.2). */
  readonly id: number;
  /** Private Enterprise Number; 0 for IANA. */
  readonly enterprise: number;
  readonly name: string;
  /** Abstract data type (RFC 7012 §3.1). */
  readonly type: IeDataType;
  /** Data type semantics (RFC 7012 §3.2), when the registry gives one. */
  readonly semantics?: string;
  /** Units, when the registry gives them. */
  readonly units?: string;
}
