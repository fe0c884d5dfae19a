/**
 * Configuration problems found while loading (a model folder, a tokenizer, a template, a manifest) stop
 * the build before any sample is read, name the recipe entry, and leave no run on record; through the CLI
 * they exit 2 and leave nothing on disk that was not there before.
 */
import { existsSync, readdirSync, writeFileSync, type Dirent } from 'node:fs';
import { join, relative } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { runBuild } from '../../src/run/run-build.js';
import { parseRecipe } from '../../src/config/recipe.js';
import { ConfigError } from '../../src/core/errors.js';
import type { PipelineEvent } from '../../src/core/events.js';
import { openDatabase } from '../../src/store/database.js';
import { makeGoodSamples, sampleMembers, writeTar } from '../fixtures/make-webdataset.js';
import { cleanup, tempDir } from '../export/fixtures.js';
import { runCli } from '../e2e/helpers.js';

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

  it('a source whose file is missing names its entry', async () => {
    const dir = tempDir();
    await writeTar(join(dir, 'a.tar'), (await makeGoodSamples(2)).flatMap(sampleMembers));
    const { error } = await failure(dir, { sources: [{ type: 'webdataset', paths: 'a.tar' }, { type: 'jsonl', path: 'gone.jsonl', image: 'url' }] });
    expect((error as Error).message).toMatch(/^sources\[1\]: jsonl path: file ".*gone\.jsonl" does not exist/);
  });
});

/** Every path under `dir`, relative, sorted (folders end with `/`). */
function tree(dir: string): string[] {
  return (readdirSync(dir, { recursive: true, withFileTypes: true }) as Dirent[])
    .map((e) => `${relative(dir, join(e.parentPath, e.name))}${e.isDirectory() ? '/' : ''}`)
    .sort();
}

describe('a build stopped by a configuration error, through the CLI', () => {
  it('exits 2 and leaves nothing behind: no run database, no -wal/-shm, no folders it would have made', async () => {
    const dir = tempDir();
    await writeTar(join(dir, 'a.tar'), (await makeGoodSamples(2)).flatMap(sampleMembers));
    writeFileSync(join(dir, 'rows.csv'), 'url,caption\nhttp://127.0.0.1:9/x.jpg,a cat\n');
    writeFileSync(join(dir, 'notllava.json'), '{"data": []}\n');
    writeFileSync(join(dir, 'coco.json'), JSON.stringify({ images: [{ id: 1, file_name: 'a.jpg' }], annotations: [] }));
    const before = tree(dir);
    const good = '{ type: webdataset, paths: a.tar }';
    const cases: [string, string[], RegExp][] = [
      ['model', [`sources: [${good}]`, 'filter: { itc: { model: no-such-model, threshold: 0.3 } }'], /^vlcurate: filter\.itc\.model: /m],
      ['tokenizer', [`sources: [${good}]`, 'export: [{ type: llava, out: out/llava, tokenizer: no-such-tokenizer }]'], /^vlcurate: export\[0\]: tokenizer: /m],
      // Found by reading the inputs' beginnings before the run starts, not after the first source was built.
      ['missing file', [`sources: [${good}, { type: jsonl, path: gone.jsonl, image: url }]`, 'export: [{ type: webdataset, out: out/wds }]'], /^vlcurate: sources\[1\]: jsonl path: file ".*gone\.jsonl" does not exist/m],
      ['missing column', [`sources: [${good}, { type: csv, path: rows.csv, image: url, caption: text }]`, 'export: [{ type: webdataset, out: out/wds }]'], /^vlcurate: sources\[1\]: csv caption: column "text" is not among the columns/m],
      ['not llava', [`sources: [${good}, { type: llava, path: notllava.json }]`, 'export: [{ type: webdataset, out: out/wds }]'], /^vlcurate: sources\[1\]: llava path: .* holds one JSON object/m],
      ['coco file', [`sources: [${good}, { type: coco, captions: notllava.json, images: no-images }]`], /^vlcurate: sources\[1\]: coco captions file .* is not in COCO format/m],
      ['coco images', [`sources: [${good}, { type: coco, captions: coco.json, images: no-images }]`], /^vlcurate: sources\[1\]: coco images: expected a folder of images/m],
    ];
    for (const [name, lines, message] of cases) {
      writeFileSync(join(dir, 'recipe.yaml'), ['run: { db: out/nested/run.db }', ...lines, ''].join('\n'));
      const result = await runCli(['build', 'recipe.yaml', '--progress', 'plain'], { cwd: dir });
      expect(result.code, `${name}: ${result.stderr}`).toBe(2);
      expect(result.stderr, name).toMatch(message);
      expect(tree(dir).filter((p) => p !== 'recipe.yaml'), name).toEqual(before);
    }
  });

  it('a run database that was there before stays, with no new run on record', async () => {
    const dir = tempDir();
    await writeTar(join(dir, 'a.tar'), (await makeGoodSamples(2)).flatMap(sampleMembers));
    writeFileSync(join(dir, 'recipe.yaml'), ['run: { db: run.db }', 'sources: [{ type: webdataset, paths: a.tar }]', ''].join('\n'));
    expect((await runCli(['build', 'recipe.yaml', '--progress', 'plain'], { cwd: dir })).code).toBe(0);
    writeFileSync(join(dir, 'recipe.yaml'), ['run: { db: run.db }', 'sources: [{ type: webdataset, paths: a.tar }, { type: jsonl, path: gone.jsonl, image: url }]', ''].join('\n'));
    const result = await runCli(['build', 'recipe.yaml', '--progress', 'plain'], { cwd: dir });
    expect(result.code).toBe(2);
    expect(existsSync(join(dir, 'run.db'))).toBe(true);
    expect(runRows(dir)).toBe(1);
  });
});
