/**
 * Where a manifest or LLaVA record says an image is, and reading it from there: a local path (relative to
 * an images folder), a `file:` URL, or an `http(s)://` URL that is downloaded; an `s3://` reference, or a
 * relative path under a remote images folder (`s3://bucket/data/` or `https://host/data/`), is an object
 * read from that store (`input-file.ts`).
 *
 * - `http://` / `https://` values must parse as URLs with a host, else `url_invalid`
 * - any other scheme (`ftp:`, `data:`) is `url_invalid`; `file:` URLs are read as local paths
 * - an `s3://` reference must lie in the source's folders like an absolute path (its images folder when
 *   that is on S3, or an `imageRoots` entry such as `s3://bucket/images`), unless `allowAbsolutePaths`;
 *   a missing object is `image_missing`, refused credentials `storage_denied`, a connection that keeps
 *   failing `storage_interrupted`
 * - a path that cannot exist (a NUL byte) or a file that is missing or a folder is `image_missing`; a
 *   FIFO, a device or a socket (only regular files are read: `local-file.ts`), a permission or I/O error
 *   is `image_unreadable`; a file over `decode.maxBytes` is `image_too_large`, refused from its size
 * - a path (relative, absolute or a `file:` URL) that leads out of the source's folders (`../x.jpg`,
 *   `/etc/passwd`, a symbolic link to a file elsewhere) is `image_path_invalid`, unless the source lists
 *   the place in `imageRoots` or sets `allowAbsolutePaths` (`image-roots.ts`)
 */
import type { FailureCode } from '../core/failure-codes.js';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describeError } from '../core/errors.js';
import type { Pair } from '../core/sample.js';
import type { Downloader } from './download-cache.js';
import { isRemote } from '../storage/location.js';
import { inputPathProblem, resolveAgainst } from '../storage/input-path.js';
import type { StorageSettings } from '../storage/storage-settings.js';
import { outsideRoots, type ImageRoots } from './image-roots.js';
import { inputFailureCode, readInputBytes } from './input-file.js';
import { DownloadAbortedError, parseHttpUrl } from './url-fetcher.js';

export type ImageLocation =
  | { kind: 'url'; url: string }
  | { kind: 'file'; path: string }
  /** An object in S3-compatible storage or under a remote images folder, by its name (`s3://b/k`, `https://h/p`). */
  | { kind: 'object'; name: string }
  | { kind: 'invalid'; code: 'url_invalid' | 'image_missing' | 'image_path_invalid'; message: string; ref: string };

/** Stage recorded on failures sources produce. */
export const SOURCE_STAGE = 'source';

const SCHEME = /^([A-Za-z][A-Za-z0-9+.-]+):/;

/** Where a source's local images are and how they may be read. */
export interface LocalImages {
  /** Folder relative references resolve against: a local path, or `s3://bucket/prefix`, `https://host/path`. */
  dir: string;
  /** Folders references must stay in (`imageRoots`); null when `allowAbsolutePaths` lifts the limit. */
  roots: ImageRoots | null;
  /** Most bytes one image file may have (`decode.maxBytes`). */
  maxBytes: number;
  /** How `s3://` images are reached (the recipe's `storage`). */
  storage?: StorageSettings | undefined;
}

