import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { ConfigError } from '../../src/core/errors.js';
import { registerDatasets } from '../../src/cli/commands/datasets.js';
import { planDataset, resolveShapesOptions, SPLIT_SEEDS, type ShapesSummary } from '../../datasets/shapes/index.js';

let root: string;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'vlcurate-shapes-cli-'));
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

afterEach(() => {
  vi.restoreAllMocks();
});

/** Run `datasets shapes ...` and return what it printed. */
async function run(args: string[]): Promise<string> {
  const program = new Command().exitOverride();
  registerDatasets(program);
  let printed = '';
  vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    printed += String(chunk);
    return true;
  });
  try {
    await program.parseAsync(['node', 'vlcurate', 'datasets', 'shapes', ...args]);
  } finally {
    vi.restoreAllMocks();
  }
  return printed;
}

const sha = async (path: string): Promise<string> => createHash('sha256').update(await readFile(path)).digest('hex');

describe('datasets shapes command', () => {
  it('prints the summary as JSON and writes the dataset', async () => {
    const out = join(root, 'json');
    const printed = await run(['--out', out, '--count', '20', '--noise', '0.5', '--seed', '9', '--shard-size', '8', '--json']);
    const summary = JSON.parse(printed) as ShapesSummary;
    expect(summary.count).toBe(20);
    expect(summary.out).toBe(out);
    expect(Object.values(summary.noisy).reduce((s, n) => s + n, 0)).toBe(10);
    expect(summary.shards).toHaveLength(3);
    const lines = (await readFile(summary.groundTruth, 'utf8')).trimEnd().split('\n');
    expect(lines).toHaveLength(20);
    const expected = planDataset({ count: 20, noise: 0.5, seed: 9, imageSize: 128 });
    expect(lines.map((l) => JSON.parse(l).web_caption)).toEqual(expected.map((i) => i.webCaption));
  });

  it('prints a short text summary by default', async () => {
    const printed = await run(['--out', join(root, 'text'), '--count', '10', '--noise', '0.2']);
    expect(printed).toContain('shapes: 10 images (seed 2)');
    expect(printed).toContain('noisy web captions: 2 (');
    expect(printed).toContain('ground_truth.jsonl');
    expect(printed).toContain('captions.json');
  });

  it('counts every noise kind in the text summary, relation swaps included', async () => {
    const printed = await run(['--out', join(root, 'kinds'), '--count', '20', '--noise', '0.5']);
    expect(printed).toContain('noisy web captions: 10 (mismatch 3, swap 3, relation 2, boilerplate 1, empty 1)');
  });

  it('takes the seed from --split, and --seed overrides it', async () => {
    await run(['--out', join(root, 'split'), '--count', '10', '--split', 'test']);
    await run(['--out', join(root, 'seed'), '--count', '10', '--seed', String(SPLIT_SEEDS.test)]);
    await run(['--out', join(root, 'both'), '--count', '10', '--split', 'test', '--seed', '5']);
    const split = await sha(join(root, 'split', 'ground_truth.jsonl'));
    expect(await sha(join(root, 'seed', 'ground_truth.jsonl'))).toBe(split);
    expect(await sha(join(root, 'both', 'ground_truth.jsonl'))).not.toBe(split);
    expect(SPLIT_SEEDS).toEqual({ train: 1, demo: 2, test: 3 });
  });

  it.each([
    [['--noise', 'abc'], '--noise: expected a number from 0 to 1, got "abc"'],
    [['--noise', '1.5'], '--noise: expected a number from 0 to 1, got "1.5"'],
    [['--count', '0'], '--count: expected an integer from 1 and up, got "0"'],
    [['--count', '2.5'], '--count: expected an integer from 1 and up, got "2.5"'],
    [['--seed', '-1'], '--seed: expected an integer from 0 to 4294967295, got "-1"'],
    [['--split', 'dev'], '--split: expected one of train, demo, test, got "dev"'],
    [['--image-size', '16'], '--image-size: expected an integer from 48 to 2048, got "16"'],
  ])('rejects %j with a ConfigError naming flag, value and expectation', async (args, message) => {
    const attempt = run(['--out', join(root, 'bad'), ...args]);
    await expect(attempt).rejects.toThrow(ConfigError);
    await expect(run(['--out', join(root, 'bad'), ...args])).rejects.toThrow(message);
  });

  it('requires --out', async () => {
    await expect(run(['--count', '5'])).rejects.toThrow('--out: expected an output folder');
  });
});

describe('resolveShapesOptions', () => {
  it('fills defaults and rejects bad values by option name', () => {
    expect(resolveShapesOptions({ out: 'x', count: 3, noise: 0, seed: 0 })).toEqual({
      out: 'x',
      count: 3,
      noise: 0,
      seed: 0,
      shardSize: 1000,
      imageSize: 128,
    });
    expect(() => resolveShapesOptions({ out: 'x', count: 3, noise: Number.NaN, seed: 0 })).toThrow('`noise`: expected a number from 0 to 1');
    expect(() => resolveShapesOptions({ out: 'x', count: -1, noise: 0, seed: 0 })).toThrow('`count`: expected an integer from 1 and up, got -1');
    expect(() => resolveShapesOptions({ out: 'x', count: 1, noise: 0, seed: 2 ** 32 })).toThrow(ConfigError);
    expect(() => resolveShapesOptions({ out: 'x', count: 1, noise: 0, seed: 1, shardSize: 0 })).toThrow('`shardSize`');
  });
});
