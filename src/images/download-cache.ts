/**
 * A content-addressed cache of downloads on disk, so a resumed or repeated run never downloads the same
 * image twice, and a `Downloader` that puts the cache in front of a `UrlFetcher`.
 *
 * Layout: `DIR/<h0h1>/<h>.bin` (the bytes) and `DIR/<h0h1>/<h>.json` (a small record), where `h` is the
 * sha256 of the URL as given. Both are written to a temporary name and renamed, the record last, so a
 * record on disk always describes a complete body; a crash leaves at most a stray temporary file.
 * Several processes (`--shard I/N`) may share one folder.
 *
 * Permanent failures are cached too (HTTP 4xx other than 408/429, `not_an_image`, `too_large`,
 * `robots_disallowed`, redirect problems), so a second read asks the network nothing at all; transient
 * ones (timeouts, connection errors, 408, 429, 5xx) are not, so a later run tries again. A cached
 * `too_large` is ignored when `maxBytes` has grown since, a cached `robots_disallowed` when robots are now
 * ignored; a download made while `allowPrivateNetworks` was on is not served to a run with it off.
 * `address_disallowed` is never cached (it depends on that setting and on DNS).
 *
 * Within one run, requests for a URL already being downloaded wait for that download (LAION-style
 * manifests repeat URLs).
 */
import { createHash } from 'node:crypto';
import { uniqueTmpPath } from '../core/temp-file.js';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { readLocalFile } from './local-file.js';
import type { DownloadFailureCode, FetchResult, UrlFetcher } from './url-fetcher.js';

/** What the `.json` record holds. */
export type CacheRecord =
  | {
      url: string;
      ok: true;
      finalUrl: string;
      status: number;
      contentType: string | null;
      byteLength: number;
      sha256: string;
      fetchedAt: string;
      /** Fetched while non-public addresses were allowed: not served to a run that refuses them. */
      allowPrivateNetworks?: boolean;
    }
  | {
      url: string;
      ok: false;
      code: DownloadFailureCode;
      message: string;
      /** The settings the failure depended on. */
      maxBytes: number;
      ignoreRobots: boolean;
      fetchedAt: string;
    };

export interface DownloadSuccess {
  ok: true;
  bytes: Buffer;
  url: string;
  finalUrl: string;
  contentType: string | null;
  /** Where the bytes are on disk (the cache file); null when caching is off. */
  path: string | null;
  /** True when served from the cache without a request. */
  cached: boolean;
}

export interface DownloadFailure {
  ok: false;
  code: DownloadFailureCode;
  message: string;
  cached: boolean;
}

export type DownloadResult = DownloadSuccess | DownloadFailure;

export interface DownloaderStats {
  cacheHits: number;
  downloads: number;
  failures: number;
}

const PERMANENT_CODES = new Set<string>(['not_an_image', 'too_large', 'robots_disallowed', 'redirect_invalid', 'too_many_redirects', 'url_invalid']);

export class DownloadCache {
  private readonly madeDirs = new Set<string>();

  constructor(readonly dir: string) {}

  /** sha256 of the URL, hex. */
  static hash(url: string): string {
    return createHash('sha256').update(url).digest('hex');
  }

  paths(url: string): { blob: string; record: string } {
    const hash = DownloadCache.hash(url);
    const folder = path.join(this.dir, hash.slice(0, 2));
    return { blob: path.join(folder, `${hash}.bin`), record: path.join(folder, `${hash}.json`) };
  }

  /** The cached record and bytes for `url`, or null when there is none or it is incomplete. */
  async get(url: string): Promise<{ record: CacheRecord; bytes: Buffer | null } | null> {
    const { blob, record: recordPath } = this.paths(url);
    let record: CacheRecord;
    try {
      record = JSON.parse(await readFile(recordPath, 'utf8')) as CacheRecord;
    } catch {
      return null;
    }
    if (record.url !== url) return null; // a hash collision is not going to happen, but never serve another URL
    if (!record.ok) return { record, bytes: null };
    // At most the recorded size: a blob replaced by something else (a larger file, a FIFO) is not read.
    const read = await readLocalFile(blob, { maxBytes: record.byteLength, what: 'cached download' });
    if (!read.ok) return null;
    const bytes = read.bytes;
    if (bytes.length !== record.byteLength || createHash('sha256').update(bytes).digest('hex') !== record.sha256) return null;
    return { record, bytes };
  }

