import { DecodeError, DecodeErrorCode } from '../../flow/errors.js';
import type { FieldSpec } from '../../flow/flow-record.js';
import { ByteReader } from '../byte-reader.js';
import { V9_SCOPE_PEN } from '../ie/ie-table.js';
import type { SetSink, TemplateParseLimits } from '../template/template.js';
import { MIN_DATA_SET_ID } from '../template/template.js';

/**
 * NetFlow v9 packet framing (RFC 3954 §5). Packet header, 20 bytes:
 *   0 version u16 (= 9)   2 count u16   4 sysUpTime u32 (ms since boot)
 *   8 unixSecs u32        12 sequenceNumber u32 (counts export packets)   16 sourceId u32
 * then FlowSets, each: flowSetId u16, length u16 (header included), body padded to 4 bytes.
 *   0 = Template FlowSet, 1 = Options Template FlowSet, 2..255 reserved, ≥ 256 = Data FlowSet.
 *
 * `count` (template + options + data records in the packet) is not used for framing:
 * exporters disagree on what it counts and some leave it 0, so the FlowSet lengths alone
 * frame the packet (RFC 3954 §5.1 notes it is only a hint).
 */
export const NETFLOW9_VERSION = 9;
export const NETFLOW9_HEADER_BYTES = 20;
const FLOWSET_HEADER_BYTES = 4;
const TEMPLATE_FLOWSET_ID = 0;
const OPTIONS_TEMPLATE_FLOWSET_ID = 1;
const TEMPLATE_HEADER_BYTES = 4;
/** templateId u16, optionScopeLength u16, optionLength u16 (§6.1). */
const OPTIONS_TEMPLATE_HEADER_BYTES = 6;
const FIELD_SPEC_BYTES = 4;

export interface Netflow9PacketInfo {
  /** The header's record count, for statistics only (see above). */
  readonly count: number;
}

/**
 * Whether every byte of the reader's remaining window is zero (padding some exporters append:
 * Palo Alto fills packets to a fixed size, over a kilobyte after one short FlowSet). Four
 * bytes at a time, then the tail.
 */
function restIsZero(r: ByteReader): boolean {
  const { buf, view, end } = r;
  let i = r.pos;
  for (; i + 4 <= end; i += 4) if (view.getUint32(i) !== 0) return false;
  for (; i < end; i++) if (buf[i] !== 0) return false;
  return true;
}

/**
 * Parses one NetFlow v9 packet at `start` of `buf` (to the end of `buf`). Throws DecodeError
 * for an unusable header; FlowSet and template problems go to sink.error().
 */
export function parseNetflow9Packet(buf: Uint8Array, view: DataView, start: number, sink: SetSink, limits: TemplateParseLimits): Netflow9PacketInfo {
  const r = new ByteReader(buf, start, buf.length, 0, view);
  const version = r.u16('v9 version');
  if (version !== NETFLOW9_VERSION) throw new DecodeError(DecodeErrorCode.BadVersion, `NetFlow version ${version}, expected 9`, start);
  r.need(NETFLOW9_HEADER_BYTES - 2, 'NetFlow v9 header');
  const count = r.u16();
  const uptimeMs = r.u32();
  const exportTimeS = r.u32();
  const sequence = r.u32();
  const observationDomainId = r.u32();
  sink.begin({ version: NETFLOW9_VERSION, exportTimeS, sequence, observationDomainId, uptimeMs });
  while (r.remaining > 0) {
    const setOffset = r.offset;
    const short = r.remaining < FLOWSET_HEADER_BYTES;
    if (short || restIsZero(r)) {
      if (short && !restIsZero(r)) sink.error(new DecodeError(DecodeErrorCode.BadSetLength, `${r.remaining} stray bytes after the last FlowSet`, setOffset));
      break;
    }
    const setId = r.u16();
    const setLength = r.u16();
    if (setLength < FLOWSET_HEADER_BYTES || setLength - FLOWSET_HEADER_BYTES > r.remaining) {
      sink.error(new DecodeError(DecodeErrorCode.BadSetLength, `FlowSet ${setId} length ${setLength} outside 4..${r.remaining + FLOWSET_HEADER_BYTES}`, setOffset + 2));
      break;
    }
    const body = r.sub(setLength - FLOWSET_HEADER_BYTES, 'FlowSet body');
    if (setId === TEMPLATE_FLOWSET_ID) parseTemplateFlowSet(body, sink, limits);
    else if (setId === OPTIONS_TEMPLATE_FLOWSET_ID) parseOptionsTemplateFlowSet(body, sink, limits);
    else if (setId >= MIN_DATA_SET_ID) sink.data(setId, body);
    else sink.error(new DecodeError(DecodeErrorCode.BadSetId, `FlowSet id ${setId} is reserved (RFC 3954 §5.3)`, setOffset, { setId }));
  }
  return { count };
}

