/**
 * Reading one remote object from start to end as a stream of chunks that survives dropped connections: when
 * the body breaks off (a reset, a timeout, a body shorter than the object), the read goes on with a range
 * request from the byte reached, pinned to the ETag seen when it started (`ifMatch`), so a resumed read
 * never splices two versions of an object. A body that sends nothing for `idleTimeoutMs` counts as
 * dropped too (a stalled connection never ends by itself). After `maxResumes` resumes the read fails with
 * a StorageError of kind `network`; an object replaced meanwhile fails with kind `changed`.
 *
 * A server that refuses HEAD (a presigned URL is signed for GET only) is read with one plain GET: without
 * a size or an ETag, such a read cannot be resumed.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { describeError } from '../core/errors.js';
import { StorageError, type ObjectInfo, type ObjectStore } from '../core/object-store.js';

export interface ResumableReadOptions {
  /** Resumes allowed over the whole read. Default 5. */
  maxResumes?: number;
  /** Wait before the first resume, doubled for each next one (at most 5 s). Default 100 ms. */
  firstDelayMs?: number;
  /** A body silent this long is dropped and resumed. Default 60 s. */
  idleTimeoutMs?: number;
}

export const DEFAULT_MAX_RESUMES = 5;

/**
 * Find the object (`missing` / `denied` come from here, before any byte) and return its facts and its
 * bytes as chunks. `where` names it in messages (`s3://b/shard-000.tar`).
 */
export async function openResumable(store: ObjectStore, key: string, where: string, options: ResumableReadOptions = {}): Promise<{ info: ObjectInfo; chunks: AsyncGenerator<Buffer> }> {
  let info: ObjectInfo | undefined;
  try {
    info = await store.stat(key);
  } catch (err) {
    if (!(err instanceof StorageError) || (err.kind !== 'denied' && err.kind !== 'other')) throw err;
    // A server that refuses HEAD may allow GET (a presigned URL); and where it refuses both, the GET's
    // answer has a body that says why (a HEAD answer has none).
    info = { key, size: NaN, etag: undefined };
  }
  if (info === undefined) {
    // A HEAD answer cannot say whether the object or the bucket is missing; a GET's error can.
    const body = await store.read(key);
    body.destroy();
    throw new StorageError('missing', `${where} does not exist`);
  }
  return { info, chunks: resumableChunks(store, key, where, info, options) };
}

async function* resumableChunks(store: ObjectStore, key: string, where: string, info: ObjectInfo, options: ResumableReadOptions): AsyncGenerator<Buffer> {
  const maxResumes = options.maxResumes ?? DEFAULT_MAX_RESUMES;
  let delay = options.firstDelayMs ?? 100;
  const known = Number.isFinite(info.size);
  let offset = 0;
  let resumes = 0;
  for (;;) {
    let failure: StorageError;
    try {
      const body = await store.read(key, { ...(offset > 0 ? { start: offset } : {}), ...(info.etag !== undefined ? { ifMatch: info.etag } : {}) });
      const idleMs = options.idleTimeoutMs ?? 60_000;
      const arm = () => setTimeout(() => body.destroy(new StorageError('network', `${where}: no data for ${idleMs / 1000} s after ${offset.toLocaleString('en-US')} bytes`)), idleMs);
      let timer = arm();
      try {
        for await (const chunk of body) {
          clearTimeout(timer);
          offset += (chunk as Buffer).length;
          yield chunk as Buffer;
          // The time the reader spends between chunks is not the connection's.
          timer = arm();
        }
      } finally {
        clearTimeout(timer);
        body.destroy();
      }
      if (!known || offset >= info.size) return;
      failure = new StorageError('network', `${where}: the connection ended after ${offset.toLocaleString('en-US')} of ${info.size.toLocaleString('en-US')} bytes`);
    } catch (err) {
      // Errors of the request are StorageErrors already; an error out of the body is the connection breaking.
      failure = err instanceof StorageError ? err : new StorageError('network', `${where}: the connection broke after ${offset.toLocaleString('en-US')} bytes: ${describeError(err)}`, { cause: err });
    }
    if (failure.kind !== 'network') throw failure;
    if (resumes >= maxResumes) {
      throw new StorageError('network', `${failure.message}; gave up after ${resumes} resumed read${resumes === 1 ? '' : 's'}`, { cause: failure });
    }
    if (offset > 0 && info.etag === undefined) {
      throw new StorageError('network', `${failure.message}; the server gives no ETag, so the read cannot be resumed without risking two versions spliced`, { cause: failure });
    }
    resumes++;
    await sleep(delay);
    delay = Math.min(delay * 2, 5000);
  }
}
