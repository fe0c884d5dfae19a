/**
 * LLM limits across the parts of a split build (issue 16 item 5): N parts, each with its own real client,
 * all sending to one account (the local OpenAI-compatible server), stay within the account's rpm, tpm and
 * concurrency when each takes its share (`limitsPer: account`, the default); with `limitsPer: part` each
 * uses the limits as given, and together they go well over them (which is what the share prevents).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { LlmClient, type ChatRequest } from '../../src/backends/llm-client.js';
import { llmOptionsSchema, type LlmOptions } from '../../src/backends/llm-options.js';
import { describePartShare, partShare } from '../../src/backends/llm-part-share.js';
import { FakeLlmServer, promptTokensOf, tokensOf } from '../llm-server/server.js';

const ANSWER = 'ok fine';

const servers: FakeLlmServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

async function server(latencyMs = 0): Promise<FakeLlmServer> {
  const s = await FakeLlmServer.start({ latencyMs, script: () => ({ kind: 'answer', content: ANSWER }) });
  servers.push(s);
  return s;
}

function options(baseURL: string, extra: Partial<LlmOptions> = {}): LlmOptions {
  return llmOptionsSchema.parse({ baseURL, model: 'test-model', rpm: 60_000, tpm: 10_000_000, retryBaseMs: 10, retryMaxMs: 50, ...extra });
}

const request = (text: string): ChatRequest => ({ messages: [{ role: 'user', content: text }], parameters: { seed: 1 } });

function maxInWindow(times: number[], windowMs: number): number {
  const sorted = [...times].sort((a, b) => a - b);
  let best = 0;
  let start = 0;
  for (let end = 0; end < sorted.length; end++) {
    while (sorted[end]! - sorted[start]! >= windowMs) start++;
    best = Math.max(best, end - start + 1);
  }
  return best;
}

/** `parts` clients, one per part of a `--shard I/parts` split, each sending `each` requests at once. */
async function burst(s: FakeLlmServer, account: LlmOptions, parts: number, each: number, minuteMs: number, padTo = 0): Promise<void> {
  const clients = Array.from({ length: parts }, (_, index) => new LlmClient(partShare(account, { index, count: parts }), { minuteMs }));
  await Promise.all(clients.flatMap((client, p) => Array.from({ length: each }, (_, i) => client.complete(request(`p${p} r${i} `.padEnd(padTo, 'a'))))));
}

describe('LLM limits across parts', () => {
  it('takes rpm/N, tpm/N and floor(concurrency/N) (at least 1) per part by default; limitsPer: part keeps them', () => {
    const account = options('http://127.0.0.1:1/v1', { rpm: 500, tpm: 200_000, concurrency: 16 });
    expect(partShare(account, { index: 2, count: 4 })).toMatchObject({ rpm: 125, tpm: 50_000, concurrency: 4 });
    expect(partShare(account, { index: 0, count: 3 })).toMatchObject({ rpm: 500 / 3, tpm: 200_000 / 3, concurrency: 5 });
    expect(partShare(account, { index: 49, count: 50 }).concurrency).toBe(1);
    expect(partShare(account, { index: 0, count: 1 })).toBe(account);
    const perPart = { ...account, limitsPer: 'part' as const };
    expect(partShare(perPart, { index: 1, count: 4 })).toBe(perPart);
    expect(describePartShare('synth.llm', account, { index: 1, count: 4 })).toBe(
      "synth.llm: part 1/4 takes 1/4 of the account's limits: rpm 125, tpm 50000, concurrency 4 (limitsPer: part when the limits are each part's already)",
    );
    expect(describePartShare('synth.llm', account, { index: 0, count: 1 })).toBeNull();
  });

  it('4 parts with their shares stay within the account rpm together (server arrival times); with limitsPer: part they do not', async () => {
    // 30 requests per 2-second "minute" for the account (slow enough for a loaded machine to send far
    // more): each part 7.5, one request per 267 ms.
    const rpm = 30;
    const minuteMs = 2000;
    const shared = await server();
    const started = performance.now();
    await burst(shared, options(shared.baseURL, { rpm, concurrency: 16 }), 4, 15, minuteMs);
    const elapsed = performance.now() - started;
    const times = shared.requests.map((r) => r.at);
    expect(times).toHaveLength(60);
    // One client's window lets a minute hold its rpm plus one window's cap (llm-client.ts: here 1 a part),
    // so 4 parts hold at most rpm + 4; arrival lags the start by a few milliseconds (more on a loaded
    // machine, the server sharing the clients' event loop), which moves requests across the window's
    // edges: 10% on top. Unpaced, the 60 requests arrive within a fraction of a second.
    expect(maxInWindow(times, minuteMs)).toBeLessThanOrEqual(Math.ceil((rpm + 4) * 1.1));
    expect(elapsed).toBeGreaterThan(((60 - rpm - 4) / rpm) * minuteMs);

    // The same burst with the limits taken as each part's: well over the account's rate.
    const unshared = await server();
    await burst(unshared, options(unshared.baseURL, { rpm, concurrency: 16, limitsPer: 'part' }), 4, 15, minuteMs);
    expect(maxInWindow(unshared.requests.map((r) => r.at), minuteMs)).toBeGreaterThan(rpm * 1.5);
  }, 30_000);

  it('4 parts with their shares keep at most the account concurrency in flight together', async () => {
    const shared = await server(40);
    await burst(shared, options(shared.baseURL, { concurrency: 8 }), 4, 12, 60_000);
    expect(shared.maxInFlight).toBe(8);
    const unshared = await server(40);
    await burst(unshared, options(unshared.baseURL, { concurrency: 8, limitsPer: 'part' }), 4, 12, 60_000);
    expect(unshared.maxInFlight).toBeGreaterThan(8);
  });

  it('4 parts with their shares stay within the account tpm together (server-counted tokens); with limitsPer: part they do not', async () => {
    const tpm = 1000;
    const minuteMs = 2000;
    const maxTokens = 16;
    const run = async (limitsPer: 'account' | 'part') => {
      const s = await server();
      // About 50 prompt tokens a request.
      await burst(s, options(s.baseURL, { rpm: 1_000_000, tpm, concurrency: 8, maxTokens, limitsPer }), 4, 12, minuteMs, 200);
      const usage = s.requests.map((r) => ({ at: r.at, tokens: promptTokensOf(r.body) + tokensOf(ANSWER) })).sort((a, b) => a.at - b.at);
      let best = 0;
      let sum = 0;
      let start = 0;
      for (let end = 0; end < usage.length; end++) {
        sum += usage[end]!.tokens;
        while (usage[end]!.at - usage[start]!.at >= minuteMs) sum -= usage[start++]!.tokens;
        best = Math.max(best, sum);
      }
      return { best, total: usage.reduce((n, u) => n + u.tokens, 0) };
    };
    const shared = await run('account');
    expect(shared.total).toBeGreaterThan(2 * tpm);
    // One window's allowance plus the parts' bucket capacities (tpm/60 in all) and over-estimates refunded in flight.
    expect(shared.best).toBeLessThanOrEqual(tpm + tpm / 60 + 8 * (maxTokens + 8));
    expect((await run('part')).best).toBeGreaterThan(tpm * 1.5);
  }, 30_000);
});
