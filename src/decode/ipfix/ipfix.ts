import { DecodeError, DecodeErrorCode } from '../../flow/errors.js';
import type { FieldSpec } from '../../flow/flow-record.js';
import { ByteReader } from '../byte-reader.js';
import type { SetSink, TemplateDefinition, TemplateParseLimits } from '../template/template.js';
import { MIN_DATA_SET_ID } from '../template/template.js';

/**
 * IPFIX message framing (RFC 7011 §3). Message header, 16 bytes:
 *   0 version u16 (= 10)   2 length u16 (whole message, header included)
 *   4 exportTime u32 (Unix s)   8 sequenceNumber u32   12 observationDomainId u32
 * then sets, each: setId u16, length u16 (header included, ≥ 4), body.
 *   setId 2 = Template Set, 3 = Options Template Set, ≥ 256 = Data Set for that template;
 *   0 and 1 are NetFlow v9's ids and invalid here; 4..255 are reserved (§3.3.2).
 */
export const IPFIX_VERSION = 10;
export const IPFIX_HEADER_BYTES = 16;
const SET_HEADER_BYTES = 4;
const TEMPLATE_SET_ID = 2;
const OPTIONS_TEMPLATE_SET_ID = 3;
/** Template record header: templateId u16, fieldCount u16 (+ scopeFieldCount u16 for options). */
const TEMPLATE_HEADER_BYTES = 4;
const OPTIONS_TEMPLATE_HEADER_BYTES = 6;
/** Field specifier without / with the 4-byte enterprise number (§3.2). */
const FIELD_SPEC_BYTES = 4;
const ENTERPRISE_BIT = 0x8000;
/** RFC 7011 §8.1: template ID 2 / 3 with field count 0 withdraws all (options) templates. */
const WITHDRAW_ALL_TEMPLATES_ID = 2;
const WITHDRAW_ALL_OPTIONS_ID = 3;

export interface IpfixMessageInfo {
  /** Bytes the message occupies (its header length field). */
  readonly length: number;
}

/**
 * Parses one IPFIX message starting at `start` of `buf`, handing templates, withdrawals and
 * data sets to `sink`. Throws DecodeError for header problems (the message is unusable); set
 * and template problems go to sink.error() and parsing continues with the next set.
 */
export function parseIpfixMessage(buf: Uint8Array, view: DataView, start: number, sink: SetSink, limits: TemplateParseLimits): IpfixMessageInfo {
  const outer = new ByteReader(buf, start, buf.length, 0, view);
  const version = outer.u16('IPFIX version');
  if (version !== IPFIX_VERSION) throw new DecodeError(DecodeErrorCode.BadVersion, `IPFIX version ${version}, expected 10`, start);
  const length = outer.u16('IPFIX message length');
  if (length < IPFIX_HEADER_BYTES) throw new DecodeError(DecodeErrorCode.BadLength, `IPFIX message length ${length} < 16`, start + 2);
  if (start + length > buf.length) {
    throw new DecodeError(DecodeErrorCode.BadLength, `IPFIX message length ${length} exceeds the ${buf.length - start} bytes received`, start + 2);
  }
  outer.need(IPFIX_HEADER_BYTES - 4, 'IPFIX header');
  const exportTimeS = outer.u32();
  const sequence = outer.u32();
  const observationDomainId = outer.u32();
  sink.begin({ version: IPFIX_VERSION, exportTimeS, sequence, observationDomainId, uptimeMs: -1 });
  const msg = new ByteReader(buf, start + IPFIX_HEADER_BYTES, start + length, 0, view);
  while (msg.remaining > 0) {
    const setOffset = msg.offset;
    if (msg.remaining < SET_HEADER_BYTES) {
      sink.error(new DecodeError(DecodeErrorCode.BadSetLength, `${msg.remaining} stray bytes after the last set`, setOffset));
      break;
    }
    const setId = msg.u16();
    const setLength = msg.u16();
    if (setLength < SET_HEADER_BYTES || setLength - SET_HEADER_BYTES > msg.remaining) {
      // Without a trustworthy length nothing after this point can be framed (§3.3.2).
      sink.error(new DecodeError(DecodeErrorCode.BadSetLength, `set ${setId} length ${setLength} outside 4..${msg.remaining + SET_HEADER_BYTES}`, setOffset + 2));
      break;
    }
    const body = msg.sub(setLength - SET_HEADER_BYTES, 'set body');
    if (setId === TEMPLATE_SET_ID || setId === OPTIONS_TEMPLATE_SET_ID) {
      parseTemplateSet(body, setId === OPTIONS_TEMPLATE_SET_ID, sink, limits);
    } else if (setId >= MIN_DATA_SET_ID) {
      sink.data(setId, body);
    } else {
      const what = setId <= 1 ? 'a NetFlow v9 set id, invalid in IPFIX' : 'reserved';
      sink.error(new DecodeError(DecodeErrorCode.BadSetId, `set id ${setId} is ${what} (RFC 7011 §3.3.2)`, setOffset, { setId }));
    }
  }
  return { length };
}

