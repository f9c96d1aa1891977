import type { ExporterPacket } from '../flow/exporter-packet.js';
import type { DecodeLimits } from './decode-limits.js';
import type { DecodeOutcome, DecodeServiceStats } from './decode-outcome.js';
import { sessionCost, STATE_COST, StateBudget, templateCost, type BudgetReason } from './state-budget.js';
import { isReliable, SessionState } from './template/template-cache.js';

/**
 * The decoder's transport sessions (RFC 7011 §3: template state belongs to a session and an
 * observation domain), least recently seen first, at most `maxSessions` of them, every one
 * charged to its exporter's share of the state budget (state-budget.ts), which picks the
 * session to evict when one more does not fit. The stats' session, template and held-data
 * gauges follow.
 */
export class SessionTable {
  private readonly sessions = new Map<string, SessionState>();
  readonly budget: StateBudget;

  constructor(
    private readonly limits: Readonly<DecodeLimits>,
    private readonly stats: DecodeServiceStats,
  ) {
    this.budget = new StateBudget(limits, stats, (s) => {
      this.end(s.key);
      this.stats.sessionsEvicted++;
    });
  }

  /**
   * The session of `packet`, made when new (charged to the budget, which may evict others), and
   * marked seen at `nowMs`. A string instead when a new session does not fit: the reason.
   */
  sessionFor(packet: ExporterPacket, nowMs: number): SessionState | BudgetReason {
    let s = this.sessions.get(packet.sessionKey);
    if (s === undefined) {
      s = new SessionState(packet.sessionKey, packet.transport, packet.exporter);
      const refused = this.add(s, STATE_COST.session);
      if (refused !== null) return refused;
    } else if (s.lastSeenMs !== nowMs) {
      // Keep Map order = least recently seen first, for eviction.
      this.sessions.delete(packet.sessionKey);
      this.sessions.set(packet.sessionKey, s);
      this.budget.touch(s);
    }
    s.transport = packet.transport;
    s.lastSeenMs = nowMs;
    return s;
  }

  /**
   * Adds a session (a new one, or one restored from saved state), charged `bytes` (default: what
   * it holds), making room within maxSessions and the budget. Returns null when added, else why not.
   */
  add(s: SessionState, bytes: number = sessionCost(s)): BudgetReason | null {
    while (this.sessions.size >= Math.max(1, this.limits.maxSessions)) {
      if (!this.budget.evictForSessionCount()) break;
    }
    const refused = this.budget.attach(s, bytes);
    if (refused !== null) return refused;
    this.sessions.set(s.key, s);
    this.stats.templatesLive += s.templateCount;
    this.stats.sessions = this.sessions.size;
    return null;
  }

  /** Forgets a session with its templates and held data (uncounted). */
  end(sessionKey: string): void {
    const s = this.sessions.get(sessionKey);
    if (s === undefined) return;
    this.stats.templatesLive -= s.templateCount;
    this.stats.pendingSets -= s.pending.length;
    this.stats.pendingBytes -= s.pendingBytes;
    this.sessions.delete(sessionKey);
    this.budget.detach(s);
    this.stats.sessions = this.sessions.size;
  }

  /**
   * Removes templates past their lifetime (counted in `out`), and forgets UDP/DTLS sessions
   * with nothing left that were idle for a template lifetime. Held data is expired first, by
   * the caller (`expireHeld`).
   */
  expire(nowMs: number, out: DecodeOutcome, expireHeld: (s: SessionState) => void): void {
    for (const [key, s] of this.sessions) {
      if (s.pending.length > 0) expireHeld(s);
      for (const d of s.domains.values()) {
        for (const [id, t] of d.templates) {
          if (t.expiresAtMs < nowMs) {
            d.templates.delete(id);
            s.templateCount--;
            this.stats.templatesLive--;
            this.budget.release(s, templateCost(t.fields.length));
            out.templatesExpired++;
          }
        }
      }
      if (!isReliable(s.transport) && s.templateCount === 0 && s.pending.length === 0 && nowMs - s.lastSeenMs > this.limits.templateLifetimeMs) {
        this.sessions.delete(key);
        this.budget.detach(s);
      }
    }
    this.stats.sessions = this.sessions.size;
  }

  values(): IterableIterator<SessionState> {
    return this.sessions.values();
  }
}
