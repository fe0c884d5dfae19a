/**
 * One interface over the places objects live: a local folder, S3-compatible storage, an HTTP(S) server.
 * Keys are '/'-separated names inside the store's root (a folder, a bucket, a base URL). A `put` is atomic:
 * readers see the old object or the new one whole, never a part (a local put writes a temporary file and
 * renames it; an S3 PUT or a completed multipart upload is atomic by the service's contract).
 */
import type { Readable } from 'node:stream';
import { VlcurateError } from './errors.js';

export interface ObjectInfo {
  key: string;
  size: number;
  /** Changes whenever the object is replaced (S3 ETag, HTTP ETag, or size + mtime locally). */
  etag: string | undefined;
}

export interface ReadOptions {
  /** First byte to read (default 0). */
  start?: number;
  /** Last byte to read, inclusive (default: the end). */
  end?: number;
  /** Fail with `changed` if the object's etag is no longer this one (a resumed read must not splice two versions). */
  ifMatch?: string;
}

export interface ObjectStore {
  /** What the store is, for messages: `s3://bucket`, a folder path, a base URL. */
  readonly name: string;
  /** Whether `put` and `delete` work (an HTTP server is read-only). */
  readonly writable: boolean;
  /** The object's bytes from `start` to `end` as a stream. Throws StorageError (`missing`, ...). */
  read(key: string, options?: ReadOptions): Promise<Readable>;
  /** The object's bytes, whole or in the given range. */
  readBytes(key: string, options?: ReadOptions): Promise<Buffer>;
  /** Size and etag, or undefined when there is no such object. */
  stat(key: string): Promise<ObjectInfo | undefined>;
  /** Store `body` at `key` atomically, replacing what was there. */
  put(key: string, body: Buffer | Readable, options?: { contentType?: string }): Promise<void>;
  /** Every object whose key starts with `prefix`, in key order. */
  list(prefix: string): AsyncIterable<ObjectInfo>;
  /** Remove the object; removing one that is not there is not an error. */
  delete(key: string): Promise<void>;
}

/**
 * Why a storage call failed, as far as callers care: `missing` (no such object or bucket), `denied`
 * (credentials or permissions), `changed` (the object was replaced during a resumed read), `network`
 * (connection or timeout: worth retrying), `unsupported` (e.g. listing an HTTP server), `other`.
 */
export type StorageErrorKind = 'missing' | 'denied' | 'changed' | 'network' | 'unsupported' | 'other';

export class StorageError extends VlcurateError {
  constructor(
    readonly kind: StorageErrorKind,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`storage_${kind}`, message, options);
  }
}

/**
 * What an HTTP status of a storage request means (S3 and plain HTTP servers alike): 404/410 missing,
 * 401/403 denied, 412 changed (an `If-Match` failed), 408/429/5xx network (worth retrying), else other.
 */
export function storageErrorKindOf(status: number | undefined): StorageErrorKind {
  if (status === 404 || status === 410) return 'missing';
  if (status === 401 || status === 403) return 'denied';
  if (status === 412) return 'changed';
  if (status !== undefined && (status === 408 || status === 429 || status >= 500)) return 'network';
  return 'other';
}

/** What a message adds after the object's name for a kind whose cause is always the same. */
export const STORAGE_KIND_NOTE: Partial<Record<StorageErrorKind, string>> = {
  missing: ': no such object',
  changed: ': the object changed while it was read',
};

/** Collect a stream into one buffer. */
export async function collect(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}
