/** A real build with LLaVA and WebDataset exports in one recipe, resumed. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { runBuild } from '../../src/run/run-build.js';
import { parseRecipe } from '../../src/config/recipe.js';
import type { PipelineEvent } from '../../src/core/events.js';
import type { ExportStats } from '../../src/export/export-stats.js';
import { makeGoodSamples, sampleMembers, writeTar } from '../fixtures/make-webdataset.js';
import { llamaTokenizerDir, TOKENIZERS } from '../fixtures/tokenizers.js';
import { cleanup, tempDir } from './fixtures.js';

afterEach(cleanup);

async function build(dir: string, recipe: unknown): Promise<PipelineEvent[]> {
  const events: PipelineEvent[] = [];
  for await (const event of runBuild(parseRecipe(recipe, 'test', dir), { shard: { index: 0, count: 1 }, signal: new AbortController().signal })) {
    events.push(event);
  }
  return events;
}

describe(`build with conversation exports (${TOKENIZERS.llamaName})`, () => {
  it('writes a verified stage-1 LLaVA file next to the shards, and a re-run finds everything done', async () => {
    const dir = tempDir();
    const goods = await makeGoodSamples(5);
    await writeTar(join(dir, 'shard.tar'), goods.flatMap(sampleMembers));
    const recipe = {
      run: { db: 'run.db' },
      sources: [{ type: 'webdataset', paths: 'shard.tar' }],
      export: [
        { type: 'webdataset', out: 'wds' },
        { type: 'llava', out: 'llava', tokenizer: llamaTokenizerDir() },
      ],
    };
    const first = await build(dir, recipe);
    const end = first.find((e) => e.type === 'run-end');
    expect(end && end.type === 'run-end' && end.summary.exported).toEqual({ llava: 5, wds: 5 });
    expect(first.some((e) => e.type === 'log' && /export llava: 5 records from 5 samples, 5 verified/.test(e.message))).toBe(true);
    const stage1 = JSON.parse(readFileSync(join(dir, 'llava', 'llava-stage1.json'), 'utf8')) as { id: string; conversations: { value: string }[] }[];
    expect(stage1.map((r) => r.conversations[1]!.value)).toEqual(goods.map((g) => `a photo of thing number ${Number(g.key)}`));
    const stats = JSON.parse(readFileSync(join(dir, 'llava', 'stats.json'), 'utf8')) as ExportStats;
    expect(stats).toMatchObject({ records: 5, verified: 5, failed: 0, template: 'vicuna_v1', stage1Template: 'plain' });

    const second = await build(dir, recipe);
    const start = second.find((e) => e.type === 'run-start');
    expect(start && start.type === 'run-start' && start.resumed).toBe(5);
    expect(JSON.parse(readFileSync(join(dir, 'llava', 'llava-stage1.json'), 'utf8'))).toEqual(stage1);
  });
});
