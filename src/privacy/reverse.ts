import type { IpAddr } from '../flow/flow-record.js';
import { CryptoPan } from './crypto-pan.js';
import { periodKey, periodSeconds, periodStart, type Rotation } from './key-schedule.js';
import { MAX_WALK_STEPS, type PseudonymPolicy } from './policy.js';

/**
 * Re-identification: the inverse of Pseudonymizer.a4/a6 for one period's key. A pseudonym
 * lies inside the prefix entry that made it (policy.ts), so that entry is found from the
 * pseudonym itself; Crypto-PAn is then reversed, and again while the result is an address
 * that entry does not govern (undoing the forward cycle walk). Slow on purpose (one AES block
 * per bit): it is for incident response on site (`sealflow reidentify`), not the ingest path.
 */

/** The Crypto-PAn instance of the period containing `atMs`. */
export function cryptoPanAt(master: Uint8Array, rotation: Rotation, epochSeconds: number, atMs: number): { readonly cp: CryptoPan; readonly startS: number; readonly lengthS: number } {
  const lengthS = periodSeconds(rotation, epochSeconds);
  const startS = periodStart(lengthS, atMs);
  const key = periodKey(master, startS, lengthS);
  const cp = new CryptoPan(key);
  key.fill(0);
  return { cp, startS, lengthS };
}

/** The real address behind pseudonym `p`, or null when the policy would never produce `p` as a pseudonym (it is kept in clear, or outside every pseudonymised prefix). */
export function reversePseudonym(policy: PseudonymPolicy, cp: CryptoPan, p: IpAddr): IpAddr | null {
  if (typeof p === 'number') {
    const e = policy.pseudonymizingEntryV4(p);
    if (e < 0) return null;
    const fixed = policy.entries[e]?.prefix.length ?? 32;
    let x = cp.decryptV4(p, fixed);
    for (let step = 0; policy.matchV4(x) !== e; step++) {
      if (step >= MAX_WALK_STEPS) return null;
      x = cp.decryptV4(x, fixed);
    }
    return x;
  }
  const e = policy.pseudonymizingEntryV6(p);
  if (e < 0) return null;
  const fixed = policy.entries[e]?.prefix.length ?? 128;
  const x = new Uint8Array(16);
  cp.decryptV6(p, x, fixed);
  for (let step = 0; policy.matchV6(x) !== e; step++) {
    if (step >= MAX_WALK_STEPS) return null;
    cp.decryptV6(Uint8Array.from(x), x, fixed);
  }
  return x;
}
