/**
 * The folders a source's local image references must stay in (`imageRoots`, `allowAbsolutePaths`: see
 * `sources/common-options.ts`). A reference is checked twice: its path as written, resolved against the
 * images folder (`..` and absolute paths that leave every folder are refused before anything is opened),
 * and the real file it leads to, symbolic links followed (`local-file.ts`, with the folders' real paths).
 */
import { isRemote } from '../storage/location.js';
import { isInsideInput, resolveInput } from '../storage/input-path.js';
import { realFolders } from './local-file.js';

export interface ImageRoots {
  /** The folders as configured, absolute (or remote: `s3://bucket/prefix`, `https://host/path`). */
  readonly folders: readonly string[];
  /** The local folders with symbolic links resolved. */
  readonly real: readonly string[];
}

/** The roots for a source whose own folder is `ownFolder`; null when `allowAbsolutePaths` lifts the limit. */
export async function imageRootsFor(
  ownFolder: string,
  options: { imageRoots: readonly string[]; allowAbsolutePaths: boolean },
  baseDir: string,
): Promise<ImageRoots | null> {
  if (options.allowAbsolutePaths) return null;
  const folders = [resolveInput(ownFolder, baseDir), ...options.imageRoots.map((root, i) => resolveInput(root, baseDir, `imageRoots[${i}]`))];
  return { folders, real: await realFolders(folders.filter((folder) => !isRemote(folder))) };
}

/** Null when `file` (absolute, or remote) lies in one of the folders as written; else why it may not be read. */
export function outsideRoots(file: string, roots: ImageRoots | null, written: string): string | null {
  if (roots === null || roots.folders.some((folder) => isInsideInput(file, folder))) return null;
  const shown = written.length > 200 ? `${written.slice(0, 197)}...` : written;
  return `image path ${JSON.stringify(shown)} points outside the folders this source may read (${roots.folders.join(', ')}); list its folder in imageRoots, or set allowAbsolutePaths: true`;
}
