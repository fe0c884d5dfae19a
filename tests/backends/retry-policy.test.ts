import { describe, expect, it } from 'vitest';
import {
  decideRetry,
  isRetryableStatus,
  isTransientSocketError,
  parseResetDuration,
  parseRetryAfter,
  retryDelay,
  serverWaitMs,
  type RetryPolicy,
} from '../../src/backends/retry-policy.js';
import { TokenBucket } from '../../src/backends/llm-token-bucket.js';
import { errorForStatus } from '../../src/backends/llm-errors.js';
import { llmRetryPolicy } from '../../src/backends/llm-client.js';
import { llmOptionsSchema } from '../../src/backends/llm-options.js';
import { downloadRetryPolicy, fetchOptionsSchema } from '../../src/images/url-fetcher.js';

const headers = (values: Record<string, string>) => new Headers(values);
const fixed = (value: number) => () => value;

describe('retry policy: server waits', () => {
  it('parseRetryAfter reads seconds and HTTP dates (relative to the clock given)', () => {
    expect(parseRetryAfter('2')).toBe(2000);
    expect(parseRetryAfter(' 1.5 ')).toBe(1500);
    expect(parseRetryAfter(undefined)).toBeNull();
    expect(parseRetryAfter(null)).toBeNull();
    expect(parseRetryAfter('')).toBeNull();
    expect(parseRetryAfter('soon')).toBeNull();
    const now = Date.parse('2024-01-01T00:00:00Z');
    expect(parseRetryAfter('Mon, 01 Jan 2024 00:00:05 GMT', now)).toBe(5000);
    // A date in the past means "now".
    expect(parseRetryAfter('Sun, 31 Dec 2023 23:59:00 GMT', now)).toBe(0);
  });

  it('serverWaitMs reads retry-after-ms, Retry-After seconds and HTTP dates', () => {
    expect(serverWaitMs(headers({ 'retry-after-ms': '250' }))).toBe(250);
    expect(serverWaitMs(headers({ 'retry-after-ms': '250', 'retry-after': '9' }))).toBe(250);
    expect(serverWaitMs(headers({ 'retry-after': '3' }))).toBe(3000);
    expect(serverWaitMs(headers({ 'retry-after': '1.5' }))).toBe(1500);
    const now = Date.parse('2025-01-01T00:00:00Z');
    expect(serverWaitMs(headers({ 'retry-after': 'Wed, 01 Jan 2025 00:00:07 GMT' }), now)).toBe(7000);
    expect(serverWaitMs(headers({ 'retry-after': 'Tue, 31 Dec 2024 23:59:00 GMT' }), now)).toBe(0);
    expect(serverWaitMs(headers({ 'retry-after': 'soon' }))).toBeNull();
    expect(serverWaitMs(headers({}))).toBeNull();
    expect(serverWaitMs(null)).toBeNull();
  });

  it("reads OpenAI's x-ratelimit-reset-* durations, preferring the exhausted budget", () => {
    expect(parseResetDuration('1s')).toBe(1000);
    expect(parseResetDuration('20ms')).toBe(20);
    expect(parseResetDuration('6m0s')).toBe(360_000);
    expect(parseResetDuration('1h2m3.5s')).toBe(3_723_500);
    expect(parseResetDuration('2')).toBe(2000);
    expect(parseResetDuration('abc')).toBeNull();
    expect(parseResetDuration('5x')).toBeNull();
    expect(serverWaitMs(headers({ 'x-ratelimit-reset-requests': '2s', 'x-ratelimit-reset-tokens': '30s', 'x-ratelimit-remaining-tokens': '0' }))).toBe(30_000);
    expect(serverWaitMs(headers({ 'x-ratelimit-reset-requests': '2s', 'x-ratelimit-reset-tokens': '30s' }))).toBe(2000);
    // Retry-After wins over the reset headers.
    expect(serverWaitMs(headers({ 'retry-after': '1', 'x-ratelimit-reset-tokens': '30s' }))).toBe(1000);
  });
});

