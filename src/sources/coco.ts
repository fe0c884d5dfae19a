/**
 * COCO annotation files: `captions_*.json` and/or `instances_*.json` plus a folder of images.
 *
 * The annotation JSON is read and checked once (zod; a file that is not COCO-shaped is a configuration
 * error naming the file and the field); image bytes are read one sample at a time as pairs are pulled.
 * Caption annotations become captions with origin `annotation`; instance annotations become boxes in
 * `[x1, y1, x2, y2]` pixels with COCO's own `[x, y, w, h]` kept as `original`.
 *
 * Failures are data: a missing image file (`image_missing`), annotations that name an image id the
 * files do not list (`annotation_unknown_image`, one record per such id, keyed `coco_orphan_<id>`),
 * an instance whose category is not listed (`annotation_unknown_category`), a box with a negative size
 * (`annotation_invalid_box`).
 */
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { formatIssues } from '../config/format-issues.js';
import { ConfigError, describeError } from '../core/errors.js';
import { toKey, type Box, type Caption, type Pair, type SampleFailure } from '../core/sample.js';
import { inShard } from '../core/shard.js';
import { captionFromString } from './caption-text.js';
import { keyPrefixSchema, sourceNameSchema } from './common-options.js';
import type { Source, SourceContext, SourceType } from './source.js';

export const cocoOptionsSchema = z
  .object({
    type: z.literal('coco'),
    name: sourceNameSchema.optional(),
    /** Captions file (`captions_train2017.json`), relative to the recipe's folder. */
    captions: z.string().min(1).optional(),
    /** Instances file (`instances_train2017.json`), relative to the recipe's folder. */
    instances: z.string().min(1).optional(),
    /** Folder the images' `file_name`s are relative to. */
    images: z.string().min(1),
    /** Prepended to every key (default none). */
    keyPrefix: keyPrefixSchema.optional(),
  })
  .strict()
  .refine((options) => options.captions !== undefined || options.instances !== undefined, {
    message: 'expected `captions` or `instances` (or both): a coco source needs at least one annotation file',
    path: ['captions'],
  });

export type CocoOptions = z.infer<typeof cocoOptionsSchema>;

const STAGE = 'source';

// COCO uses integer ids; some exports use strings. Both are accepted and compared as text.
const idSchema = z.union([z.number().int(), z.string().min(1)]);

const imageRecordSchema = z.looseObject({
  id: idSchema,
  file_name: z.string().min(1),
  width: z.number().optional(),
  height: z.number().optional(),
});

const captionAnnotationSchema = z.looseObject({
  id: idSchema.optional(),
  image_id: idSchema,
  caption: z.string(),
});

const instanceAnnotationSchema = z.looseObject({
  id: idSchema.optional(),
  image_id: idSchema,
  category_id: idSchema,
  bbox: z.tuple([z.number(), z.number(), z.number(), z.number()]),
});

const categorySchema = z.looseObject({ id: idSchema, name: z.string() });

const captionsFileSchema = z.looseObject({
  images: z.array(imageRecordSchema),
  annotations: z.array(captionAnnotationSchema),
});

const instancesFileSchema = z.looseObject({
  images: z.array(imageRecordSchema),
  annotations: z.array(instanceAnnotationSchema),
  categories: z.array(categorySchema),
});

type ImageRecord = z.infer<typeof imageRecordSchema>;

/** One image with everything the annotation files say about it. */
interface CocoEntry {
  key: string;
  record: ImageRecord;
  captions: Caption[];
  boxes: Box[];
  failure: SampleFailure | null;
}

/** Annotations pointing at an image id that no `images` list has. */
interface Orphan {
  key: string;
  imageId: string;
  /** `captions: 1, 2` style descriptions of the annotations, per file. */
  annotations: { file: string; ids: string[] }[];
}

export interface CocoIndex {
  imagesDir: string;
  entries: CocoEntry[];
  orphans: Orphan[];
}

export const cocoSource = {
  type: 'coco',
  schema: cocoOptionsSchema,
  create(options: CocoOptions, name: string): Source {
    // Parsed once per recipe folder: `count()` and `read()` share it.
    const loaded = new Map<string, Promise<CocoIndex>>();
    const load = (baseDir: string): Promise<CocoIndex> => {
      let index = loaded.get(baseDir);
      if (index === undefined) {
        index = loadCocoIndex(options, baseDir);
        loaded.set(baseDir, index);
      }
      return index;
    };
    return {
      name,
      read: (ctx) => readCoco(load(ctx.baseDir), name, ctx),
      async count(ctx) {
        const index = await load(ctx.baseDir);
        let n = 0;
        for (const entry of index.entries) if (inShard(entry.key, ctx.shard)) n++;
        for (const orphan of index.orphans) if (inShard(orphan.key, ctx.shard)) n++;
        return n;
      },
    };
  },
} satisfies SourceType<CocoOptions>;

