import { DecodeError, DecodeErrorCode } from '../flow/errors.js';
import type { DecodeLimits } from './decode-limits.js';
import type { BudgetReason, DecodeServiceStats } from './decode-outcome.js';

export type { BudgetReason } from './decode-outcome.js';
import { STATE_COST, templateCost } from './state-cost.js';
import type { SessionState } from './template/template-cache.js';

export { heldSetCost, STATE_COST, templateCost } from './state-cost.js';

/**
 * The decoder's memory budget. Every piece of decoder state — a transport session, an
 * observation domain, a template, a sampler, a held data set — is charged its cost in bytes
 * before it is allocated, to the account of its exporter address (every source port of one
 * address, every transport) and to the total; nothing is allocated that does not fit.
 *
 * The costs are upper estimates of what V8 keeps for each (object, maps, compiled decoder),
 * checked by test/unit/decode-state-budget.test.ts against the heap; docs/decoding.md gives
 * the worst-case formula.
 *
 * What does not fit makes room by evicting whole sessions (their templates and held data),
 * chosen so that one sender cannot push out another's state:
 * - over the exporter's own budget: that exporter's least recently seen other session, else
 *   the new state is refused;
 * - over the total: the least recently seen session of the exporter holding the most bytes;
 *   when that is the requester itself, its own other session, else refused. So an exporter
 *   holding less than the fair share (total / exporters with state) is never evicted to make
 *   room for another;
 * - over maxSessions: the least recently seen session of the exporter with the most sessions.
 * Every eviction and refusal is counted by reason in the decoder's stats.
 */

/** What session `s` costs as it is (a restored one; held data not included: restored sessions have none). */
export function sessionCost(s: SessionState): number {
  let bytes = STATE_COST.session;
  for (const d of s.domains.values()) {
    bytes += STATE_COST.domain + STATE_COST.sampler * d.samplers.size;
    for (const t of d.templates.values()) bytes += templateCost(t.fields.length);
  }
  return bytes;
}

/** One exporter address's share: its bytes and its sessions, least recently seen first. */
class ExporterAccount {
  bytes = 0;
  readonly sessions = new Map<string, SessionState>();
  constructor(readonly address: string) {}
}

export class StateBudget {
  readonly #accounts = new Map<string, ExporterAccount>();
  #bytes = 0;

  /** `evict` forgets a session (it calls detach()). */
  constructor(
    private readonly limits: Readonly<DecodeLimits>,
    private readonly stats: DecodeServiceStats,
    private readonly evict: (s: SessionState) => void,
  ) {}

  get bytes(): number {
    return this.#bytes;
  }

  /** Bytes charged to exporter `address`. */
  bytesOf(address: string): number {
    return this.#accounts.get(address)?.bytes ?? 0;
  }

  /**
   * Opens a new session's place in its exporter's account, charging `bytes` (a new session's
   * own cost, or all of a restored one's). Returns null when it fits (after evictions), else
   * why not; then nothing is charged and the session is not attached.
   */
  attach(s: SessionState, bytes: number): BudgetReason | null {
    let account = this.#accounts.get(s.exporter);
    if (account === undefined) {
      account = new ExporterAccount(s.exporter);
      this.#accounts.set(s.exporter, account);
    }
    account.sessions.set(s.key, s);
    s.stateBytes = 0;
    const refused = this.reserve(s, bytes);
    if (refused !== null) this.detach(s);
    return refused;
  }

  /** Marks `s` most recently seen within its exporter's account. */
  touch(s: SessionState): void {
    const sessions = this.#accounts.get(s.exporter)?.sessions;
    if (sessions === undefined) return;
    sessions.delete(s.key);
    sessions.set(s.key, s);
  }

  /** Returns all of a forgotten session's bytes. */
  detach(s: SessionState): void {
    const account = this.#accounts.get(s.exporter);
    if (account?.sessions.get(s.key) !== s) return;
    account.sessions.delete(s.key);
    account.bytes -= s.stateBytes;
    this.#bytes -= s.stateBytes;
    s.stateBytes = 0;
    if (account.sessions.size === 0) this.#accounts.delete(s.exporter);
    this.#gauges();
  }

  /**
   * Charges `bytes` more to session `s` (attached), evicting other sessions as described above
   * to make room. Returns null when charged, else the reason it was refused (counted).
   */
  reserve(s: SessionState, bytes: number): BudgetReason | null {
    const account = this.#accounts.get(s.exporter);
    if (account === undefined) return this.#refuse('exporter');
    const perExporter = this.limits.maxStateBytesPerExporter;
    while (account.bytes + bytes > perExporter) {
      const victim = oldestOther(account, s);
      if (victim === undefined) return this.#refuse('exporter');
      this.#evict(victim, 'exporter');
    }
    const total = this.limits.maxStateBytes;
    while (this.#bytes + bytes > total) {
      const largest = this.#largestBy((a) => a.bytes);
      const victim = largest === undefined || largest === account ? oldestOther(account, s) : oldestOther(largest, null);
      if (victim === undefined) return this.#refuse('total');
      this.#evict(victim, 'total');
    }
    account.bytes += bytes;
    s.stateBytes += bytes;
    this.#bytes += bytes;
    this.#gauges();
    return null;
  }

  /** Gives back `bytes` of session `s`'s charge (state it no longer holds). */
  release(s: SessionState, bytes: number): void {
    const account = this.#accounts.get(s.exporter);
    if (account?.sessions.get(s.key) !== s) return;
    account.bytes -= bytes;
    s.stateBytes -= bytes;
    this.#bytes -= bytes;
    this.#gauges();
  }

  /** Makes room for one more session within maxSessions: evicts the least recently seen session of the exporter with the most (counted). */
  evictForSessionCount(): boolean {
    const most = this.#largestBy((a) => a.sessions.size);
    const victim = most === undefined ? undefined : oldestOther(most, null);
    if (victim === undefined) return false;
    this.#evict(victim, 'sessions');
    return true;
  }

  #evict(victim: SessionState, reason: BudgetReason): void {
    this.stats.stateBudget.evictions[reason]++;
    this.evict(victim);
  }

  #refuse(reason: BudgetReason): BudgetReason {
    this.stats.stateBudget.refusals[reason]++;
    return reason;
  }

  #largestBy(measure: (a: ExporterAccount) => number): ExporterAccount | undefined {
    let best: ExporterAccount | undefined;
    let most = -1;
    for (const a of this.#accounts.values()) {
      const v = measure(a);
      if (v > most) {
        most = v;
        best = a;
      }
    }
    return best;
  }

  #gauges(): void {
    this.stats.stateBytes = this.#bytes;
    this.stats.stateExporters = this.#accounts.size;
  }
}

/** The least recently seen session of `account` other than `not`. */
function oldestOther(account: ExporterAccount, not: SessionState | null): SessionState | undefined {
  for (const s of account.sessions.values()) if (s !== not) return s;
  return undefined;
}

/** A refusal by the state budget (state-budget.ts), as the error the outcome lists. */
export function budgetError(reason: BudgetReason, what: string, offset = 0): DecodeError {
  const budget = reason === 'exporter' ? "the exporter's state budget (decode.maxStateBytesPerExporter)" : reason === 'total' ? 'the state budget (decode.maxStateBytes)' : 'decode.maxSessions';
  return new DecodeError(DecodeErrorCode.StateBudget, `${what}: over ${budget}`, offset, { reason });
}
