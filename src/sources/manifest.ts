/**
 * Manifests: one row per image, from JSONL, CSV, TSV or Parquet (the row readers live in `jsonl.ts`,
 * `csv.ts`, `parquet.ts`). This file turns rows into pairs, the same way for every format:
 *
 * - key: the `key` column (made a valid key by `toKey`, the original kept as `meta.originalKey`), or
 *   `<keyPrefix><row:09d>` from the 0-based row number; `keyPrefix` defaults to `<source name>_`
 * - image: the `image` column, a path (relative to `imagesDir`, default the manifest's folder), a `file:`
 *   URL or an `http(s)://` URL, downloaded through the cache (`download` options), or an `s3://` object; a
 *   manifest read from `s3://` or `https://` has its relative paths read from the same place; in Parquet also the
 *   image bytes themselves, or a Hugging Face `{bytes, path}` struct (`image-cell.ts`)
 * - captions: the `caption` column, a string or a list of strings; an empty caption is kept (empty, not an
 *   error); absent or null means no caption
 * - boxes: the `boxes` column (see `manifest-boxes.ts`)
 * - meta: `row` (the row number), the `extra` columns as they are, and `url` / `finalUrl` for downloads
 *
 * Failures, each on its own pair so the run goes on:
 * - `row_invalid`: the row is broken (not JSON, broken quoting, the wrong number of fields), or a column
 *   it needs is missing or holds the wrong kind of value (an image column that is empty, bad boxes); the
 *   message gives the row number, the line and every problem found
 * - `key_duplicate`: the `key` column repeats a key; `key_collision`: two different keys become one key
 *   (`a b` and `a_b`); either way the later pair gets `KEY__dupN`
 * - `url_invalid`, `image_missing`, and the download codes of `images/url-fetcher.ts`
 * - `manifest_unreadable`: the file is damaged part-way (a gzip stream cut off, a Parquet row group that
 *   does not decode); one pair keyed `<prefix>_unreadable_<n>` records where, and reading stops or skips on
 *
 * Sharding and resume are decided on the key before any image is read or downloaded.
 */
import type { FailureCode } from '../core/failure-codes.js';
import path from 'node:path';
import { OPEN, toKey, type Box, type Caption, type CaptionOrigin, type Pair } from '../core/sample.js';
import { inShard } from '../core/shard.js';
import { captionFromBytes, captionFromString } from './caption-text.js';
import { DownloadCache, Downloader } from '../images/download-cache.js';
import { toJsonValue } from './json-value.js';
import { bytesAsText, readImageCell } from './image-cell.js';
import { loadImage, locationRef, SOURCE_STAGE, type ImageLocation, type LocalImages } from '../images/image-location.js';
import { imageRootsFor } from '../images/image-roots.js';
import { DEFAULT_MAX_FILE_BYTES } from '../images/local-file.js';
import { parquetImageRef } from '../images/image-ref.js';
import { collisionReason, KeyClaims } from './key-claims.js';
import { parseBoxes } from './manifest-boxes.js';
import type { ManifestOptions } from './manifest-options.js';
import { resolvePending, type Pending } from './pending-pairs.js';
import type { Source, SourceContext } from './source.js';
import { inputDir, resolveInput } from '../storage/input-path.js';
import type { StorageSettings } from '../storage/storage-settings.js';
import { UrlFetcher } from '../images/url-fetcher.js';

/** One row as a format reader gives it. */
export interface ManifestRow {
  /** 0-based data row number (header and blank lines not counted): the default key. */
  index: number;
  /** 1-based line where the row starts, for text formats. */
  line?: number;
  /** A column's value; undefined when the row does not have the column. CSV values are bytes. */
  get(column: string): unknown;
  /** What is wrong with the row as a whole, or null. */
  problem: string | null;
  /** The row's text was not valid UTF-8 (JSONL): its captions are kept but marked unusable. */
  invalidUtf8?: boolean;
}

