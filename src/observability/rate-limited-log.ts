import type { Logger } from 'pino';

/**
 * Throttles a noisy log event on two levels (goflow2's mute.go, plus a global cap):
 *
 *  - per key (e.g. per rejected source address): at most `burst` lines per key per `windowMs`;
 *    what a key had suppressed is reported on its next line that gets through (`suppressed: N`);
 *  - per event kind, across all keys: at most `kindBurst` lines per `windowMs`, so a flood from
 *    thousands of (spoofed) sources writes `kindBurst` lines, not one or more per source.
 *
 * Every suppressed line of a kind is also counted into a summary, written at most `windowMs`
 * after the first suppression of a period and on flush() (listeners flush when they close):
 * `N log lines suppressed from M sources` with `event: 'log.suppressed'`. Nothing disappears
 * silently.
 *
 * Memory is bounded by the options, whatever the traffic: at most `maxKeys` key states (the
 * oldest is forgotten first), at most MAX_KINDS kinds (further kinds share one), and at most
 * `maxKeys` distinct sources remembered for the summaries (beyond, the summary says "at least").
 */
export interface RateLimitOptions {
  readonly windowMs: number;
  /** Lines per key per window. */
  readonly burst: number;
  /** Keys tracked for the per-key budget. */
  readonly maxKeys: number;
  /** Lines per event kind per window, across all keys; default DEFAULT_KIND_BURST. */
  readonly kindBurst?: number;
  readonly now?: () => number;
}

export type LogLevel = 'warn' | 'info' | 'error' | 'debug';

interface KeyState {
  windowStart: number;
  emitted: number;
  suppressed: number;
}

interface KindState {
  readonly level: LogLevel;
  windowStart: number;
  emitted: number;
  /** Lines suppressed in the current summary period, and the distinct keys they came from. */
  suppressed: number;
  readonly sources: Set<string>;
  sourcesOverflow: boolean;
}

/** Lines per event kind per window when the options name none. */
export const DEFAULT_KIND_BURST = 20;
/** Distinct event kinds tracked per limiter; more share the OTHER_KIND budget. */
export const MAX_KINDS = 64;
const OTHER_KIND = '(other)';

export const DEFAULT_RATE_LIMIT: RateLimitOptions = { windowMs: 60_000, burst: 5, maxKeys: 10_000, kindBurst: DEFAULT_KIND_BURST };

export interface RateLimitedLogSize {
  readonly keys: number;
  readonly kinds: number;
  readonly summarySources: number;
}

export class RateLimitedLog {
  private readonly states = new Map<string, KeyState>();
  private readonly kinds = new Map<string, KindState>();
  private readonly now: () => number;
  private readonly kindBurst: number;
  /** Lines suppressed for keys evicted from the table before they could be reported. */
  private lostSuppressed = 0;
  /** Sources held in all kinds' summary sets (bounded by maxKeys). */
  private summarySources = 0;
  /** Start of the open summary period (its first suppression), or null. */
  private periodStart: number | null = null;
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly logger: Logger,
    private readonly options: RateLimitOptions = DEFAULT_RATE_LIMIT,
  ) {
    this.now = options.now ?? Date.now;
    this.kindBurst = options.kindBurst ?? DEFAULT_KIND_BURST;
  }

  /**
   * Logs `msg` at `level` with `fields` unless `key` or the event kind is over its budget;
   * returns whether it logged. The kind defaults to `fields.event`, else the message.
   */
  log(level: LogLevel, key: string, fields: Record<string, unknown>, msg: string, kind?: string): boolean {
    const t = this.now();
    if (this.periodStart !== null && t - this.periodStart >= this.options.windowMs) this.flush();
    const k = this.kindState(kind ?? (typeof fields.event === 'string' ? fields.event : msg), level);
    if (t - k.windowStart >= this.options.windowMs) {
      k.windowStart = t;
      k.emitted = 0;
    }
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
      this.countSuppressed(k, key, t);
      return false;
    }
    if (k.emitted >= this.kindBurst) {
      this.countSuppressed(k, key, t);
      return false;
    }
    st.emitted++;
    k.emitted++;
    if (this.lostSuppressed > 0) {
      fields = { ...fields, suppressedOtherKeys: this.lostSuppressed };
      this.lostSuppressed = 0;
    }
    this.logger[level](fields, msg);
    return true;
  }

  /** Writes the summary of every kind with suppressed lines and closes the period (also at shutdown). */
  flush(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    if (this.periodStart === null) return;
    const seconds = Math.max(1, Math.round((this.now() - this.periodStart) / 1000));
    this.periodStart = null;
    for (const [kind, k] of this.kinds) {
      if (k.suppressed === 0) continue;
      const sources = k.sources.size;
      this.logger[k.level](
        { event: 'log.suppressed', kind, suppressed: k.suppressed, sources, ...(k.sourcesOverflow ? { sourcesAtLeast: true } : {}), seconds },
        `${k.suppressed} log lines suppressed from ${k.sourcesOverflow ? 'at least ' : ''}${sources} sources in ${seconds} s: ${kind}`,
      );
      k.suppressed = 0;
      k.sources.clear();
      k.sourcesOverflow = false;
    }
    this.summarySources = 0;
  }

  /** What the limiter holds now (its memory is proportional to these). */
  size(): RateLimitedLogSize {
    return { keys: this.states.size, kinds: this.kinds.size, summarySources: this.summarySources };
  }

  private kindState(kind: string, level: LogLevel): KindState {
    let k = this.kinds.get(kind);
    if (k !== undefined) return k;
    if (this.kinds.size >= MAX_KINDS - 1) kind = OTHER_KIND;
    k = this.kinds.get(kind);
    if (k === undefined) {
      k = { level, windowStart: this.now(), emitted: 0, suppressed: 0, sources: new Set(), sourcesOverflow: false };
      this.kinds.set(kind, k);
    }
    return k;
  }

  private countSuppressed(k: KindState, key: string, t: number): void {
    k.suppressed++;
    if (!k.sources.has(key)) {
      if (this.summarySources < this.options.maxKeys) {
        k.sources.add(key);
        this.summarySources++;
      } else {
        k.sourcesOverflow = true;
      }
    }
    if (this.periodStart === null) {
      this.periodStart = t;
      this.timer = setTimeout(() => this.flush(), this.options.windowMs);
      this.timer.unref();
    }
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