  async putSuccess(
    url: string,
    result: { bytes: Buffer; finalUrl: string; status: number; contentType: string | null },
    settings: { allowPrivateNetworks: boolean } = { allowPrivateNetworks: false },
  ): Promise<string> {
    const { blob, record } = this.paths(url);
    await this.ensureDir(path.dirname(blob));
    await writeAtomically(blob, result.bytes);
    const entry: CacheRecord = {
      url,
      ok: true,
      finalUrl: result.finalUrl,
      status: result.status,
      contentType: result.contentType,
      byteLength: result.bytes.length,
      sha256: createHash('sha256').update(result.bytes).digest('hex'),
      fetchedAt: new Date().toISOString(),
      ...(settings.allowPrivateNetworks ? { allowPrivateNetworks: true } : {}),
    };
    await writeAtomically(record, JSON.stringify(entry));
    return blob;
  }

  async putFailure(url: string, failure: { code: DownloadFailureCode; message: string }, settings: { maxBytes: number; ignoreRobots: boolean }): Promise<void> {
    const { record } = this.paths(url);
    await this.ensureDir(path.dirname(record));
    const entry: CacheRecord = { url, ok: false, code: failure.code, message: failure.message, ...settings, fetchedAt: new Date().toISOString() };
    await writeAtomically(record, JSON.stringify(entry));
  }

  private async ensureDir(folder: string): Promise<void> {
    if (this.madeDirs.has(folder)) return;
    await mkdir(folder, { recursive: true });
    this.madeDirs.add(folder);
  }
}

async function writeAtomically(file: string, data: Buffer | string): Promise<void> {
  const temporary = uniqueTmpPath(file);
  try {
    await writeFile(temporary, data);
    await rename(temporary, file);
  } catch (err) {
    await rm(temporary, { force: true });
    throw err;
  }
}

/** Whether a failure is worth remembering: another request would fail the same way. */
export function isPermanentFailure(code: string, transient: boolean): boolean {
  if (transient) return false;
  if (PERMANENT_CODES.has(code)) return true;
  const status = /^http_(\d+)$/.exec(code);
  return status !== null && Number(status[1]) >= 400 && Number(status[1]) < 500 && status[1] !== '408' && status[1] !== '429';
}

/** A `UrlFetcher` behind a `DownloadCache` (or none), with in-flight requests for one URL shared. */
export class Downloader {
  readonly stats: DownloaderStats = { cacheHits: 0, downloads: 0, failures: 0 };
  private readonly inFlight = new Map<string, Promise<DownloadResult>>();

  constructor(
    readonly fetcher: UrlFetcher,
    readonly cache: DownloadCache | null,
  ) {}

  /** Resolves to bytes or a failure; rejects only when `signal` aborts. */
  download(url: string, signal?: AbortSignal): Promise<DownloadResult> {
    const running = this.inFlight.get(url);
    if (running !== undefined) return running;
    const promise = this.load(url, signal).finally(() => this.inFlight.delete(url));
    this.inFlight.set(url, promise);
    return promise;
  }

  private async load(url: string, signal: AbortSignal | undefined): Promise<DownloadResult> {
    const { maxBytes, ignoreRobots, allowPrivateNetworks } = this.fetcher.options;
    if (this.cache !== null) {
      const hit = await this.cache.get(url);
      if (hit !== null) {
        const { record } = hit;
        if (record.ok && hit.bytes !== null && (allowPrivateNetworks || record.allowPrivateNetworks !== true)) {
          this.stats.cacheHits++;
          return { ok: true, bytes: hit.bytes, url, finalUrl: record.finalUrl, contentType: record.contentType, path: this.cache.paths(url).blob, cached: true };
        }
        if (!record.ok) {
          const stale = (record.code === 'too_large' && maxBytes > record.maxBytes) || (record.code === 'robots_disallowed' && ignoreRobots);
          if (!stale) {
            this.stats.cacheHits++;
            return { ok: false, code: record.code, message: `${record.message} (cached ${record.fetchedAt})`, cached: true };
          }
        }
      }
    }
    const result: FetchResult = await this.fetcher.fetch(url, signal);
    if (!result.ok) {
      this.stats.failures++;
      if (this.cache !== null && isPermanentFailure(result.code, result.transient)) {
        // A cache that cannot be written only costs a request next time.
        await this.cache.putFailure(url, result, { maxBytes, ignoreRobots }).catch(() => undefined);
      }
      return { ok: false, code: result.code, message: result.message, cached: false };
    }
    this.stats.downloads++;
    const blob = this.cache === null ? null : await this.cache.putSuccess(url, result, { allowPrivateNetworks }).catch(() => null);
    return { ok: true, bytes: result.bytes, url, finalUrl: result.finalUrl, contentType: result.contentType, path: blob, cached: false };
  }
}
