/**
 * Retry policy: exponential backoff with full jitter, and the wait a server asks for through
 * `retry-after-ms`, `Retry-After` (seconds or an HTTP date) or OpenAI's `x-ratelimit-reset-*` headers.
 */

export interface HeaderSource {
  get(name: string): string | null;
}

/** Full jitter: a random wait in [0, min(maxMs, baseMs * 2^attempt)). `attempt` counts from 0. */
export function backoffDelay(attempt: number, baseMs: number, maxMs: number, random: () => number = Math.random): number {
  const ceiling = Math.min(maxMs, baseMs * 2 ** Math.min(attempt, 30));
  return Math.floor(random() * ceiling);
}

/**
 * OpenAI's reset durations: `1s`, `20ms`, `6m0s`, `1h2m3.5s`, or a bare number of seconds.
 * Returns milliseconds, or null when the text is not a duration.
 */
export function parseResetDuration(text: string): number | null {
  const value = text.trim();
  if (value === '') return null;
  if (/^\d+(\.\d+)?$/.test(value)) return Number(value) * 1000;
  const pattern = /(\d+(?:\.\d+)?)(ms|h|m|s)/gy;
  let total = 0;
  let consumed = 0;
  let match: RegExpExecArray | null;
  while ((match = pattern.exec(value)) !== null) {
    const n = Number(match[1]);
    const unit = match[2];
    total += unit === 'ms' ? n : unit === 's' ? n * 1000 : unit === 'm' ? n * 60_000 : n * 3_600_000;
    consumed = pattern.lastIndex;
  }
  return consumed === value.length && consumed > 0 ? total : null;
}

/**
 * How long the server asked us to wait, in milliseconds, or null when it did not say. Order:
 * `retry-after-ms`; `Retry-After` as seconds or as an HTTP date (relative to `now`); then, for rate
 * limits, the `x-ratelimit-reset-*` of whichever budget is used up (requests or tokens), or the sooner one
 * when neither says it is at zero.
 */
export function retryAfterMs(headers: HeaderSource | null | undefined, now: number = Date.now()): number | null {
  if (!headers) return null;
  const ms = headers.get('retry-after-ms');
  if (ms !== null && ms.trim() !== '' && Number.isFinite(Number(ms)) && Number(ms) >= 0) return Number(ms);
  const after = headers.get('retry-after');
  if (after !== null && after.trim() !== '') {
    const trimmed = after.trim();
    if (/^\d+(\.\d+)?$/.test(trimmed)) return Number(trimmed) * 1000;
    const date = Date.parse(trimmed);
    if (Number.isFinite(date)) return Math.max(0, date - now);
  }
  const resets: number[] = [];
  const exhausted: number[] = [];
  for (const kind of ['requests', 'tokens']) {
    const reset = headers.get(`x-ratelimit-reset-${kind}`);
    const value = reset === null ? null : parseResetDuration(reset);
    if (value === null) continue;
    resets.push(value);
    if (headers.get(`x-ratelimit-remaining-${kind}`)?.trim() === '0') exhausted.push(value);
  }
  if (exhausted.length > 0) return Math.max(...exhausted);
  if (resets.length > 0) return Math.min(...resets);
  return null;
}

/**
 * The wait before retry number `attempt` (from 0): at least what the server asked for, otherwise the
 * jittered backoff.
 */
export function retryDelay(
  attempt: number,
  serverAskedMs: number | null,
  policy: { retryBaseMs: number; retryMaxMs: number },
  random: () => number = Math.random,
): number {
  const jittered = backoffDelay(attempt, policy.retryBaseMs, policy.retryMaxMs, random);
  if (serverAskedMs === null) return jittered;
  // A little jitter on top spreads the requests that were all told the same time.
  return Math.ceil(serverAskedMs + random() * Math.min(250, serverAskedMs * 0.1));
}

/** Sleep that ends early (rejecting with the signal's reason) when the signal aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
