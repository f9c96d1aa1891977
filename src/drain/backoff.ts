/**
 * Pacing arithmetic of the drain, pure and clock-injected: retry backoff, Retry-After,
 * the bandwidth/rate token bucket and the drain-rate meter.
 */

export interface BackoffSettings {
  /** Delay scale of the first retry. */
  readonly baseMs: number;
  /** No delay exceeds this. */
  readonly capMs: number;
}

/**
 * "Full jitter" exponential backoff (AWS Architecture Blog, "Exponential Backoff and Jitter"):
 * uniform in [0, min(cap, base·2^(attempt-1))]. Spreads the retries of many probes coming back
 * after the same outage. `attempt` counts from 1. `random` returns [0, 1).
 */
export function fullJitterMs(attempt: number, s: BackoffSettings, random: () => number): number {
  return Math.floor(random() * ceilingMs(attempt, s));
}

/**
 * "Equal jitter": half the ceiling fixed, half random. Used where a minimum wait matters more
 * than spreading, e.g. re-authenticating with a key Fusion rejected.
 */
export function equalJitterMs(attempt: number, s: BackoffSettings, random: () => number): number {
  const c = ceilingMs(attempt, s);
  return Math.floor(c / 2 + random() * (c / 2));
}

function ceilingMs(attempt: number, s: BackoffSettings): number {
  const exp = Math.min(Math.max(attempt, 1) - 1, 52);
  return Math.min(s.capMs, s.baseMs * 2 ** exp);
}

/**
 * Retry-After (RFC 9110 §10.2.3): delay-seconds or an HTTP-date. Returns the delay in ms
 * (≥ 0), or null when absent or unparseable.
 */
export function parseRetryAfterMs(value: string | string[] | undefined, nowMs: number): number | null {
  const v = Array.isArray(value) ? value[0] : value;
  if (v === undefined) return null;
  const t = v.trim();
  if (/^\d+$/.test(t)) return Number(t) * 1000;
  const date = Date.parse(t);
  if (Number.isNaN(date)) return null;
  return Math.max(0, date - nowMs);
}

/**
 * Token bucket: `ratePerSec` tokens per second, burst of one second's worth. `take(n)` always
 * succeeds (a chunk larger than the burst goes into debt) and returns how long the caller must
 * wait before sending, so the long-run average never exceeds the rate.
 */
export class TokenBucket {
  private tokens: number;
  private lastMs: number;

  constructor(
    private readonly ratePerSec: number,
    nowMs: number,
  ) {
    this.tokens = ratePerSec;
    this.lastMs = nowMs;
  }

  take(n: number, nowMs: number): number {
    const elapsed = Math.max(0, nowMs - this.lastMs);
    this.lastMs = nowMs;
    this.tokens = Math.min(this.ratePerSec, this.tokens + (elapsed * this.ratePerSec) / 1000);
    this.tokens -= n;
    return this.tokens >= 0 ? 0 : Math.ceil((-this.tokens * 1000) / this.ratePerSec);
  }
}

/** Length of one rate-meter bucket. */
const METER_BUCKET_MS = 1000;

/**
 * Exponentially weighted moving average of a per-second rate: counts are summed per 1 s
 * bucket, and each completed bucket is folded in with weight 1 - e^(-1/τ), τ = `tauSec`.
 */
export class RateMeter {
  private ewma = 0;
  private bucket = 0;
  private bucketStartMs: number | null = null;
  private readonly decay: number;

  constructor(tauSec = 10) {
    this.decay = Math.exp(-1 / tauSec);
  }

  add(n: number, nowMs: number): void {
    this.roll(nowMs);
    this.bucket += n;
  }

  /** Units per second. */
  rate(nowMs: number): number {
    this.roll(nowMs);
    return this.ewma;
  }

  private roll(nowMs: number): void {
    if (this.bucketStartMs === null) {
      this.bucketStartMs = nowMs;
      return;
    }
    const buckets = Math.floor((nowMs - this.bucketStartMs) / METER_BUCKET_MS);
    if (buckets <= 0) return;
    this.ewma = this.ewma * this.decay + this.bucket * (1 - this.decay);
    // The remaining (buckets - 1) elapsed buckets were empty: decay in closed form.
    if (buckets > 1) this.ewma *= this.decay ** (buckets - 1);
    this.bucket = 0;
    this.bucketStartMs += buckets * METER_BUCKET_MS;
  }
}
