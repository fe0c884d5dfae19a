/**
 * Reading one local file that an input names (an image path in a manifest, a folder's image or sidecar, a
 * COCO `file_name`, a `file:` reference in the run database), bounded:
 *
 * - only a regular file: the type is checked on the path (a device or FIFO is never opened) and again with
 *   `fstat` on the open descriptor, so a path swapped for a FIFO or a device between the check and the
 *   read cannot slip through; the open uses `O_NONBLOCK`, so even then it never waits for a FIFO's writer
 *   (`/dev/zero`, a FIFO, a socket, a folder are refused unread);
 * - never more than `maxBytes`: the size is checked before any byte is read, and the read stops at
 *   `maxBytes + 1` bytes in case the file grows (or lies about its size, as `/proc` files do);
 * - optionally confined to folders (`roots`): the path's real location (symbolic links followed) must lie
 *   inside one of them, checked before opening and again on what the descriptor opened (`/proc/self/fd`
 *   where there is one), so the check is on the file that is read.
 *
 * Never throws: every problem is a `LocalFileProblem` with a message that names the path.
 */
import { constants, type ReadStream, type Stats } from 'node:fs';
import { open, readlink, realpath, stat, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { describeError } from '../core/errors.js';

/** Default `decode.maxBytes`: most bytes one image file (or tar member, or sidecar) may have. 64 MiB. */
export const DEFAULT_MAX_FILE_BYTES = 64 * 1024 * 1024;

export type LocalFileProblem =
  /** No such file (or a path that cannot exist). */
  | 'missing'
  /** A folder. */
  | 'folder'
  /** A FIFO, a character or block device, a socket. */
  | 'not_a_file'
  /** Larger than `maxBytes`. */
  | 'too_large'
  /** Outside every allowed folder (after following symbolic links). */
  | 'outside'
  /** Permission or I/O error. */
  | 'unreadable';

export type LocalFileResult = { ok: true; bytes: Buffer } | { ok: false; problem: LocalFileProblem; message: string };

export interface LocalFileOptions {
  maxBytes: number;
  /** Real paths (symbolic links resolved) of the folders the file must be in; null: anywhere. */
  roots?: readonly string[] | null;
  /** Names the file in messages, e.g. `image file`. */
  what?: string;
}

const MISSING_CODES = new Set(['ENOENT', 'ENOTDIR', 'ENAMETOOLONG', 'EINVAL', 'ELOOP']);
/** Read in pieces of at most this much when the size is unknown or the file grows. */
const CHUNK = 1024 * 1024;

/**
 * Open `file` for reading if it is a regular file, else say why not. The type is checked on the path first
 * (so a device or FIFO is never even opened: opening some devices has effects) and again with `fstat` on
 * the descriptor (so a path swapped between the two checks cannot slip through). The caller closes the handle.
 */
export async function openRegularFile(file: string, what = 'file'): Promise<{ ok: true; handle: FileHandle; size: number } | { ok: false; problem: LocalFileProblem; message: string }> {
  const fail = (problem: LocalFileProblem, message: string) => ({ ok: false as const, problem, message });
  if (file.includes('\0')) return fail('missing', `${what} path ${JSON.stringify(file)} contains a NUL byte`);
  const typeProblem = (info: Stats) =>
    info.isDirectory()
      ? fail('folder', `${what} ${file} is a folder, not a file`)
      : !info.isFile()
        ? fail('not_a_file', `${what} ${file} is not a regular file (${fileKind(info)}); only regular files are read`)
        : null;
  const openProblem = (err: unknown) => {
    const code = (err as NodeJS.ErrnoException).code ?? '';
    if (MISSING_CODES.has(code)) return fail('missing', `${what} ${file} does not exist`);
    if (code === 'EISDIR') return fail('folder', `${what} ${file} is a folder, not a file`);
    if (code === 'ENXIO') return fail('not_a_file', `${what} ${file} is not a regular file (a socket or a device with nothing behind it)`);
    return fail('unreadable', `${what} ${file} cannot be read: ${describeError(err)}`);
  };
  try {
    const before = typeProblem(await stat(file));
    if (before !== null) return before;
  } catch (err) {
    return openProblem(err);
  }
  let handle: FileHandle;
  try {
    // O_NONBLOCK: should the path have become a FIFO since the check, opening it must not wait for a writer.
    handle = await open(file, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY);
  } catch (err) {
    return openProblem(err);
  }
  try {
    const info = await handle.stat();
    const problem = typeProblem(info);
    if (problem === null) return { ok: true, handle, size: info.size };
    await handle.close();
    return problem;
  } catch (err) {
    await handle.close().catch(() => undefined);
    return fail('unreadable', `${what} ${file} cannot be read: ${describeError(err)}`);
  }
}

/**
 * Open a regular file as a byte stream (a shard, a manifest), and tell whether it starts like gzip. The
 * stream closes the file when it ends or is destroyed.
 */
export async function openRegularStream(file: string, what = 'file'): Promise<{ ok: true; stream: ReadStream; gzip: boolean } | { ok: false; problem: LocalFileProblem; message: string }> {
  const opened = await openRegularFile(file, what);
  if (!opened.ok) return opened;
  const { handle } = opened;
  try {
    const magic = Buffer.alloc(2);
    const { bytesRead } = await handle.read(magic, 0, 2, 0);
    const gzip = bytesRead === 2 && magic[0] === 0x1f && magic[1] === 0x8b;
    return { ok: true, stream: handle.createReadStream({ start: 0, highWaterMark: 256 * 1024 }), gzip };
  } catch (err) {
    await handle.close().catch(() => undefined);
    return { ok: false, problem: 'unreadable', message: `${what} ${file} cannot be read: ${describeError(err)}` };
  }
}

export async function readLocalFile(file: string, options: LocalFileOptions): Promise<LocalFileResult> {
  const what = options.what ?? 'file';
  const fail = (problem: LocalFileProblem, message: string): LocalFileResult => ({ ok: false, problem, message });
  const roots = options.roots ?? null;
  // Where the path leads, checked before opening (nothing outside is opened) and after (on the descriptor).
  if (roots !== null) {
    const real = await realpath(file).catch(() => null);
    if (real !== null && !roots.some((root) => isInside(real, root))) return fail('outside', outsideMessage(what, file, real, roots));
  }
  const opened = await openRegularFile(file, what);
  if (!opened.ok) return opened;
  const { handle, size } = opened;
  try {
    if (roots !== null) {
      const real = await openedPath(handle, file);
      if (!roots.some((root) => isInside(real, root))) return fail('outside', outsideMessage(what, file, real, roots));
    }
    if (size > options.maxBytes) {
      return fail('too_large', `${what} ${file} is ${size.toLocaleString('en-US')} bytes, more than decode.maxBytes ${options.maxBytes.toLocaleString('en-US')}`);
    }
    const bytes = await readAtMost(handle, size, options.maxBytes + 1);
    if (bytes.length > options.maxBytes) {
      return fail('too_large', `${what} ${file} holds more than decode.maxBytes ${options.maxBytes.toLocaleString('en-US')} bytes (it grew while being read, or does not report its size); the read was stopped`);
    }
    return { ok: true, bytes };
  } catch (err) {
    return fail('unreadable', `${what} ${file} cannot be read: ${describeError(err)}`);
  } finally {
    await handle.close().catch(() => undefined);
  }
}

function outsideMessage(what: string, file: string, real: string, roots: readonly string[]): string {
  const via = real === path.resolve(file) ? '' : ` (a symbolic link to ${real})`;
  return `${what} ${file}${via} is outside the folders this source may read (${roots.join(', ')}); list its folder in imageRoots, or set allowAbsolutePaths: true`;
}

/** Read from the start until EOF or `limit` bytes, whichever comes first. */
async function readAtMost(handle: FileHandle, expected: number, limit: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  let buffer = Buffer.allocUnsafe(Math.min(Math.max(expected, 1), limit));
  for (;;) {
    const want = Math.min(buffer.length, limit - total);
    if (want <= 0) break;
    const { bytesRead } = await handle.read(buffer, 0, want, total);
    if (bytesRead === 0) break;
    chunks.push(buffer.subarray(0, bytesRead));
    total += bytesRead;
    // The next piece gets a fresh buffer: the last one is kept by `chunks`.
    buffer = Buffer.allocUnsafe(Math.min(CHUNK, Math.max(1, limit - total)));
  }
  return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, total);
}

