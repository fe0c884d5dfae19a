/** The captioner registry: the recipe's `captioner` schema and the loaders follow from one list of types. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { captionerModelFolder, captionerOptionsSchema, captionerTypeNames, loadCaptioner, type CaptionerOptions } from '../../src/captioner/registry.js';
import { parseRecipe } from '../../src/config/recipe.js';
import { ConfigError } from '../../src/core/errors.js';
import { openDatabase } from '../../src/store/database.js';
import { LlmCache } from '../../src/store/llm-cache.js';
import { readImage } from './fixtures.js';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const dir = mkdtempSync(path.join(tmpdir(), 'vlc-captioner-registry-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const db = openDatabase(path.join(dir, 'run.db'));
afterAll(() => db.close());

describe('captioner registry', () => {
  it('knows the onnx and openai types', () => {
    expect(captionerTypeNames).toEqual(['onnx', 'openai']);
  });

  it('an unknown type given to the loader is a config error naming the field, the value and the types', async () => {
    const unknown = { type: 'blip2', model: 'm' } as unknown as CaptionerOptions;
    const err = await loadCaptioner(unknown, { baseDir: dir, llmCache: new LlmCache(db), maxCostUsd: null }).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toBe('captioner.type: expected one of "onnx" | "openai", got "blip2"');
    expect(() => captionerModelFolder(unknown, dir)).toThrow(/^captioner\.type: expected one of "onnx" \| "openai", got "blip2"$/);
  });

  it('an unknown type in a recipe is refused by the schema the registry composes, naming the field, the value and the types', () => {
    let message = '';
    try {
      parseRecipe({ sources: [{ type: 'webdataset', paths: 'x.tar' }], captioner: { type: 'blip2', model: 'm' } }, 'recipe.yaml', dir);
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      message = (err as Error).message;
    }
    expect(message).toContain('captioner.type');
    expect(message).toContain('"blip2"');
    expect(message).toMatch(/"onnx" \| "openai"/);
  });

  it('the model folder an onnx captioner reads resolves against the recipe folder; an openai captioner reads none', () => {
    const onnx = captionerOptionsSchema.parse({ type: 'onnx', model: 'models/cap' });
    expect(captionerModelFolder(onnx, '/recipes')).toBe('/recipes/models/cap');
    expect(captionerModelFolder(captionerOptionsSchema.parse({ type: 'onnx', model: '/abs/cap' }), '/recipes')).toBe('/abs/cap');
    const openai = captionerOptionsSchema.parse({ type: 'openai', baseURL: 'http://127.0.0.1:1/v1', model: 'vlm', apiKeyEnv: 'NO_SUCH_KEY' });
    expect(captionerModelFolder(openai, '/recipes')).toBeUndefined();
  });

  it('loads an onnx captioner from a relative folder: its name, batch size, and K captions per image', async () => {
    const options = captionerOptionsSchema.parse({ type: 'onnx', model: 'models/shapes-captioner', samples: 2, batchSize: 3, strategy: 'nucleus', seed: 1 });
    const captioner = await loadCaptioner(options, { baseDir: root, llmCache: new LlmCache(db), maxCostUsd: null });
    try {
      expect(captioner.model).toBe('shapes-captioner');
      expect(captioner.batchSize).toBe(3);
      const out = await captioner.captionBatch([{ key: 'a', bytes: readImage('square-a.png'), format: 'png' }]);
      expect(out).toHaveLength(1);
      expect(out[0]!.captions).toHaveLength(2);
      for (const caption of out[0]!.captions) expect(caption.length).toBeGreaterThan(0);
    } finally {
      await captioner.close();
    }
  });

  it('loads an openai captioner without contacting the server: its model name and batch size', async () => {
    const options = captionerOptionsSchema.parse({ type: 'openai', baseURL: 'http://127.0.0.1:1/v1', model: 'vlm-7b' });
    const captioner = await loadCaptioner(options, { baseDir: dir, llmCache: new LlmCache(db), maxCostUsd: 1 });
    expect(captioner.model).toBe('vlm-7b');
    expect(captioner.batchSize).toBe(8);
    await captioner.close();
  });
});
