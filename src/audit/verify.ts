import type { CanonicalValue } from './canonical-json.js';
import { canonicalJson } from './canonical-json.js';
import { keyIdOf, verifySignature } from './device-key.js';
import type { ExportedEvent, SealBody, TrailSource } from './export.js';
import { DIGEST_FORMAT, digestHash, RECEIPT_FORMAT, ZERO_HEX, type DigestBody, type ReceiptBody, type Signed } from './notary.js';
import { eventHash } from './trail.js';

/**
 * The offline verifier (`sealflow audit verify`): needs only the device's public key and the
 * trail (an export file or the spool database). It checks
 *   - every event's hash and its link to the one before (edits, insertions, removals, reorders);
 *   - every digest's signature under the given key, its link to the previous digest, and that
 *     the events it covers end at the hash it signed (events cut from its range);
 *   - every receipt's signature and that it names the event it attests;
 *   - an export's seal: signature and the ends of the file (a cut-off file);
 * and reports gaps — spans the trail cannot vouch for: pruned by retention, the probe not
 * running, a crash, no digest for longer than the interval, events after the last digest.
 * Failures make the trail untrustworthy; gaps are facts an auditor weighs.
 */

export interface VerifyFailure {
  readonly code: 'event-hash' | 'event-link' | 'event-order' | 'digest-signature' | 'digest-key' | 'digest-chain' | 'digest-range' | 'receipt' | 'seal' | 'format';
  readonly message: string;
}

export interface VerifyGap {
  readonly kind: 'pruned' | 'not-running' | 'crash' | 'no-digest' | 'unsigned-tail' | 'before-since';
  readonly fromMs: number | null;
  readonly toMs: number | null;
  readonly detail: string;
}

export interface VerifyReport {
  readonly ok: boolean;
  readonly source: string;
  readonly keyId: string;
  readonly failures: readonly VerifyFailure[];
  readonly gaps: readonly VerifyGap[];
  readonly events: number;
  readonly firstEventSeq: number | null;
  readonly lastEventSeq: number | null;
  readonly digests: number;
  /** The last event a valid digest signs. */
  readonly signedThroughSeq: number;
  readonly receipts: number;
  readonly kinds: Readonly<Record<string, number>>;
  readonly sealed: boolean;
}

export interface VerifyOptions {
  /** Verify (and report) from this time on: the last digest before it is the anchor. */
  readonly sinceMs?: number;
  /** Expected digest cadence (audit.digestIntervalSeconds); a longer silence while running is a gap. */
  readonly digestIntervalMs?: number;
}

/** Slack on top of the digest interval before a silence counts as a gap (timer drift, a slow stop). */
const DIGEST_SLACK_MS = 5 * 60_000;
const MAX_LISTED = 20;

