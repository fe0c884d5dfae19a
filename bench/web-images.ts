/**
 * Web-like JPEGs for the ingest benchmark: 512x384 or 640x480, quality 88, 50-80 KB (the size of an
 * img2dataset shard's images), generated with sharp into `bench/.cache/` on first use, never committed.
 * Each image is a smooth colour field (a 16x12 grid upscaled bicubically) with per-pixel noise on top,
 * which is what makes a photo's JPEG that large at that size; the noise level varies per image.
 */
import { existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { createReadStream } from 'node:fs';
import { extract } from 'tar-stream';
import sharp from 'sharp';
import { ShardWriter } from '../datasets/shapes/shard-writer.js';
import { CACHE } from './util.js';

/** A seeded linear congruential generator: the same images every run. */
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
}

export async function webLikeJpeg(index: number, seed: number): Promise<Buffer> {
  const next = random(seed * 1_000_003 + index + 1);
  const landscape = next() < 0.5;
  const width = landscape ? 512 : 640;
  const height = landscape ? 384 : 480;
  const grid = Buffer.alloc(16 * 12 * 3);
  for (let i = 0; i < grid.length; i++) grid[i] = Math.floor(next() * 256);
  const pixels = await sharp(grid, { raw: { width: 16, height: 12, channels: 3 } }).resize(width, height, { kernel: 'cubic' }).raw().toBuffer();
  const amplitude = (landscape ? 32 : 22) + next() * 6; // less noise on the larger size keeps both in 50-80 KB
  for (let i = 0; i < pixels.length; i++) pixels[i] = Math.max(0, Math.min(255, Math.round(pixels[i]! + (next() - 0.5) * amplitude)));
  return sharp(pixels, { raw: { width, height, channels: 3 } }).jpeg({ quality: 88 }).toBuffer();
}

/** WebDataset shards (1000 samples each) of `count` web-like JPEGs with a one-line caption each; cached. */
export async function cachedWebImages(count: number, seed = 7): Promise<{ dir: string; shards: string[] }> {
  const dir = join(CACHE, `web-jpeg-${count}-${seed}`);
  const done = join(dir, 'complete');
  if (!existsSync(done)) {
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    const writer = new ShardWriter(dir, 'web', 1000);
    for (let i = 0; i < count; i++) {
      const key = `web${String(i).padStart(7, '0')}`;
      await writer.add(key, [
        { ext: 'jpg', data: await webLikeJpeg(i, seed) },
        { ext: 'txt', data: Buffer.from(`a photo number ${i} with some texture`) },
      ]);
    }
    await writer.close();
    mkdirSync(done);
  }
  const shards = readdirSync(dir).filter((f) => f.endsWith('.tar')).sort().map((f) => join(dir, f));
  return { dir, shards };
}

/** Every `.jpg` member of the shards, in memory (for the bare-decode baselines). */
export async function readJpegs(shards: readonly string[]): Promise<Buffer[]> {
  const out: Buffer[] = [];
  for (const shard of shards) {
    const reader = extract();
    const finished = new Promise<void>((resolve, reject) => {
      reader.on('entry', (header, stream, next) => {
        const chunks: Buffer[] = [];
        stream.on('data', (c: unknown) => chunks.push(c as Buffer));
        stream.on('end', () => {
          if (header.name.endsWith('.jpg')) out.push(Buffer.concat(chunks));
          next();
        });
        stream.resume();
      });
      reader.on('finish', resolve);
      reader.on('error', reject);
    });
    createReadStream(shard).pipe(reader);
    await finished;
  }
  return out;
}

/** Sizes for the report. */
export function describeJpegs(images: readonly Buffer[]): { images: number; meanKb: number; minKb: number; maxKb: number } {
  const sizes = images.map((b) => b.length / 1000);
  return {
    images: images.length,
    meanKb: Math.round(sizes.reduce((a, b) => a + b, 0) / sizes.length),
    minKb: Math.round(Math.min(...sizes)),
    maxKb: Math.round(Math.max(...sizes)),
  };
}

