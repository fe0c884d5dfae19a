/**
 * A sample an earlier run recorded but did not export (killed before its export batch, or an export added
 * to the recipe afterwards) is resumed with its recorded captions and scores: no model runs for it again,
 * unless the CapFilt settings changed.
 */
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateShapes } from '../../datasets/shapes/index.js';
import { runBuild } from '../../src/run/run-build.js';
import { parseRecipe } from '../../src/config/recipe.js';
import type { PipelineEvent, StageCounts } from '../../src/core/events.js';
import { openDatabase } from '../../src/store/database.js';

const MODELS = resolve(import.meta.dirname, '../../models');
let dir: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'vlc-reuse-'));
  await generateShapes({ out: join(dir, 'data'), count: 24, noise: 0.4, seed: 11 });
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function recipe(samples: number, exports: unknown[]): Record<string, unknown> {
  return {
    run: { db: 'run.db' },
    sources: [{ type: 'webdataset', paths: 'data/webdataset/shapes-000000.tar' }],
    filter: { itc: { model: join(MODELS, 'shapes-clip'), threshold: 0.3 }, itm: { model: join(MODELS, 'shapes-itm') }, batchSize: 8 },
    captioner: { type: 'onnx', model: join(MODELS, 'shapes-captioner'), samples, minLength: 3, maxLength: 24, batchSize: 8 },
    export: exports,
  };
}

async function build(input: Record<string, unknown>): Promise<StageCounts[]> {
  const events: PipelineEvent[] = [];
  for await (const event of runBuild(parseRecipe(input, 'test', dir), { shard: { index: 0, count: 1 }, signal: new AbortController().signal })) events.push(event);
  const end = events.find((e) => e.type === 'run-end');
  if (end?.type !== 'run-end') throw new Error('no run-end');
  return end.stages;
}

function captions(): unknown[] {
  return captionsOf('run.db');
}

function captionsOf(file: string): unknown[] {
  const db = openDatabase(join(dir, file), { readonly: true });
  try {
    return db.prepare('SELECT sample_key, idx, origin, text, itc, itm, kept FROM captions ORDER BY sample_key, idx').all();
  } finally {
    db.close();
  }
}

const worked = (stages: StageCounts[], name: string) => stages.find((s) => s.stage === name)?.batchLatencyMs !== undefined;

describe('resuming recorded CapFilt work', () => {
  it('an export added later gets every sample without running a model again; other settings run them', async () => {
    const first = await build(recipe(2, []));
    expect(worked(first, 'filter') && worked(first, 'captioner') && worked(first, 'filter:synthetic')).toBe(true);
    const before = captions();

    const again = await build(recipe(2, [{ type: 'webdataset', out: 'wds' }]));
    expect(['filter', 'captioner', 'filter:synthetic'].map((s) => worked(again, s))).toEqual([false, false, false]);
    expect(again.find((s) => s.stage === 'export:wds')!.in).toBe(24);
    expect(captions()).toEqual(before);

    // Three captions per image instead of two: recorded work no longer applies, so the models run.
    const changed = await build(recipe(3, [{ type: 'webdataset', name: 'wds3', out: 'wds3' }]));
    expect(worked(changed, 'captioner')).toBe(true);
  });

  it('new images under the same keys (a re-downloaded shard) are captioned and scored afresh', async () => {
    const other = mkdtempSync(join(tmpdir(), 'vlc-reuse-other-'));
    try {
      await build({ ...recipe(2, []), run: { db: 'swap.db' } });
      const before = captionsOf('swap.db');
      // The same file name and keys, other scenes.
      await generateShapes({ out: other, count: 24, noise: 0.4, seed: 12 });
      copyFileSync(join(other, 'webdataset', 'shapes-000000.tar'), join(dir, 'data', 'webdataset', 'shapes-000000.tar'));
      const again = await build({ ...recipe(2, [{ type: 'webdataset', name: 'swapped', out: 'swapped' }]), run: { db: 'swap.db' } });
      expect(worked(again, 'captioner')).toBe(true);
      expect(captionsOf('swap.db')).not.toEqual(before);
    } finally {
      rmSync(other, { recursive: true, force: true });
    }
  });
});