export function verifyTrail(source: TrailSource, publicKey: Uint8Array, options: VerifyOptions = {}): VerifyReport {
  const keyId = keyIdOf(publicKey);
  const failures: VerifyFailure[] = [];
  const gaps: VerifyGap[] = [];
  const fail = (code: VerifyFailure['code'], message: string): void => {
    if (failures.length < MAX_LISTED) failures.push({ code, message });
    else if (failures.length === MAX_LISTED) failures.push({ code: 'format', message: 'more failures not listed' });
  };
  for (const p of source.problems) fail('format', p);
  const intervalMs = options.digestIntervalMs ?? 3_600_000;

  // 1. Digests: signatures, key, chain.
  const digests = source.digests;
  let validDigests = 0;
  digests.forEach((d, i) => {
    const b = d.body;
    if ((b.format as string) !== DIGEST_FORMAT) fail('format', `digest ${i + 1}: unknown format ${JSON.stringify(b.format)}`);
    if (!verifySignature(publicKey, canonicalJson(b as unknown as CanonicalValue), Buffer.from(d.signature, 'base64'))) {
      fail(b.keyId !== keyId ? 'digest-key' : 'digest-signature', b.keyId !== keyId ? `digest ${b.seq}: signed by another key (key id ${b.keyId}, expected ${keyId})` : `digest ${b.seq}: signature does not verify (the digest was altered)`);
      return;
    }
    validDigests++;
    const prev = digests[i - 1];
    if (prev === undefined) {
      if (b.seq !== 1) fail('digest-chain', `the first digest is number ${b.seq}: digests 1..${b.seq - 1} are missing`);
      if (b.seq === 1 && b.previousDigestHash !== ZERO_HEX) fail('digest-chain', 'digest 1 names a previous digest');
      return;
    }
    const p = prev.body;
    if (b.seq !== p.seq + 1) fail('digest-chain', `digest ${b.seq} follows digest ${p.seq}: digests missing or reordered`);
    if (b.previousDigestHash !== digestHash(p) || b.previousDigestSignature !== Buffer.from(prev.signature, 'base64').toString('hex')) fail('digest-chain', `digest ${b.seq} does not name digest ${p.seq} as its predecessor`);
    if (b.firstEventSeq !== p.lastEventSeq + 1 || b.startHash !== p.endHash) fail('digest-chain', `digest ${b.seq} does not start where digest ${p.seq} ended (events ${p.lastEventSeq + 1}.. )`);
  });

  // 2. The anchor: with --since, the last digest created before it; events it covers are not re-read.
  const since = options.sinceMs;
  let anchor: DigestBody | null = null;
  if (since !== undefined) {
    for (const d of digests) if (d.body.createdAtMs < since) anchor = d.body;
    if (anchor !== null) gaps.push({ kind: 'before-since', fromMs: null, toMs: anchor.createdAtMs, detail: `events 1..${anchor.lastEventSeq} not re-read (before --since; digest ${anchor.seq} anchors the check)` });
  }
  const byEnd = new Map<number, DigestBody>();
  for (const d of digests) if (d.body.lastEventSeq >= d.body.firstEventSeq && (anchor === null || d.body.seq > anchor.seq)) byEnd.set(d.body.lastEventSeq, d.body);

  // 3. Events: hashes, links, digest ends; gaps from the lifecycle events.
  let last: ExportedEvent | null = anchor === null ? null : { seq: anchor.lastEventSeq, atMs: anchor.createdAtMs, kind: '', fields: {}, prev: '', hash: anchor.endHash };
  let count = 0;
  let firstSeq: number | null = null;
  let signedThrough = anchor?.lastEventSeq ?? 0;
  const kinds: Record<string, number> = {};
  const shredHashes = new Map<number, string>();
  /** (seq, running) at each start/stop/crash event: whether the probe ran after that event. */
  const lifecycle: { seq: number; running: boolean }[] = [];
  let lastStopMs: number | null = null;
  for (const e of source.events((anchor?.lastEventSeq ?? 0) + 1)) {
    count++;
    kinds[e.kind] = (kinds[e.kind] ?? 0) + 1;
    const computed = Buffer.from(eventHash(e.seq, e.atMs, e.kind, e.fields, Buffer.from(e.prev, 'hex'))).toString('hex');
    if (computed !== e.hash) fail('event-hash', `event ${e.seq} (${e.kind}): its content does not match its hash (edited)`);
    if (last === null) {
      firstSeq = e.seq;
      if (e.seq !== 1) {
        const covering = digests.find((d) => d.body.firstEventSeq <= e.seq && e.seq <= d.body.lastEventSeq);
        if (covering === undefined) fail('event-order', `the trail starts at event ${e.seq} and no digest covers it`);
        else gaps.push({ kind: 'pruned', fromMs: null, toMs: e.atMs, detail: `events 1..${e.seq - 1} removed by retention (covered by digests up to ${covering.body.seq})` });
      } else if (e.prev !== ZERO_HEX) fail('event-link', 'event 1 names a predecessor');
    } else {
      firstSeq ??= e.seq;
      if (e.seq !== last.seq + 1) fail('event-order', `event ${e.seq} follows event ${last.seq}: events missing or reordered`);
      if (e.prev !== last.hash) fail('event-link', `event ${e.seq} does not link to event ${last.seq} (an event before it was altered, removed or moved)`);
    }
    const d = byEnd.get(e.seq);
    if (d !== undefined) {
      if (d.endHash !== e.hash) fail('digest-range', `digest ${d.seq} signs a different event ${e.seq} than the trail holds`);
      else signedThrough = e.seq;
      byEnd.delete(e.seq);
    }
    if (e.kind === 'epoch.shredded') shredHashes.set(e.seq, e.hash);
    if (e.kind === 'probe.started') {
      if (lastStopMs !== null) gaps.push({ kind: 'not-running', fromMs: lastStopMs, toMs: e.atMs, detail: 'the probe was stopped' });
      lastStopMs = null;
      lifecycle.push({ seq: e.seq, running: true });
    } else if (e.kind === 'probe.stopped') {
      lastStopMs = e.atMs;
      lifecycle.push({ seq: e.seq, running: false });
    } else if (e.kind === 'probe.crash_recovered') {
      const f = e.fields as { lastSeq?: number; lastAtMs?: number };
      gaps.push({ kind: 'crash', fromMs: f.lastAtMs ?? null, toMs: e.atMs, detail: `the previous run ended without a stop after event ${f.lastSeq ?? '?'}` });
      lastStopMs = null;
    }
    last = e;
  }
  // Digests whose whole range lies before the first event read cover pruned events (a 'pruned' gap, or a failure above when nothing covers the start).
  const start = firstSeq ?? Number.MAX_SAFE_INTEGER;
  for (const d of byEnd.values()) if (d.lastEventSeq >= start || last === null) fail('digest-range', `digest ${d.seq} signs events up to ${d.lastEventSeq}, which the trail does not hold (removed from the end)`);
  // Digest silences longer than the interval while the probe ran (after a stop the next start is a 'not-running' gap instead).
  const runningAt = (seq: number): boolean => {
    let state = true;
    for (const l of lifecycle) if (l.seq <= seq) state = l.running;
    return state;
  };
  digests.forEach((d, i) => {
    const p = digests[i - 1]?.body;
    const b = d.body;
    if (p === undefined || b.createdAtMs - p.createdAtMs <= intervalMs + DIGEST_SLACK_MS || !runningAt(p.lastEventSeq)) return;
    if (since !== undefined && b.createdAtMs < since) return;
    gaps.push({ kind: 'no-digest', fromMs: p.createdAtMs, toMs: b.createdAtMs, detail: `no signed digest for ${Math.round((b.createdAtMs - p.createdAtMs) / 60_000)} min between digests ${p.seq} and ${b.seq} (interval ${intervalMs / 60_000} min)` });
  });
  const lastDigest = digests.at(-1)?.body;
  if (last !== null && last.seq > signedThrough) {
    gaps.push({ kind: 'unsigned-tail', fromMs: lastDigest?.createdAtMs ?? null, toMs: last.atMs, detail: `${last.seq - signedThrough} event(s) after the last digest are not yet signed (the next digest signs them)` });
  }

  // 4. Receipts.
  for (const r of source.receipts) {
    const b = r.body;
    if ((b.format as string) !== RECEIPT_FORMAT || !verifySignature(publicKey, canonicalJson(b as unknown as CanonicalValue), Buffer.from(r.signature, 'base64'))) {
      fail('receipt', `deletion receipt for epoch ${b.epoch}: signature does not verify${b.keyId !== keyId ? ` (signed by key ${b.keyId})` : ''}`);
      continue;
    }
    const h = shredHashes.get(b.eventSeq);
    if (h !== undefined && h !== b.eventHash) fail('receipt', `deletion receipt for epoch ${b.epoch} names event ${b.eventSeq}, which differs in the trail`);
    shredHashes.delete(b.eventSeq);
  }
  for (const [seq] of shredHashes) if (seq <= signedThrough) fail('receipt', `event ${seq} (epoch.shredded) is signed but has no deletion receipt`);

  // 5. The seal: the ends of an export.
  if (source.sealed) checkSeal(source.seal, publicKey, keyId, { count, last, digests: digests.length, lastDigest: digests.at(-1), receipts: source.receipts.length, anchored: anchor !== null }, fail);
  if (source.seal !== null && lastDigest !== undefined && runningAt(lastDigest.lastEventSeq) && source.seal.body.exportedAtMs - lastDigest.createdAtMs > intervalMs + DIGEST_SLACK_MS) {
    gaps.push({ kind: 'no-digest', fromMs: lastDigest.createdAtMs, toMs: source.seal.body.exportedAtMs, detail: 'no signed digest between the last one and the export' });
  }

  const sinceGaps = since === undefined ? gaps : gaps.filter((g) => g.kind === 'before-since' || g.toMs === null || g.toMs >= since);
  return {
    ok: failures.length === 0,
    source: source.description,
    keyId,
    failures,
    gaps: sinceGaps,
    events: count,
    firstEventSeq: firstSeq,
    lastEventSeq: last?.seq ?? null,
    digests: validDigests,
    signedThroughSeq: signedThrough,
    receipts: source.receipts.length,
    kinds,
    sealed: source.seal !== null,
  };
}

