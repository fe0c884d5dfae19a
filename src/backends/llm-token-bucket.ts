/**
 * A token bucket for tokens-per-minute limits. Requests take their estimated tokens before they are
 * sent and waiters are served in arrival order; the actual usage corrects the level afterwards (a refund
 * when the estimate was high, a debt when it was low). Capacity is one second's share of the minute, so
 * tokens flow evenly instead of in a burst at the start of each minute. A request larger than the
 * capacity goes out when the bucket is full and leaves it in debt.
 */
export class TokenBucket {
  private level: number;
  private last: number;
  private readonly waiters: { tokens: number; resolve: () => void; reject: (err: unknown) => void; cleanup: () => void }[] = [];
  private timer: NodeJS.Timeout | null = null;

  /**
   * @param perWindow tokens allowed per window (a minute for TPM)
   * @param windowMs the window length in milliseconds (60,000; shorter in tests)
   */
  constructor(
    perWindow: number,
    windowMs: number,
    private readonly clock: () => number = () => performance.now(),
  ) {
    this.ratePerMs = perWindow / windowMs;
    this.capacity = perWindow / 60;
    this.level = this.capacity;
    this.last = clock();
  }

  private readonly ratePerMs: number;
  readonly capacity: number;

  /** Current level after refilling (may be negative after a large request or a low estimate). */
  available(): number {
    const now = this.clock();
    this.level = Math.min(this.capacity, this.level + (now - this.last) * this.ratePerMs);
    this.last = now;
    return this.level;
  }

  /** Wait until `tokens` may be spent, then spend them. Rejects with the signal's reason on abort. */
  take(tokens: number, signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (this.waiters.length === 0 && this.available() >= Math.min(tokens, this.capacity)) {
      this.level -= tokens;
      return Promise.resolve();
    }
    return new Promise<void>((resolve, reject) => {
      const onAbort = () => {
        const index = this.waiters.indexOf(waiter);
        if (index >= 0) this.waiters.splice(index, 1);
        reject(signal!.reason);
        this.schedule();
      };
      const waiter = {
        tokens,
        resolve,
        reject,
        cleanup: () => signal?.removeEventListener('abort', onAbort),
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.waiters.push(waiter);
      this.schedule();
    });
  }

  /** Give back (positive) or charge more (negative) once the real usage is known. */
  adjust(delta: number): void {
    this.available();
    this.level = Math.min(this.capacity, this.level + delta);
    this.schedule();
  }

  private schedule(): void {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    while (this.waiters.length > 0) {
      const head = this.waiters[0]!;
      const need = Math.min(head.tokens, this.capacity);
      const have = this.available();
      if (have >= need) {
        this.waiters.shift();
        this.level -= head.tokens;
        head.cleanup();
        head.resolve();
        continue;
      }
      const wait = Math.max(1, Math.ceil((need - have) / this.ratePerMs));
      this.timer = setTimeout(() => {
        this.timer = null;
        this.schedule();
      }, wait);
      return;
    }
  }
}
