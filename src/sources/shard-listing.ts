/**
 * Which shards a WebDataset source names. Brace patterns (`shard-{000..099}.tar`) expand the same way for
 * local paths, `s3://` and `https://` URLs. On S3 a pattern may also list: a prefix ending in `/`
 * (`s3://bucket/laion/`) names every `.tar`, `.tar.gz` and `.tgz` object under it, and `*` / `?` in the
 * key match any characters but `/` / one character (`s3://bucket/laion/part-*.tar`), in key order. An
 * HTTP(S) server cannot be listed and a local path is never listed (the shell has globs), so those are
 * configuration errors, as is a listing that finds nothing.
 */
import { ConfigError } from '../core/errors.js';
import { escapeRegExp } from '../core/escape-regexp.js';
import { StorageError } from '../core/object-store.js';
import { parseLocation } from '../storage/location.js';
import { openLocation } from '../storage/open-store.js';
import { resolveInput } from '../storage/input-path.js';
import { DEFAULT_STORAGE, type StorageSettings } from '../storage/storage-settings.js';
import { expandPatterns } from './brace.js';

const SHARD_NAME = /\.(tar|tar\.gz|tgz)$/i;
const WILDCARD = /[*?]/;

/** Whether a shard name (after brace expansion) asks for a listing. */
export function isListing(name: string): boolean {
  return /^s3:\/\//i.test(name) && (name.endsWith('/') || WILDCARD.test(name));
}

/** The shard names of `paths` in order: expanded, resolved against `baseDir`, listings done. */
export async function resolveShards(paths: string | readonly string[], baseDir: string, storage: StorageSettings = DEFAULT_STORAGE): Promise<string[]> {
  const out: string[] = [];
  for (const pattern of expandPatterns(paths)) {
    if (!isListing(pattern)) {
      if (/^https?:\/\//i.test(pattern) && WILDCARD.test(new URL(pattern).pathname)) {
        throw new ConfigError(`webdataset paths: ${JSON.stringify(pattern)}: an HTTP(S) server cannot be listed; name the shards with a brace pattern such as shard-{000..099}.tar`);
      }
      out.push(resolveInput(pattern, baseDir, 'webdataset paths'));
      continue;
    }
    out.push(...(await listShards(pattern, storage)));
  }
  return out;
}

async function listShards(pattern: string, storage: StorageSettings): Promise<string[]> {
  const location = parseLocation(pattern, 'webdataset paths');
  if (location.kind !== 's3') return [pattern];
  const { store, key } = openLocation(location, storage);
  const wildcard = key.search(WILDCARD);
  const prefix = wildcard < 0 ? key : key.slice(0, wildcard);
  const match = wildcard < 0 ? (k: string) => SHARD_NAME.test(k) : globMatcher(key);
  const found: string[] = [];
  try {
    for await (const object of store.list(prefix)) if (match(object.key)) found.push(`s3://${location.bucket}/${object.key}`);
  } catch (err) {
    const why = err instanceof StorageError ? err.message : String(err);
    throw new ConfigError(`webdataset paths: cannot list ${JSON.stringify(pattern)}: ${why}`, { cause: err });
  }
  if (found.length === 0) {
    const what = wildcard < 0 ? 'no .tar, .tar.gz or .tgz objects under it' : 'no objects match it';
    throw new ConfigError(`webdataset paths: ${JSON.stringify(pattern)} lists ${what}`);
  }
  return found;
}

/** `*` matches within one path segment, `?` one character. */
function globMatcher(glob: string): (key: string) => boolean {
  const source = glob
    .split(/([*?])/)
    .map((part) => (part === '*' ? '[^/]*' : part === '?' ? '[^/]' : escapeRegExp(part)))
    .join('');
  const regex = new RegExp(`^${source}$`);
  return (key) => regex.test(key);
}