/** A format's rows, or a damaged stretch of the file (yielded as a failed pair, then reading goes on). */
export type RowItem = ManifestRow | { unreadable: string };

/** What a format reader provides. */
export interface RowReader {
  /** Rows in file order. Throws `ConfigError` when the file cannot be opened or lacks a configured column. */
  rows(absPath: string, signal: AbortSignal, storage?: StorageSettings): AsyncIterable<RowItem>;
  /** Number of rows when cheaply known (Parquet metadata); null otherwise. */
  count?(absPath: string, storage?: StorageSettings): Promise<number | null>;
  /**
   * Throws the `ConfigError` that `rows` would (no file, no such column) without reading rows. Without it,
   * the first row is read to find out.
   */
  check?(absPath: string, storage?: StorageSettings): Promise<void>;
}

/** Loads in flight per download slot: room for requests waiting on a busy host not to idle the others. */
const WINDOW_PER_SLOT = 4;

/** `<prefix><row:09d>`: the default key. */
export function defaultRowKey(prefix: string, index: number): string {
  return `${prefix}${String(index).padStart(9, '0')}`;
}

export function keyPrefixFor(options: Pick<ManifestOptions, 'keyPrefix'>, name: string): string {
  return options.keyPrefix ?? `${toKey(name)}_`;
}

/** The download cache folder for these options and this context. */
export function downloadCacheDir(options: ManifestOptions, ctx: SourceContext): string {
  if (options.download.cacheDir !== undefined) return path.resolve(ctx.baseDir, options.download.cacheDir);
  const fromBuild = ctx.downloadCacheDir;
  return fromBuild ?? path.join(ctx.baseDir, '.vlcurate-downloads');
}

/** Build a `Source` for a manifest format. */
export function manifestSource(options: ManifestOptions, name: string, reader: RowReader): Source {
  return {
    name,
    read: (ctx) => readManifest(options, name, reader, ctx),
    count: async (ctx) => {
      // Called before the run starts: a missing file or column stops the build there, not midway.
      const absPath = resolveInput(options.path, ctx.baseDir);
      await (reader.check ? reader.check(absPath, ctx.storage) : readFirstRow(reader, absPath, ctx.storage));
      if (options.key !== undefined || reader.count === undefined) return null;
      const rows = await reader.count(absPath, ctx.storage);
      if (rows === null) return null;
      if (ctx.shard.count === 1) return rows;
      const prefix = keyPrefixFor(options, name);
      let inThisShard = 0;
      for (let i = 0; i < rows; i++) if (inShard(defaultRowKey(prefix, i), ctx.shard)) inThisShard++;
      return inThisShard;
    },
  };
}

async function readFirstRow(reader: RowReader, absPath: string, storage: StorageSettings | undefined): Promise<void> {
  const rows = reader.rows(absPath, new AbortController().signal, storage)[Symbol.asyncIterator]();
  try {
    await rows.next();
  } finally {
    await rows.return?.();
  }
}

