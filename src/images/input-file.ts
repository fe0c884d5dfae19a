/**
 * Reading an input by its name (`storage/input-path.ts`), local or remote, with one result shape:
 *
 * - {@link openInputStream}: a shard or a manifest as a byte stream, told whether it is gzip. A local file
 *   goes through `local-file.ts` (regular files only); a remote object is streamed, never downloaded to
 *   disk first, and resumes after a dropped connection (`storage/resumable-read.ts`).
 * - {@link readInputBytes}: an image, whole, at most `maxBytes` (refused from its size before reading).
 *
 * Never throws for a problem with the input: each is an {@link InputProblem} with a message naming it.
 */
import { Readable } from 'node:stream';
import { describeError } from '../core/errors.js';
import { StorageError } from '../core/object-store.js';
import { isRemote, parseLocation } from '../storage/location.js';
import { openLocation } from '../storage/open-store.js';
import { openResumable } from '../storage/resumable-read.js';
import { DEFAULT_STORAGE, type StorageSettings } from '../storage/storage-settings.js';
import { imageFileCode, openRegularStream, readLocalFile, type LocalFileProblem, type LocalFileOptions } from './local-file.js';

/** A local file's problems, and a remote object's: `denied` (credentials), `interrupted` (the connection kept failing, or the object changed). */
export type InputProblem = LocalFileProblem | 'denied' | 'interrupted';

export type InputFailure = { ok: false; problem: InputProblem; message: string };

/** Open `name` as a byte stream; `what` names it in messages (`shard`, `file`). */
export async function openInputStream(name: string, what: string, storage: StorageSettings = DEFAULT_STORAGE): Promise<{ ok: true; stream: Readable; gzip: boolean } | InputFailure> {
  if (!isRemote(name)) return openRegularStream(name, what);
  let chunks: AsyncGenerator<Buffer>;
  let head: IteratorResult<Buffer>;
  try {
    const { store, key } = openLocation(parseLocation(name, what), storage);
    chunks = (await openResumable(store, key, `${what} ${name}`)).chunks;
    head = await chunks.next();
  } catch (err) {
    return remoteFailure(err, name, what);
  }
  const first = head.done ? Buffer.alloc(0) : head.value;
  const gzip = first.length >= 2 && first[0] === 0x1f && first[1] === 0x8b;
  async function* all(): AsyncGenerator<Buffer> {
    if (first.length > 0) yield first;
    yield* chunks;
  }
  return { ok: true, stream: Readable.from(all(), { objectMode: false, highWaterMark: 256 * 1024 }), gzip };
}

/** Read `name` whole; `options.roots` applies to local files only (remote inputs are confined by the caller). */
export async function readInputBytes(name: string, options: LocalFileOptions & { storage?: StorageSettings | undefined }): Promise<{ ok: true; bytes: Buffer } | InputFailure> {
  const what = options.what ?? 'file';
  if (!isRemote(name)) return readLocalFile(name, options);
  try {
    const { store, key } = openLocation(parseLocation(name, what), options.storage ?? DEFAULT_STORAGE);
    const { info, chunks } = await openResumable(store, key, `${what} ${name}`);
    if (info.size > options.maxBytes) {
      await chunks.return(undefined);
      return { ok: false, problem: 'too_large', message: `${what} ${name} is ${info.size.toLocaleString('en-US')} bytes, more than decode.maxBytes ${options.maxBytes.toLocaleString('en-US')}` };
    }
    const parts: Buffer[] = [];
    let total = 0;
    for await (const chunk of chunks) {
      parts.push(chunk);
      total += chunk.length;
      // A server that does not say the size (or lies) is stopped at the limit.
      if (total > options.maxBytes) {
        await chunks.return(undefined);
        return { ok: false, problem: 'too_large', message: `${what} ${name} holds more than decode.maxBytes ${options.maxBytes.toLocaleString('en-US')} bytes; the read was stopped` };
      }
    }
    return { ok: true, bytes: Buffer.concat(parts, total) };
  } catch (err) {
    return remoteFailure(err, name, what);
  }
}

/** What a storage error means for an input. */
export function remoteFailure(err: unknown, name: string, what: string): InputFailure {
  if (!(err instanceof StorageError)) return { ok: false, problem: 'unreadable', message: `${what} ${name} cannot be read: ${describeError(err)}` };
  const problem: InputProblem =
    err.kind === 'missing' ? 'missing' : err.kind === 'denied' ? 'denied' : err.kind === 'network' || err.kind === 'changed' ? 'interrupted' : 'unreadable';
  const message = err.message.includes(name) ? err.message : `${what} ${name}: ${err.message}`;
  return { ok: false, problem, message };
}

/** The per-sample code for an input's problem, as for a local image file plus the remote kinds. */
export function inputFailureCode(problem: InputProblem): ReturnType<typeof imageFileCode> | 'storage_denied' | 'storage_interrupted' {
  if (problem === 'denied') return 'storage_denied';
  if (problem === 'interrupted') return 'storage_interrupted';
  return imageFileCode(problem);
}
