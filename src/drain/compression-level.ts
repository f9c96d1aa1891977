/**
 * Adaptive gzip level: compress harder when the uplink is the bottleneck, cheaper when the
 * CPU is.
 *
 * The drain serves two very different links. On a slow branch uplink (a few Mbit/s) every
 * byte saved is throughput, and gzip 6 sends ~25 % fewer bytes than gzip 1 for the CPU of a
 * few milliseconds per request. On a fast link catching up on a large backlog, compression is
 * the bottleneck and gzip 1 delivers ~2× more records per CPU-second. Neither fixed level
 * suits both, and a branch's link changes (outage, congestion, a VPN coming up).
 *
 * After each cleanly delivered batch the uploader reports how long its compression took and
 * how long its requests spent on the network (sending, waiting for the answer, and waiting
 * for the byte-rate cap). The ratio network / compression, smoothed over the batches at the
 * current level, steers the level along LADDER between 1 and the configured level:
 *   ratio < 1                       compression takes longer than the network: one step cheaper;
 *   ratio > 2 · cost(next)/cost(now)  the network would still take twice the compression time
 *                                   after one step harder: take it (up to the configured level).
 * After a step, the control waits for MIN_SAMPLES observations at the new level. The factor 2
 * is the hysteresis: a step up leaves the ratio above 2, far from the step-down threshold.
 * Latency counts as network time too; concurrent batches hide it on long round trips. Pure:
 * no clock, the caller measures.
 */

/** Levels the control moves between (capped by the configured level, which is always included). */
const LADDER = [1, 3, 6, 9] as const;
/**
 * Relative CPU cost of gzip levels 1–9 on Fusion NDJSON, from measured times for a 2000-record
 * chunk (level 1: 8.7 ms, 3: 9.5 ms, 6: 19 ms, 9: 33 ms; 2, 4, 5, 7, 8 interpolated).
 */
const RELATIVE_COST = [1, 1, 1.05, 1.1, 1.45, 1.8, 2.2, 2.7, 3.2, 3.8] as const;
const STEP_DOWN_BELOW = 1;
const STEP_UP_MARGIN = 2;
/** Weight of the newest observation in the smoothed ratio. */
const ALPHA = 0.3;
/** Observations at a level before the control may leave it. */
const MIN_SAMPLES = 2;
/** Observations with less compression time than this say nothing (tiny batches). */
const MIN_COMPRESS_MS = 0.5;

function cost(level: number): number {
  return RELATIVE_COST[level] ?? 1;
}

export class CompressionLevel {
  private readonly levels: readonly number[];
  private index: number;
  private ratio = 0;
  private samples = 0;

  /** `max`: the configured level (used from the start and as the ceiling); `adaptive` false: always `max`. */
  constructor(readonly max: number, readonly adaptive: boolean) {
    this.levels = [...LADDER.filter((l) => l < max), max];
    this.index = this.levels.length - 1;
  }

  get level(): number {
    return this.levels[this.index] ?? this.max;
  }

  /** One batch's compression time (wall) and network time (requests plus byte-cap waits). */
  observe(compressMs: number, networkMs: number): void {
    if (!this.adaptive || !(compressMs >= MIN_COMPRESS_MS) || !(networkMs >= 0)) return;
    const r = networkMs / compressMs;
    this.ratio = this.samples === 0 ? r : (1 - ALPHA) * this.ratio + ALPHA * r;
    this.samples++;
    if (this.samples < MIN_SAMPLES) return;
    const up = this.levels[this.index + 1];
    let next = this.index;
    if (this.ratio < STEP_DOWN_BELOW && this.index > 0) next--;
    else if (up !== undefined && this.ratio > (STEP_UP_MARGIN * cost(up)) / cost(this.level)) next++;
    if (next !== this.index) {
      this.index = next;
      // The ratio described the old level: measure the new one afresh.
      this.samples = 0;
    }
  }
}
