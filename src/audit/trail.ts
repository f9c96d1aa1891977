import { createHash } from 'node:crypto';
import type Database from 'better-sqlite3';
import type { AuditEvent, AuditLog } from '../flow/audit.js';
import { canonicalJson, type CanonicalValue } from './canonical-json.js';

/**
 * The audit trail: an append-only, hash-chained table of audit events in the spool database
 * (so an event commits in the same transaction as the batch, ack or shredding it describes),
 * with the signed digests and deletion receipts (digests.ts) beside it.
 *
 * Invariants
 * 1. Events are only appended: `seq` comes from AUTOINCREMENT (never reused), and each row
 *    names the hash of the row before it (`prev`; 32 zero bytes before the first event):
 *      hash = SHA-256( canonicalJson({ v: 1, seq, atMs, kind, fields, prev: hex(prev) }) )
 *    so an edited, removed, inserted or reordered row breaks the chain at that row.
 * 2. An event is appended inside the writer's transaction (IMMEDIATE: one writer at a time,
 *    across every connection and thread), reading the chain's end inside it, so concurrent
 *    writers (the ingest worker's connection, the drain's, a command's) stay one chain.
 * 3. No flow data: fields are ids, counts, times, digests, fingerprints, codes (src/flow/audit.ts).
 * 4. Rows leave only by retention (digests.ts prune()), from the front, and only rows a signed
 *    digest already covers; the digests stay and still name the hashes at the cut.
 * What the chain alone cannot show is the newest rows removed: the signed digests (hourly and
 * at shutdown) and the export seal do (see docs/audit.md).
 */

export const AUDIT_FORMAT_VERSION = 1;
export const HASH_BYTES = 32;
export const ZERO_HASH = new Uint8Array(HASH_BYTES);

export const AUDIT_SCHEMA_SQL = `
CREATE TABLE IF NOT EXISTS audit_events (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  at_ms INTEGER NOT NULL,
  kind TEXT NOT NULL,
  fields TEXT NOT NULL,
  prev BLOB NOT NULL,
  hash BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS audit_digests (
  seq INTEGER PRIMARY KEY,
  body TEXT NOT NULL,
  signature BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS audit_receipts (
  epoch INTEGER PRIMARY KEY,
  event_seq INTEGER NOT NULL,
  body TEXT NOT NULL,
  signature BLOB NOT NULL
);
`;

/** One stored event. */
export interface TrailEvent {
  readonly seq: number;
  readonly atMs: number;
  readonly kind: string;
  readonly fields: Record<string, CanonicalValue>;
  readonly prev: Uint8Array;
  readonly hash: Uint8Array;
}

interface EventRow {
  seq: number;
  at_ms: number;
  kind: string;
  fields: string;
  prev: Uint8Array;
  hash: Uint8Array;
}

/** The hash of an event (invariant 1). */
export function eventHash(seq: number, atMs: number, kind: string, fields: CanonicalValue, prev: Uint8Array): Uint8Array {
  const text = canonicalJson({ v: AUDIT_FORMAT_VERSION, seq, atMs, kind, fields, prev: Buffer.from(prev).toString('hex') });
  return new Uint8Array(createHash('sha256').update(text, 'utf8').digest());
}

function toEvent(r: EventRow): TrailEvent {
  return { seq: r.seq, atMs: r.at_ms, kind: r.kind, fields: JSON.parse(r.fields) as Record<string, CanonicalValue>, prev: new Uint8Array(r.prev), hash: new Uint8Array(r.hash) };
}

