/**
 * From a location to the store that holds it and the key inside that store: the one place that picks
 * LocalStore, S3Store or HttpStore.
 */
import path from 'node:path';
import type { ObjectStore } from '../core/object-store.js';
import { S3Store } from '../backends/s3-store.js';
import { HttpStore } from './http-store.js';
import { LocalStore } from './local-store.js';
import type { Location } from './location.js';
import { DEFAULT_STORAGE, s3Connection, type StorageSettings } from './storage-settings.js';

export interface StoredObject {
  store: ObjectStore;
  key: string;
}

/**
 * The store of `location` and its key. A local path's store is its file system's root, so that keys are
 * the path without the root; an HTTP URL's store is its origin.
 */
export function openLocation(location: Location, settings: StorageSettings = DEFAULT_STORAGE): StoredObject {
  if (location.kind === 's3') return { store: new S3Store(location.bucket, s3Connection(settings)), key: location.key };
  if (location.kind === 'http') {
    const url = new URL(location.url);
    return { store: new HttpStore(url.origin), key: `${url.pathname}${url.search}`.replace(/^\/+/, '') };
  }
  const root = path.parse(location.path).root;
  return { store: new LocalStore(root), key: path.relative(root, location.path).split(path.sep).join('/') };
}
