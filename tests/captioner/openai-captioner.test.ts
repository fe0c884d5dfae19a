import { afterEach, describe, expect, it } from 'vitest';
import { cleanCaption, OpenAiCaptioner, openaiCaptionerSchema } from '../../src/captioner/openai-captioner.js';
import { FakeLlmServer } from '../llm-server/server.js';
import { createRun } from '../synth/helpers.js';
import { LlmCache } from '../../src/store/llm-cache.js';

const cleanups: (() => void | Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

// A 1x1 PNG.
const PNG = Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==', 'base64');
/** Four distinct images (a trailing byte each). */
const IMAGES = Array.from({ length: 4 }, (_, i) => ({ key: `k${i}`, bytes: Buffer.concat([PNG, Buffer.from([i])]), mime: 'image/png' }));

describe('OpenAI-compatible VLM captioner', () => {
  it('sends each image as a data URL and returns K captions per image, cached in the run database', async () => {
    const s = await FakeLlmServer.start();
    cleanups.push(() => s.close());
    const r = createRun([]);
    cleanups.push(r.cleanup);
    const options = openaiCaptionerSchema.parse({ type: 'openai', baseURL: s.baseURL, model: 'vlm', samples: 3, rpm: 10_000 });
    const captioner = new OpenAiCaptioner(options, { llmCache: new LlmCache(r.db) });
    const images = [
      { key: 'a', bytes: PNG, mime: 'image/png' },
      { key: 'b', bytes: Buffer.concat([PNG, Buffer.from([0])]), mime: 'image/png' },
    ];
    const captions = await captioner.caption(images, 3);
    expect(captions).toHaveLength(2);
    for (const list of captions) {
      expect(list).toHaveLength(3);
      for (const text of list) expect(text).toMatch(/^a picture of a \w+ \w+$/);
    }
    expect(s.requests).toHaveLength(6);
    const content = s.requests[0]!.body.messages[0]!.content as { type: string; text?: string; image_url?: { url: string } }[];
    expect(content[0]).toEqual({ type: 'text', text: options.prompt });
    expect(content[1]!.image_url!.url).toBe(`data:image/png;base64,${PNG.toString('base64')}`);
    expect(new Set(s.requests.map((q) => q.body.seed))).toEqual(new Set([0, 1, 2]));
    // Cached: asking again sends nothing; the stored request keeps the image as its hash, not its bytes.
    expect(await new OpenAiCaptioner(options, { llmCache: new LlmCache(r.db) }).caption(images, 3)).toEqual(captions);
    expect(s.requests).toHaveLength(6);
    const stored = (r.db.prepare('SELECT request_json FROM llm_cache LIMIT 1').get() as { request_json: string }).request_json;
    expect(stored).toMatch(/data:image\/png;base64;sha256=[0-9a-f]{64}/);
    expect(stored).not.toContain(PNG.toString('base64'));
  });

  it('reports failed requests per image instead of throwing', async () => {
    const s = await FakeLlmServer.start({ script: (q) => (q.body.seed === 1 ? { kind: 'status', status: 400 } : undefined) });
    cleanups.push(() => s.close());
    const captioner = new OpenAiCaptioner(openaiCaptionerSchema.parse({ type: 'openai', baseURL: s.baseURL, model: 'vlm', samples: 2 }));
    const [result] = await captioner.captionDetailed([{ key: 'a', bytes: PNG, mime: 'image/png' }]);
    expect(result!.captions).toHaveLength(1);
    expect(result!.errors).toEqual([{ seed: 1, code: 'http_400', message: expect.stringContaining('HTTP 400') }]);
  });

  it('a closed port stops captioning at the first request: every image is held back naming the base URL, no retries', async () => {
    // Bind, then close: a port nothing listens on.
    const gone = await FakeLlmServer.start();
    await gone.close();
    const options = openaiCaptionerSchema.parse({ type: 'openai', baseURL: gone.baseURL, model: 'vlm', samples: 2, concurrency: 2, retryBaseMs: 1000, retryMaxMs: 60_000 });
    const captioner = new OpenAiCaptioner(options);
    const started = performance.now();
    const results = await captioner.captionDetailed(IMAGES);
    expect(performance.now() - started).toBeLessThan(3000);
    expect(results).toHaveLength(IMAGES.length);
    const why = `cannot reach ${gone.baseURL}: connection refused (ECONNREFUSED)`;
    expect(results.map((r) => r.heldBack)).toEqual(Array(IMAGES.length).fill({ code: 'server_unreachable', message: why }));
    expect(results.map((r) => r.captions)).toEqual(Array(IMAGES.length).fill([]));
    expect(captioner.client.counters().retries).toBe(0);
    expect(captioner.client.counters().requests).toBeLessThanOrEqual(2);
  });

  it('a refused key (401) stops captioning at once, without retries; images answered before keep their captions', async () => {
    const refusal = { error: { message: 'Incorrect API key provided: sk-bad' } };
    const s = await FakeLlmServer.start({ script: (q) => (q.index >= 2 ? { kind: 'status', status: 401, body: refusal } : undefined) });
    cleanups.push(() => s.close());
    const options = openaiCaptionerSchema.parse({ type: 'openai', baseURL: s.baseURL, model: 'vlm', samples: 2, concurrency: 1, apiKeyEnv: 'VLC_KEY' });
    const captioner = new OpenAiCaptioner(options, { env: { VLC_KEY: 'sk-bad' } });
    const results = await captioner.captionDetailed(IMAGES);
    // Concurrency 1: the first image's two requests were answered, the third request was refused, nothing more was sent.
    expect(s.requests).toHaveLength(3);
    expect(results[0]!.captions).toHaveLength(2);
    expect(results[0]!.heldBack).toBeNull();
    const why = `API key rejected by ${s.baseURL} (HTTP 401: Incorrect API key provided: ***)`;
    for (const r of results.slice(1)) expect(r.heldBack).toEqual({ code: 'key_rejected', message: why });
    expect(results.slice(1)).toHaveLength(IMAGES.length - 1);
  });

  it('a body cut off or stalled after the headers is retried per request; one that never comes holds the image back, not failed for good', async () => {
    const s = await FakeLlmServer.start({ script: (q) => (q.index === 0 ? { kind: 'cut', missingBytes: 500 } : q.index === 1 ? { kind: 'stall' } : undefined) });
    cleanups.push(() => s.close());
    const fast = { retryBaseMs: 10, retryMaxMs: 50, timeoutMs: 400 };
    const captioner = new OpenAiCaptioner(openaiCaptionerSchema.parse({ type: 'openai', baseURL: s.baseURL, model: 'vlm', samples: 2, concurrency: 1, ...fast }));
    const [result] = await captioner.captionDetailed([IMAGES[0]!]);
    expect(result!.captions).toHaveLength(2);
    expect(result!.errors).toEqual([]);
    expect(result!.heldBack).toBeNull();
    expect(s.requests).toHaveLength(4);
    expect(captioner.client.counters().retries).toBe(2);

    const always = await FakeLlmServer.start({ script: (q) => (q.body.seed === 0 ? { kind: 'cut' } : { kind: 'stall' }) });
    cleanups.push(() => always.close());
    const failing = new OpenAiCaptioner(openaiCaptionerSchema.parse({ type: 'openai', baseURL: always.baseURL, model: 'vlm', samples: 2, maxRetries: 1, ...fast }));
    const [held] = await failing.captionDetailed([IMAGES[0]!]);
    expect(held!.errors.map((e) => e.code).sort()).toEqual(['connection_error', 'timeout']);
    expect(['connection_error', 'timeout']).toContain(held!.heldBack?.code);
    expect(always.requests).toHaveLength(4);
  });

  it('a request refused for good (HTTP 400) is no reason to hold the image back', async () => {
    const s = await FakeLlmServer.start({ script: (q) => (q.body.seed === 1 ? { kind: 'status', status: 400 } : undefined) });
    cleanups.push(() => s.close());
    const captioner = new OpenAiCaptioner(openaiCaptionerSchema.parse({ type: 'openai', baseURL: s.baseURL, model: 'vlm', samples: 2 }));
    const [result] = await captioner.captionDetailed([IMAGES[0]!]);
    expect(result!.captions).toHaveLength(1);
    expect(result!.heldBack).toBeNull();
  });

  it('cleans what models wrap captions in', () => {
    expect(cleanCaption('"A red circle on a white background."\n')).toBe('A red circle on a white background.');
    expect(cleanCaption('Caption: a dog  on grass')).toBe('a dog on grass');
    expect(cleanCaption('\n\nfirst line\nsecond line')).toBe('first line');
    expect(() => openaiCaptionerSchema.parse({ type: 'openai', baseURL: 'http://x/v1', model: 'm', sampels: 2 })).toThrow();
  });
});
