import { closeSync, openSync, readSync } from 'node:fs';
import type Database from 'better-sqlite3';
import type { CanonicalValue } from './canonical-json.js';
import { allDigests, allReceipts, digestHash, hex, ZERO_HEX, type AuditNotary, type DigestBody, type ReceiptBody, type Signed } from './notary.js';
import { AuditTrail, type TrailEvent } from './trail.js';

/**
 * The export format (`sealflow audit export`), JSON lines, in this order:
 *   {"type":"header", "format":"sealflow-audit-export/1", "spoolId", "keyId", "exportedAtMs"}
 *   {"type":"event", "seq", "atMs", "kind", "fields", "prev", "hash"}      (ascending seq)
 *   {"type":"digest", "body", "signature"}   right after the event its range ends with
 *   {"type":"receipt", "body", "signature"}  deletion receipts, by epoch
 *   {"type":"seal", "body", "signature"}     signed at export: the ends of what was written
 * The seal makes a cut-off file detectable (its counts and end hashes no longer match); the
 * digests make an edited or reordered one detectable. verify.ts reads it back, and reads a
 * spool database directly through the same TrailSource shape.
 */

export const EXPORT_FORMAT = 'sealflow-audit-export/1';
export const SEAL_FORMAT = 'sealflow-audit-export-seal/1';

export interface ExportedEvent {
  readonly seq: number;
  readonly atMs: number;
  readonly kind: string;
  readonly fields: Record<string, CanonicalValue>;
  /** Hex. */
  readonly prev: string;
  readonly hash: string;
}

export interface SealBody {
  readonly format: typeof SEAL_FORMAT;
  readonly spoolId: string;
  readonly keyId: string;
  readonly exportedAtMs: number;
  readonly events: number;
  readonly firstEventSeq: number | null;
  readonly lastEventSeq: number | null;
  readonly lastEventHash: string;
  readonly digests: number;
  readonly lastDigestSeq: number | null;
  readonly lastDigestHash: string;
  readonly receipts: number;
}

export type ExportLine =
  | { readonly type: 'header'; readonly format: string; readonly spoolId: string; readonly keyId: string | null; readonly exportedAtMs: number }
  | ({ readonly type: 'event' } & ExportedEvent)
  | ({ readonly type: 'digest' } & Signed<DigestBody>)
  | ({ readonly type: 'receipt' } & Signed<ReceiptBody>)
  | ({ readonly type: 'seal' } & Signed<SealBody>);

/** What the verifier reads: an export file or a spool database. */
export interface TrailSource {
  readonly description: string;
  /** Whether the source must carry a seal (an export file) or cannot (a live database). */
  readonly sealed: boolean;
  /** Digests, receipts and the seal: small, read whole. `order` lists the problems of their placement. */
  readonly digests: readonly Signed<DigestBody>[];
  readonly receipts: readonly Signed<ReceiptBody>[];
  readonly seal: Signed<SealBody> | null;
  /** Problems found while reading (malformed lines, misplaced records). */
  readonly problems: readonly string[];
  /** Events with seq ≥ fromSeq, in the source's order. */
  events(fromSeq: number): Iterable<ExportedEvent>;
}

export function exportedEvent(e: TrailEvent): ExportedEvent {
  return { seq: e.seq, atMs: e.atMs, kind: e.kind, fields: e.fields, prev: hex(e.prev), hash: hex(e.hash) };
}

/**
 * Writes the trail of `db` as export lines through `write`. With a notary (the device key is
 * available) the export ends with a signed seal; without one it has none, and the verifier
 * reports that the end of the file cannot be checked.
 */