export function locateImage(raw: string, images: LocalImages): ImageLocation {
  const value = raw.trim();
  const scheme = SCHEME.exec(value)?.[1]?.toLowerCase();
  if (scheme === 'http' || scheme === 'https') {
    const parsed = parseHttpUrl(value);
    return parsed.ok ? { kind: 'url', url: value } : { kind: 'invalid', code: 'url_invalid', message: parsed.message, ref: `url:${value}` };
  }
  if (scheme === 's3') {
    const problem = inputPathProblem(value);
    if (problem !== null) return { kind: 'invalid', code: 'url_invalid', message: problem, ref: `url:${value}` };
    // `..` is applied before the check (`s3://b/images/../secret` is `s3://b/secret`), as for local paths:
    // some S3-compatible servers would apply it themselves.
    const bucket = /^s3:\/\/([^/]*)/i.exec(value)![1]!;
    const name = resolveAgainst(`s3://${bucket}`, value.slice(`s3://${bucket}`.length).replace(/^\/+/, ''));
    const outside = outsideRoots(name, images.roots, value);
    if (outside !== null) return { kind: 'invalid', code: 'image_path_invalid', message: outside, ref: `url:${name}` };
    return { kind: 'object', name };
  }
  let file: string;
  if (scheme === 'file') {
    try {
      file = fileURLToPath(value);
    } catch (err) {
      return { kind: 'invalid', code: 'url_invalid', message: `${value} is not a usable file: URL: ${describeError(err)}`, ref: `url:${value}` };
    }
  } else if (scheme !== undefined) {
    // Two letters or more, so not a Windows drive (`C:`).
    return { kind: 'invalid', code: 'url_invalid', message: `only http:, https: and file: URLs can be read, got ${scheme}: in ${clip(value)}`, ref: `url:${value}` };
  } else {
    file = value;
  }
  if (file.includes('\0')) {
    return { kind: 'invalid', code: 'image_missing', message: `image path ${JSON.stringify(clip(value))} contains a NUL byte`, ref: `file:${value}` };
  }
  if (isRemote(images.dir)) {
    // A relative path under a remote images folder names an object next to the manifest.
    if (path.isAbsolute(file)) {
      return { kind: 'invalid', code: 'image_path_invalid', message: `image path ${JSON.stringify(clip(value))} is absolute, but the images folder ${images.dir} is remote`, ref: `file:${value}` };
    }
    const name = resolveAgainst(images.dir, file);
    const outside = outsideRoots(name, images.roots, value);
    if (outside !== null) return { kind: 'invalid', code: 'image_path_invalid', message: outside, ref: `url:${name}` };
    return { kind: 'object', name };
  }
  const resolved = path.resolve(images.dir, file);
  // Relative paths, absolute paths and file: URLs alike must stay in the source's folders (`../../etc/passwd`
  // and `/home/me/.ssh/id_rsa` are refused, as COCO file names leaving the images folder are).
  const outside = outsideRoots(resolved, images.roots, value);
  if (outside !== null) return { kind: 'invalid', code: 'image_path_invalid', message: outside, ref: `file:${resolved}` };
  return { kind: 'file', path: resolved };
}

/** The pair's imageRef before its image is read (what failures record). */
export function locationRef(location: ImageLocation): string {
  switch (location.kind) {
    case 'url':
      return `url:${location.url}`;
    case 'file':
      return `file:${location.path}`;
    case 'object':
      return `file:${location.name}`;
    case 'invalid':
      return location.ref;
  }
}

/**
 * Fill `pair.imageBytes` from `location`, or set its failure. Resolves to null when `signal` aborted the
 * download (the pair is not finished and must not be yielded).
 */
export async function loadImage(
  pair: Pair,
  location: ImageLocation,
  downloader: () => Downloader,
  signal: AbortSignal,
  images: LocalImages,
): Promise<Pair | null> {
  const fail = (code: FailureCode, message: string): Pair => ({ ...pair, imageBytes: null, fate: { kind: 'failed', code, message, stage: SOURCE_STAGE } });
  if (location.kind === 'invalid') return fail(location.code, location.message);
  if (location.kind === 'file' || location.kind === 'object') {
    const name = location.kind === 'file' ? location.path : location.name;
    const read = await readInputBytes(name, { maxBytes: images.maxBytes, roots: images.roots?.real ?? null, what: 'image file', storage: images.storage });
    if (!read.ok) return fail(inputFailureCode(read.problem), read.message);
    return { ...pair, imageRef: `file:${name}`, imageBytes: read.bytes };
  }
  try {
    const result = await downloader().download(location.url, signal);
    if (!result.ok) return fail(result.code, result.message);
    const meta = result.finalUrl === location.url ? pair.meta : { ...pair.meta, finalUrl: result.finalUrl };
    return { ...pair, imageRef: result.path === null ? `url:${location.url}` : `file:${result.path}`, imageBytes: result.bytes, meta };
  } catch (err) {
    if (err instanceof DownloadAbortedError || signal.aborted) return null;
    return fail('connection_failed', `downloading ${location.url} failed unexpectedly: ${describeError(err)}`);
  }
}

function clip(text: string): string {
  return text.length > 200 ? `${text.slice(0, 197)}...` : text;
}
