/**
 * `type: folder`: a folder of images with optional sidecar files, the layout of many fine-tuning sets:
 *
 * ```
 * photos/cat.jpg  photos/cat.txt   (caption)
 * photos/dog.png  photos/dog.json  (metadata; its `caption` field, a string or a list, is used when there is no .txt)
 * photos/sub/bird.webp
 * ```
 *
 * - Traversal is sorted (by name, code-unit order, files and folders together) and depth-first, so the
 *   order and the keys are the same on every machine. Hidden entries (`.name`) are skipped; symbolic links
 *   to files are read, links to folders are not followed (no cycles). A link that leads out of the folder
 *   (and `imageRoots`) is `image_path_invalid`, unless `allowAbsolutePaths` is set.
 * - Images are files whose extension is in `extensions` (case-insensitive).
 * - Key: the path relative to the folder without its extension, made a valid key by `toKey`
 *   (`sub/bird.webp` -> `sub_bird`). When two files map to the same key (`a.jpg`, `a.png`) the later one
 *   in traversal order keeps its extension (`a_png`), then gets `__2`, `__3`.
 * - meta: the sidecar JSON's fields, and `path` (the relative path).
 *
 * Failures: `json_invalid` (a sidecar that is not a JSON object, or not a regular file), `caption_unreadable`
 * (a `.txt` sidecar that is not a regular file or is over `decode.maxBytes`), `image_missing` (the file
 * vanished since the listing), `image_unreadable` (not a regular file), `image_too_large` (over
 * `decode.maxBytes`). The folder itself missing is a configuration error.
 */
import type { FailureCode } from '../core/failure-codes.js';
import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { localPathSchema } from '../storage/input-path.js';
import { ConfigError, describeError } from '../core/errors.js';
import { OPEN, toKey, type Caption, type Pair } from '../core/sample.js';
import { inShard } from '../core/shard.js';
import { captionFromBytes, captionFromString } from './caption-text.js';
import { keyPrefixSchema, localPathFields, sourceNameSchema } from './common-options.js';
import { imageRootsFor, type ImageRoots } from '../images/image-roots.js';
import { SOURCE_STAGE } from '../images/image-location.js';
import { DEFAULT_MAX_FILE_BYTES, imageFileCode, readLocalFile } from '../images/local-file.js';
import { resolvePending, type Pending } from './pending-pairs.js';
import type { Source, SourceContext, SourceType } from './source.js';

export const DEFAULT_IMAGE_EXTENSIONS = ['jpg', 'jpeg', 'png', 'webp', 'gif', 'tif', 'tiff', 'avif', 'heic', 'heif', 'jxl', 'jp2'] as const;

export const folderOptionsSchema = z
  .object({
    type: z.literal('folder'),
    name: sourceNameSchema.optional(),
    /** The folder, relative to the recipe's folder (local only: object stores have prefixes, not folders). */
    path: localPathSchema('a folder source reads a local folder; for images in object storage write a manifest (jsonl, csv, parquet) that lists them, or use WebDataset shards'),
    /** Descend into sub-folders. Default true. */
    recursive: z.boolean().default(true),
    /** Image file extensions, without the dot, case-insensitive. Default jpg jpeg png webp gif tif tiff avif heic heif jxl jp2. */
    extensions: z.array(z.string().regex(/^[A-Za-z0-9]+$/, 'expected an extension without the dot, e.g. "jpg"')).min(1).default([...DEFAULT_IMAGE_EXTENSIONS]),
    /** Origin recorded on sidecar captions. Default `web`; `annotation` for human-written captions. */
    captionOrigin: z.enum(['web', 'annotation']).default('web'),
    /** Prepended to every key (default none). */
    keyPrefix: keyPrefixSchema.optional(),
    /** Images read at once. Default 8. */
    concurrency: z.number().int().min(1).default(8),
    /** Symbolic links may lead into these folders too; `allowAbsolutePaths`: anywhere. Default: the folder only. */
    ...localPathFields,
  })
  .strict();

export type FolderOptions = z.infer<typeof folderOptionsSchema>;

/** One image found by the walk, with its sidecars. */
export interface FolderEntry {
  key: string;
  /** Relative path with `/` separators. */
  relative: string;
  absolute: string;
  txt: string | null;
  json: string | null;
}

export const folderSource = {
  type: 'folder',
  schema: folderOptionsSchema,
  create(options: FolderOptions, name: string): Source {
    return {
      name,
      read: (ctx) => readFolder(options, name, ctx),
      count: async (ctx) => {
        let n = 0;
        for await (const entry of listFolder(options, ctx.baseDir)) if (inShard(entry.key, ctx.shard)) n++;
        return n;
      },
    };
  },
} satisfies SourceType<FolderOptions>;

