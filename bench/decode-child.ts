/**
 * Bare decode baselines over the JPEGs of the given shards, in their own process, all images read into
 * memory first (not timed). Prints one JSON line with images/s for each mode:
 * - `sharp`: `sharp(bytes).raw().toBuffer()` (full decode to pixels) + sha256, `concurrency` at a time;
 * - `validate`: the decode stage's own check with its defaults (`decodeImage`: sha256, and for a JPEG
 *   the structure walk, which decodes nothing when it calls the file whole), same concurrency.
 * Usage: decode-child.js CONCURRENCY SHARD...
 */
import { createHash } from 'node:crypto';
import sharp from 'sharp';
import { decodeImage } from '../src/decode/decode-stage.js';
import { mapConcurrent } from '../src/iter/map-concurrent.js';
import { readJpegs } from './web-images.js';

const [concurrencyArg, ...shards] = process.argv.slice(2);
const concurrency = Number(concurrencyArg);
const images = await readJpegs(shards);

async function timed(work: (bytes: Buffer) => Promise<unknown>): Promise<number> {
  const started = performance.now();
  async function* all(): AsyncGenerator<Buffer> {
    yield* images;
  }
  for await (const _ of mapConcurrent(all(), work, { concurrency, ordered: false })) {
    // drain
  }
  return (images.length * 1000) / (performance.now() - started);
}

const sharpRate = await timed(async (bytes) => {
  createHash('sha256').update(bytes).digest('hex');
  await sharp(bytes).raw().toBuffer();
});
const validateRate = await timed(async (bytes) => {
  const result = await decodeImage(bytes, 89_478_485);
  if (!result.ok) throw new Error(result.message);
});
process.stdout.write(`${JSON.stringify({ images: images.length, sharp: sharpRate, validate: validateRate })}\n`);
