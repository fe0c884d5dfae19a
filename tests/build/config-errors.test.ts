/**
 * Configuration problems found while loading (a model folder, a tokenizer, a template, a manifest) stop
 * the build before any sample is read, name the recipe entry, and leave no run on record.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { runBuild } from '../../src/build/run-build.js';
import { parseRecipe } from '../../src/config/recipe.js';
import { ConfigError } from '../../src/core/errors.js';
import type { PipelineEvent } from '../../src/core/events.js';
import { openDatabase } from '../../src/store/database.js';
import { makeGoodSamples, sampleMembers, writeTar } from '../fixtures/make-webdataset.js';
import { cleanup, tempDir } from '../export/fixtures.js';

afterEach(cleanup);

async function failure(dir: string, recipe: Record<string, unknown>): Promise<{ error: unknown; events: PipelineEvent[] }> {
  const events: PipelineEvent[] = [];
  try {
    for await (const event of runBuild(parseRecipe({ run: { db: 'run.db' }, ...recipe }, 'test', dir), { shard: { index: 0, count: 1 }, signal: new AbortController().signal })) {
      events.push(event);
    }
  } catch (error) {
    return { error, events };
  }
  throw new Error('expected the build to stop');
}

function runRows(dir: string): number {
  if (!existsSync(join(dir, 'run.db'))) return 0;
  const db = openDatabase(join(dir, 'run.db'), { readonly: true });
  try {
    return db.prepare('SELECT COUNT(*) FROM runs').pluck().get() as number;
  } finally {
    db.close();
  }
}

describe('configuration errors met while loading', () => {
  it('name the recipe entry, come before any event, and leave no run row', async () => {
    const dir = tempDir();
    await writeTar(join(dir, 'a.tar'), (await makeGoodSamples(2)).flatMap(sampleMembers));
    const source = { type: 'webdataset', paths: 'a.tar' };
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ sources: [source], export: [{ type: 'llava', out: 'x', tokenizer: 'no-such-tokenizer' }] }, /^export\[0\]: tokenizer: ".*no-such-tokenizer" does not exist/],
      [{ sources: [source], filter: { itc: { model: 'no-such-model', threshold: 0.3 } } }, /^filter\.itc\.model: Missing model config: .*no-such-model\/config\.json does not exist/],
      [{ sources: [source], captioner: { type: 'onnx', model: 'nope' } }, /^captioner\.model: /],
      [{ sources: [source, { type: 'parquet', path: 'missing.parquet', image: 'url' }] }, /^sources\[1\]: parquet path: file ".*missing\.parquet" does not exist/],
      [
        { sources: [source], synth: { tasks: ['detail'], llm: { baseURL: 'http://127.0.0.1:9/v1', model: 'm', apiKeyEnv: 'VLCURATE_TEST_UNSET_KEY' } } },
        /^synth\.llm\.apiKeyEnv: the environment variable VLCURATE_TEST_UNSET_KEY is not set/,
      ],
    ];
    for (const [recipe, message] of cases) {
      const { error, events } = await failure(dir, recipe);
      expect(error).toBeInstanceOf(ConfigError);
      expect((error as Error).message).toMatch(message);
      expect(events).toEqual([]);
    }
    expect(runRows(dir)).toBe(0);
  });

  it('a source that finds its file missing only when read still names its entry', async () => {
    const dir = tempDir();
    await writeTar(join(dir, 'a.tar'), (await makeGoodSamples(2)).flatMap(sampleMembers));
    const { error } = await failure(dir, { sources: [{ type: 'webdataset', paths: 'a.tar' }, { type: 'jsonl', path: 'gone.jsonl', image: 'url' }] });
    expect((error as Error).message).toMatch(/^sources\[1\]: jsonl path: file ".*gone\.jsonl" does not exist/);
  });
});