describe('retry policy: delays', () => {
  const full = { baseMs: 1000, maxBackoffMs: 60_000, jitter: 'full' } as const;
  const equal = { baseMs: 500, maxBackoffMs: 30_000, jitter: 'equal' } as const;

  it('full jitter: anywhere in [0, base * 2^n), the step capped', () => {
    expect(retryDelay(full, 0, null, fixed(0.999))).toBe(999);
    expect(retryDelay(full, 3, null, fixed(0.5))).toBe(4000);
    expect(retryDelay(full, 3, null, fixed(0))).toBe(0);
    // 2^10 s is past the cap: the step is 60 s.
    expect(retryDelay(full, 10, null, fixed(0.5))).toBe(30_000);
    expect(retryDelay(full, 1000, null, fixed(0.999))).toBe(59_940);
  });

  it('equal jitter: half the step plus up to half again, the step capped', () => {
    expect(retryDelay(equal, 0, null, fixed(0))).toBe(250);
    expect(retryDelay(equal, 0, null, fixed(0.999))).toBe(499);
    expect(retryDelay(equal, 2, null, fixed(0.5))).toBe(1500);
    // Step 500 * 2^7 = 64 s is past the 30 s cap.
    expect(retryDelay(equal, 7, null, fixed(0))).toBe(15_000);
    expect(retryDelay(equal, 7, null, fixed(0.999))).toBeLessThan(30_000);
  });

  it("a server's wait replaces the backoff, with at most min(250 ms, 10 %) spread above it", () => {
    for (const policy of [full, equal]) {
      expect(retryDelay(policy, 5, 2000, fixed(0))).toBe(2000);
      expect(retryDelay(policy, 5, 2000, fixed(0.999))).toBe(2200);
      expect(retryDelay(policy, 0, 60_000, fixed(0.999))).toBe(60_250);
      expect(retryDelay(policy, 9, 0, fixed(0.999))).toBe(0);
    }
  });

  it('the same random source gives the same delays (deterministic)', () => {
    const sequence = (seed: number) => {
      let state = seed;
      const random = () => ((state = (state * 16807) % 2147483647) - 1) / 2147483646;
      return [0, 1, 2, 3].map((n) => retryDelay(full, n, null, random));
    };
    expect(sequence(7)).toEqual(sequence(7));
    expect(sequence(7)).not.toEqual(sequence(8));
  });
});