async function* readCoco(indexPromise: Promise<CocoIndex>, source: string, ctx: SourceContext): AsyncGenerator<Pair> {
  const index = await indexPromise;
  await requireFolder(index.imagesDir);

  const mine = index.entries.filter((entry) => inShard(entry.key, ctx.shard));
  const CHUNK = 256;
  for (let start = 0; start < mine.length; start += CHUNK) {
    const chunk = mine.slice(start, start + CHUNK);
    const done = ctx.isDone?.(chunk.map((entry) => entry.key)) ?? new Set<string>();
    for (const entry of chunk) {
      if (ctx.signal.aborted) return;
      if (done.has(entry.key)) continue;
      yield await entryToPair(entry, index.imagesDir, source);
    }
  }

  const orphans = index.orphans.filter((orphan) => inShard(orphan.key, ctx.shard));
  const doneOrphans = ctx.isDone?.(orphans.map((orphan) => orphan.key)) ?? new Set<string>();
  for (const orphan of orphans) {
    if (ctx.signal.aborted) return;
    if (doneOrphans.has(orphan.key)) continue;
    const described = orphan.annotations
      .map(({ file, ids }) => `${file} annotation${ids.length === 1 ? '' : 's'} ${listIds(ids)}`)
      .join('; ');
    yield {
      key: orphan.key,
      source,
      imageRef: '',
      imageBytes: null,
      captions: [],
      boxes: [],
      meta: { image_id: orphan.imageId },
      failure: {
        code: 'annotation_unknown_image',
        message: `image id ${orphan.imageId} is not in any "images" list, but ${described} refer to it`,
        stage: STAGE,
      },
    };
  }
}

async function entryToPair(entry: CocoEntry, imagesDir: string, source: string): Promise<Pair> {
  const imagePath = path.resolve(imagesDir, entry.record.file_name);
  const pair: Pair = {
    key: entry.key,
    source,
    imageRef: `file:${imagePath}`,
    imageBytes: null,
    // Copies: the index is shared by every read, and later stages may annotate what they receive.
    captions: entry.captions.map((caption) => ({ ...caption })),
    boxes: entry.boxes.map((box) => ({ ...box, box: [...box.box] as Box['box'] })),
    meta: { ...entry.record },
    failure: entry.failure,
  };
  if (pair.failure) return pair;
  const relative = path.relative(imagesDir, imagePath);
  if (relative.startsWith('..') || path.isAbsolute(relative)) {
    return fail(pair, 'image_path_invalid', `file_name "${entry.record.file_name}" points outside the images folder ${imagesDir}`);
  }
  try {
    return { ...pair, imageBytes: await readFile(imagePath) };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') {
      return fail(pair, 'image_missing', `image file ${imagePath} does not exist`);
    }
    return fail(pair, 'image_unreadable', `image file ${imagePath} cannot be read: ${describeError(err)}`);
  }
}

function fail(pair: Pair, code: string, message: string): Pair {
  return { ...pair, failure: { code, message, stage: STAGE } };
}

function listIds(ids: string[]): string {
  const shown = ids.slice(0, 10).join(', ');
  return ids.length > 10 ? `${shown} and ${ids.length - 10} more` : shown;
}

async function requireFolder(folder: string): Promise<void> {
  try {
    if ((await stat(folder)).isDirectory()) return;
  } catch {
    // reported below
  }
  throw new ConfigError(`coco images: expected a folder of images, got "${folder}", which is not a folder`);
}

