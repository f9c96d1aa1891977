/**
 * A fixed-length key as text, the one format of every key sealflow reads from a secret source
 * (the spool KEK, the master pseudonymisation key): base64, standard or URL-safe alphabet,
 * padding optional, surrounding whitespace ignored.
 */

/** Decodes a base64 key of exactly `bytes` bytes; null when the text is anything else. */
export function parseBase64Key(text: string, bytes: number): Uint8Array | null {
  const t = text.trim().replace(/-/g, '+').replace(/_/g, '/').replace(/=+$/, '');
  if (!/^[A-Za-z0-9+/]+$/.test(t)) return null;
  const decoded = Buffer.from(t, 'base64');
  if (decoded.length !== bytes) return null;
  // Buffer's decoder skips garbage silently; re-encoding proves every character was used.
  if (decoded.toString('base64').replace(/=+$/, '') !== t) return null;
  return new Uint8Array(decoded);
}