function parseTemplateSet(body: ByteReader, isOptions: boolean, sink: SetSink, limits: TemplateParseLimits): void {
  const headerBytes = isOptions ? OPTIONS_TEMPLATE_HEADER_BYTES : TEMPLATE_HEADER_BYTES;
  // Fewer bytes than a record header left: set padding (§3.3.1).
  while (body.remaining >= TEMPLATE_HEADER_BYTES) {
    const offset = body.offset;
    const templateId = body.u16();
    const fieldCount = body.u16();
    if (fieldCount === 0) {
      // Template Withdrawal (§8.1): header only, for options templates too.
      if (templateId === 0 && body.remaining === 0) break; // zero padding that looks like a record
      const scope = templateId === WITHDRAW_ALL_TEMPLATES_ID ? 'allTemplates' : templateId === WITHDRAW_ALL_OPTIONS_ID ? 'allOptionsTemplates' : 'one';
      if (scope === 'one' && templateId < MIN_DATA_SET_ID) {
        sink.error(new DecodeError(DecodeErrorCode.BadTemplate, `withdrawal of template id ${templateId} < 256`, offset, { templateId }));
        continue;
      }
      sink.withdraw(templateId, scope, offset);
      continue;
    }
    let scopeFieldCount = 0;
    if (isOptions) {
      if (body.remaining < headerBytes - TEMPLATE_HEADER_BYTES) break;
      scopeFieldCount = body.u16('scope field count');
    }
    // Each field specifier takes ≥ 4 bytes: check before allocating anything for fieldCount.
    if (fieldCount * FIELD_SPEC_BYTES > body.remaining) {
      sink.error(new DecodeError(DecodeErrorCode.BadTemplate, `template ${templateId}: ${fieldCount} fields do not fit the ${body.remaining} bytes left in the set`, offset, { templateId }));
      return;
    }
    const result = readFieldSpecs(body, fieldCount, templateId, offset, limits);
    if (result instanceof DecodeError) {
      sink.error(result);
      if (result.code === DecodeErrorCode.Truncated) return;
      continue;
    }
    if (templateId < MIN_DATA_SET_ID) {
      sink.error(new DecodeError(DecodeErrorCode.BadTemplate, `template id ${templateId} < 256 (RFC 7011 §3.4.1)`, offset, { templateId }));
      continue;
    }
    if (isOptions && (scopeFieldCount === 0 || scopeFieldCount > fieldCount)) {
      sink.error(new DecodeError(DecodeErrorCode.BadTemplate, `options template ${templateId}: scope field count ${scopeFieldCount} not in 1..${fieldCount} (RFC 7011 §3.4.2.2)`, offset, { templateId }));
      continue;
    }
    const def: TemplateDefinition = { templateId, fields: result, scopeFieldCount, isOptions, offset };
    sink.template(def);
  }
}

/**
 * Reads `fieldCount` field specifiers. Always consumes them all (so the next template record
 * stays framed) and returns an error instead of the fields when one is unacceptable.
 */
function readFieldSpecs(body: ByteReader, fieldCount: number, templateId: number, offset: number, limits: TemplateParseLimits): FieldSpec[] | DecodeError {
  const tooMany = fieldCount > limits.maxFieldsPerTemplate;
  const fields: FieldSpec[] = tooMany ? [] : new Array<FieldSpec>(fieldCount);
  let problem: DecodeError | null = tooMany
    ? new DecodeError(DecodeErrorCode.FieldLimit, `template ${templateId}: ${fieldCount} fields exceed the limit of ${limits.maxFieldsPerTemplate}`, offset, { templateId })
    : null;
  for (let i = 0; i < fieldCount; i++) {
    if (body.remaining < FIELD_SPEC_BYTES) {
      return new DecodeError(DecodeErrorCode.Truncated, `template ${templateId}: field ${i} truncated`, body.offset, { templateId });
    }
    const fieldOffset = body.offset;
    const rawId = body.u16();
    const length = body.u16();
    let enterprise = 0;
    if ((rawId & ENTERPRISE_BIT) !== 0) {
      if (body.remaining < 4) return new DecodeError(DecodeErrorCode.Truncated, `template ${templateId}: enterprise number of field ${i} truncated`, body.offset, { templateId });
      enterprise = body.u32();
    }
    const id = rawId & ~ENTERPRISE_BIT;
    // A fixed length of 0 encodes nothing: empty values use variable-length encoding with a
    // 0 length byte (RFC 7011 §7), so such a template cannot be decoded as its sender meant.
    if (length === 0 && problem === null) {
      problem = new DecodeError(DecodeErrorCode.BadFieldLength, `template ${templateId}: field ${i} (IE ${id}) has length 0`, fieldOffset, { templateId, ie: id });
    }
    if (!tooMany) fields[i] = { id, enterprise, length };
  }
  return problem ?? fields;
}
