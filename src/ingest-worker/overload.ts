/**
 * Whether the ingest worker is falling behind, judged from how long packets waited between
 * the receive path and the worker (the age of each frame's oldest packet). Two thresholds
 * (hysteresis) keep the state from flapping around one value; `onChange` runs on each
 * transition only.
 */
export class OverloadGauge {
  private state = false;

  constructor(
    private readonly enterLagMs: number,
    private readonly leaveLagMs: number,
    private readonly onChange: (overloaded: boolean, lagMs: number) => void,
  ) {
    if (!(leaveLagMs < enterLagMs)) throw new RangeError('OverloadGauge: the leave threshold must be below the enter threshold');
  }

  get overloaded(): boolean {
    return this.state;
  }

  observe(lagMs: number): void {
    if (!this.state && lagMs > this.enterLagMs) {
      this.state = true;
      this.onChange(true, lagMs);
    } else if (this.state && lagMs < this.leaveLagMs) {
      this.state = false;
      this.onChange(false, lagMs);
    }
  }
}
