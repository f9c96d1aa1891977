import type { Logger } from 'pino';

/**
 * Throttles a noisy log event per key (e.g. per rejected source address): at most `burst`
 * lines per key per `windowMs`; what is suppressed is counted and reported on the next line
 * that gets through as `suppressed: N`, so nothing disappears silently (goflow2's mute.go).
 * The number of tracked keys is capped so a spoofed-source flood cannot grow memory.
 */
export interface RateLimitOptions {
  readonly windowMs: number;
  readonly burst: number;
  readonly maxKeys: number;
  readonly now?: () => number;
}

interface KeyState {
  windowStart: number;
  emitted: number;
  suppressed: number;
}

export const DEFAULT_RATE_LIMIT: RateLimitOptions = { windowMs: 60_000, burst: 5, maxKeys: 10_000 };

export class RateLimitedLog {
  private readonly states = new Map<string, KeyState>();
  private readonly now: () => number;
  /** Lines suppressed for keys evicted from the table before they could be reported. */
  private lostSuppressed = 0;

  constructor(
    private readonly logger: Logger,
    private readonly options: RateLimitOptions = DEFAULT_RATE_LIMIT,
  ) {
    this.now = options.now ?? Date.now;
  }

  /** Logs `msg` at `level` with `fields` unless `key` is over its budget; returns whether it logged. */
  log(level: 'warn' | 'info' | 'error' | 'debug', key: string, fields: Record<string, unknown>, msg: string): boolean {
    const t = this.now();
    let st = this.states.get(key);
    if (st === undefined || t - st.windowStart >= this.options.windowMs) {
      const suppressed = st?.suppressed ?? 0;
      if (st === undefined && this.states.size >= this.options.maxKeys) this.evictOne();
      st = { windowStart: t, emitted: 0, suppressed: 0 };
      this.states.set(key, st);
      if (suppressed > 0) fields = { ...fields, suppressed };
    }
    if (st.emitted >= this.options.burst) {
      st.suppressed++;
      return false;
    }
    st.emitted++;
    if (this.lostSuppressed > 0) {
      fields = { ...fields, suppressedOtherKeys: this.lostSuppressed };
      this.lostSuppressed = 0;
    }
    this.logger[level](fields, msg);
    return true;
  }

  private evictOne(): void {
    // Map iteration order is insertion order: the oldest key goes first.
    for (const [k, st] of this.states) {
      this.lostSuppressed += st.suppressed;
      this.states.delete(k);
      return;
    }
  }
}
