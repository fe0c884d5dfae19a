/**
 * `vlcurate datasets shapes`: generate the synthetic shapes demo dataset (WebDataset shards, COCO files and
 * the ground truth the pipeline never reads).
 */
import type { Command } from 'commander';
import { ConfigError } from '../../core/errors.js';
import {
  generateShapes,
  NOISE_KINDS,
  SPLIT_SEEDS,
  type ShapesSplit,
  type ShapesSummary,
} from '../../../datasets/shapes/index.js';

interface ShapesFlags {
  out?: string;
  count: string;
  noise: string;
  seed?: string;
  split: string;
  shardSize: string;
  imageSize: string;
  json?: boolean;
}

const MAX_SEED = 0xffffffff;

function fail(flag: string, value: string, expected: string): never {
  throw new ConfigError(`${flag}: expected ${expected}, got ${JSON.stringify(value)}`);
}

function parseInteger(flag: string, value: string, min: number, max = Number.MAX_SAFE_INTEGER): number {
  const expected = max === Number.MAX_SAFE_INTEGER ? `an integer from ${min} and up` : `an integer from ${min} to ${max}`;
  if (!/^\s*\d+\s*$/.test(value)) fail(flag, value, expected);
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < min || n > max) fail(flag, value, expected);
  return n;
}

function parseFraction(flag: string, value: string): number {
  const n = value.trim() === '' ? Number.NaN : Number(value);
  if (!Number.isFinite(n) || n < 0 || n > 1) fail(flag, value, 'a number from 0 to 1');
  return n;
}

function parseSplit(value: string): ShapesSplit {
  if (!Object.hasOwn(SPLIT_SEEDS, value)) fail('--split', value, `one of ${Object.keys(SPLIT_SEEDS).join(', ')}`);
  return value as ShapesSplit;
}

export function formatShapesSummary(summary: ShapesSummary, seed: number): string {
  const n = summary.noisy;
  const noisy = NOISE_KINDS.reduce((sum, kind) => sum + n[kind], 0);
  return [
    `shapes: ${summary.count} images (seed ${seed}) in ${summary.out}`,
    `  noisy web captions: ${noisy} (${NOISE_KINDS.map((kind) => `${kind} ${n[kind]}`).join(', ')})`,
    `  webdataset: ${summary.shards.length} shard${summary.shards.length === 1 ? '' : 's'}, ${summary.shards[0] ?? ''}${summary.shards.length > 1 ? ' ...' : ''}`,
    `  coco: ${summary.cocoCaptions}, ${summary.cocoInstances}`,
    `  ground truth: ${summary.groundTruth}`,
  ].join('\n');
}

export function registerDatasets(program: Command): void {
  const datasets = program.command('datasets').description('generate demo datasets');
  datasets
    .command('shapes')
    .description('synthetic shapes scenes with ground-truth and noisy web captions')
    .option('--out <dir>', 'output folder (required)')
    .option('--count <n>', 'number of images', '1000')
    .option('--noise <f>', 'fraction of images with a noisy web caption, 0 to 1', '0.4')
    .option('--seed <s>', 'RNG seed, 0 to 4294967295 (overrides --split)')
    .option('--split <name>', `split whose documented seed to use: ${Object.keys(SPLIT_SEEDS).join('|')}`, 'demo')
    .option('--shard-size <n>', 'samples per WebDataset shard', '1000')
    .option('--image-size <px>', 'side of the square images in pixels, 48 to 2048', '128')
    .option('--json', 'print the summary as JSON')
    .action(async (flags: ShapesFlags) => {
      if (flags.out === undefined || flags.out.trim() === '') {
        throw new ConfigError(`--out: expected an output folder, got ${JSON.stringify(flags.out ?? null)}`);
      }
      const split = parseSplit(flags.split);
      const seed = flags.seed === undefined ? SPLIT_SEEDS[split] : parseInteger('--seed', flags.seed, 0, MAX_SEED);
      const summary = await generateShapes({
        out: flags.out,
        count: parseInteger('--count', flags.count, 1),
        noise: parseFraction('--noise', flags.noise),
        seed,
        shardSize: parseInteger('--shard-size', flags.shardSize, 1),
        imageSize: parseInteger('--image-size', flags.imageSize, 48, 2048),
      });
      process.stdout.write((flags.json ? JSON.stringify(summary) : formatShapesSummary(summary, seed)) + '\n');
    });
}
