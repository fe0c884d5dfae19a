/**
 * A build opens each ONNX model's sessions with the recipe's runtime settings (a spy on the backends
 * boundary, `OnnxSession.open`), `auto` resolved from the injected core count; the resolution is stored
 * with the run; and runtime settings do not count as other CapFilt settings (recorded work is reused).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve, sep } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { generateShapes } from '../../datasets/shapes/index.js';
import { OnnxSession, type OnnxSessionOptions } from '../../src/backends/onnx-session.js';
import { parseRecipe } from '../../src/config/recipe.js';
import type { PipelineEvent, StageCounts } from '../../src/core/events.js';
import { runBuild } from '../../src/run/run-build.js';
import { openDatabase } from '../../src/store/database.js';

const MODELS = resolve(import.meta.dirname, '../../models');
let dir: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'vlc-runtime-build-'));
  await generateShapes({ out: join(dir, 'data'), count: 8, noise: 0.4, seed: 3 });
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));
afterEach(() => vi.restoreAllMocks());

function recipe(db: string, runtime: Record<string, unknown>, itcRuntime?: Record<string, unknown>): Record<string, unknown> {
  return {
    run: { db },
    runtime,
    sources: [{ type: 'webdataset', paths: 'data/webdataset/shapes-000000.tar' }],
    filter: {
      itc: { model: join(MODELS, 'shapes-clip'), threshold: 0.3, ...(itcRuntime ? { runtime: itcRuntime } : {}) },
      itm: { model: join(MODELS, 'shapes-itm') },
      batchSize: 4,
    },
    captioner: { type: 'onnx', model: join(MODELS, 'shapes-captioner'), samples: 1, minLength: 3, maxLength: 12, batchSize: 4, runtime: { threads: 1 } },
  };
}

async function build(input: Record<string, unknown>, cores: number): Promise<StageCounts[]> {
  const events: PipelineEvent[] = [];
  const options = { shard: { index: 0, count: 1 }, signal: new AbortController().signal, cores };
  for await (const event of runBuild(parseRecipe(input, 'test', dir), options)) events.push(event);
  const end = events.find((e) => e.type === 'run-end');
  if (end?.type !== 'run-end') throw new Error('no run-end');
  return end.stages;
}

/** The options each model folder's sessions were opened with, by folder name. */
function opened(spy: { mock: { calls: unknown[][] } }): Record<string, OnnxSessionOptions[]> {
  const out: Record<string, OnnxSessionOptions[]> = {};
  for (const [file, options] of spy.mock.calls as [string, OnnxSessionOptions][]) {
    const folder = file.split(sep).at(-3)!;
    (out[folder] ??= []).push(options);
  }
  return out;
}

describe('runtime settings in a build', () => {
  it('open every session of each model with its resolved device, threads and workers', async () => {
    const spy = vi.spyOn(OnnxSession, 'open');
    // 8 cores: 1 decodes; ITC (2 x 1) and the captioner (1 x 1) are set and take 3; ITM gets the other 4.
    await build(recipe('a.db', { workers: 1 }, { threads: 2 }), 8);
    const calls = opened(spy);
    expect(calls['shapes-clip']!.length).toBe(2); // vision and text graphs
    for (const options of calls['shapes-clip']!) expect(options).toEqual({ executionProvider: 'cpu', intraOpThreads: 2, workers: 1 });
    expect(calls['shapes-itm']!.length).toBeGreaterThan(0);
    for (const options of calls['shapes-itm']!) expect(options).toEqual({ executionProvider: 'cpu', intraOpThreads: 4, workers: 1 });
    expect(calls['shapes-captioner']!.length).toBeGreaterThan(0);
    for (const options of calls['shapes-captioner']!) expect(options).toEqual({ executionProvider: 'cpu', intraOpThreads: 1, workers: 1 });

    const db = openDatabase(join(dir, 'a.db'), { readonly: true });
    try {
      const row = db.prepare('SELECT recipe_json FROM runs ORDER BY id DESC LIMIT 1').get() as { recipe_json: string };
      expect(JSON.parse(row.recipe_json).resolvedRuntime).toEqual({
        cores: 8,
        decodeCores: 1,
        decodeConcurrency: 2,
        models: {
          'filter.itc': { device: 'cpu', threads: 2, workers: 1, fromAuto: [] },
          'filter.itm': { device: 'cpu', threads: 4, workers: 1, fromAuto: ['threads'] },
          captioner: { device: 'cpu', threads: 1, workers: 1, fromAuto: [] },
        },
      });
    } finally {
      db.close();
    }
  });

  it('other threads or workers reuse the recorded captions and scores: they decide nothing', async () => {
    const first = await build(recipe('b.db', {}), 2);
    expect(first.find((s) => s.stage === 'captioner')?.batchLatencyMs).toBeDefined();
    const again = await build({ ...recipe('b.db', { threads: 2 }, { workers: 2 }), export: [{ type: 'webdataset', out: 'wds' }] }, 4);
    expect(['filter', 'captioner', 'filter:synthetic'].map((s) => again.find((x) => x.stage === s)?.batchLatencyMs)).toEqual([undefined, undefined, undefined]);
    expect(again.find((s) => s.stage === 'export:wds')!.in).toBe(8);
  });
});
