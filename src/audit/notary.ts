import { createHash } from 'node:crypto';
import type { CanonicalValue } from './canonical-json.js';
import { canonicalJson } from './canonical-json.js';
import { verifySignature, type DeviceKey } from './device-key.js';
import { ZERO_HASH, type AuditTrail, type TrailEvent } from './trail.js';

/**
 * The notary: signs the trail with the device key, CloudTrail-style.
 *
 * - A digest covers the events after the previous digest up to the trail's end at signing
 *   time (possibly none: an hourly digest with no events still proves the probe was running
 *   and signing). It names the hashes at both ends of its range and the previous digest (its
 *   hash and signature), so digests form a signed chain over the event chain. Signed every
 *   `audit.digestIntervalSeconds` (1 h) and at shutdown.
 * - A deletion receipt is a signed statement per crypto-shredded epoch, naming the
 *   `epoch.shredded` event (seq and hash) it attests; issued with the next digest.
 * Signature = Ed25519 over the UTF-8 canonical JSON of the body (canonical-json.ts), so
 * `openssl pkeyutl -verify -rawin` checks one with the PEM public key.
 */

export const DIGEST_FORMAT = 'sealflow-audit-digest/1';
export const RECEIPT_FORMAT = 'sealflow-deletion-receipt/1';

export interface DigestBody {
  readonly format: typeof DIGEST_FORMAT;
  readonly spoolId: string;
  readonly keyId: string;
  readonly seq: number;
  readonly reason: string;
  readonly createdAtMs: number;
  /** Events covered: firstEventSeq..lastEventSeq (firstEventSeq = lastEventSeq + 1 when none). */
  readonly firstEventSeq: number;
  readonly lastEventSeq: number;
  readonly events: number;
  /** Hash of the event before the range (the chain's `prev` of firstEventSeq); zeros at the start. */
  readonly startHash: string;
  /** Hash of lastEventSeq's event (= startHash when the range is empty). */
  readonly endHash: string;
  /** SHA-256 (hex) of the previous digest's canonical body, and its signature; zeros / '' for the first. */
  readonly previousDigestHash: string;
  readonly previousDigestSignature: string;
  readonly previousDigestAtMs: number | null;
}

export interface ReceiptBody {
  readonly format: typeof RECEIPT_FORMAT;
  readonly spoolId: string;
  readonly keyId: string;
  readonly epoch: number;
  readonly createdMin: number;
  readonly endsMin: number;
  readonly shreddedAtMs: number;
  readonly wrappedKeyDigest: string;
  readonly eventSeq: number;
  readonly eventHash: string;
  readonly issuedAtMs: number;
  readonly statement: string;
}

export interface Signed<B> {
  readonly body: B;
  /** Base64 Ed25519 signature over canonicalJson(body). */
  readonly signature: string;
}

export const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
export const ZERO_HEX = hex(ZERO_HASH);

export function sha256Hex(text: string | Uint8Array): string {
  return createHash('sha256').update(text).digest('hex');
}

/** SHA-256 (hex) of a digest's canonical body: what the next digest names. */
export function digestHash(body: DigestBody): string {
  return sha256Hex(canonicalJson(body as unknown as CanonicalValue));
}

interface DigestRow {
  seq: number;
  body: string;
  signature: Uint8Array;
}

function toSigned<B>(r: { body: string; signature: Uint8Array }): Signed<B> {
  return { body: JSON.parse(r.body) as B, signature: Buffer.from(r.signature).toString('base64') };
}

export class AuditNotary {
  constructor(
    private readonly trail: AuditTrail,
    private readonly key: DeviceKey,
    private readonly clock: () => number = Date.now,
  ) {}

  get keyId(): string {
    return this.key.keyId;
  }

  /** The spool id (hex) the trail belongs to. */
  spoolId(): string {
    const r = this.trail.db.prepare('SELECT spool_id FROM meta WHERE id = 1').get() as { spool_id: Uint8Array } | undefined;
    return r === undefined ? '' : hex(r.spool_id);
  }