function parseTemplateFlowSet(body: ByteReader, sink: SetSink, limits: TemplateParseLimits): void {
  while (body.remaining >= TEMPLATE_HEADER_BYTES && !restIsZero(body)) {
    const offset = body.offset;
    const templateId = body.u16();
    const fieldCount = body.u16();
    if (fieldCount * FIELD_SPEC_BYTES > body.remaining) {
      sink.error(new DecodeError(DecodeErrorCode.BadTemplate, `template ${templateId}: ${fieldCount} fields do not fit the ${body.remaining} bytes left`, offset, { templateId }));
      return;
    }
    const fields = readFields(body, fieldCount, 0, 0);
    const problem = checkTemplate(templateId, fieldCount, offset, limits);
    if (problem !== null) {
      sink.error(problem);
      continue;
    }
    sink.template({ templateId, fields, scopeFieldCount: 0, isOptions: false, offset });
  }
}

function parseOptionsTemplateFlowSet(body: ByteReader, sink: SetSink, limits: TemplateParseLimits): void {
  while (body.remaining >= OPTIONS_TEMPLATE_HEADER_BYTES && !restIsZero(body)) {
    const offset = body.offset;
    const templateId = body.u16();
    const scopeLength = body.u16();
    const optionLength = body.u16();
    if (scopeLength % FIELD_SPEC_BYTES !== 0 || optionLength % FIELD_SPEC_BYTES !== 0 || scopeLength + optionLength > body.remaining) {
      sink.error(new DecodeError(DecodeErrorCode.BadTemplate, `options template ${templateId}: scope length ${scopeLength} / option length ${optionLength} invalid for the ${body.remaining} bytes left`, offset, { templateId }));
      return;
    }
    const scopeCount = scopeLength / FIELD_SPEC_BYTES;
    const fieldCount = scopeCount + optionLength / FIELD_SPEC_BYTES;
    // Scope field types (System 1, Interface 2, ...) are not IEs: tag them with a pseudo-PEN (ie-table.ts).
    const fields = readFields(body, fieldCount, scopeCount, V9_SCOPE_PEN);
    // Each options template record is padded to a 4-byte boundary (§6.1); the padding may be absent at the end.
    const pad = (OPTIONS_TEMPLATE_HEADER_BYTES + scopeLength + optionLength) % 4;
    if (pad !== 0) body.skip(Math.min(4 - pad, body.remaining));
    const problem = fieldCount === 0
      ? new DecodeError(DecodeErrorCode.BadTemplate, `options template ${templateId} has no fields`, offset, { templateId })
      : checkTemplate(templateId, fieldCount, offset, limits);
    if (problem !== null) {
      sink.error(problem);
      continue;
    }
    sink.template({ templateId, fields, scopeFieldCount: scopeCount, isOptions: true, offset });
  }
}

function checkTemplate(templateId: number, fieldCount: number, offset: number, limits: TemplateParseLimits): DecodeError | null {
  if (templateId < MIN_DATA_SET_ID) return new DecodeError(DecodeErrorCode.BadTemplate, `template id ${templateId} < 256 (RFC 3954 §5.2)`, offset, { templateId });
  if (fieldCount === 0) return new DecodeError(DecodeErrorCode.BadTemplate, `template ${templateId} has 0 fields`, offset, { templateId });
  if (fieldCount > limits.maxFieldsPerTemplate) {
    return new DecodeError(DecodeErrorCode.FieldLimit, `template ${templateId}: ${fieldCount} fields exceed the limit of ${limits.maxFieldsPerTemplate}`, offset, { templateId });
  }
  return null;
}

/** Reads fieldCount (type, length) pairs; the caller checked they fit. The first scopeCount get `scopePen`. */
function readFields(body: ByteReader, fieldCount: number, scopeCount: number, scopePen: number): FieldSpec[] {
  const fields = new Array<FieldSpec>(fieldCount);
  for (let i = 0; i < fieldCount; i++) {
    const id = body.u16();
    const length = body.u16();
    fields[i] = { id, enterprise: i < scopeCount ? scopePen : 0, length };
  }
  return fields;
}
