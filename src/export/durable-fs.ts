import { existsSync } from 'node:fs';
import { link, open, readdir, rename, rm, unlink, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { isBeingWritten, markWriting, parseTmpName, uniqueTmpPath } from '../core/temp-file.js';
import { VlcurateError } from '../core/errors.js';

/** fsync a folder, so that renames and deletions in it survive an OS crash. */
export async function syncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * Replace a file whole or not at all: write a temporary file of this process's own (`core/temp-file.ts`),
 * fsync it, rename it over `PATH`. Two processes writing the same file never write into each other's
 * temporary file; the last rename wins. What killed writers of `PATH` left is removed first.
 */
export async function writeFileAtomically(path: string, text: string): Promise<void> {
  await removeLeftoverTmps(path);
  const tmp = uniqueTmpPath(path);
  const done = markWriting(tmp);
  try {
    await writeFile(tmp, text, { flush: true });
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  } finally {
    done();
  }
}

/** Delete the temporary files (`core/temp-file.ts`) for `path` that no live process is writing. */
async function removeLeftoverTmps(path: string): Promise<void> {
  let entries: string[];
  try {
    entries = await readdir(dirname(path));
  } catch {
    return;
  }
  for (const entry of entries) {
    const tmp = join(dirname(path), entry);
    if (parseTmpName(entry)?.target === basename(path) && !isBeingWritten(tmp)) await rm(tmp, { force: true });
  }
}

/**
 * Rename `from` to `to` unless `to` exists: a file another process put there is never replaced. A hard link
 * is created first (it fails when `to` exists), then `from` is unlinked. Where the file system has no hard
 * links, a plain rename after a check (which leaves a moment for a race).
 */
export async function renameNoReplace(from: string, to: string): Promise<void> {
  try {
    await link(from, to);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') throw new FileExistsError(to, { cause: err });
    if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP' && code !== 'ENOSYS') throw err;
    if (existsSync(to)) throw new FileExistsError(to);
    await rename(from, to);
    return;
  }
  await unlink(from);
}

/** `renameNoReplace` found its target taken. */
export class FileExistsError extends VlcurateError {
  constructor(
    readonly path: string,
    options?: { cause?: unknown },
  ) {
    // The errno code, so code that tests `code === 'EEXIST'` treats it like the system error it stands for.
    super('EEXIST', `${path} already exists`, options);
  }
}