  /** Signs a digest of the events since the last one, and receipts for the epochs shredded in them; one transaction. */
  sign(reason: string): { digest: Signed<DigestBody>; receipts: Signed<ReceiptBody>[] } {
    const db = this.trail.db;
    return db.transaction(() => {
      const prev = lastDigest(db);
      const head = this.trail.last();
      const from = (prev?.body.lastEventSeq ?? 0) + 1;
      const lastSeq = Math.max(head?.seq ?? 0, from - 1);
      const startHash = prev?.body.endHash ?? (from === 1 ? ZERO_HEX : hex(this.trail.event(from)?.prev ?? ZERO_HASH));
      const endHash = lastSeq >= from ? hex(head?.hash ?? ZERO_HASH) : startHash;
      const now = Math.trunc(this.clock());
      const body: DigestBody = {
        format: DIGEST_FORMAT,
        spoolId: this.spoolId(),
        keyId: this.key.keyId,
        seq: (prev?.body.seq ?? 0) + 1,
        reason,
        createdAtMs: now,
        firstEventSeq: from,
        lastEventSeq: lastSeq,
        events: lastSeq - from + 1,
        startHash,
        endHash,
        previousDigestHash: prev === null ? ZERO_HEX : digestHash(prev.body),
        previousDigestSignature: prev === null ? '' : Buffer.from(prev.signature, 'base64').toString('hex'),
        previousDigestAtMs: prev?.body.createdAtMs ?? null,
      };
      const digest = this.signBody(body);
      db.prepare('INSERT INTO audit_digests (seq, body, signature) VALUES (?, ?, ?)').run(body.seq, canonicalJson(body as unknown as CanonicalValue), Buffer.from(digest.signature, 'base64'));
      const receipts: Signed<ReceiptBody>[] = [];
      for (const e of this.trail.events(from, lastSeq, ['epoch.shredded'])) receipts.push(this.issueReceipt(e, body.spoolId, now));
      return { digest, receipts };
    }).immediate();
  }

  private issueReceipt(e: TrailEvent, spoolId: string, now: number): Signed<ReceiptBody> {
    const f = e.fields as { epoch: number; createdMin: number; endsMin: number; wrappedKeyDigest: string };
    const body: ReceiptBody = {
      format: RECEIPT_FORMAT,
      spoolId,
      keyId: this.key.keyId,
      epoch: f.epoch,
      createdMin: f.createdMin,
      endsMin: f.endsMin,
      shreddedAtMs: e.atMs,
      wrappedKeyDigest: f.wrappedKeyDigest,
      eventSeq: e.seq,
      eventHash: hex(e.hash),
      issuedAtMs: now,
      statement: `The data key of spool epoch ${f.epoch} was destroyed; every batch sealed under it is unrecoverable.`,
    };
    const signed = this.signBody(body);
    this.trail.db.prepare('INSERT OR REPLACE INTO audit_receipts (epoch, event_seq, body, signature) VALUES (?, ?, ?, ?)').run(f.epoch, e.seq, canonicalJson(body as unknown as CanonicalValue), Buffer.from(signed.signature, 'base64'));
    return signed;
  }

  /** Signs any canonical body with the device key (attestation reports, export seals, the evidence manifest). */
  signBody<B>(body: B): Signed<B> {
    return signDocument(this.key, body);
  }

  /**
   * Retention: removes events older than `cutoffMs` that a digest already covers, from the
   * front, in short transactions. Digests and receipts stay. Returns the events removed.
   */
  prune(cutoffMs: number): number {
    const db = this.trail.db;
    const covered = lastDigest(db)?.body.lastEventSeq ?? 0;
    const del = db.prepare('DELETE FROM audit_events WHERE seq IN (SELECT seq FROM audit_events WHERE seq <= ? AND at_ms < ? ORDER BY seq LIMIT 1000)');
    let total = 0;
    for (;;) {
      const n = db.transaction(() => del.run(covered, cutoffMs).changes).immediate();
      total += n;
      if (n < 1000) return total;
    }
  }
}

/** Signs a document's canonical JSON with the device key (digests, receipts, attestation reports, the evidence manifest). */
export function signDocument<B>(key: DeviceKey, body: B): Signed<B> {
  return { body, signature: Buffer.from(key.sign(canonicalJson(body as unknown as CanonicalValue))).toString('base64') };
}

/** Whether `doc` is signed by `publicKey` (call signingReady() first). */
export function verifyDocument(publicKey: Uint8Array, doc: Signed<unknown>): boolean {
  return verifySignature(publicKey, canonicalJson(doc.body as CanonicalValue), Buffer.from(doc.signature, 'base64'));
}

/** The newest signed digest in `db`, or null. */
export function lastDigest(db: AuditTrail['db']): Signed<DigestBody> | null {
  const r = db.prepare('SELECT seq, body, signature FROM audit_digests ORDER BY seq DESC LIMIT 1').get() as DigestRow | undefined;
  return r === undefined ? null : toSigned<DigestBody>(r);
}

export function allDigests(db: AuditTrail['db']): Signed<DigestBody>[] {
  return (db.prepare('SELECT seq, body, signature FROM audit_digests ORDER BY seq').all() as DigestRow[]).map((r) => toSigned<DigestBody>(r));
}

export function allReceipts(db: AuditTrail['db']): Signed<ReceiptBody>[] {
  return (db.prepare('SELECT body, signature FROM audit_receipts ORDER BY epoch').all() as { body: string; signature: Uint8Array }[]).map((r) => toSigned<ReceiptBody>(r));
}
