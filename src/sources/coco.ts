/**
 * COCO annotation files: `captions_*.json` and/or `instances_*.json` plus a folder of images.
 *
 * The annotation JSON is read once. Only a file that is not COCO at all (not JSON, not an object, `images`,
 * `annotations` or `categories` not lists) is a configuration error naming the file and the field; every
 * entry in those lists is checked on its own. Image bytes are read one sample at a time as pairs are pulled.
 * Caption annotations become captions with origin `annotation`; instance annotations become boxes in
 * `[x1, y1, x2, y2]` pixels, clipped to the image (at 0, and at the image record's width and height when
 * given), with COCO's own `[x, y, w, h]` kept unclipped as `original`.
 *
 * Failures are data, each message naming the entry (`images[3]`, `annotations[7] (id 42)`) and its file:
 * - a bad `images` entry (not an object, bad id, file_name, width or height): that image, `row_invalid`;
 * - an image id listed again (in one file, or in both files with another file_name): the later entry is
 *   its own failed pair, `key_duplicate`; the id's annotations stay with the first;
 * - a bad annotation of a known image is left out of it, and the image goes on with its other captions and
 *   boxes; each such annotation is listed on the sample as `meta.droppedAnnotations: [{code, message}]`:
 *   `annotation_invalid_box` for a bbox that is not 4 numbers, has a width or height of 0 or less, or lies
 *   entirely outside the image; `annotation_unknown_category`; `row_invalid` for other wrong fields
 *   (caption, id, category_id);
 * - annotations naming an image id no `images` list has: `annotation_unknown_image`, one record per such
 *   id, keyed `coco_orphan_<id>`; annotations with no usable image_id: one `row_invalid` record listing
 *   them, keyed `coco_orphan_invalid_image_id`;
 * - a missing image file: `image_missing`.
 * The annotation files and the images folder may be `s3://` or `https://` locations (the images are then
 * objects under that prefix; `storage_denied` / `storage_interrupted` as for other remote inputs).
 * The first failure of an image is the one recorded.
 */
import type { FailureCode } from '../core/failure-codes.js';
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { formatIssues } from '../core/format-issues.js';
import { ConfigError, describeError } from '../core/errors.js';
import { fateOf, toKey, type Box, type Caption, type Pair, type SampleFailure } from '../core/sample.js';
import { inShard } from '../core/shard.js';
import { DEFAULT_MAX_FILE_BYTES } from '../images/local-file.js';
import { inputFailureCode, readInputBytes } from '../images/input-file.js';
import { isRemote } from '../storage/location.js';
import { inputPathSchema, resolveAgainst, resolveInput } from '../storage/input-path.js';
import type { StorageSettings } from '../storage/storage-settings.js';
import { captionFromString } from './caption-text.js';
import { annotationName, annotationWhere, checkImage, clipBox, ID_EXPECTED, idProblems, isBbox, isId, isRecord, readCategories } from './coco-entries.js';
import { keyPrefixSchema, localPathFields, sourceNameSchema } from './common-options.js';
import { imageRootsFor, outsideRoots, type ImageRoots } from '../images/image-roots.js';
import type { Source, SourceContext, SourceType } from './source.js';
import { describeValue } from '../core/describe-value.js';

