/**
 * Generate the shapes dataset: render every planned scene, then write WebDataset shards, COCO files and
 * the ground truth. Rendering runs with bounded concurrency in input order; shards and the ground truth
 * are streamed, so memory holds only the plan and the images in flight.
 */
import { availableParallelism } from 'node:os';
import { mkdir, readdir, unlink } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { mapConcurrent } from '../../src/iter/index.js';
import { AtomicWriteStream, TEMP_SUFFIX, writeFileAtomic } from './atomic-write.js';
import { CocoBuilder } from './coco.js';
import { NOISE_KINDS, type NoiseKind } from './noise.js';
import { resolveShapesOptions, type ShapesOptions } from './options.js';
import { planDataset, type PlannedImage } from './plan.js';
import { renderScene } from './render.js';
import type { PixelBox } from './scene.js';
import { ShardWriter } from './shard-writer.js';
import type { ColorName, ShapeName, SizeName } from './vocabulary.js';

export interface ShapesSummary {
  /** Absolute output folder. */
  out: string;
  count: number;
  /** Number of images per noise kind; they add up to round(noise * count). */
  noisy: Record<NoiseKind, number>;
  /** Absolute paths of the WebDataset shards, in order. */
  shards: string[];
  groundTruth: string;
  cocoCaptions: string;
  cocoInstances: string;
}

/** One line of `ground_truth.jsonl` (the contract in DESIGN.md). */
export interface GroundTruthRecord {
  key: string;
  width: number;
  height: number;
  objects: { shape: ShapeName; color: ColorName; size: SizeName; box: PixelBox }[];
  captions: string[];
  web_caption: string;
  noise: NoiseKind | null;
}

export const SHARD_PREFIX = 'shapes';
const URL_BASE = 'https://shapes.invalid/';

export function groundTruthRecord(image: PlannedImage): GroundTruthRecord {
  return {
    key: image.key,
    width: image.scene.width,
    height: image.scene.height,
    objects: image.scene.objects.map((o) => ({ shape: o.shape, color: o.color, size: o.size, box: [...o.box] })),
    captions: image.captions,
    web_caption: image.webCaption,
    noise: image.noise,
  };
}

/** The img2dataset-style `key.json` member. */
function sampleJson(image: PlannedImage): string {
  return JSON.stringify({
    key: image.key,
    caption: image.webCaption,
    url: `${URL_BASE}${image.key}.jpg`,
    width: image.scene.width,
    height: image.scene.height,
    status: 'success',
    // Detections ride along as in detection-annotated shards; the web caption stays noisy.
    boxes: image.scene.objects.map((o) => ({ label: `${o.color} ${o.shape}`, box: [...o.box] })),
  });
}

async function* fromArray<T>(items: readonly T[]): AsyncGenerator<T> {
  yield* items;
}

/** Delete files in `dir` whose names match `pattern` and are not in `keep`. */
async function removeStale(dir: string, pattern: RegExp, keep: ReadonlySet<string>): Promise<void> {
  const names = await readdir(dir).catch(() => [] as string[]);
  for (const name of names) {
    if (pattern.test(name) && !keep.has(name)) await unlink(join(dir, name)).catch(() => undefined);
  }
}

export async function generateShapes(options: ShapesOptions): Promise<ShapesSummary> {
  const opts = resolveShapesOptions(options);
  const out = resolve(opts.out);
  const wdsDir = join(out, 'webdataset');
  const cocoDir = join(out, 'coco');
  const imagesDir = join(cocoDir, 'images');
  await mkdir(wdsDir, { recursive: true });
  await mkdir(imagesDir, { recursive: true });
  // Leftovers of an interrupted run.
  const none = new Set<string>();
  const temp = TEMP_SUFFIX.replace('.', '\\.');
  await removeStale(out, new RegExp(`^ground_truth\\.jsonl${temp}$`), none);
  await removeStale(wdsDir, new RegExp(`^shapes-\\d+\\.tar${temp}$`), none);
  await removeStale(cocoDir, new RegExp(`^(captions|instances)\\.json${temp}$`), none);
  await removeStale(imagesDir, new RegExp(`^shapes_\\d+\\.jpg${temp}$`), none);

  const plan = planDataset(opts);
  const noisy = Object.fromEntries(NOISE_KINDS.map((kind) => [kind, 0])) as Record<NoiseKind, number>;
  for (const image of plan) if (image.noise) noisy[image.noise] += 1;

  const shards = new ShardWriter(wdsDir, SHARD_PREFIX, opts.shardSize);
  const groundTruth = new AtomicWriteStream(join(out, 'ground_truth.jsonl'));
  const coco = new CocoBuilder({
    description: 'vlcurate shapes demo dataset (synthetic)',
    version: '1',
    count: opts.count,
    noise: opts.noise,
    seed: opts.seed,
    image_size: opts.imageSize,
  });

  const rendered = mapConcurrent(
    fromArray(plan),
    async (image) => {
      const jpeg = await renderScene(image.scene);
      await writeFileAtomic(join(imagesDir, `${image.key}.jpg`), jpeg);
      return { image, jpeg };
    },
    { concurrency: Math.max(4, availableParallelism() * 2) },
  );

  let shardPaths: string[];
  try {
    for await (const { image, jpeg } of rendered) {
      await shards.add(image.key, [
        { ext: 'jpg', data: jpeg },
        { ext: 'json', data: Buffer.from(sampleJson(image)) },
        { ext: 'txt', data: Buffer.from(image.webCaption) },
      ]);
      await groundTruth.write(JSON.stringify(groundTruthRecord(image)) + '\n');
      coco.add(
        { id: image.index + 1, file_name: `${image.key}.jpg`, width: image.scene.width, height: image.scene.height },
        image.captions,
        image.scene.objects,
      );
    }
    shardPaths = await shards.close();
    await groundTruth.commit();
  } catch (err) {
    await groundTruth.abort();
    throw err;
  }
  const cocoCaptions = join(cocoDir, 'captions.json');
  const cocoInstances = join(cocoDir, 'instances.json');
  await writeFileAtomic(cocoCaptions, coco.captionsJson());
  await writeFileAtomic(cocoInstances, coco.instancesJson());

  // Outputs of an earlier, larger run in the same folder would otherwise be mistaken for this one's.
  await removeStale(wdsDir, /^shapes-\d+\.tar$/, new Set(shardPaths.map((p) => p.slice(wdsDir.length + 1))));
  await removeStale(imagesDir, /^shapes_\d+\.jpg$/, new Set(plan.map((image) => `${image.key}.jpg`)));

  return {
    out,
    count: opts.count,
    noisy,
    shards: shardPaths,
    groundTruth: join(out, 'ground_truth.jsonl'),
    cocoCaptions,
    cocoInstances,
  };
}
