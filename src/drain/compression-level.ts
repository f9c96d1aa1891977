/**
 * Adaptive gzip level: compress harder when the uplink is the bottleneck, cheaper when the
 * CPU is.
 *
 * The drain serves two very different links. On a slow branch uplink (a few Mbit/s) every
 * byte saved is throughput, and gzip 6 sends ~25 % fewer bytes than gzip 1 for the CPU of a
 * few milliseconds per request. On a fast link catching up on a large backlog, compression is
 * the bottleneck and gzip 1 delivers ~2–3× more records per CPU-second. Neither fixed level
 * suits both, and a branch's link changes (outage, congestion, a VPN coming up).
 *
 * After each batch the uploader reports how long its compression took and how long its
 * requests spent on the network (sending, waiting for the answer, and waiting for the
 * configured rate cap). The ratio network / compression, smoothed, steers the level along
 * LADDER between 1 and the configured level:
 *   ratio < STEP_DOWN_BELOW   compression costs more time than the network: one step cheaper;
 *   ratio > STEP_UP_ABOVE     the network dominates: one step harder (up to the configured level).
 * The gap between the two thresholds (each step changes compression time by ~1.5–3×) keeps the
 * level from oscillating. Pure: no clock, the caller measures.
 */

/** Levels the control moves between (capped by the configured level, which is always included). */
const LADDER = [1, 3, 6, 9] as const;
const STEP_DOWN_BELOW = 1;
const STEP_UP_ABOVE = 4;
/** Weight of the newest observation in the smoothed ratio. */
const ALPHA = 0.3;
/** Observations with less compression time than this say nothing (tiny batches). */
const MIN_COMPRESS_MS = 0.5;

export class CompressionLevel {
  private readonly levels: readonly number[];
  private index: number;
  private ratio: number | null = null;

  /** `max`: the configured level (used from the start and as the ceiling); `adaptive` false: always `max`. */
  constructor(readonly max: number, readonly adaptive: boolean) {
    this.levels = [...LADDER.filter((l) => l < max), max];
    this.index = this.levels.length - 1;
  }

  get level(): number {
    return this.levels[this.index] ?? this.max;
  }

  /** One batch's compression time (wall) and network time (requests plus rate-cap waits). */
  observe(compressMs: number, networkMs: number): void {
    if (!this.adaptive || !(compressMs >= MIN_COMPRESS_MS) || !(networkMs >= 0)) return;
    const r = networkMs / compressMs;
    this.ratio = this.ratio === null ? r : (1 - ALPHA) * this.ratio + ALPHA * r;
    let next = this.index;
    if (this.ratio < STEP_DOWN_BELOW && this.index > 0) next--;
    else if (this.ratio > STEP_UP_ABOVE && this.index < this.levels.length - 1) next++;
    if (next !== this.index) {
      this.index = next;
      // The old ratio described the old level: start afresh.
      this.ratio = null;
    }
  }
}
