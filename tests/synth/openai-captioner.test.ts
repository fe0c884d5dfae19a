import { afterEach, describe, expect, it } from 'vitest';
import { cleanCaption, OpenAiCaptioner, openaiCaptionerSchema } from '../../src/captioner/openai-captioner.js';
import { FakeLlmServer } from '../llm-server/server.js';
import { createRun } from './helpers.js';

const cleanups: (() => void | Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

// A 1x1 PNG.
const PNG = Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==', 'base64');

describe('OpenAI-compatible VLM captioner', () => {
  it('sends each image as a data URL and returns K captions per image, cached in the run database', async () => {
    const s = await FakeLlmServer.start();
    cleanups.push(() => s.close());
    const r = createRun([]);
    cleanups.push(r.cleanup);
    const options = openaiCaptionerSchema.parse({ type: 'openai', baseURL: s.baseURL, model: 'vlm', samples: 3, rpm: 10_000 });
    const captioner = new OpenAiCaptioner(options, { db: r.db });
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
    expect(await new OpenAiCaptioner(options, { db: r.db }).caption(images, 3)).toEqual(captions);
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

  it('cleans what models wrap captions in', () => {
    expect(cleanCaption('"A red circle on a white background."\n')).toBe('A red circle on a white background.');
    expect(cleanCaption('Caption: a dog  on grass')).toBe('a dog on grass');
    expect(cleanCaption('\n\nfirst line\nsecond line')).toBe('first line');
    expect(() => openaiCaptionerSchema.parse({ type: 'openai', baseURL: 'http://x/v1', model: 'm', sampels: 2 })).toThrow();
  });
});