export function writeExport(db: Database.Database, notary: AuditNotary | null, write: (line: string) => void, clock: () => number = Date.now): SealBody {
  const trail = new AuditTrail(db, clock);
  // One read snapshot: events, digests and receipts as of the same moment.
  const run = db.transaction(() => {
    const digests = allDigests(db);
    const receipts = allReceipts(db);
    const spoolId = (db.prepare('SELECT spool_id FROM meta WHERE id = 1').get() as { spool_id: Uint8Array } | undefined)?.spool_id;
    const exportedAtMs = Math.trunc(clock());
    const spool = spoolId === undefined ? '' : hex(spoolId);
    const line = (v: ExportLine): void => write(JSON.stringify(v));
    line({ type: 'header', format: EXPORT_FORMAT, spoolId: spool, keyId: digests.at(-1)?.body.keyId ?? null, exportedAtMs });
    let d = 0;
    let count = 0;
    let first: number | null = null;
    let last: TrailEvent | null = null;
    const flushDigestsThrough = (seq: number): void => {
      for (let next = digests[d]; next !== undefined && next.body.lastEventSeq <= seq; next = digests[++d]) line({ type: 'digest', ...next });
    };
    for (const e of trail.events()) {
      flushDigestsThrough(e.seq - 1);
      line({ type: 'event', ...exportedEvent(e) });
      first ??= e.seq;
      last = e;
      count++;
    }
    flushDigestsThrough(Number.MAX_SAFE_INTEGER);
    for (const r of receipts) line({ type: 'receipt', ...r });
    const lastDigest = digests.at(-1);
    const body: SealBody = {
      format: SEAL_FORMAT,
      spoolId: spool,
      keyId: lastDigest?.body.keyId ?? '',
      exportedAtMs,
      events: count,
      firstEventSeq: first,
      lastEventSeq: last?.seq ?? null,
      lastEventHash: last === null ? ZERO_HEX : hex(last.hash),
      digests: digests.length,
      lastDigestSeq: lastDigest?.body.seq ?? null,
      lastDigestHash: lastDigest === undefined ? ZERO_HEX : digestHash(lastDigest.body),
      receipts: receipts.length,
    };
    if (notary !== null) line({ type: 'seal', ...notary.signBody({ ...body, keyId: notary.keyId }) });
    return body;
  });
  return run.deferred();
}

/** Lines of a file, read synchronously in 1 MiB chunks (export files can be large). */
export function* fileLines(path: string): Generator<string> {
  const fd = openSync(path, 'r');
  try {
    const buf = Buffer.alloc(1 << 20);
    let rest = '';
    for (;;) {
      const n = readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      const text = rest + buf.toString('utf8', 0, n);
      const parts = text.split('\n');
      rest = parts.pop() ?? '';
      for (const p of parts) if (p.trim() !== '') yield p;
    }
    if (rest.trim() !== '') yield rest;
  } finally {
    closeSync(fd);
  }
}

/** An export file as a TrailSource (two passes: the small records first, then the events on demand). */
export function exportFileSource(path: string): TrailSource {
  return exportLinesSource(path, () => fileLines(path));
}

/** Export lines (read twice through `lines`) as a TrailSource: an export file, or one inside an evidence pack. */
export function exportLinesSource(description: string, lines: () => Iterable<string>): TrailSource {
  const digests: Signed<DigestBody>[] = [];
  const receipts: Signed<ReceiptBody>[] = [];
  const problems: string[] = [];
  let seal: Signed<SealBody> | null = null;
  let lineNo = 0;
  let sawHeader = false;
  for (const text of lines()) {
    lineNo++;
    let v: ExportLine;
    try {
      v = JSON.parse(text) as ExportLine;
    } catch {
      problems.push(`line ${lineNo}: not JSON`);
      continue;
    }
    if (seal !== null) problems.push(`line ${lineNo}: a ${v.type} record after the seal`);
    switch (v.type) {
      case 'header':
        if (lineNo !== 1) problems.push(`line ${lineNo}: header not on the first line`);
        if (v.format !== EXPORT_FORMAT) problems.push(`line ${lineNo}: unknown export format ${JSON.stringify(v.format)}`);
        sawHeader = true;
        break;
      case 'digest':
        digests.push({ body: v.body, signature: v.signature });
        break;
      case 'receipt':
        receipts.push({ body: v.body, signature: v.signature });
        break;
      case 'seal':
        seal = { body: v.body, signature: v.signature };
        break;
      case 'event':
        break;
      default:
        problems.push(`line ${lineNo}: unknown record type`);
    }
  }
  if (!sawHeader) problems.push('no header line: not a sealflow audit export');
  return {
    description,
    sealed: true,
    digests,
    receipts,
    seal,
    problems,
    *events(fromSeq: number): Generator<ExportedEvent> {
      for (const text of lines()) {
        let v: ExportLine;
        try {
          v = JSON.parse(text) as ExportLine;
        } catch {
          continue;
        }
        if (v.type === 'event' && v.seq >= fromSeq) yield v;
      }
    },
  };
}

/** A spool database as a TrailSource (read as it is now; it has no seal). */
export function databaseSource(db: Database.Database): TrailSource {
  const hasTrail = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'audit_events'").get() !== undefined;
  return {
    description: db.name,
    sealed: false,
    digests: hasTrail ? allDigests(db) : [],
    receipts: hasTrail ? allReceipts(db) : [],
    seal: null,
    problems: hasTrail ? [] : ['the spool database has no audit trail'],
    *events(fromSeq: number): Generator<ExportedEvent> {
      if (!hasTrail) return;
      for (const e of new AuditTrail(db).events(fromSeq)) yield exportedEvent(e);
    },
  };
}