/** The real path of the file `handle` opened: what `/proc/self/fd` says, else `realpath` of the name. */
async function openedPath(handle: FileHandle, file: string): Promise<string> {
  try {
    return await readlink(`/proc/self/fd/${handle.fd}`);
  } catch {
    return realpath(file);
  }
}

/** Whether `file` (a real path) is `root` or inside it. */
export function isInside(file: string, root: string): boolean {
  const relative = path.relative(root, file);
  return relative === '' || (!relative.startsWith(`..${path.sep}`) && relative !== '..' && !path.isAbsolute(relative));
}

/** Real paths of `folders` (a folder that does not exist is kept as given, resolved). */
export async function realFolders(folders: readonly string[]): Promise<string[]> {
  return Promise.all(folders.map((folder) => realpath(folder).catch(() => path.resolve(folder))));
}

function fileKind(info: Stats): string {
  if (info.isFIFO()) return 'a FIFO';
  if (info.isCharacterDevice()) return 'a character device';
  if (info.isBlockDevice()) return 'a block device';
  if (info.isSocket()) return 'a socket';
  return 'not a regular file';
}

/** The per-sample code for an image file's problem. */
export function imageFileCode(problem: LocalFileProblem): 'image_missing' | 'image_unreadable' | 'image_too_large' | 'image_path_invalid' {
  switch (problem) {
    case 'missing':
    case 'folder':
      return 'image_missing';
    case 'too_large':
      return 'image_too_large';
    case 'outside':
      return 'image_path_invalid';
    case 'not_a_file':
    case 'unreadable':
      return 'image_unreadable';
  }
}
