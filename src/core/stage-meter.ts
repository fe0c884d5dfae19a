import type { StageCounts } from './events.js';

/** Keeps one stage's counts and computes its rates (a sliding window for "now", the whole run for "avg"). */
export class StageMeter {
  in = 0;
  out = 0;
  failed = 0;
  dropped = 0;
  private latencySum = 0;
  private latencyCount = 0;
  private readonly started: number;
  /** (time, out) samples for the rate window. */
  private readonly window: Array<[number, number]> = [];

  constructor(
    readonly stage: string,
    private readonly windowMs = 5000,
    private readonly clock: () => number = () => performance.now(),
  ) {
    this.started = clock();
  }

  recordLatency(ms: number): void {
    // Exponential decay keeps the figure about the last few batches.
    this.latencySum = this.latencySum * 0.8 + ms;
    this.latencyCount = this.latencyCount * 0.8 + 1;
  }

  snapshot(): StageCounts {
    const now = this.clock();
    this.window.push([now, this.out]);
    while (this.window.length > 2 && now - this.window[0]![0] > this.windowMs) this.window.shift();
    const [t0, n0] = this.window[0]!;
    const rateNow = now > t0 ? ((this.out - n0) * 1000) / (now - t0) : 0;
    const elapsed = now - this.started;
    const counts: StageCounts = {
      stage: this.stage,
      in: this.in,
      out: this.out,
      failed: this.failed,
      dropped: this.dropped,
      rateNow,
      rateAvg: elapsed > 0 ? (this.out * 1000) / elapsed : 0,
    };
    if (this.latencyCount > 0) counts.batchLatencyMs = this.latencySum / this.latencyCount;
    return counts;
  }
}
