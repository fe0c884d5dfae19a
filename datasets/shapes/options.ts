/** Options of the shapes generator, their defaults and validation. */
import { ConfigError } from '../../src/core/errors.js';

export interface ShapesOptions {
  /** Output folder; created if missing. Files the generator owns in it are replaced. */
  out: string;
  /** Number of images, an integer from 1 and up. */
  count: number;
  /** Fraction of images, from 0 to 1, whose web caption is noisy; exactly round(noise * count) images. */
  noise: number;
  /** RNG seed, an integer from 0 to 2^32 - 1. Same options give byte-identical files. */
  seed: number;
  /** Samples per WebDataset shard. Default 1000. */
  shardSize?: number;
  /** Side of the square images in pixels, from 48 to 2048. Default 128. */
  imageSize?: number;
}

/** Seeds of the documented splits: the demo models train on `train`, are measured on `test`. */
export const SPLIT_SEEDS = { train: 1, demo: 2, test: 3 } as const;
export type ShapesSplit = keyof typeof SPLIT_SEEDS;

export const DEFAULT_SHARD_SIZE = 1000;
export const DEFAULT_IMAGE_SIZE = 128;
export const MIN_IMAGE_SIZE = 48;
export const MAX_IMAGE_SIZE = 2048;
export const MAX_SEED = 0xffffffff;

export type ResolvedShapesOptions = Required<ShapesOptions>;

function integerIn(name: string, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    const range = max === Number.MAX_SAFE_INTEGER ? `from ${min} and up` : `from ${min} to ${max}`;
    throw new ConfigError(`\`${name}\`: expected an integer ${range}, got ${JSON.stringify(value) ?? String(value)}`);
  }
  return value;
}

/** Fill in defaults and check every option; a bad value throws `ConfigError` naming it. */
export function resolveShapesOptions(options: ShapesOptions): ResolvedShapesOptions {
  if (typeof options.out !== 'string' || options.out.length === 0) {
    throw new ConfigError(`\`out\`: expected a folder path, got ${JSON.stringify(options.out) ?? String(options.out)}`);
  }
  const noise = options.noise;
  if (typeof noise !== 'number' || !Number.isFinite(noise) || noise < 0 || noise > 1) {
    throw new ConfigError(`\`noise\`: expected a number from 0 to 1, got ${JSON.stringify(noise) ?? String(noise)}`);
  }
  return {
    out: options.out,
    count: integerIn('count', options.count, 1, Number.MAX_SAFE_INTEGER),
    noise,
    seed: integerIn('seed', options.seed, 0, MAX_SEED),
    shardSize: integerIn('shardSize', options.shardSize ?? DEFAULT_SHARD_SIZE, 1, Number.MAX_SAFE_INTEGER),
    imageSize: integerIn('imageSize', options.imageSize ?? DEFAULT_IMAGE_SIZE, MIN_IMAGE_SIZE, MAX_IMAGE_SIZE),
  };
}
