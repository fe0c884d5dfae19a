/**
 * Where an export writes: a local folder (renames make it exactly-once, `durable-fs.ts`), or a prefix in
 * object storage (`s3://bucket/prefix/`), which has no rename: there every object is written whole by one
 * atomic PUT, and the run database records it only after the PUT returned (`remote-shards.ts`).
 */
import { createReadStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import { join, resolve } from 'node:path';
import { ConfigError } from '../core/errors.js';
import type { ObjectStore } from '../core/object-store.js';
import { formatLocation, isRemote, joinKey, parseLocation } from '../storage/location.js';
import { openLocation } from '../storage/open-store.js';
import { DEFAULT_STORAGE, type StorageSettings } from '../storage/storage-settings.js';

export interface RemoteTarget {
  kind: 'remote';
  store: ObjectStore;
  /** The export's key prefix: '' (the bucket's root) or ending in '/'. */
  prefix: string;
  /** The export's location as the user wrote it, without a trailing '/': `s3://bucket/prefix`. */
  url: string;
}

export type ExportTarget = { kind: 'local'; dir: string } | RemoteTarget;

/** An export's `out` as a path or URL: a local path resolved against `baseDir`, a URL as it is. */
export function resolveOut(baseDir: string, out: string): string {
  return isRemote(out) ? out.replace(/\/+$/, '') : resolve(baseDir, out);
}

/** The target of an export's `out` (`field` names it in errors). */
export function exportTarget(out: string, baseDir: string, storage: StorageSettings = DEFAULT_STORAGE, field = 'export.out'): ExportTarget {
  const location = parseLocation(out, field, baseDir);
  if (location.kind === 'local') return { kind: 'local', dir: location.path };
  if (location.kind !== 's3') throw new ConfigError(`${field}: ${out} is read-only; an export writes to a local folder or s3://BUCKET/PREFIX`);
  const { store, key } = openLocation(location, storage);
  const prefix = key.replace(/\/+$/, '');
  return { kind: 'remote', store, prefix: prefix === '' ? '' : `${prefix}/`, url: formatLocation({ ...location, key: prefix }).replace(/\/+$/, '') };
}

/** The key of `name` (a file of the export, '/'-separated) under the target's prefix. */
export function remoteKey(target: RemoteTarget, name: string): string {
  return target.prefix === '' ? name : joinKey(target.prefix, name);
}

/** The URL of `name` under the target, as recorded in the run database (`s3://bucket/prefix/name`). */
export function remoteUrl(target: RemoteTarget, name: string): string {
  return `${target.url}/${name}`;
}

/** Names (relative to the prefix, no '/') of the objects directly under the target's prefix that start with `start`. */
export async function remoteNames(target: RemoteTarget, start = ''): Promise<Set<string>> {
  const names = new Set<string>();
  for await (const object of target.store.list(remoteKey(target, start))) {
    const name = object.key.slice(target.prefix.length);
    if (!name.includes('/')) names.add(name);
  }
  return names;
}

/** Upload a local file as one object (multipart above the store's part size; atomic either way). */
export async function uploadFile(target: RemoteTarget, name: string, file: string, contentType?: string): Promise<void> {
  await target.store.put(remoteKey(target, name), createReadStream(file, { highWaterMark: 1 << 20 }), contentType ? { contentType } : {});
}

/** A private local folder for files on their way to object storage; removed by `dispose`. */
export async function stagingFolder(label: string): Promise<{ dir: string; dispose: () => Promise<void> }> {
  const dir = await mkdtemp(join(os.tmpdir(), `vlcurate-${label}-`));
  return { dir, dispose: () => rm(dir, { recursive: true, force: true }) };
}
