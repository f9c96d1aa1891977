import { DecodeError, DecodeErrorCode } from '../flow/errors.js';
import type { ByteReader } from './byte-reader.js';
import type { DecodeLimits } from './decode-limits.js';
import { recordError, type DecodeOutcome, type DecodeServiceStats } from './decode-outcome.js';
import type { MessageContext } from './message-context.js';
import { budgetError, heldSetCost, type StateBudget } from './state-budget.js';
import type { DomainState, PendingSet, SessionState } from './template/template-cache.js';

/**
 * Data that arrives before its template (RFC 7011 §9.3): a data set for an unknown template is
 * held, a copy of its bytes, per session, for pendingHoldMs, within per-session caps on sets
 * and bytes; it is decoded when its template comes (SetDecoder), or dropped and counted when
 * its time is up. Each held set is charged to the state budget (its bytes and a fixed overhead)
 * until it leaves the buffer. The stats' held-data gauges follow every change.
 */
export class HeldData {
  constructor(
    private readonly limits: Readonly<DecodeLimits>,
    private readonly stats: DecodeServiceStats,
    private readonly budget: StateBudget,
  ) {}

  /** Holds the rest of `body` (a data set for `templateId` in domain `d` of the message in progress), or drops it (counted) when holding is off or full. */
  hold(m: MessageContext, d: DomainState, templateId: number, body: ByteReader): void {
    const session = m.session;
    const len = body.remaining;
    const limits = this.limits;
    if (limits.pendingHoldMs <= 0 || session.pending.length >= limits.maxPendingRecordsPerSession || session.pendingBytes + len > limits.maxPendingBytesPerSession) {
      m.out.unknownTemplateSets++;
      recordError(
        m.out,
        this.stats,
        new DecodeError(
          DecodeErrorCode.UnknownTemplate,
          `data set for unknown template ${templateId} (observation domain ${d.observationDomainId})${limits.pendingHoldMs > 0 ? ': hold buffer full' : ''}`,
          body.offset,
          { templateId, observationDomainId: d.observationDomainId },
        ),
      );
      return;
    }
    const packet = m.packet;
    const h = m.header;
    if (h === null) return;
    const refused = this.budget.reserve(session, heldSetCost(len));
    if (refused !== null) {
      m.out.unknownTemplateSets++;
      recordError(m.out, this.stats, budgetError(refused, `data set for unknown template ${templateId} (observation domain ${d.observationDomainId}) not held`, body.offset));
      return;
    }
    const last = session.pending[session.pending.length - 1];
    if (last !== undefined && m.nowMs < last.receivedAtMs) session.pendingUnordered = true;
    session.pending.push({
      domain: d,
      templateId,
      bytes: body.buf.slice(body.pos, body.end),
      receivedAtMs: m.nowMs,
      exportTimeS: h.exportTimeS,
      uptimeMs: h.uptimeMs,
      offset: body.offset,
      exporter: packet.exporter,
      identity: packet.identity,
      transport: packet.transport,
    });
    session.pendingBytes += len;
    this.stats.pendingSets++;
    this.stats.pendingBytes += len;
    m.out.pendingHeld++;
  }

  /** Takes the sets held for template `templateId` of domain `d` out of the buffer (to decode them now). */
  take(session: SessionState, d: DomainState, templateId: number): PendingSet[] {
    const keep: PendingSet[] = [];
    const ready: PendingSet[] = [];
    for (const p of session.pending) {
      if (p.domain === d && p.templateId === templateId) ready.push(p);
      else keep.push(p);
    }
    if (ready.length > 0) this.replace(session, keep);
    return ready;
  }

  /** Whether `p` is past its time (it is then dropped, counted, instead of decoded). */
  isStale(p: PendingSet, nowMs: number): boolean {
    return nowMs - p.receivedAtMs > this.limits.pendingHoldMs;
  }

  /**
   * Drops held data past pendingHoldMs. `pending` is in arrival order, so receive times
   * normally ascend and, for each packet (decode), only its front is looked at: the cost is the
   * number expired, not the number held (a full hold buffer scanned for every packet cost
   * ~60 µs a packet at 3000 sets). Once a set was held with an earlier time than the one before
   * it (a wall-clock step back; `sealflow decode` of captures out of time order), every entry
   * is looked at until the buffer empties, as by the periodic expire() (`all`).
   */
  expire(out: DecodeOutcome, session: SessionState, nowMs: number, all = false): void {
    const pending = session.pending;
    const hold = this.limits.pendingHoldMs;
    if (all || session.pendingUnordered) {
      const keep: PendingSet[] = [];
      for (const p of pending) {
        if (nowMs - p.receivedAtMs > hold) this.expired(out, p);
        else keep.push(p);
      }
      if (keep.length !== pending.length) this.replace(session, keep);
      return;
    }
    let n = 0;
    let bytes = 0;
    for (let p = pending[0]; p !== undefined && nowMs - p.receivedAtMs > hold; p = pending[++n]) {
      this.expired(out, p);
      bytes += p.bytes.length;
    }
    if (n === 0) return;
    pending.splice(0, n);
    if (pending.length === 0) session.pendingUnordered = false;
    this.budget.release(session, n * heldSetCost(0) + bytes);
    session.pendingBytes -= bytes;
    this.stats.pendingSets -= n;
    this.stats.pendingBytes -= bytes;
  }

  /** Drops everything `session` holds, counted in `out`. */
  flush(out: DecodeOutcome, session: SessionState): void {
    if (session.pending.length === 0) return;
    for (const p of session.pending) this.expired(out, p);
    this.replace(session, []);
  }

  /** Counts a held set dropped because its template did not come in time. */
  expired(out: DecodeOutcome, p: PendingSet): void {
    out.pendingExpired++;
    recordError(
      out,
      this.stats,
      new DecodeError(
        DecodeErrorCode.PendingExpired,
        `data set for template ${p.templateId} (observation domain ${p.domain.observationDomainId}) dropped: no template within ${this.limits.pendingHoldMs} ms`,
        p.offset,
        { templateId: p.templateId, observationDomainId: p.domain.observationDomainId },
      ),
    );
  }

  private replace(session: SessionState, keep: PendingSet[]): void {
    const removed = session.pending.length - keep.length;
    this.stats.pendingSets -= removed;
    let bytes = 0;
    for (const p of keep) bytes += p.bytes.length;
    this.budget.release(session, removed * heldSetCost(0) + session.pendingBytes - bytes);
    this.stats.pendingBytes -= session.pendingBytes - bytes;
    session.pendingBytes = bytes;
    session.pending.length = 0;
    for (const p of keep) session.pending.push(p);
    if (keep.length === 0) session.pendingUnordered = false;
  }
}
