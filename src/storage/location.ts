/**
 * Where a recipe path points: a local file, an object in S3-compatible storage (`s3://bucket/key`) or, for
 * reading only, an HTTP(S) URL. Every place a recipe takes a path parses it here, so `s3://b/x.tar` is never
 * read as the local path `./s3:/b/x.tar`.
 */
import path from 'node:path';
import { ConfigError } from '../core/errors.js';

export type Location =
  | { kind: 'local'; path: string }
  | { kind: 's3'; bucket: string; key: string }
  | { kind: 'http'; url: string };

/** Schemes people write that vlcurate does not read, and what to write instead. */
const UNSUPPORTED: Record<string, string> = {
  'gs:': 'use the S3 interoperability endpoint: s3://BUCKET/KEY with storage.s3.endpoint "https://storage.googleapis.com" and HMAC keys',
  'gcs:': 'use the S3 interoperability endpoint: s3://BUCKET/KEY with storage.s3.endpoint "https://storage.googleapis.com" and HMAC keys',
  'az:': 'Azure Blob Storage is not supported; copy the data to S3-compatible storage or a shared file system',
  'abfs:': 'Azure Blob Storage is not supported; copy the data to S3-compatible storage or a shared file system',
  'hf:': 'download the dataset first, or give its https:// "resolve" URLs',
  'pipe:': 'vlcurate does not run shell commands for input; give an s3:// or https:// URL, or a local path',
  'ftp:': 'give an https:// URL or a local path',
};

// S3 bucket naming rules: 3-63 characters, lowercase letters, digits, dots and hyphens.
const BUCKET = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;

/**
 * Parse `text` (a recipe value at `field`) into a location. Relative local paths are resolved against
 * `baseDir` (the recipe's folder). Throws a ConfigError naming the field for a scheme vlcurate cannot read.
 */
export function parseLocation(text: string, field: string, baseDir = process.cwd()): Location {
  const scheme = /^([a-z][a-z0-9+.-]*:)/i.exec(text)?.[1]?.toLowerCase();
  // One letter before ':' is a Windows drive, not a scheme.
  if (scheme === undefined || scheme.length === 2) return { kind: 'local', path: path.resolve(baseDir, text) };
  if (scheme === 'file:') return { kind: 'local', path: new URL(text).pathname };
  if (scheme === 's3:') return parseS3(text, field);
  if (scheme === 'http:' || scheme === 'https:') {
    try {
      return { kind: 'http', url: new URL(text).href };
    } catch {
      throw new ConfigError(`${field}: ${JSON.stringify(text)} is not a valid URL`);
    }
  }
  const hint = UNSUPPORTED[scheme] ?? 'expected a local path, s3://BUCKET/KEY or an https:// URL';
  throw new ConfigError(`${field}: ${JSON.stringify(text)} uses the scheme ${scheme} that vlcurate cannot read; ${hint}`);
}

function parseS3(text: string, field: string): Location {
  const match = /^s3:\/\/([^/]*)\/?(.*)$/i.exec(text);
  const bucket = match?.[1] ?? '';
  if (!BUCKET.test(bucket)) {
    throw new ConfigError(`${field}: ${JSON.stringify(text)} has no valid bucket name; expected s3://BUCKET/KEY with a bucket of 3-63 lowercase letters, digits, dots or hyphens`);
  }
  return { kind: 's3', bucket, key: match?.[2] ?? '' };
}

/** Whether `text` names something other than a local path (the remote readers take it). */
export function isRemote(text: string): boolean {
  return /^(s3|https?):\/\//i.test(text);
}

/** The location as a user writes it (messages, manifests, the run database). */
export function formatLocation(location: Location): string {
  if (location.kind === 'local') return location.path;
  if (location.kind === 's3') return `s3://${location.bucket}/${location.key}`;
  return location.url;
}

/** `location` with `name` appended as a path segment (`name` uses '/' separators). */
export function joinLocation(location: Location, name: string): Location {
  if (location.kind === 'local') return { kind: 'local', path: path.join(location.path, ...name.split('/')) };
  if (location.kind === 's3') return { ...location, key: joinKey(location.key, name) };
  return { kind: 'http', url: new URL(name, location.url.endsWith('/') ? location.url : `${location.url}/`).href };
}

/** Join two object-key parts with exactly one '/' between them. */
export function joinKey(prefix: string, name: string): string {
  if (prefix === '') return name;
  return `${prefix.replace(/\/+$/, '')}/${name.replace(/^\/+/, '')}`;
}
