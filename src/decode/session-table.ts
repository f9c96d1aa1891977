import type { ExporterPacket } from '../flow/exporter-packet.js';
import type { DecodeLimits } from './decode-limits.js';
import type { DecodeOutcome, DecodeServiceStats } from './decode-outcome.js';
import { isReliable, SessionState } from './template/template-cache.js';

/**
 * The decoder's transport sessions (RFC 7011 §3: template state belongs to a session and an
 * observation domain), least recently seen first, at most `maxSessions` of them: a new one
 * evicts the oldest (counted). The stats' session, template and held-data gauges follow.
 */
export class SessionTable {
  private readonly sessions = new Map<string, SessionState>();

  constructor(
    private readonly limits: Readonly<DecodeLimits>,
    private readonly stats: DecodeServiceStats,
  ) {}

  /** The session of `packet`, made (evicting the least recently seen beyond the limit) when new, and marked seen at `nowMs`. */
  sessionFor(packet: ExporterPacket, nowMs: number): SessionState {
    let s = this.sessions.get(packet.sessionKey);
    if (s === undefined) {
      s = new SessionState(packet.sessionKey, packet.transport);
      this.add(s);
    } else if (s.lastSeenMs !== nowMs) {
      // Keep Map order = least recently seen first, for eviction.
      this.sessions.delete(packet.sessionKey);
      this.sessions.set(packet.sessionKey, s);
    }
    s.transport = packet.transport;
    s.lastSeenMs = nowMs;
    return s;
  }

  /** Adds a session (one restored from saved state, or a new one), evicting the least recently seen beyond the limit. */
  add(s: SessionState): void {
    while (this.sessions.size >= Math.max(1, this.limits.maxSessions)) {
      const oldest = this.sessions.keys().next();
      if (oldest.done === true) break;
      this.end(oldest.value);
      this.stats.sessionsEvicted++;
    }
    this.sessions.set(s.key, s);
    this.stats.templatesLive += s.templateCount;
    this.stats.sessions = this.sessions.size;
  }

  /** Forgets a session with its templates and held data (uncounted). */
  end(sessionKey: string): void {
    const s = this.sessions.get(sessionKey);
    if (s === undefined) return;
    this.stats.templatesLive -= s.templateCount;
    this.stats.pendingSets -= s.pending.length;
    this.stats.pendingBytes -= s.pendingBytes;
    this.sessions.delete(sessionKey);
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
            out.templatesExpired++;
          }
        }
      }
      if (!isReliable(s.transport) && s.templateCount === 0 && s.pending.length === 0 && nowMs - s.lastSeenMs > this.limits.templateLifetimeMs) {
        this.sessions.delete(key);
      }
    }
    this.stats.sessions = this.sessions.size;
  }

  values(): IterableIterator<SessionState> {
    return this.sessions.values();
  }
}
