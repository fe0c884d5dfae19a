import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Command } from 'commander';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { stringify } from 'yaml';
import { registerEstimate } from '../../src/cli/commands/estimate.js';
import { estimateSynthesis, synthSection } from '../../src/run/estimate-synthesis.js';
import { parseRecipe } from '../../src/config/recipe.js';
import type { DecodedPair, Pair } from '../../src/core/sample.js';
import { WHOLE } from '../../src/core/shard.js';
import { createSource } from '../../src/sources/registry.js';
import { runDatabases } from '../../src/store/synth-progress.js';
import { openDatabase } from '../../src/store/database.js';
import { createSynthStage, synthOptionsSchema } from '../../src/synth/synth-stage.js';
import { FakeLlmServer, promptTokensOf } from '../llm-server/server.js';
import { createRun, drain, synthDeps } from '../synth/helpers.js';

const SAMPLE_DATA = resolve(import.meta.dirname, '../../datasets/shapes-sample');
const cocoSource = { type: 'coco', captions: 'coco/captions.json', instances: 'coco/instances.json', images: 'coco/images' };

const cleanups: (() => void | Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  vi.restoreAllMocks();
});

async function readPairs(): Promise<Pair[]> {
  const loaded = parseRecipe({ sources: [cocoSource] }, 'test', SAMPLE_DATA);
  const pairs: Pair[] = [];
  for await (const pair of createSource(loaded.recipe.sources[0]!, 0).read({ signal: new AbortController().signal, shard: WHOLE, baseDir: SAMPLE_DATA })) pairs.push(pair);
  return pairs;
}

/** The local LLM server, the sample data as decoded pairs, and a run database holding them. */
async function liveRun(): Promise<{ s: FakeLlmServer; pairs: DecodedPair[]; r: ReturnType<typeof createRun> }> {
  const s = await FakeLlmServer.start();
  cleanups.push(() => s.close());
  const pairs: DecodedPair[] = (await readPairs()).map((p) => ({
    ...p,
    image: { width: 128, height: 128, format: 'jpeg', byteLength: 1, sha256: '', orientation: 1 },
  }));
  const r = createRun(pairs);
  cleanups.push(r.cleanup);
  return { s, pairs, r };
}