/** Read and check the annotation files and group them per image. */
export async function loadCocoIndex(options: CocoOptions, baseDir: string): Promise<CocoIndex> {
  const keyPrefix = options.keyPrefix ?? '';
  const imagesDir = path.resolve(baseDir, options.images);
  const captionsPath = options.captions === undefined ? null : path.resolve(baseDir, options.captions);
  const instancesPath = options.instances === undefined ? null : path.resolve(baseDir, options.instances);
  const captionsFile = captionsPath === null ? null : await readCocoJson(captionsPath, 'captions', captionsFileSchema);
  const instancesFile =
    instancesPath === null ? null : await readCocoJson(instancesPath, 'instances', instancesFileSchema);

  // Images from both files, first mention wins, in file order.
  const images = new Map<string, CocoEntry>();
  const usedKeys = new Set<string>();
  for (const record of [...(captionsFile?.images ?? []), ...(instancesFile?.images ?? [])]) {
    const id = String(record.id);
    if (images.has(id)) continue;
    const entry: CocoEntry = {
      key: uniqueKey(keyPrefix + toKey(stripExtension(record.file_name)), id, usedKeys),
      record,
      captions: [],
      boxes: [],
      failure: null,
    };
    images.set(id, entry);
  }

  const orphans = new Map<string, Orphan>();
  const orphan = (imageId: string, file: string, annotationId: string | undefined): void => {
    let found = orphans.get(imageId);
    if (found === undefined) {
      found = { key: `${keyPrefix}coco_orphan_${toKey(imageId)}`, imageId, annotations: [] };
      orphans.set(imageId, found);
    }
    let group = found.annotations.find((a) => a.file === file);
    if (group === undefined) {
      group = { file, ids: [] };
      found.annotations.push(group);
    }
    group.ids.push(annotationId ?? '(no id)');
  };

  if (captionsFile !== null) {
    for (const annotation of captionsFile.annotations) {
      const imageId = String(annotation.image_id);
      const entry = images.get(imageId);
      if (entry === undefined) {
        orphan(imageId, 'captions', annotation.id === undefined ? undefined : String(annotation.id));
        continue;
      }
      entry.captions.push(captionFromString(annotation.caption, 'annotation'));
    }
  }

  if (instancesFile !== null) {
    const categories = new Map<string, string>();
    for (const category of instancesFile.categories) categories.set(String(category.id), category.name);
    for (const annotation of instancesFile.annotations) {
      const imageId = String(annotation.image_id);
      const annotationId = annotation.id === undefined ? '(no id)' : String(annotation.id);
      const entry = images.get(imageId);
      if (entry === undefined) {
        orphan(imageId, 'instances', annotationId);
        continue;
      }
      const label = categories.get(String(annotation.category_id));
      if (label === undefined) {
        entry.failure ??= {
          code: 'annotation_unknown_category',
          message: `instance annotation ${annotationId} has category_id ${annotation.category_id}, which is not in "categories" of ${instancesPath}`,
          stage: STAGE,
        };
        continue;
      }
      const [x, y, w, h] = annotation.bbox;
      if (w < 0 || h < 0) {
        entry.failure ??= {
          code: 'annotation_invalid_box',
          message: `instance annotation ${annotationId} has bbox [${annotation.bbox.join(', ')}] with a negative size`,
          stage: STAGE,
        };
        continue;
      }
      entry.boxes.push({ label, box: [x, y, x + w, y + h], original: { frame: 'coco_xywh', values: [x, y, w, h] } });
    }
  }

  return { imagesDir, entries: [...images.values()], orphans: [...orphans.values()] };
}

async function readCocoJson<T>(file: string, option: string, schema: z.ZodType<T>): Promise<T> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    const missing = (err as NodeJS.ErrnoException).code === 'ENOENT';
    throw new ConfigError(
      `coco ${option}: ${missing ? `file "${file}" does not exist` : `cannot read "${file}": ${describeError(err)}`}`,
      { cause: err },
    );
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`coco ${option} file "${file}" is not valid JSON: ${describeError(err)}`, { cause: err });
  }
  const parsed = schema.safeParse(json);
  if (!parsed.success) {
    const problems = formatIssues(parsed.error, json);
    const shown = problems.slice(0, 5).join('; ');
    const more = problems.length > 5 ? ` (and ${problems.length - 5} more problems)` : '';
    throw new ConfigError(`coco ${option} file "${file}" is not in COCO format: ${shown}${more}`);
  }
  return parsed.data;
}

function stripExtension(fileName: string): string {
  const ext = path.extname(fileName);
  return ext.length > 0 ? fileName.slice(0, -ext.length) : fileName;
}

/** Two images with the same name but different extensions (`a.jpg`, `a.png`) get their id appended. */
function uniqueKey(base: string, id: string, used: Set<string>): string {
  let key = base;
  if (used.has(key)) key = `${base}_${toKey(id)}`;
  for (let n = 2; used.has(key); n++) key = `${base}_${toKey(id)}_${n}`;
  used.add(key);
  return key;
}