describe('retry policy: decisions', () => {
  const policy: RetryPolicy = { retries: 2, baseMs: 100, maxBackoffMs: 1000, jitter: 'full', maxServerWaitMs: 5000 };
  const transient = { retryable: true, serverWaitMs: null };

  it('retries a retryable failure until the retries are spent', () => {
    expect(decideRetry(policy, transient, 1, fixed(0.5))).toEqual({ retry: true, delayMs: 50 });
    expect(decideRetry(policy, transient, 2, fixed(0.5))).toEqual({ retry: true, delayMs: 100 });
    expect(decideRetry(policy, transient, 3, fixed(0.5))).toEqual({ retry: false, why: 'retries_spent' });
    expect(decideRetry({ ...policy, retries: 0 }, transient, 1)).toEqual({ retry: false, why: 'retries_spent' });
  });

  it('never retries a permanent failure', () => {
    expect(decideRetry(policy, { retryable: false, serverWaitMs: 10 }, 1)).toEqual({ retry: false, why: 'not_retryable' });
  });

  it('honours a server wait up to maxServerWaitMs, gives up on a longer one, and has no limit when it is null', () => {
    expect(decideRetry(policy, { retryable: true, serverWaitMs: 5000 }, 1, fixed(0))).toEqual({ retry: true, delayMs: 5000 });
    expect(decideRetry(policy, { retryable: true, serverWaitMs: 5001 }, 1, fixed(0))).toEqual({ retry: false, why: 'server_wait_too_long' });
    expect(decideRetry({ ...policy, maxServerWaitMs: null }, { retryable: true, serverWaitMs: 3_600_000 }, 1, fixed(0))).toEqual({ retry: true, delayMs: 3_600_000 });
  });

  it('classifies statuses and socket errors', () => {
    for (const status of [408, 429, 500, 502, 503, 504]) expect(isRetryableStatus(status), String(status)).toBe(true);
    for (const status of [400, 401, 403, 404, 409, 410, 422]) expect(isRetryableStatus(status), String(status)).toBe(false);
    expect(isRetryableStatus(409, [409])).toBe(true);
    for (const code of ['ECONNRESET', 'ECONNREFUSED', 'ETIMEDOUT', 'EPIPE', 'EAI_AGAIN']) expect(isTransientSocketError({ code, message: 'x' }), code).toBe(true);
    for (const code of ['ENOTFOUND', 'ERR_TLS_CERT_ALTNAME_INVALID', 'HPE_INVALID_CONSTANT']) expect(isTransientSocketError({ code, message: 'x' }), code).toBe(false);
    expect(isTransientSocketError({ message: 'socket hang up' })).toBe(true);
  });

  it("each caller keeps its recipe defaults: downloads 2 retries from 500 ms (equal jitter, 30 s cap); the LLM 6 from 1 s (full jitter, 60 s cap, 120 s server wait)", () => {
    expect(downloadRetryPolicy(fetchOptionsSchema.parse({}))).toEqual({ retries: 2, baseMs: 500, maxBackoffMs: 30_000, jitter: 'equal', maxServerWaitMs: 30_000 });
    const llm = llmOptionsSchema.parse({ model: 'm', baseURL: 'http://127.0.0.1:1/v1' });
    expect(llmRetryPolicy(llm)).toEqual({ retries: 6, baseMs: 1000, maxBackoffMs: 60_000, jitter: 'full', maxServerWaitMs: 120_000 });
  });

  it('the LLM errors take their retryability from the same status rule, with 409 as OpenAI retries it', () => {
    expect(errorForStatus(429, 'x')).toMatchObject({ code: 'rate_limited', isRetryable: true });
    expect(errorForStatus(408, 'x')).toMatchObject({ code: 'timeout', isRetryable: true });
    // openai-node 6.49.0 client.js shouldRetry: 408, 409 ("lock timeouts"), 429, >= 500.
    expect(errorForStatus(409, 'x')).toMatchObject({ code: 'http_409', isRetryable: true });
    expect(errorForStatus(503, 'x')).toMatchObject({ code: 'server_error', isRetryable: true, status: 503 });
    expect(errorForStatus(400, 'x')).toMatchObject({ code: 'http_400', isRetryable: false });
    expect(errorForStatus(401, 'x')).toMatchObject({ code: 'http_401', isRetryable: false });
  });
});

describe('TokenBucket', () => {
  it('refills at the rate, serves waiters in order, and takes refunds and debts', async () => {
    let now = 0;
    const bucket = new TokenBucket(6000, 60_000, () => now); // 0.1 token per ms, capacity 100
    expect(bucket.capacity).toBe(100);
    await bucket.take(100);
    expect(bucket.available()).toBe(0);
    now = 500;
    expect(bucket.available()).toBe(50);
    bucket.adjust(-80); // a low estimate: debt
    expect(bucket.available()).toBe(-30);
    bucket.adjust(1000); // refunds never exceed the capacity
    expect(bucket.available()).toBe(100);
    // A request larger than the capacity waits for a full bucket and leaves it in debt.
    await bucket.take(250);
    expect(bucket.available()).toBe(-150);
  });

  it('makes later takers wait for tokens (real timers)', async () => {
    const bucket = new TokenBucket(60_000, 1000); // 60 tokens per ms... capacity 1000
    await bucket.take(1000);
    const started = performance.now();
    await bucket.take(600); // 600 tokens at 60 per ms: about 10 ms
    expect(performance.now() - started).toBeGreaterThanOrEqual(8);
  });

  it('rejects a waiter when its signal aborts', async () => {
    const bucket = new TokenBucket(60, 60_000); // one token per second
    await bucket.take(1);
    const controller = new AbortController();
    const waiting = bucket.take(1, controller.signal);
    controller.abort(new Error('stop'));
    await expect(waiting).rejects.toThrow('stop');
  });
});
