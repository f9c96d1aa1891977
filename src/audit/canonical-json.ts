/**
 * Canonical JSON for everything sealflow hashes or signs (audit events, digests, receipts,
 * attestation reports, the evidence manifest): object keys sorted by UTF-16 code units, no
 * whitespace, strings escaped as JSON.stringify does, numbers only as safe integers or finite
 * decimals in JSON.stringify's shortest form. This is the subset of RFC 8785 (JCS) these
 * documents use, so any JCS implementation reproduces the bytes an auditor checks.
 */

export type CanonicalValue = null | boolean | number | string | readonly CanonicalValue[] | CanonicalObject;
export interface CanonicalObject {
  readonly [k: string]: CanonicalValue | undefined;
}

/** The canonical text of `value`; undefined members are left out. Throws on non-finite numbers and other types. */
export function canonicalJson(value: CanonicalValue): string {
  if (value === null) return 'null';
  switch (typeof value) {
    case 'boolean':
      return value ? 'true' : 'false';
    case 'number':
      if (!Number.isFinite(value)) throw new TypeError('canonical JSON: numbers must be finite');
      return JSON.stringify(value);
    case 'string':
      return JSON.stringify(value);
    default:
      break;
  }
  if (Array.isArray(value)) return `[${(value as readonly CanonicalValue[]).map((v) => canonicalJson(v)).join(',')}]`;
  const obj = value as CanonicalObject;
  const parts: string[] = [];
  for (const k of Object.keys(obj).sort()) {
    const v = obj[k];
    if (v === undefined) continue;
    parts.push(`${JSON.stringify(k)}:${canonicalJson(v)}`);
  }
  return `{${parts.join(',')}}`;
}
