/**
 * The recipe's `runtime` (top level and per model): validation names field, value and what was expected;
 * `auto` resolves per model of the recipe; `vlcurate build --print-recipe` (a real child process) shows
 * what it resolved to, and its output reads back as the same recipe.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { availableParallelism, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadRecipe, parseRecipe } from '../../src/config/recipe.js';
import { resolveRecipeRuntime } from '../../src/config/recipe-runtime.js';
import { ConfigError } from '../../src/core/errors.js';

const ROOT = resolve(import.meta.dirname, '../..');
const dir = mkdtempSync(join(tmpdir(), 'vlc-recipe-runtime-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const SOURCES = [{ type: 'webdataset', paths: 'x.tar' }];

function errorOf(input: unknown): string {
  try {
    parseRecipe(input, 'recipe.yaml', dir);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error('expected the recipe to be rejected');
}

describe('runtime settings in the recipe', () => {
  it('defaults to cpu with auto threads and workers', () => {
    const { recipe } = parseRecipe({ sources: SOURCES }, 'r', dir);
    expect(recipe.runtime).toEqual({ device: 'cpu', threads: 'auto', workers: 'auto' });
  });

  it('every bad value names its field, the value and what was expected, all at once', () => {
    const message = errorOf({
      sources: SOURCES,
      runtime: { device: 'gpu', threads: 0, workers: 'many' },
      filter: { itc: { model: 'm', runtime: { device: 'cuda:x', threads: 1.5, extra: 1 } }, itm: { model: 'm', runtime: { workers: -2 } } },
      captioner: { type: 'onnx', model: 'c', runtime: { device: 'cuda:-1' } },
    });
    const device = 'expected "cpu", "cuda" or "cuda:N" (N a CUDA device number from 0, e.g. "cuda:1")';
    const count = 'expected "auto" or an integer from 1 and up';
    expect(message).toContain(`runtime.device: ${device}, got "gpu"`);
    expect(message).toContain(`runtime.threads: ${count}, got 0`);
    expect(message).toContain(`runtime.workers: ${count}, got "many"`);
    expect(message).toContain(`filter.itc.runtime.device: ${device}, got "cuda:x"`);
    expect(message).toContain(`filter.itc.runtime.threads: ${count}, got 1.5`);
    expect(message).toContain('filter.itc.runtime: unknown field "extra"');
    expect(message).toContain(`filter.itm.runtime.workers: ${count}, got -2`);
    expect(message).toContain(`captioner.runtime.device: ${device}, got "cuda:-1"`);
  });

  it('an OpenAI captioner has no ONNX runtime: the field is refused and it takes no cores', () => {
    expect(errorOf({ sources: SOURCES, captioner: { type: 'openai', baseURL: 'http://127.0.0.1:1/v1', model: 'gpt', runtime: { threads: 2 } } })).toContain(
      'captioner: unknown field "runtime"',
    );
    const { recipe } = parseRecipe({ sources: SOURCES, filter: { itc: { model: 'm' } }, captioner: { type: 'openai', baseURL: 'http://127.0.0.1:1/v1', model: 'gpt' } }, 'r', dir);
    expect(Object.keys(resolveRecipeRuntime(recipe, 4).models)).toEqual(['filter.itc']);
  });

  it('resolves each ONNX model of the recipe: its own settings over the shared ones, auto from the cores', () => {
    const { recipe } = parseRecipe(
      {
        sources: SOURCES,
        runtime: { workers: 1 },
        filter: { itc: { model: 'a', runtime: { threads: 2 } }, itm: { model: 'b' } },
        captioner: { type: 'onnx', model: 'c', runtime: { device: 'cuda:1' } },
      },
      'r',
      dir,
    );
    expect(resolveRecipeRuntime(recipe, 16)).toEqual({
      cores: 16,
      decodeCores: 2,
      decodeConcurrency: 2,
      models: {
        'filter.itc': { device: 'cpu', threads: 2, workers: 1, fromAuto: [] },
        'filter.itm': { device: 'cpu', threads: 12, workers: 1, fromAuto: ['threads'] },
        captioner: { device: 'cuda:1', threads: 1, workers: 1, fromAuto: ['threads'] }, // workers: 1 from the shared runtime
      },
    });
  });

  it('where a model runs does not change the recipe settings that decide captions', () => {
    const base = { sources: SOURCES, filter: { itc: { model: 'a' } } };
    const a = parseRecipe(base, 'r', dir).recipe;
    const b = parseRecipe({ ...base, runtime: { threads: 4 }, filter: { itc: { model: 'a', runtime: { workers: 2 } } } }, 'r', dir).recipe;
    expect(a.filter?.itc?.threshold).toEqual(b.filter?.itc?.threshold);
  });

  it('--print-recipe shows what auto resolved to on this machine, and its output reads back as the recipe', () => {
    const file = join(dir, 'recipe.yaml');
    writeFileSync(
      file,
      [
        'sources: [{ type: webdataset, paths: x.tar }]',
        'runtime: { threads: auto }',
        'filter:',
        '  itc: { model: a, runtime: { workers: 2 } }',
        '  itm: { model: b }',
        'captioner: { type: onnx, model: c, runtime: { device: "cuda:1", threads: 2 } }',
      ].join('\n'),
    );
    const run = spawnSync(process.execPath, [join(ROOT, 'dist/src/cli/main.js'), 'build', file, '--print-recipe'], { encoding: 'utf8' });
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
    const printed = JSON.parse(run.stdout) as Record<string, any>;
    expect(printed.runtime).toEqual({ device: 'cpu', threads: 'auto', workers: 'auto' });
    expect(printed.filter.itc.runtime).toEqual({ workers: 2 });
    const cores = availableParallelism();
    const share = Math.max(1, cores - Math.floor(cores / 8));
    expect(printed.resolvedRuntime.cores).toBe(cores);
    expect(printed.resolvedRuntime.decodeCores).toBe(Math.floor(cores / 8));
    expect(printed.resolvedRuntime.decodeConcurrency).toBe(Math.max(2, Math.floor(cores / 8)));
    expect(printed.resolvedRuntime.models['filter.itc']).toEqual({
      device: 'cpu',
      threads: Math.max(1, Math.floor(Math.ceil(share / 2) / 2)),
      workers: 2,
      fromAuto: ['threads'],
    });
    expect(printed.resolvedRuntime.models['filter.itm'].fromAuto).toEqual(['threads', 'workers']);
    expect(printed.resolvedRuntime.models.captioner).toEqual({ device: 'cuda:1', threads: 2, workers: 1, fromAuto: ['workers'] });

    // The printed recipe is a recipe: `resolvedRuntime` is ignored when read (auto resolves again where it runs).
    const again = join(dir, 'printed.json');
    writeFileSync(again, run.stdout);
    const reloaded = loadRecipe(again);
    expect(reloaded.recipe).not.toHaveProperty('resolvedRuntime');
    expect(reloaded.recipe).toEqual(loadRecipe(file).recipe);
  });

  const require = createRequire(import.meta.url);
  const binDir = join(require.resolve('onnxruntime-node'), '..', '..', 'bin', 'napi-v6', process.platform, process.arch);
  it.skipIf(existsSync(join(binDir, 'libonnxruntime_providers_cuda.so')))(
    'a build asked for CUDA without its files stops before its run (exit 2), saying what to run',
    () => {
      const file = join(dir, 'cuda.yaml');
      writeFileSync(
        file,
        [
          'run: { db: cuda-run/run.db }',
          'runtime: { device: "cuda:1" }',
          `sources: [{ type: folder, path: ${JSON.stringify(dir)} }]`,
          `filter: { itc: { model: ${JSON.stringify(join(ROOT, 'models/shapes-clip'))} } }`,
        ].join('\n'),
      );
      const run = spawnSync(process.execPath, [join(ROOT, 'dist/src/cli/main.js'), 'build', file, '--progress', 'plain'], { encoding: 'utf8' });
      expect(run.status).toBe(2);
      expect(run.stderr).toContain(`filter.itc.model: device cuda:1 for ${join(ROOT, 'models/shapes-clip/onnx')}`);
      expect(run.stderr).toContain("onnxruntime-node's CUDA provider is not installed");
      expect(run.stderr).toContain('`ONNXRUNTIME_NODE_INSTALL=1 npm rebuild onnxruntime-node`');
      expect(existsSync(join(dir, 'cuda-run', 'run.db'))).toBe(false);
    },
  );
});
