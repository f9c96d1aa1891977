import type { FieldSpec, RawRecord } from '../../flow/flow-record.js';

/**
 * RawRecord over a record's bytes in the received message, zero-copy. `bytes` is cut from the
 * message on first access: creating a typed-array view costs more than decoding a whole
 * record, and most records never have their raw bytes read. The view keeps the message
 * buffer alive as long as the record lives. `bytes` is an accessor, so copy it explicitly
 * when moving a record between threads (structured clone does not see accessors).
 */
export class RawRecordView implements RawRecord {
  readonly fields: readonly FieldSpec[];
  readonly #buf: Uint8Array;
  readonly #start: number;
  readonly #end: number;
  #bytes: Uint8Array | null = null;

  constructor(fields: readonly FieldSpec[], buf: Uint8Array, start: number, end: number) {
    this.fields = fields;
    this.#buf = buf;
    this.#start = start;
    this.#end = end;
  }

  get bytes(): Uint8Array {
    this.#bytes ??= this.#buf.subarray(this.#start, this.#end);
    return this.#bytes;
  }
}