/** The folder's images in sorted depth-first order, with unique keys. */
export async function* listFolder(options: FolderOptions, baseDir: string): AsyncGenerator<FolderEntry> {
  const root = path.resolve(baseDir, options.path);
  try {
    if (!(await stat(root)).isDirectory()) throw new Error('not a folder');
  } catch {
    throw new ConfigError(`folder path: expected a folder of images, got "${root}", which is not a folder`);
  }
  const extensions = new Set(options.extensions.map((e) => e.toLowerCase()));
  const used = new Set<string>();
  const prefix = options.keyPrefix ?? '';

  async function* walk(dir: string, relativeDir: string): AsyncGenerator<FolderEntry> {
    let entries;
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch {
      return; // a sub-folder that cannot be listed holds nothing we can read
    }
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    const names = new Set(entries.map((e) => e.name));
    for (const entry of entries) {
      if (entry.name.startsWith('.')) continue;
      const absolute = path.join(dir, entry.name);
      const relative = relativeDir === '' ? entry.name : `${relativeDir}/${entry.name}`;
      let isFile = entry.isFile();
      if (entry.isDirectory()) {
        if (options.recursive) yield* walk(absolute, relative);
        continue;
      }
      if (entry.isSymbolicLink()) {
        try {
          isFile = (await stat(absolute)).isFile();
        } catch {
          isFile = false;
        }
      }
      if (!isFile) continue;
      const dot = entry.name.lastIndexOf('.');
      if (dot <= 0 || !extensions.has(entry.name.slice(dot + 1).toLowerCase())) continue;
      const stem = entry.name.slice(0, dot);
      const stemRelative = relative.slice(0, relative.length - (entry.name.length - dot));
      let key = prefix + toKey(stemRelative);
      if (used.has(key)) key = prefix + toKey(relative);
      if (used.has(key)) {
        let n = 2;
        while (used.has(`${key}__${n}`)) n++;
        key = `${key}__${n}`;
      }
      used.add(key);
      yield {
        key,
        relative,
        absolute,
        txt: names.has(`${stem}.txt`) ? path.join(dir, `${stem}.txt`) : null,
        json: names.has(`${stem}.json`) ? path.join(dir, `${stem}.json`) : null,
      };
    }
  }
  yield* walk(root, '');
}

async function* readFolder(options: FolderOptions, name: string, ctx: SourceContext): AsyncGenerator<Pair> {
  const reads: FolderReads = {
    maxBytes: ctx.maxFileBytes ?? DEFAULT_MAX_FILE_BYTES,
    roots: (await imageRootsFor(path.resolve(ctx.baseDir, options.path), options, ctx.baseDir))?.real ?? null,
  };
  async function* pending(): AsyncGenerator<Pending> {
    for await (const entry of listFolder(options, ctx.baseDir)) {
      yield { key: entry.key, load: () => loadEntry(entry, name, options.captionOrigin, reads) };
    }
  }
  yield* resolvePending(pending(), ctx, { concurrency: options.concurrency, ordered: true });
}

/** Most bytes per file, and the real folders files (symbolic links followed) must be in (null: anywhere). */
interface FolderReads {
  maxBytes: number;
  roots: ImageRoots['real'] | null;
}

async function loadEntry(entry: FolderEntry, source: string, origin: 'web' | 'annotation', reads: FolderReads): Promise<Pair> {
  const { maxBytes, roots } = reads;
  const pair: Pair = {
    key: entry.key,
    source,
    imageRef: `file:${entry.absolute}`,
    imageBytes: null,
    captions: [],
    boxes: [],
    meta: { path: entry.relative },
    fate: OPEN,
  };
  const fail = (code: FailureCode, message: string): Pair => ({ ...pair, imageBytes: null, fate: { kind: 'failed', code, message, stage: SOURCE_STAGE } });

  let meta: Record<string, unknown> = {};
  if (entry.json !== null) {
    const read = await readLocalFile(entry.json, { maxBytes, roots, what: 'sidecar' });
    if (!read.ok) return fail('json_invalid', read.message);
    try {
      const parsed: unknown = JSON.parse(read.bytes.toString('utf8'));
      if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
        return fail('json_invalid', `sidecar ${entry.json} holds ${Array.isArray(parsed) ? 'a list' : JSON.stringify(parsed)}, expected an object`);
      }
      meta = parsed as Record<string, unknown>;
    } catch (err) {
      return fail('json_invalid', `sidecar ${entry.json} is not valid JSON: ${describeError(err)}`);
    }
  }
  pair.meta = { ...meta, path: entry.relative };

  const captions: Caption[] = [];
  let txtMissing = false;
  if (entry.txt !== null) {
    const read = await readLocalFile(entry.txt, { maxBytes, roots, what: 'sidecar' });
    if (read.ok) captions.push(captionFromBytes(read.bytes, origin));
    else if (read.problem === 'missing') txtMissing = true; // vanished since the listing: fall back to the JSON caption
    else return fail('caption_unreadable', read.message);
  }
  if (entry.txt === null || txtMissing) {
    const fromJson = meta['caption'];
    if (typeof fromJson === 'string') captions.push(captionFromString(fromJson, origin));
    else if (Array.isArray(fromJson)) for (const c of fromJson) if (typeof c === 'string') captions.push(captionFromString(c, origin));
  }
  pair.captions = captions;

  const read = await readLocalFile(entry.absolute, { maxBytes, roots, what: 'image file' });
  if (!read.ok) return fail(imageFileCode(read.problem), read.message);
  return { ...pair, imageBytes: read.bytes };
}
