import { IE_ROWS } from './ie-table.generated.js';
import type { InformationElement } from './ie-types.js';

export type { IeDataType, InformationElement } from './ie-types.js';

/** IANA's PEN for reverse-direction elements of biflows (RFC 5103 §6.1). */
export const REVERSE_PEN = 29305;
/** CERT (YAF) marks reverse elements of its own PEN with this bit of the id (libfds biflow "split" 15). */
const CERT_PEN = 6871;
const CERT_REVERSE_BIT = 0x4000;
/** libfds pseudo-PEN for NetFlow v9 field types 128..32767 (see ie-table.generated.ts). */
export const NETFLOW_PEN = 4294967294;
/** libfds pseudo-PEN for NetFlow v9 field types 32768..65535, stored as id − 32768. */
export const NETFLOW_EXTRA_PEN = 4294967295;
/**
 * Pseudo-PEN for NetFlow v9 options scope fields (RFC 3954 §6.1: System 1, Interface 2,
 * Line Card 3, Cache 4, Template 5). Their type numbers collide with IANA IEs 1..5, so the
 * v9 decoder tags scope fields with this PEN to keep them apart from octetDeltaCount etc.
 * 2^32 - 3 is outside every real PEN and next to libfds's NetFlow pseudo-PENs.
 */
export const V9_SCOPE_PEN = 4294967293;
/** Element ids are 15 bits (RFC 7011 §3.2), so enterprise * 2^15 + id is a unique safe integer. */
const ID_SPACE = 0x8000;

const V9_SCOPE_ELEMENTS: readonly InformationElement[] = [
  { id: 1, enterprise: V9_SCOPE_PEN, name: 'scopeSystem', type: 'unsigned32' },
  { id: 2, enterprise: V9_SCOPE_PEN, name: 'scopeInterface', type: 'unsigned32' },
  { id: 3, enterprise: V9_SCOPE_PEN, name: 'scopeLineCard', type: 'unsigned32' },
  { id: 4, enterprise: V9_SCOPE_PEN, name: 'scopeCache', type: 'octetArray' },
  { id: 5, enterprise: V9_SCOPE_PEN, name: 'scopeTemplate', type: 'unsigned16' },
];

function buildIndex(): Map<number, InformationElement> {
  const index = new Map<number, InformationElement>();
  for (const [id, enterprise, name, type, semantics, units] of IE_ROWS) {
    const ie: InformationElement = {
      id,
      enterprise,
      name,
      type,
      ...(semantics === '' ? {} : { semantics }),
      ...(units === '' ? {} : { units }),
    };
    index.set(enterprise * ID_SPACE + id, ie);
  }
  for (const ie of V9_SCOPE_ELEMENTS) index.set(ie.enterprise * ID_SPACE + ie.id, ie);
  return index;
}

const INDEX = buildIndex();
const reverseCache = new Map<number, InformationElement>();

function reverseOf(base: InformationElement, enterprise: number, id: number): InformationElement {
  const key = enterprise * ID_SPACE + id;
  let ie = reverseCache.get(key);
  if (ie === undefined) {
    ie = { ...base, id, enterprise, name: `reverse${base.name.charAt(0).toUpperCase()}${base.name.slice(1)}` };
    reverseCache.set(key, ie);
  }
  return ie;
}

/**
 * The Information Element (enterprise, id), or undefined when the table does not know it.
 * Reverse elements (PEN 29305, RFC 5103; CERT's id bit 0x4000) are derived from their forward element.
 */
export function lookupIe(enterprise: number, id: number): InformationElement | undefined {
  if (!Number.isInteger(id) || id < 0 || id >= ID_SPACE || !Number.isInteger(enterprise) || enterprise < 0 || enterprise > 0xffffffff) {
    return undefined;
  }
  const ie = INDEX.get(enterprise * ID_SPACE + id);
  if (ie !== undefined) return ie;
  if (enterprise === REVERSE_PEN) {
    const base = INDEX.get(id);
    return base === undefined ? undefined : reverseOf(base, enterprise, id);
  }
  if (enterprise === CERT_PEN && (id & CERT_REVERSE_BIT) !== 0) {
    const base = INDEX.get(CERT_PEN * ID_SPACE + (id & ~CERT_REVERSE_BIT));
    return base === undefined ? undefined : reverseOf(base, enterprise, id);
  }
  return undefined;
}

/**
 * A NetFlow v9 field type (RFC 3954 §8; 16 bits, no enterprise bit). Types 1..127 are the
 * IANA IEs by definition (RFC 7012 §5.1 kept them aligned); Cisco keeps using IANA numbers
 * beyond that, so IANA is tried first and libfds's NetFlow tables after.
 */
export function lookupV9Field(type: number): InformationElement | undefined {
  if (type < ID_SPACE) return lookupIe(0, type) ?? lookupIe(NETFLOW_PEN, type);
  return lookupIe(NETFLOW_EXTRA_PEN, type - ID_SPACE);
}

/** Number of generated table entries (for tests and diagnostics). */
export const IE_TABLE_SIZE = IE_ROWS.length;