export const cocoOptionsSchema = z
  .object({
    type: z.literal('coco'),
    name: sourceNameSchema.optional(),
    /** Captions file (`captions_train2017.json`), relative to the recipe's folder, or an `s3://` / `https://` URL. */
    captions: inputPathSchema.optional(),
    /** Instances file (`instances_train2017.json`), relative to the recipe's folder, or an `s3://` / `https://` URL. */
    instances: inputPathSchema.optional(),
    /** Folder the images' `file_name`s are relative to (or an `s3://` prefix); they must stay in it (or in `imageRoots`). */
    images: inputPathSchema,
    ...localPathFields,
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

// Only the file's outline is checked up front: a file without these lists is not COCO at all. Each image,
// annotation and category is checked on its own, so one bad entry fails one sample, not the run.
const captionsFileSchema = z.looseObject({
  images: z.array(z.unknown()),
  annotations: z.array(z.unknown()),
});

const instancesFileSchema = z.looseObject({
  images: z.array(z.unknown()),
  annotations: z.array(z.unknown()),
  categories: z.array(z.unknown()),
});

interface CocoFile {
  option: 'captions' | 'instances';
  /** `captions file "/abs/captions.json"`, for messages. */
  label: string;
  images: unknown[];
}

/** One image with everything the annotation files say about it. */
interface CocoEntry {
  key: string;
  /** Null when the `images` entry has no usable `file_name`. */
  fileName: string | null;
  width: number | undefined;
  height: number | undefined;
  meta: Record<string, unknown>;
  captions: Caption[];
  boxes: Box[];
  /** Annotations of this image left out, each with its code and message (`meta.droppedAnnotations`). */
  dropped: DroppedAnnotation[];
  failure: SampleFailure | null;
}

/** An annotation left out of its image: `annotation_unknown_category`, `annotation_invalid_box` or `row_invalid`. */
export interface DroppedAnnotation {
  code: string;
  message: string;
}

/** Annotations pointing at an image id that no `images` list has. */
interface Orphan {
  key: string;
  imageId: string;
  /** `captions: 1, 2` style descriptions of the annotations, per file. */
  annotations: { file: string; ids: string[] }[];
}

/** Annotations whose `image_id` is missing or not an id, so no image can carry their failure. */
interface Unattached {
  key: string;
  problems: string[];
}

export interface CocoIndex {
  imagesDir: string;
  entries: CocoEntry[];
  orphans: Orphan[];
  unattached: Unattached | null;
}

export const cocoSource = {
  type: 'coco',
  schema: cocoOptionsSchema,
  create(options: CocoOptions, name: string): Source {
    // Parsed once per recipe folder: `count()` and `read()` share it.
    const loaded = new Map<string, Promise<CocoIndex>>();
    const load = (baseDir: string, storage?: StorageSettings): Promise<CocoIndex> => {
      let index = loaded.get(baseDir);
      if (index === undefined) {
        index = loadCocoIndex(options, baseDir, storage);
        loaded.set(baseDir, index);
      }
      return index;
    };
    return {
      name,
      read: (ctx) => readCoco(load(ctx.baseDir, ctx.storage), name, ctx, options),
      async count(ctx) {
        const index = await load(ctx.baseDir, ctx.storage);
        await requireFolder(index.imagesDir);
        let n = 0;
        for (const entry of index.entries) if (inShard(entry.key, ctx.shard)) n++;
        for (const orphan of index.orphans) if (inShard(orphan.key, ctx.shard)) n++;
        if (index.unattached !== null && inShard(index.unattached.key, ctx.shard)) n++;
        return n;
      },
    };
  },
} satisfies SourceType<CocoOptions>;

async function* readCoco(indexPromise: Promise<CocoIndex>, source: string, ctx: SourceContext, options: CocoOptions): AsyncGenerator<Pair> {
  const index = await indexPromise;
  await requireFolder(index.imagesDir);
  const images = { roots: await imageRootsFor(index.imagesDir, options, ctx.baseDir), maxBytes: ctx.maxFileBytes ?? DEFAULT_MAX_FILE_BYTES, storage: ctx.storage };

  const mine = index.entries.filter((entry) => inShard(entry.key, ctx.shard));
  const CHUNK = 256;
  for (let start = 0; start < mine.length; start += CHUNK) {
    const chunk = mine.slice(start, start + CHUNK);
    const done = ctx.isDone?.(chunk.map((entry) => entry.key)) ?? new Set<string>();
    for (const entry of chunk) {
      if (ctx.signal.aborted) return;
      if (done.has(entry.key)) continue;
      yield await entryToPair(entry, index.imagesDir, source, images);
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
      fate: {
        kind: 'failed',
        code: 'annotation_unknown_image',
        message: `image id ${orphan.imageId} is not in any "images" list, but ${described} refer to it`,
        stage: STAGE,
      },
    };
  }

  const unattached = index.unattached;
  if (unattached === null || !inShard(unattached.key, ctx.shard) || ctx.signal.aborted) return;
  if (ctx.isDone?.([unattached.key]).has(unattached.key)) return;
  const { problems } = unattached;
  const shown = problems.slice(0, 10).join('; ');
  const more = problems.length > 10 ? ` (and ${problems.length - 10} more)` : '';
  yield {
    key: unattached.key,
    source,
    imageRef: '',
    imageBytes: null,
    captions: [],
    boxes: [],
    meta: { annotations: problems.length },
    fate: fateOf(
      failure(
        'row_invalid',
        `${problems.length} annotation${problems.length === 1 ? ' has' : 's have'} no usable image_id, so no image can carry ${problems.length === 1 ? 'it' : 'them'}: ${shown}${more}`,
      ),
    ),
  };
}

async function entryToPair(
  entry: CocoEntry,
  imagesDir: string,
  source: string,
  images: { roots: ImageRoots | null; maxBytes: number; storage: StorageSettings | undefined },
): Promise<Pair> {
  const imagePath = entry.fileName === null ? null : resolveAgainst(imagesDir, entry.fileName);
  const pair: Pair = {
    key: entry.key,
    source,
    imageRef: imagePath === null ? '' : `file:${imagePath}`,
    imageBytes: null,
    // Copies: the index is shared by every read, and later stages may annotate what they receive.
    captions: entry.captions.map((caption) => ({ ...caption })),
    boxes: entry.boxes.map((box) => ({ ...box, box: [...box.box] as Box['box'] })),
    meta: entry.dropped.length > 0 ? { ...entry.meta, droppedAnnotations: entry.dropped.map((d) => ({ ...d })) } : { ...entry.meta },
    fate: fateOf(entry.failure),
  };
  if (pair.fate.kind === 'failed' || imagePath === null) return pair;
  const outside = outsideRoots(imagePath, images.roots, entry.fileName!);
  if (outside !== null) return fail(pair, 'image_path_invalid', `file_name: ${outside}`);
  const read = await readInputBytes(imagePath, { maxBytes: images.maxBytes, roots: images.roots?.real ?? null, what: 'image file', storage: images.storage });
  if (!read.ok) return fail(pair, inputFailureCode(read.problem), read.message);
  return { ...pair, imageBytes: read.bytes };
}

function fail(pair: Pair, code: FailureCode, message: string): Pair {
  return { ...pair, fate: { kind: 'failed', code, message, stage: STAGE } };
}

function listIds(ids: string[]): string {
  const shown = ids.slice(0, 10).join(', ');
  return ids.length > 10 ? `${shown} and ${ids.length - 10} more` : shown;
}

async function requireFolder(folder: string): Promise<void> {
  // An object store has prefixes, not folders: a missing image is found per sample.
  if (isRemote(folder)) return;
  try {
    if ((await stat(folder)).isDirectory()) return;
  } catch {
    // reported below
  }
  throw new ConfigError(`coco images: expected a folder of images, got "${folder}", which is not a folder`);
}

/** Read and check the annotation files and group them per image. */
export async function loadCocoIndex(options: CocoOptions, baseDir: string, storage?: StorageSettings): Promise<CocoIndex> {
  const keyPrefix = options.keyPrefix ?? '';
  const imagesDir = resolveInput(options.images, baseDir, 'coco images');
  const captionsPath = options.captions === undefined ? null : resolveInput(options.captions, baseDir, 'coco captions');
  const instancesPath = options.instances === undefined ? null : resolveInput(options.instances, baseDir, 'coco instances');
  const captionsFile = captionsPath === null ? null : await readCocoJson(captionsPath, 'captions', captionsFileSchema, storage);
  const instancesFile =
    instancesPath === null ? null : await readCocoJson(instancesPath, 'instances', instancesFileSchema, storage);
  const captionsLabel = `captions file "${captionsPath}"`;
  const instancesLabel = `instances file "${instancesPath}"`;

  const files: CocoFile[] = [];
  if (captionsFile !== null) files.push({ option: 'captions', label: captionsLabel, images: captionsFile.images });
  if (instancesFile !== null) files.push({ option: 'instances', label: instancesLabel, images: instancesFile.images });
  const { entries, byId, usedKeys } = indexImages(files, keyPrefix);

  const orphans = new Map<string, Orphan>();
  const orphan = (imageId: string, file: string, annotationId: string): void => {
    let found = orphans.get(imageId);
    if (found === undefined) {
      found = { key: '', imageId, annotations: [] };
      orphans.set(imageId, found);
    }
    let group = found.annotations.find((a) => a.file === file);
    if (group === undefined) {
      group = { file, ids: [] };
      found.annotations.push(group);
    }
    group.ids.push(annotationId);
  };
  const unattached: string[] = [];

  /** The image an annotation belongs to, or null when it was recorded as orphaned or unattached. */
  const owner = (raw: unknown, where: string, option: string, expected: string): CocoEntry | null => {
    if (!isRecord(raw)) {
      unattached.push(`${where}: expected an object ${expected}, got ${describeValue(raw)}`);
      return null;
    }
    if (!isId(raw['image_id'])) {
      unattached.push(`${where}: image_id: expected ${ID_EXPECTED}, got ${describeValue(raw['image_id'])}`);
      return null;
    }
    const imageId = String(raw['image_id']);
    const entry = byId.get(imageId);
    if (entry === undefined) orphan(imageId, option, annotationName(raw['id']));
    return entry ?? null;
  };

  if (captionsFile !== null) {
    for (const [i, raw] of captionsFile.annotations.entries()) {
      const where = annotationWhere(i, raw, captionsLabel);
      const entry = owner(raw, where, 'captions', '{image_id, caption}');
      if (entry === null || !isRecord(raw)) continue;
      const problems = idProblems(raw);
      const caption = raw['caption'];
      if (typeof caption !== 'string') problems.push(`caption: expected a string, got ${describeValue(caption)}`);
      if (problems.length > 0 || typeof caption !== 'string') {
        entry.dropped.push({ code: 'row_invalid', message: `${where}: ${problems.join('; ')}` });
        continue;
      }
      entry.captions.push(captionFromString(caption, 'annotation'));
    }
  }

  if (instancesFile !== null) {
    const { names, broken } = readCategories(instancesFile.categories);
    for (const [i, raw] of instancesFile.annotations.entries()) {
      const where = annotationWhere(i, raw, instancesLabel);
      const entry = owner(raw, where, 'instances', '{image_id, category_id, bbox}');
      if (entry === null || !isRecord(raw)) continue;
      const problems = idProblems(raw);
      if (!isId(raw['category_id'])) {
        problems.push(`category_id: expected ${ID_EXPECTED}, got ${describeValue(raw['category_id'])}`);
      }
      const bbox = raw['bbox'];
      if (!isBbox(bbox) || problems.length > 0) {
        // A bad bbox alone is a box problem; with other wrong fields the annotation as a whole is bad.
        const code = problems.length === 0 ? 'annotation_invalid_box' : 'row_invalid';
        if (!isBbox(bbox)) problems.push(`bbox: expected [x, y, width, height] as 4 finite numbers, got ${describeValue(bbox)}`);
        entry.dropped.push({ code, message: `${where}: ${problems.join('; ')}` });
        continue;
      }
      const categoryId = String(raw['category_id']);
      const label = names.get(categoryId);
      if (label === undefined) {
        const why = broken.get(categoryId);
        entry.dropped.push({
          code: 'annotation_unknown_category',
          message: `${where}: category_id ${categoryId} ${why === undefined ? 'is not in "categories"' : `has no usable entry in "categories": ${why}`}`,
        });
        continue;
      }
      const box = clipBox(bbox, entry.width, entry.height);
      if ('problem' in box) {
        entry.dropped.push({ code: 'annotation_invalid_box', message: `${where}: ${box.problem}` });
        continue;
      }
      entry.boxes.push({ label, box: box.box, original: { frame: 'coco_xywh', values: [...bbox] } });
    }
  }

  // Keys after the images' own, so an orphan never takes a key an image would have had.
  for (const found of orphans.values()) {
    found.key = uniqueKey(`${keyPrefix}coco_orphan_${toKey(found.imageId)}`, found.imageId, usedKeys);
  }
  return {
    imagesDir,
    entries,
    orphans: [...orphans.values()],
    unattached:
      unattached.length === 0
        ? null
        : { key: uniqueKey(`${keyPrefix}coco_orphan_invalid_image_id`, 'annotations', usedKeys), problems: unattached },
  };
}

/**
 * Images from all files, in file order. An id listed with the same file_name in both files is one image
 * (COCO's captions and instances files share their `images`); an id used again is a `key_duplicate`.
 */
function indexImages(
  files: CocoFile[],
  keyPrefix: string,
): { entries: CocoEntry[]; byId: Map<string, CocoEntry>; usedKeys: Set<string> } {
  const entries: CocoEntry[] = [];
  const byId = new Map<string, CocoEntry>();
  const firstWhere = new Map<string, string>();
  const slots: { entry: CocoEntry; base: string; id: string; first: boolean }[] = [];
  const listedBefore = new Set<string>();

  for (const file of files) {
    const occurrences = new Map<string, number>();
    const listedHere: string[] = [];
    for (const [i, raw] of file.images.entries()) {
      const image = checkImage(raw);
      // The n-th listing of the same image in an earlier file is that image again, not a duplicate.
      const identity = image.id === null ? `raw ${JSON.stringify(raw)}` : `id ${image.id} ${JSON.stringify(image.fileNameValue)}`;
      const n = (occurrences.get(identity) ?? 0) + 1;
      occurrences.set(identity, n);
      const listing = `${identity} #${n}`;
      listedHere.push(listing);
      if (listedBefore.has(listing)) continue;

      const where = `images[${i}] of ${file.label}`;
      const entry: CocoEntry = {
        key: '',
        fileName: image.fileName,
        width: image.width,
        height: image.height,
        meta: isRecord(raw) ? { ...raw } : {},
        captions: [],
        boxes: [],
        dropped: [],
        failure: null,
      };
      const first = image.id !== null && !byId.has(image.id);
      if (image.id !== null && !first) {
        const owner = byId.get(image.id)!;
        const ownerName = owner.fileName === null ? '' : `, "${owner.fileName}"`;
        entry.failure = failure(
          'key_duplicate',
          `${where}: image id ${image.id} repeats (first at ${firstWhere.get(image.id)}${ownerName}); its annotations stay with the first`,
        );
      } else if (image.problems.length > 0) {
        entry.failure = failure('row_invalid', `${where}: ${image.problems.join('; ')}`);
      }
      if (image.id !== null && first) {
        byId.set(image.id, entry);
        firstWhere.set(image.id, where);
      }
      const base =
        image.fileName !== null
          ? stripExtension(image.fileName)
          : image.id !== null
            ? `coco_image_${image.id}`
            : `coco_${file.option}_images_${i}`;
      slots.push({ entry, base, id: image.id ?? `${file.option}_images_${i}`, first });
      entries.push(entry);
    }
    for (const listing of listedHere) listedBefore.add(listing);
  }

  // First listings of an id take their keys first, so a bad or repeated entry never shifts a good image's key.
  const usedKeys = new Set<string>();
  for (const pass of [true, false]) {
    for (const slot of slots) {
      if (slot.first === pass) slot.entry.key = uniqueKey(keyPrefix + toKey(slot.base), slot.id, usedKeys);
    }
  }
  return { entries, byId, usedKeys };
}

function failure(code: FailureCode, message: string): SampleFailure {
  return { code, message, stage: STAGE };
}

async function readCocoJson<T>(file: string, option: string, schema: z.ZodType<T>, storage: StorageSettings | undefined): Promise<T> {
  const text = await readAnnotationText(file, option, storage);
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

async function readAnnotationText(file: string, option: string, storage: StorageSettings | undefined): Promise<string> {
  if (isRemote(file)) {
    const read = await readInputBytes(file, { maxBytes: Number.MAX_SAFE_INTEGER, what: 'file', storage });
    if (!read.ok) throw new ConfigError(`coco ${option}: ${read.problem === 'missing' ? `file "${file}" does not exist (${read.message})` : read.message}`);
    return read.bytes.toString('utf8');
  }
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    const missing = (err as NodeJS.ErrnoException).code === 'ENOENT';
    throw new ConfigError(
      `coco ${option}: ${missing ? `file "${file}" does not exist` : `cannot read "${file}": ${describeError(err)}`}`,
      { cause: err },
    );
  }
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