export async function* readManifest(options: ManifestOptions, name: string, reader: RowReader, ctx: SourceContext): AsyncGenerator<Pair> {
  const manifestPath = resolveInput(options.path, ctx.baseDir);
  const imagesDir = options.imagesDir === undefined ? inputDir(manifestPath) : resolveInput(options.imagesDir, ctx.baseDir, 'imagesDir');
  const prefix = keyPrefixFor(options, name);
  const origin: CaptionOrigin = options.captionOrigin;
  let downloader: Downloader | null = null;
  const getDownloader = (): Downloader => {
    if (downloader === null) {
      const { cache, cacheDir: _cacheDir, ...fetchOptions } = options.download;
      downloader = new Downloader(new UrlFetcher(fetchOptions), cache ? new DownloadCache(downloadCacheDir(options, ctx)) : null);
    }
    return downloader;
  };
  const images: LocalImages = {
    dir: imagesDir,
    roots: await imageRootsFor(imagesDir, options, ctx.baseDir),
    maxBytes: ctx.maxFileBytes ?? DEFAULT_MAX_FILE_BYTES,
    storage: ctx.storage,
  };
  const seenKeys = options.key === undefined ? null : new KeyClaims();
  let unreadable = 0;

  async function* pending(): AsyncGenerator<Pending> {
    for await (const item of reader.rows(manifestPath, ctx.signal, ctx.storage)) {
      if (ctx.signal.aborted) return;
      if ('unreadable' in item) {
        const key = `${prefix}_unreadable_${unreadable++}`;
        yield {
          key,
          pair: {
            key,
            source: name,
            imageRef: `manifest:${manifestPath}`,
            imageBytes: null,
            captions: [],
            boxes: [],
            meta: {},
            fate: { kind: 'failed', code: 'manifest_unreadable', message: `${manifestPath}: ${item.unreadable}`, stage: SOURCE_STAGE },
          },
        };
        continue;
      }
      yield rowToPending(item);
    }
  }

  function rowToPending(row: ManifestRow): Pending {
    const where = row.line === undefined ? `row ${row.index}` : `row ${row.index} (line ${row.line})`;
    const problems: string[] = [];
    const meta: Record<string, unknown> = { row: row.index };

    // Key first: sharding and resume need nothing else.
    let key = defaultRowKey(prefix, row.index);
    let duplicate: { code: FailureCode; message: string } | null = null;
    if (options.key !== undefined) {
      const value = row.get(options.key);
      const text = value === undefined || value === null ? '' : textOf(value).trim();
      if (text.length === 0) {
        problems.push(value === undefined ? `missing column "${options.key}" (key)` : `column "${options.key}" (key) is empty`);
      } else {
        // Keys from a column are used as they are; only an explicit keyPrefix is prepended.
        const cleaned = toKey(text);
        if (cleaned !== text) meta['originalKey'] = text;
        const claim = seenKeys!.claim(`${options.keyPrefix ?? ''}${cleaned}`, text, options.keyPrefix ?? '');
        key = claim.key;
        if (claim.clash !== null) {
          meta['originalKey'] = text;
          duplicate =
            claim.clash.code === 'key_duplicate'
              ? { code: claim.clash.code, message: `key "${text}" was already used by an earlier row` }
              : { code: claim.clash.code, message: `column "${options.key}" (key): ${collisionReason(claim.clash.earlier, text, cleaned)}` };
        }
      }
    }
    // The rest of the row is parsed in `load`, which runs only for rows in this shard and not done
    // (`resolvePending` decides on the key), so skipping rows on resume costs little.
    const finalKey = key;
    const duplicateOf = duplicate;
    return { key, load: (signal) => rowToPair(row, finalKey, where, meta, problems, duplicateOf, signal) };
  }

  function rowToPair(
    row: ManifestRow,
    key: string,
    where: string,
    meta: Record<string, unknown>,
    problems: string[],
    duplicate: { code: FailureCode; message: string } | null,
    signal: AbortSignal,
  ): Promise<Pair | null> | Pair {
    const base: Pair = { key, source: name, imageRef: `manifest:${manifestPath}#${row.index}`, imageBytes: null, captions: [], boxes: [], meta, fate: OPEN };
    if (row.problem !== null) {
      // The row as a whole is broken: its columns cannot be trusted, so say only that.
      return { ...base, fate: { kind: 'failed', code: 'row_invalid', message: `${where} of ${manifestPath}: ${row.problem}`, stage: SOURCE_STAGE } };
    }

    let location: ImageLocation | null = null;
    let embedded: Buffer | null = null;
    const imageValue = row.get(options.image);
    const cell = imageValue === undefined ? null : readImageCell(imageValue, options.image, images);
    if (cell === null) problems.push(`missing column "${options.image}" (image)`);
    else if (cell.kind === 'problem') problems.push(cell.problem);
    else if (cell.kind === 'embedded') {
      embedded = cell.bytes;
      if (cell.path !== null) meta['imagePath'] = cell.path;
    } else {
      location = cell.location;
      if (location.kind === 'url') meta['url'] = location.url;
    }

    let captions: Caption[] = [];
    if (options.caption !== undefined) {
      const parsed = parseCaptions(row.get(options.caption), origin, row.invalidUtf8 === true);
      if ('problem' in parsed) problems.push(`column "${options.caption}" (caption) ${parsed.problem}`);
      else captions = parsed.captions;
    }

    let boxes: Box[] = [];
    if (options.boxes !== undefined) {
      const parsed = parseBoxes(row.get(options.boxes), options.boxFormat);
      if ('problem' in parsed) problems.push(`column "${options.boxes}": ${parsed.problem}`);
      else boxes = parsed.boxes;
    }

    for (const column of options.extra) {
      const value = row.get(column);
      if (value !== undefined) meta[column] = toJsonValue(value instanceof Uint8Array ? (bytesAsText(value) ?? value) : value);
    }

    const imageRef = embedded !== null ? parquetImageRef(manifestPath, row.index, options.image) : location !== null ? locationRef(location) : base.imageRef;
    const pair: Pair = { ...base, imageRef, captions, boxes, meta };
    if (problems.length > 0) {
      return { ...pair, fate: { kind: 'failed', code: 'row_invalid', message: `${where} of ${manifestPath}: ${problems.join('; ')}`, stage: SOURCE_STAGE } };
    }
    if (duplicate !== null) {
      return { ...pair, fate: { kind: 'failed', code: duplicate.code, message: `${where} of ${manifestPath}: ${duplicate.message}`, stage: SOURCE_STAGE } };
    }
    if (embedded !== null) return { ...pair, imageBytes: embedded };
    return loadImage(pair, location!, getDownloader, signal, images);
  }

  try {
    yield* resolvePending(pending(), ctx, {
      concurrency: options.download.concurrency * WINDOW_PER_SLOT,
      ordered: options.order === 'input',
    });
  } finally {
    (downloader as Downloader | null)?.fetcher.close();
  }
}

