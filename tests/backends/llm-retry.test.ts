import { describe, expect, it } from 'vitest';
import { backoffDelay, parseResetDuration, retryAfterMs, retryDelay } from '../../src/backends/llm-retry.js';
import { TokenBucket } from '../../src/backends/llm-token-bucket.js';
import { errorForStatus } from '../../src/backends/llm-errors.js';

const headers = (values: Record<string, string>) => new Headers(values);

describe('retry policy', () => {
  it('reads retry-after-ms, Retry-After seconds and HTTP dates', () => {
    expect(retryAfterMs(headers({ 'retry-after-ms': '250' }))).toBe(250);
    expect(retryAfterMs(headers({ 'retry-after': '3' }))).toBe(3000);
    expect(retryAfterMs(headers({ 'retry-after': '1.5' }))).toBe(1500);
    const now = Date.parse('2025-01-01T00:00:00Z');
    expect(retryAfterMs(headers({ 'retry-after': 'Wed, 01 Jan 2025 00:00:07 GMT' }), now)).toBe(7000);
    // A date in the past means "now".
    expect(retryAfterMs(headers({ 'retry-after': 'Tue, 31 Dec 2024 23:59:00 GMT' }), now)).toBe(0);
    expect(retryAfterMs(headers({ 'retry-after': 'soon' }))).toBeNull();
    expect(retryAfterMs(headers({}))).toBeNull();
    expect(retryAfterMs(null)).toBeNull();
  });

  it("reads OpenAI's x-ratelimit-reset-* durations, preferring the exhausted budget", () => {
    expect(parseResetDuration('1s')).toBe(1000);
    expect(parseResetDuration('20ms')).toBe(20);
    expect(parseResetDuration('6m0s')).toBe(360_000);
    expect(parseResetDuration('1h2m3.5s')).toBe(3_723_500);
    expect(parseResetDuration('2')).toBe(2000);
    expect(parseResetDuration('abc')).toBeNull();
    expect(parseResetDuration('5x')).toBeNull();
    expect(retryAfterMs(headers({ 'x-ratelimit-reset-requests': '2s', 'x-ratelimit-reset-tokens': '30s', 'x-ratelimit-remaining-tokens': '0' }))).toBe(30_000);
    expect(retryAfterMs(headers({ 'x-ratelimit-reset-requests': '2s', 'x-ratelimit-reset-tokens': '30s' }))).toBe(2000);
    // Retry-After wins over the reset headers.
    expect(retryAfterMs(headers({ 'retry-after': '1', 'x-ratelimit-reset-tokens': '30s' }))).toBe(1000);
  });

  it('backs off exponentially with full jitter, capped', () => {
    expect(backoffDelay(0, 1000, 60_000, () => 0.999)).toBe(999);
    expect(backoffDelay(3, 1000, 60_000, () => 0.5)).toBe(4000);
    expect(backoffDelay(10, 1000, 60_000, () => 0.5)).toBe(30_000);
    expect(backoffDelay(3, 1000, 60_000, () => 0)).toBe(0);
    // A server's wait is a floor, with a little jitter above it.
    const asked = retryDelay(0, 2000, { retryBaseMs: 1000, retryMaxMs: 60_000 }, () => 1);
    expect(asked).toBeGreaterThanOrEqual(2000);
    expect(asked).toBeLessThanOrEqual(2250);
  });

  it('classifies HTTP statuses', () => {
    expect(errorForStatus(429, 'x')).toMatchObject({ code: 'rate_limited', isRetryable: true });
    expect(errorForStatus(408, 'x')).toMatchObject({ code: 'timeout', isRetryable: true });
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
