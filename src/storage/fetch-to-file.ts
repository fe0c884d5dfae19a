/**
 * Copy one object (s3://, https://, or a local path) to a local file, whole or not at all: the bytes go to
 * a temporary file of this process, fsynced and renamed into place (`LocalStore.put`). For what must be a local
 * file to be used: a run database snapshot (SQLite opens only local files safely), a part database that
 * `vlcurate merge` reads.
 */
import { basename, dirname } from 'node:path';
import { LocalStore } from './local-store.js';
import { parseLocation } from './location.js';
import { openLocation } from './open-store.js';
import { DEFAULT_STORAGE, type StorageSettings } from './storage-settings.js';
import type { ObjectStore } from '../core/object-store.js';

/** Download `key` of `store` to `file` (a local put: temporary file, fsync, rename). Throws StorageError `missing` when there is no such object. */
export async function fetchObjectToFile(store: ObjectStore, key: string, file: string): Promise<void> {
  await new LocalStore(dirname(file)).put(basename(file), await store.read(key));
}

/**
 * Download what `url` names (`field`: the option it came from, for errors) to `file`; `storage`: the
 * recipe's `storage` settings, when there is a recipe.
 */
export async function fetchToFile(url: string, file: string, field: string, storage: StorageSettings = DEFAULT_STORAGE): Promise<void> {
  const { store, key } = openLocation(parseLocation(url, field), storage);
  await fetchObjectToFile(store, key, file);
}