/** Creates the audit tables if this database has none yet (they need no migration of the spool's own). */
export function ensureAuditSchema(db: Database.Database): void {
  if (db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'audit_events'").get() !== undefined) return;
  db.exec(AUDIT_SCHEMA_SQL);
}

export class AuditTrail implements AuditLog {
  private readonly tail: Database.Statement;
  private readonly sequence: Database.Statement;
  private readonly insert: Database.Statement;

  /** Binds a trail to `db` (a connection to the spool database), creating its tables when missing. */
  constructor(
    readonly db: Database.Database,
    private readonly clock: () => number = Date.now,
  ) {
    if (!db.readonly) ensureAuditSchema(db);
    this.tail = db.prepare('SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1');
    this.sequence = db.prepare("SELECT seq FROM sqlite_sequence WHERE name = 'audit_events'");
    this.insert = db.prepare('INSERT INTO audit_events (seq, at_ms, kind, fields, prev, hash) VALUES (?, ?, ?, ?, ?, ?)');
  }

  /** Appends `event`: inside the caller's transaction when there is one, else in its own. */
  record(event: AuditEvent): void {
    const append = (): void => {
      const { kind, ...fields } = event;
      const last = this.tail.get() as { seq: number; hash: Uint8Array } | undefined;
      const seq = ((this.sequence.get() as { seq: number } | undefined)?.seq ?? 0) + 1;
      const prev = last?.hash ?? ZERO_HASH;
      const atMs = Math.trunc(this.clock());
      const f = fields as unknown as CanonicalValue;
      this.insert.run(seq, atMs, kind, canonicalJson(f), prev, eventHash(seq, atMs, kind, f, prev));
    };
    if (this.db.inTransaction) append();
    else this.db.transaction(append).immediate();
  }

  /** The newest event, or null when the trail is empty. */
  last(): TrailEvent | null {
    const r = this.db.prepare('SELECT * FROM audit_events ORDER BY seq DESC LIMIT 1').get() as EventRow | undefined;
    return r === undefined ? null : toEvent(r);
  }

  /** The newest event of one of `kinds` with seq < `beforeSeq`. */
  lastOf(kinds: readonly string[], beforeSeq = Number.MAX_SAFE_INTEGER): TrailEvent | null {
    const r = this.db.prepare(`SELECT * FROM audit_events WHERE seq < ? AND kind IN (${kinds.map(() => '?').join(',')}) ORDER BY seq DESC LIMIT 1`).get(beforeSeq, ...kinds) as EventRow | undefined;
    return r === undefined ? null : toEvent(r);
  }

  /** The newest event recorded before `atMs`, or null. */
  lastBefore(atMs: number): TrailEvent | null {
    const r = this.db.prepare('SELECT * FROM audit_events WHERE at_ms < ? ORDER BY seq DESC LIMIT 1').get(atMs) as EventRow | undefined;
    return r === undefined ? null : toEvent(r);
  }

  /** Events with fromSeq ≤ seq ≤ toSeq, in order, read in pages (the trail may be large). */
  *events(fromSeq = 0, toSeq = Number.MAX_SAFE_INTEGER, kinds: readonly string[] | null = null): Generator<TrailEvent> {
    const page = kinds === null
      ? this.db.prepare('SELECT * FROM audit_events WHERE seq >= ? AND seq <= ? ORDER BY seq LIMIT 512')
      : this.db.prepare(`SELECT * FROM audit_events WHERE seq >= ? AND seq <= ? AND kind IN (${kinds.map(() => '?').join(',')}) ORDER BY seq LIMIT 512`);
    let from = fromSeq;
    for (;;) {
      const rows = (kinds === null ? page.all(from, toSeq) : page.all(from, toSeq, ...kinds)) as EventRow[];
      for (const r of rows) yield toEvent(r);
      const lastRow = rows.at(-1);
      if (lastRow === undefined || rows.length < 512) return;
      from = lastRow.seq + 1;
    }
  }

  /** The event with this seq, or null. */
  event(seq: number): TrailEvent | null {
    const r = this.db.prepare('SELECT * FROM audit_events WHERE seq = ?').get(seq) as EventRow | undefined;
    return r === undefined ? null : toEvent(r);
  }

  /** The last seq AUTOINCREMENT handed out (rows removed from the end still count). */
  highestSeq(): number {
    return (this.sequence.get() as { seq: number } | undefined)?.seq ?? 0;
  }

  /** The oldest stored event's seq, or null. */
  firstSeq(): number | null {
    const r = this.db.prepare('SELECT min(seq) AS s FROM audit_events').get() as { s: number | null };
    return r.s;
  }
}