interface SeenEnds {
  readonly count: number;
  readonly last: ExportedEvent | null;
  readonly digests: number;
  readonly lastDigest: Signed<DigestBody> | undefined;
  readonly receipts: number;
  readonly anchored: boolean;
}

function checkSeal(seal: Signed<SealBody> | null, publicKey: Uint8Array, keyId: string, seen: SeenEnds, fail: (code: VerifyFailure['code'], message: string) => void): void {
  if (seal === null) {
    fail('seal', 'the export has no seal: it was cut off (or exported without the signing key), so its end cannot be checked');
    return;
  }
  const b = seal.body;
  if (!verifySignature(publicKey, canonicalJson(b as unknown as CanonicalValue), Buffer.from(seal.signature, 'base64'))) {
    fail('seal', b.keyId !== keyId ? `the export seal is signed by another key (key id ${b.keyId})` : 'the export seal does not verify (altered)');
    return;
  }
  const lastSeq = seen.last?.seq ?? null;
  if ((!seen.anchored && b.events !== seen.count) || b.lastEventSeq !== lastSeq || (seen.last !== null && b.lastEventHash !== seen.last.hash)) {
    fail('seal', `the export seal names ${b.events} events ending at ${String(b.lastEventSeq)}; the file holds ${seen.anchored ? 'events' : seen.count} ending at ${String(lastSeq)} (cut off or altered)`);
  }
  if (b.digests !== seen.digests || b.lastDigestSeq !== (seen.lastDigest?.body.seq ?? null) || (seen.lastDigest !== undefined && b.lastDigestHash !== digestHash(seen.lastDigest.body))) {
    fail('seal', `the export seal names ${b.digests} digests; the file holds ${seen.digests} (cut off or altered)`);
  }
  if (b.receipts !== seen.receipts) fail('seal', `the export seal names ${b.receipts} deletion receipts; the file holds ${seen.receipts}`);
}

export type { ReceiptBody };