describe('estimate', () => {
  it('counts requests and tokens close to what a real run sends, and prices them', async () => {
    const loaded = parseRecipe({ sources: [cocoSource] }, 'test', SAMPLE_DATA);
    const synth = synthOptionsSchema.parse({
      tasks: ['conversation', 'detail', 'stage1'],
      samplesPerTask: 2,
      llm: { baseURL: 'http://127.0.0.1:9/v1', model: 'm', price: { inputPerMTok: 1, outputPerMTok: 2 }, maxTokens: 500 },
    });
    const estimate = await estimateSynthesis(loaded, synth, { sample: 100 });
    expect(estimate.samples).toBe(16);
    expect(estimate.sampled).toBe(16);
    expect(estimate.requests).toBe(16 * 2 * 2);
    expect(estimate.tasks.conversation!.requests).toBe(32);
    expect(estimate.templateTasks).toEqual(['stage1']);
    expect(estimate.costUsd).toBeCloseTo((estimate.promptTokens * 1 + estimate.completionTokens * 2) / 1e6, 6);
    expect(estimate.upperBoundCostUsd).toBeGreaterThan(estimate.costUsd);

    // The same samples through the synth stage against the local server: the prompt tokens it counts.
    const { s, pairs, r } = await liveRun();
    const live = synthOptionsSchema.parse({ ...synth, llm: { ...synth.llm, baseURL: s.baseURL, rpm: 100_000, tpm: 100_000_000 } });
    await drain(createSynthStage(live, { ...synthDeps(r.db), runId: r.runId }), pairs);
    expect(s.requests).toHaveLength(estimate.requests);
    const actual = s.requests.reduce((n, q) => n + promptTokensOf(q.body), 0);
    expect(Math.abs(estimate.promptTokens - actual) / actual).toBeLessThan(0.05);
  });

  it('reads the synth section from a loaded recipe, naming the recipe when it has none or an invalid one', () => {
    const without = parseRecipe({ sources: [cocoSource] }, 'test', SAMPLE_DATA);
    expect(() => synthSection(without, 'recipe "r.yaml"')).toThrow('recipe "r.yaml": the recipe has no `synth` section, so there is nothing to estimate');
    const withSynth = parseRecipe({ sources: [cocoSource], synth: { tasks: ['stage1'] } }, 'test', SAMPLE_DATA);
    expect(synthSection(withSynth, 'recipe "r.yaml"').tasks).toEqual(['stage1']);
  });

  it('template tasks alone need no endpoint and cost nothing; LLM tasks without one are a config error naming synth.llm', async () => {
    const loaded = parseRecipe({ sources: [cocoSource] }, 'test', SAMPLE_DATA);
    const estimate = await estimateSynthesis(loaded, synthOptionsSchema.parse({ tasks: ['stage1', 'grounding'] }), { sample: 3 });
    expect(estimate).toMatchObject({ model: null, samples: 16, sampled: 3, requests: 0, costUsd: 0, upperBoundCostUsd: 0, tasks: {} });
    expect(estimate.templateTasks).toEqual(['stage1', 'grounding']);
    await expect(estimateSynthesis(loaded, synthOptionsSchema.parse({ tasks: ['detail'] }), { sample: 3 })).rejects.toThrow(
      'synth.llm: the tasks "detail" need an LLM endpoint, got none',
    );
  });

  it('scales a partial sample to the whole count', async () => {
    const loaded = parseRecipe({ sources: [cocoSource] }, 'test', SAMPLE_DATA);
    const synth = synthOptionsSchema.parse({ tasks: ['reasoning'], llm: { baseURL: 'http://127.0.0.1:9/v1', model: 'm' } });
    const estimate = await estimateSynthesis(loaded, synth, { sample: 4 });
    expect(estimate.sampled).toBe(4);
    expect(estimate.samples).toBe(16);
    expect(estimate.requests).toBe(16);
    expect(estimate.costUsd).toBe(0);
  });

  it('counts what the run database already answered as paid, and prices only the rest', async () => {
    const { s, pairs, r } = await liveRun();
    const llm = { baseURL: s.baseURL, model: 'm', price: { inputPerMTok: 1, outputPerMTok: 2 }, rpm: 100_000, tpm: 100_000_000 };
    const synth = synthOptionsSchema.parse({ tasks: ['conversation', 'detail'], llm });
    // An earlier run answered both tasks for 6 of the 16 images.
    await drain(createSynthStage(synth, { ...synthDeps(r.db), runId: r.runId }), pairs.slice(0, 6));
    const paid = r.db.prepare('SELECT SUM(cost_usd) FROM llm_cache').pluck().get() as number;
    r.db.close();

    const loaded = parseRecipe({ run: { db: r.dbPath }, sources: [cocoSource] }, 'test', SAMPLE_DATA);
    const estimate = await estimateSynthesis(loaded, synth, { sample: 100 });
    expect(estimate.tasks.conversation!).toMatchObject({ requests: 16, answered: 6 });
    expect(estimate.tasks.detail!).toMatchObject({ requests: 16, answered: 6 });
    expect(estimate.answered).toBe(12);
    expect(estimate.spentUsd).toBeCloseTo(paid, 6);
    expect(estimate.remainingCostUsd).toBeCloseTo(estimate.costUsd * (10 / 16), 5);
    expect(estimate.remainingUpperBoundCostUsd).toBeCloseTo(estimate.upperBoundCostUsd * (10 / 16), 5);

    // Failed or dropped samples never reach synthesis: nothing is left to pay for them.
    const edit = openDatabase(r.dbPath);
    edit.prepare(`UPDATE samples SET status = 'dropped', drop_reason = 'duplicate_image' WHERE key IN (?, ?)`).run(pairs[10]!.key, pairs[11]!.key);
    edit.close();
    const fewer = await estimateSynthesis(loaded, synth, { sample: 100 });
    expect(fewer.remainingCostUsd).toBeCloseTo(fewer.costUsd * (8 / 16), 5);

    // The databases of `--shard I/N` processes beside it count too.
    copyFileSync(r.dbPath, join(r.dir, 'run-s1of2.db'));
    expect(runDatabases(r.dbPath)).toEqual([join(r.dir, 'run-s1of2.db'), r.dbPath]);
    const both = await estimateSynthesis(loaded, synth, { sample: 100 });
    expect(both.answered).toBe(24);
    expect(both.remainingCostUsd).toBe(0);
    expect(both.spentUsd).toBeCloseTo(2 * paid, 6);
  });

  it('`vlcurate estimate RECIPE --json` prints the estimate', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vlc-estimate-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const recipe = join(dir, 'recipe.yaml');
    writeFileSync(
      recipe,
      stringify({
        sources: [{ ...cocoSource, captions: join(SAMPLE_DATA, cocoSource.captions), instances: join(SAMPLE_DATA, cocoSource.instances), images: join(SAMPLE_DATA, cocoSource.images) }],
        synth: { tasks: ['detail'], llm: { baseURL: 'http://127.0.0.1:9/v1', model: 'm', price: { inputPerMTok: 0.15, outputPerMTok: 0.6 } } },
      }),
    );
    const written: string[] = [];
    vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
      written.push(String(chunk));
      return true;
    });
    const program = new Command('vlcurate').exitOverride();
    registerEstimate(program);
    await program.parseAsync(['node', 'vlcurate', 'estimate', recipe, '--json']);
    const printed = JSON.parse(written.join(''));
    expect(printed).toMatchObject({ samples: 16, requests: 16, model: 'm' });
    expect(printed.costUsd).toBeGreaterThan(0);
  });
});
