import { createHmac } from 'node:crypto';
import type { PseudonymKeyStamp } from '../flow/privacy.js';
import { CRYPTO_PAN_KEY_BYTES } from './crypto-pan.js';

export type { PseudonymKeyStamp } from '../flow/privacy.js';

/**
 * The pseudonymisation key schedule. The site holds one master key (32 bytes, `sealflow keygen
 * --purpose pseudonymize`, kept as a secret source like the spool KEK); the Crypto-PAn key in
 * force during a period is derived from it:
 *
 *   periodKey = HMAC-SHA256(master, "sealflow crypto-pan period key v1" ‖ 0x00 ‖ u64be(startS) ‖ u64be(lengthS))
 *
 * so pseudonyms are linkable within a period and unlinkable across periods, and any period's
 * key can be derived again on site for re-identification (`sealflow reidentify --at`). Nothing
 * derived is stored: a batch records only which period it was written in and the master key's
 * fingerprint (PseudonymKeyStamp), neither of which helps to invert a pseudonym.
 *
 * Rotation: 'never' (one period from the Unix epoch, lengthS 0), 'daily' (UTC days), 'epoch'
 * (periods of spool.epochSeconds aligned to the Unix epoch, as long as a spool data-key epoch).
 */

export type Rotation = 'never' | 'daily' | 'epoch';

export const DAY_SECONDS = 86_400;
/** Bytes of a master key fingerprint: enough to tell keys apart, far too few to learn anything. */
export const KEY_FINGERPRINT_BYTES = 8;

/** Period length in seconds for a rotation (0: never). */
export function periodSeconds(rotation: Rotation, epochSeconds: number): number {
  if (rotation === 'never') return 0;
  return rotation === 'daily' ? DAY_SECONDS : epochSeconds;
}

/** Start (Unix seconds) of the period containing `atMs`. */
export function periodStart(lengthS: number, atMs: number): number {
  if (lengthS === 0) return 0;
  const s = Math.floor(atMs / 1000);
  return s - (((s % lengthS) + lengthS) % lengthS);
}

/** The master key's fingerprint, as recorded per batch and shown in logs. */
export function keyFingerprint(master: Uint8Array): Uint8Array {
  return new Uint8Array(createHmac('sha256', master).update('sealflow pseudonymization key fingerprint v1').digest().subarray(0, KEY_FINGERPRINT_BYTES));
}

/** The Crypto-PAn key of the period starting at `startS` with length `lengthS` (32 bytes; the caller wipes it). */
export function periodKey(master: Uint8Array, startS: number, lengthS: number): Uint8Array {
  const info = Buffer.alloc(16);
  info.writeBigUInt64BE(BigInt(startS), 0);
  info.writeBigUInt64BE(BigInt(lengthS), 8);
  const key = createHmac('sha256', master).update('sealflow crypto-pan period key v1\0').update(info).digest();
  if (key.length !== CRYPTO_PAN_KEY_BYTES) throw new Error('HMAC-SHA256 gave an unexpected length');
  return new Uint8Array(key);
}

export function stampText(s: PseudonymKeyStamp): string {
  const fp = Buffer.from(s.fingerprint).toString('hex');
  if (s.lengthS === 0) return `key ${fp}, no rotation`;
  return `key ${fp}, period ${new Date(s.startS * 1000).toISOString()} + ${s.lengthS} s`;
}
