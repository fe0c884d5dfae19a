/**
 * The one retry policy of every remote call (image downloads, the LLM API and its batch calls): which
 * failures are worth another try, how long to wait before it, and when to give up.
 *
 * - retryable: HTTP 408, 429 and 5xx (a caller may add statuses: the LLM API also retries 409, as OpenAI's
 *   SDK does), timeouts, and connections that dropped or were refused for a passing reason;
 * - delay: exponential backoff, step n (from 0) is `baseMs * 2^n` capped at `maxBackoffMs`, with jitter
 *   (`full`: anywhere in [0, step); `equal`: in [step/2, step), never much shorter than the step); a wait
 *   the server asked for (`Retry-After` seconds or HTTP date, and the headers `serverWaitMs` reads) replaces
 *   the backoff, plus a little spread so requests told the same time do not all come back at once;
 * - give up: once `retries` retries are spent, for a failure that is not retryable, or when the server asks
 *   for a longer wait than `maxServerWaitMs`.
 *
 * Each caller keeps its own numbers (download.* and synth.llm.* in the recipe); only the rules live here.
 */

export interface RetryPolicy {
  /** Retries after the first try (0: one try only). */
  retries: number;
  /** First backoff step in milliseconds; it doubles with each retry. */
  baseMs: number;
  /** Longest backoff step in milliseconds. */
  maxBackoffMs: number;
  jitter: 'full' | 'equal';
  /** Longest wait a server may ask for; a server asking for more gets the failure at once. Null: no limit. */
  maxServerWaitMs: number | null;
}

/** What went wrong on one try, as far as retrying is concerned. */
export interface TryFailure {
  retryable: boolean;
  /** The wait the server asked for in milliseconds, or null when it did not say. */
  serverWaitMs: number | null;
}

export type RetryDecision =
  | { retry: true; delayMs: number }
  | { retry: false; why: 'not_retryable' | 'retries_spent' | 'server_wait_too_long' };

/**
 * Whether to try again after the `failedTries`-th failed try (from 1), and after how long. `random`
 * returns a number in [0, 1) (tests pass a fixed one).
 */
export function decideRetry(policy: RetryPolicy, failure: TryFailure, failedTries: number, random: () => number = Math.random): RetryDecision {
  if (!failure.retryable) return { retry: false, why: 'not_retryable' };
  if (failedTries > policy.retries) return { retry: false, why: 'retries_spent' };
  if (failure.serverWaitMs !== null && policy.maxServerWaitMs !== null && failure.serverWaitMs > policy.maxServerWaitMs) {
    return { retry: false, why: 'server_wait_too_long' };
  }
  return { retry: true, delayMs: retryDelay(policy, failedTries - 1, failure.serverWaitMs, random) };
}

/**
 * The wait before retry number `retry` (from 0): what the server asked for plus a little spread, or
 * otherwise the jittered backoff step.
 */
export function retryDelay(policy: Pick<RetryPolicy, 'baseMs' | 'maxBackoffMs' | 'jitter'>, retry: number, serverWaitMs: number | null, random: () => number = Math.random): number {
  if (serverWaitMs !== null) return Math.ceil(serverWaitMs + random() * Math.min(250, serverWaitMs * 0.1));
  const step = Math.min(policy.maxBackoffMs, policy.baseMs * 2 ** Math.min(retry, 30));
  return policy.jitter === 'full' ? Math.floor(random() * step) : Math.floor(step / 2 + (random() * step) / 2);
}

/** HTTP 408 Request Timeout, 429 Too Many Requests and 5xx, plus the caller's `also` statuses. */
export function isRetryableStatus(status: number, also: readonly number[] = []): boolean {
  return status === 408 || status === 429 || status >= 500 || also.includes(status);
}

/** Socket error codes worth another try; anything else (ENOTFOUND, TLS, parse errors) is permanent. */
const TRANSIENT_SOCKET_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENETDOWN',
  'EAI_AGAIN',
  'UND_ERR_SOCKET',
]);

/** A socket error that another try may not meet: a reset, refused or timed-out connection, a hang-up. */
export function isTransientSocketError(err: { code?: string; message: string }): boolean {
  return TRANSIENT_SOCKET_CODES.has(err.code ?? '') || /socket hang up/i.test(err.message);
}

/** `Retry-After` as milliseconds: delay-seconds or an HTTP date (relative to `now`); null when absent or unreadable. */
export function parseRetryAfter(value: string | null | undefined, now: number = Date.now()): number | null {
  if (value === null || value === undefined) return null;
  const text = value.trim();
  if (text === '') return null;
  if (/^\d+(\.\d+)?$/.test(text)) return Math.round(Number(text) * 1000);
  const date = Date.parse(text);
  return Number.isNaN(date) ? null : Math.max(0, date - now);
}

export interface HeaderSource {
  get(name: string): string | null;
}

/**
 * How long an API server asked us to wait, in milliseconds, or null when it did not say. Order:
 * `retry-after-ms`; `Retry-After`; then, for rate limits, OpenAI's `x-ratelimit-reset-*` of whichever
 * budget is used up (requests or tokens), or the sooner one when neither says it is at zero.
 */
export function serverWaitMs(headers: HeaderSource | null | undefined, now: number = Date.now()): number | null {
  if (!headers) return null;
  const ms = headers.get('retry-after-ms');
  if (ms !== null && ms.trim() !== '' && Number.isFinite(Number(ms)) && Number(ms) >= 0) return Number(ms);
  const after = parseRetryAfter(headers.get('retry-after'), now);
  if (after !== null) return after;
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
