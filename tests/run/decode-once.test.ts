/**
 * Issue 15, "decode once": in a CapFilt build (ITC + ITM filter, ONNX captioner, the filter again on the
 * new captions) every image is decoded once, by the decode stage, whose pixels serve the check and every
 * model's preprocessing; before, each model decoded the bytes again (six decodes per image here).
 * A decode is counted where it happens: sharp asked for pixels (`toBuffer`) of encoded bytes (raw-pixel
 * inputs, the models' resize steps, and header reads, `metadata()`, are not decodes). The scores and
 * captions must be those of a build that decodes in each model (the bytes path), so nothing changed but
 * the count.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';

const decodes = vi.hoisted(() => new Map<string, number>());

vi.mock('sharp', async (importOriginal) => {
  const real = ((await importOriginal()) as { default: (...args: unknown[]) => { toBuffer: (...a: unknown[]) => unknown } }).default;
  const counting = (input?: unknown, options?: { raw?: unknown; create?: unknown }) => {
    const instance = real(input, options);
    if (input instanceof Uint8Array && options?.raw === undefined && options?.create === undefined) {
      const key = createHash('sha256').update(input).digest('hex');
      const toBuffer = instance.toBuffer.bind(instance);
      instance.toBuffer = (...args: unknown[]) => {
        decodes.set(key, (decodes.get(key) ?? 0) + 1);
        return toBuffer(...args);
      };
    }
    return instance;
  };
  return { default: Object.assign(counting, real) };
});

import { generateShapes } from '../../datasets/shapes/index.js';
import { parseRecipe } from '../../src/config/recipe.js';
import type { PipelineEvent } from '../../src/core/events.js';
import { onnxCaptionerType } from '../../src/captioner/onnx-captioner.js';
import { CaptionScorer } from '../../src/filter/caption-scorer.js';
import { runBuild } from '../../src/run/run-build.js';
import { openDatabase } from '../../src/store/database.js';

const MODELS = resolve(import.meta.dirname, '../../models');
let dir: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'vlc-decode-once-'));
  await generateShapes({ out: join(dir, 'data'), count: 8, noise: 0.4, seed: 3 });
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function recipe(db: string, filter: boolean, decode: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    run: { db },
    decode,
    sources: [{ type: 'webdataset', paths: 'data/webdataset/shapes-000000.tar' }],
    ...(filter
      ? {
          filter: { itc: { model: join(MODELS, 'shapes-clip'), threshold: 0.3 }, itm: { model: join(MODELS, 'shapes-itm') }, batchSize: 4 },
          captioner: { type: 'onnx', model: join(MODELS, 'shapes-captioner'), samples: 1, minLength: 3, maxLength: 12, batchSize: 4 },
        }
      : {}),
  };
}

async function build(input: Record<string, unknown>): Promise<void> {
  const events: PipelineEvent[] = [];
  for await (const event of runBuild(parseRecipe(input, 'test', dir), { shard: { index: 0, count: 1 }, signal: new AbortController().signal, cores: 2 })) {
    events.push(event);
  }
  const end = events.find((e) => e.type === 'run-end');
  if (end?.type !== 'run-end') throw new Error('no run-end');
  expect(end.summary.samples.total).toBe(8);
  expect(end.summary.samples.failed).toBe(0);
}

/** Every caption of the run, with its scores, by sample. */
function captions(db: string): unknown[] {
  const handle = openDatabase(join(dir, db), { readonly: true });
  try {
    return handle.prepare('SELECT sample_key, text, origin, itc, itm FROM captions ORDER BY sample_key, text, origin').all();
  } finally {
    handle.close();
  }
}

describe('decode once', () => {
  it('a CapFilt build decodes each image once, for the check and every model', async () => {
    decodes.clear();
    await build(recipe('capfilt.db', true));
    expect(decodes.size).toBe(8);
    expect([...decodes.values()]).toEqual(Array(8).fill(1));
  });

  it('the scores and captions are those of the models decoding the bytes themselves', async () => {
    const rows = captions('capfilt.db');
    expect(rows.length).toBeGreaterThanOrEqual(16); // 8 web + 8 synthetic captions at least
    // The same build with the models on the bytes path: no preparer answers, so each model decodes again.
    const preparers = vi.spyOn(CaptionScorer.prototype, 'preparers', 'get').mockReturnValue([]);
    const load = onnxCaptionerType.load.bind(onnxCaptionerType);
    const loadSpy = vi.spyOn(onnxCaptionerType, 'load').mockImplementation(async (options, ctx) => {
      const { preparer: _none, ...loaded } = await load(options, ctx);
      return loaded;
    });
    decodes.clear();
    try {
      await build(recipe('bytes.db', true));
    } finally {
      preparers.mockRestore();
      loadSpy.mockRestore();
    }
    // The bytes path decodes in every model: the count this test guards against.
    expect(decodes.size).toBe(8);
    expect([...decodes.values()].filter((n) => n > 1)).toHaveLength(8);
    expect(captions('bytes.db')).toEqual(rows);
  });

  it('an ingest without models decodes no whole JPEG (decode.validate: structure, the default), each once with validate: decode', async () => {
    decodes.clear();
    await build(recipe('ingest.db', false));
    expect(decodes.size).toBe(0);
    await build(recipe('ingest-decode.db', false, { validate: 'decode' }));
    expect(decodes.size).toBe(8);
    expect([...decodes.values()]).toEqual(Array(8).fill(1));
  });
});
