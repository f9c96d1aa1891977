/**
 * The audit port: every happening an auditor asks about, as one typed event, and the one
 * interface the stages record them through. The composition roots (src/app.ts, the ingest
 * worker's thread.ts, the commands) wire an implementation (src/audit/trail.ts: a hash-chained
 * table in the spool database); a stage only ever sees `AuditLog`.
 *
 * What an event may carry: ids, counts, coarse times, digests, key fingerprints, status codes
 * and reason codes. Never flow data (no address, port or exporter payload), never a key, never
 * free text from a remote party (a Fusion error body is reduced to its HTTP status).
 */

import type { LossCounts } from './loss.js';

/** Why batches left the spool without delivery. */
export type EvictReason = 'quota' | 'disk-full';

export type AuditEvent =
  /** A batch was sealed and committed. `digest`: SHA-256 (hex) of its plaintext batch-format bytes; export times in Unix seconds (null for an empty range). */
  | { readonly kind: 'batch.sealed'; readonly batch: number; readonly epoch: number; readonly records: number; readonly firstExportS: number | null; readonly lastExportS: number | null; readonly digest: string; readonly held: boolean }
  /** Every chunk of a batch was acknowledged by Fusion (2xx) and the batch left the spool. */
  | { readonly kind: 'batch.delivered'; readonly batch: number; readonly records: number; readonly chunks: number; readonly status: number; readonly requestId: string | null }
  /** A batch was set aside, still encrypted (Fusion rejected it, or it failed verification). */
  | { readonly kind: 'batch.parked'; readonly batch: number; readonly records: number; readonly reason: string }
  /** Batches were removed from the front of the spool undelivered (ids firstBatch..lastBatch, acknowledged ones excepted). */
  | { readonly kind: 'batch.evicted'; readonly firstBatch: number; readonly lastBatch: number; readonly batches: number; readonly records: number; readonly reason: EvictReason }
  /** The loss ledger's report for a period in which something was lost: counts by reason (src/flow/loss.ts), records and packets. */
  | { readonly kind: 'loss.reported'; readonly fromMs: number; readonly toMs: number; readonly records: LossCounts['records']; readonly packets: LossCounts['packets'] }
  /** A batch was refused before it was sealed (it never reached the disk). */
  | { readonly kind: 'batch.dropped'; readonly records: number; readonly reason: 'quota' | 'oversize' }
  /** Undelivered batches older than spool.maxAgeSeconds were removed from the front (ids firstBatch..lastBatch, acknowledged ones excepted) and their keys shredded once their epochs emptied. */
  | { readonly kind: 'batch.expired'; readonly firstBatch: number; readonly lastBatch: number; readonly batches: number; readonly records: number; readonly maxAgeSeconds: number }
  /** A held batch (an attestation canary) was removed without delivery. */
  | { readonly kind: 'batch.discarded'; readonly batch: number; readonly records: number; readonly reason: string }
  /**
   * An epoch's data key was destroyed (crypto-shredding): every batch sealed under it is
   * unrecoverable. `wrappedKeyDigest`: SHA-256 (hex) of the wrapped key row that was deleted.
   */
  | { readonly kind: 'epoch.shredded'; readonly epoch: number; readonly createdMin: number; readonly endsMin: number; readonly wrappedKeyDigest: string }
  /** Keys were rewrapped under another key-encryption key (fingerprints, hex). */
  | { readonly kind: 'kek.rotated'; readonly from: readonly string[]; readonly to: string; readonly epochs: number }
  /** A pseudonymisation period's key came into force (start or rotation; src/flow/privacy.ts): the master key's fingerprint and the period. */
  | { readonly kind: 'pseudonym_key.in_force'; readonly fingerprint: string; readonly periodStartS: number; readonly periodLengthS: number; readonly reason: 'start' | 'rotation' }
  /**
   * A pseudonym was reversed with the master key (`sealflow reidentify`): the key's fingerprint
   * and period, the pseudonym asked about (what Fusion holds; never the real address), the
   * operating-system user, and whether it was one.
   */
  | { readonly kind: 'pseudonym_key.reidentification'; readonly fingerprint: string; readonly periodStartS: number; readonly periodLengthS: number; readonly pseudonym: string; readonly user: string; readonly outcome: 'reidentified' | 'not_a_pseudonym' }
  /** The effective configuration the probe runs with: SHA-256 (hex) of its canonical, redacted JSON. */
  | { readonly kind: 'config.loaded'; readonly configHash: string; readonly reason: 'start' | 'reload' }
  | { readonly kind: 'probe.started'; readonly version: string; readonly pid: number; readonly node: string }
  | { readonly kind: 'probe.stopped'; readonly reason: string }
  /** The previous run ended without `probe.stopped` (killed, crashed, power cut): named by its last event. */
  | { readonly kind: 'probe.crash_recovered'; readonly lastSeq: number; readonly lastKind: string; readonly lastAtMs: number }
  /** A self-attestation ran (`sealflow attest`): its verdict and the SHA-256 (hex) of its report. */
  | { readonly kind: 'attest.completed'; readonly passed: boolean; readonly findings: number; readonly reportDigest: string };

export type AuditKind = AuditEvent['kind'];

/**
 * Where stages record audit events. `record` is synchronous and, when the caller is inside a
 * transaction of the database the log is bound to, part of that transaction: the event commits
 * or rolls back with what it describes. It throws only what the database throws.
 */
export interface AuditLog {
  record(event: AuditEvent): void;
}

/** Records nothing (tools and tests that have no trail). */
export const NO_AUDIT: AuditLog = Object.freeze({ record: (): void => undefined });
