/**
 * Options every manifest type (`jsonl`, `csv`, `tsv`, `parquet`) shares: which columns hold the image,
 * caption, key, boxes and extra metadata, and how URLs are downloaded. Each type's schema extends
 * `manifestFields` with its `type` literal and its own options.
 */
import { z } from 'zod';
import { keyPrefixSchema, localPathFields, sourceNameSchema } from './common-options.js';
import { fetchOptionsSchema } from '../images/url-fetcher.js';
import { inputPathSchema } from '../storage/input-path.js';

const columnSchema = z.string().min(1, 'expected a column name');

/** How URL images are downloaded and cached (see `images/url-fetcher.ts` and `images/download-cache.ts`). */
export const downloadOptionsSchema = fetchOptionsSchema
  .extend({
    /** Keep downloads (and permanent failures) in a content-addressed cache on disk. Default true. */
    cache: z.boolean().default(true),
    /**
     * Cache folder, relative to the recipe's folder. Default: the folder the build gives sources
     * (`downloads/` next to the run database), else `.vlcurate-downloads/` in the recipe's folder.
     */
    cacheDir: z.string().min(1).optional(),
  })
  .strict();

export type DownloadOptions = z.infer<typeof downloadOptionsSchema>;

export const manifestFields = {
  name: sourceNameSchema.optional(),
  /**
   * The manifest file, relative to the recipe's folder, or an `s3://` / `https://` URL (streamed; Parquet is
   * read by byte ranges). Text formats may be gzip-compressed (`.gz`).
   */
  path: inputPathSchema,
  /**
   * Column holding the image: a path (relative to `imagesDir`), an `http(s)://` URL, or a `file:` URL; in
   * Parquet also the image bytes, or a `{bytes, path}` struct (see `image-cell.ts`).
   */
  image: columnSchema,
  /** Column holding the caption: a string, or a list of strings for several captions. Optional. */
  caption: columnSchema.optional(),
  /** Origin recorded on the captions. Default `web` (alt-text); `annotation` for human-written captions. */
  captionOrigin: z.enum(['web', 'annotation']).default('web'),
  /**
   * Column holding the sample key (made a valid key by `toKey`). Default: none; the key is
   * `<keyPrefix><row:09d>`, the 0-based row number, which is stable as long as the file is.
   */
  key: columnSchema.optional(),
  /** Prepended to every key. Default: the source name and `_` (`laion-0_000000042`). */
  keyPrefix: keyPrefixSchema.optional(),
  /**
   * Column holding boxes: a JSON list (or a JSON string of one) of `{label, box}` (or `{label, bbox}`)
   * objects, the four numbers in the frame `boxFormat` says. Optional.
   */
  boxes: columnSchema.optional(),
  /** `xyxy`: `[x1, y1, x2, y2]` pixels (default); `coco`: `[x, y, width, height]` pixels. */
  boxFormat: z.enum(['xyxy', 'coco']).default('xyxy'),
  /** Columns carried into the sample's metadata as they are. Default none. */
  extra: z.array(columnSchema).default([]),
  /**
   * Folder relative image paths resolve against (relative to the recipe's folder). Default: the manifest's
   * folder. Local image paths must stay in it (or in `imageRoots`) unless `allowAbsolutePaths` is set.
   */
  imagesDir: inputPathSchema.optional(),
  ...localPathFields,
  /**
   * Order pairs come out in. `completion` (default): as their images arrive, so one slow download never
   * holds the others back. `input`: manifest order, for reproducible shard layouts (a slow download then
   * stalls the window of `4 x download.concurrency` images behind it).
   */
  order: z.enum(['completion', 'input']).default('completion'),
  /** URL downloading; used only when the image column holds URLs. */
  download: downloadOptionsSchema.prefault({}),
};

/** The parsed shared fields, as the manifest reader sees them. */
export interface ManifestOptions {
  type: string;
  name?: string | undefined;
  path: string;
  image: string;
  caption?: string | undefined;
  captionOrigin: 'web' | 'annotation';
  key?: string | undefined;
  keyPrefix?: string | undefined;
  boxes?: string | undefined;
  boxFormat: 'xyxy' | 'coco';
  extra: string[];
  imagesDir?: string | undefined;
  imageRoots: string[];
  allowAbsolutePaths: boolean;
  order: 'completion' | 'input';
  download: DownloadOptions;
}

/** The columns a manifest reads, in a fixed order (for parquet column selection and header checks). */
export function manifestColumns(options: ManifestOptions): { option: string; column: string }[] {
  const columns: { option: string; column: string }[] = [{ option: 'image', column: options.image }];
  if (options.caption !== undefined) columns.push({ option: 'caption', column: options.caption });
  if (options.key !== undefined) columns.push({ option: 'key', column: options.key });
  if (options.boxes !== undefined) columns.push({ option: 'boxes', column: options.boxes });
  for (const column of options.extra) columns.push({ option: 'extra', column });
  return columns;
}