/** Text of a scalar cell: bytes as UTF-8, numbers and booleans as written. */
function textOf(value: unknown): string {
  if (value instanceof Uint8Array) return Buffer.from(value.buffer, value.byteOffset, value.length).toString('utf8');
  if (typeof value === 'string') return value;
  return String(value);
}

function parseCaptions(value: unknown, origin: CaptionOrigin, invalidUtf8: boolean): { captions: Caption[] } | { problem: string } {
  if (value === undefined || value === null) return { captions: [] };
  const one = (item: unknown): Caption | null => {
    if (Buffer.isBuffer(item)) return captionFromBytes(item, origin);
    if (item instanceof Uint8Array) return captionFromBytes(item, origin);
    if (typeof item === 'string') {
      const caption = captionFromString(item, origin);
      return invalidUtf8 ? { ...caption, issue: 'invalid_utf8', usable: false } : caption;
    }
    if (typeof item === 'number' || typeof item === 'bigint' || typeof item === 'boolean') return captionFromString(String(item), origin);
    return null;
  };
  if (Array.isArray(value)) {
    const captions: Caption[] = [];
    for (const [i, item] of value.entries()) {
      if (item === null || item === undefined) continue;
      const caption = one(item);
      if (caption === null) return { problem: `holds ${describeKind(item)} at position ${i}, expected strings` };
      captions.push(caption);
    }
    return { captions };
  }
  const caption = one(value);
  return caption === null ? { problem: `holds ${describeKind(value)}, expected a string or a list of strings` } : { captions: [caption] };
}

function describeKind(value: unknown): string {
  if (value instanceof Uint8Array) return `binary data (${value.length} bytes)`;
  if (Array.isArray(value)) return 'a list';
  if (value === null) return 'null';
  return typeof value === 'object' ? 'an object' : `a ${typeof value}`;
}

