import { readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { failureOf, type Pair } from '../../src/core/sample.js';
import { DownloadCache, Downloader, isPermanentFailure } from '../../src/images/download-cache.js';
import { UrlFetcher } from '../../src/images/url-fetcher.js';
import { makeImage, makeTempDir } from '../fixtures/make-webdataset.js';
import { startImageServer, type ImageServer } from '../http-server/image-server.js';
import { collect, context, sourceFrom, writeParquet } from './manifest-fixtures.js';
import { expectEvery } from '../expect-every.js';

let dir: string;
let cleanup: () => Promise<void>;
let server: ImageServer;
const served = new Map<string, Buffer>();

beforeAll(async () => {
  ({ dir, cleanup } = await makeTempDir('vlcurate-download-'));
  for (let i = 0; i < 12; i++) served.set(`p${i}.jpg`, await makeImage(20, 14, 'jpeg', 10 + i));
  server = await startImageServer({ images: Object.fromEntries(served) });
});

afterAll(async () => {
  await server.close();
  await cleanup();
});

/** Fast download settings for tests; the test server is on 127.0.0.1, which downloads refuse by default. */
const FAST = { timeoutMs: 1500, retryBaseMs: 5, retries: 1, allowPrivateNetworks: true };

async function writeJsonl(name: string, rows: Record<string, unknown>[]): Promise<void> {
  await writeFile(path.join(dir, name), rows.map((r) => JSON.stringify(r)).join('\n'));
}

function urlSource(file: string, cacheDir: string, extra: Record<string, unknown> = {}) {
  const { download, ...rest } = extra as { download?: Record<string, unknown> };
  return sourceFrom({ type: 'jsonl', name: 'web', path: file, image: 'url', caption: 'caption', ...rest, download: { ...FAST, cacheDir, ...download } });
}

const sortByKey = (pairs: Pair[]) => [...pairs].sort((a, b) => (a.key < b.key ? -1 : 1));

describe('manifests with URLs', () => {
  it('downloads every image; each failure is a per-sample code; order is input order when asked', async () => {
    const rows = [
      { url: server.url('/img/p0.jpg'), caption: 'plain' },
      { url: server.url('/status/404'), caption: 'gone' },
      { url: server.url('/html'), caption: 'page' },
      { url: server.url('/big-declared?bytes=90000000'), caption: 'huge' },
      { url: server.url(`/redirect?to=${encodeURIComponent('ftp://example.com/x.jpg')}`), caption: 'ftp redirect' },
      { url: server.url('/loop/a'), caption: 'loop' },
      { url: server.url('/robots/p1.jpg?tag=noai'), caption: 'opted out' },
      { url: server.url('/slow-headers/p2.jpg?ms=4000'), caption: 'slow' },
      { url: 'http://exa mple.com/x.jpg', caption: 'bad url' },
      { url: server.url('/chain/2/p3.jpg'), caption: 'redirected' },
      { url: server.url('/flaky/m1/p4.jpg?fail=1&status=503&retryAfter=0'), caption: 'flaky' },
    ];
    await writeJsonl('urls.jsonl', rows);
    const cacheDir = path.join(dir, 'cache-a');
    const pairs = await collect(urlSource('urls.jsonl', cacheDir, { order: 'input', download: { timeoutMs: 300, maxBytes: 1_000_000 } }).read(context(dir)));
    expect(pairs.map((p) => failureOf(p)?.code ?? 'ok')).toEqual([
      'ok',
      'http_404',
      'not_an_image',
      'too_large',
      'redirect_invalid',
      'too_many_redirects',
      'robots_disallowed',
      'timeout',
      'url_invalid',
      'ok',
      'ok',
    ]);
    const first = pairs[0]!;
    expect(Buffer.compare(first.imageBytes!, served.get('p0.jpg')!)).toBe(0);
    expect(first.meta).toEqual({ row: 0, url: rows[0]!.url });
    // The image reference points at the cached copy, so later commands can read it back.
    expect(first.imageRef).toMatch(new RegExp(`^file:${cacheDir}/[0-9a-f]{2}/[0-9a-f]{64}\\.bin$`));
    expect(Buffer.compare(await readFile(first.imageRef.slice('file:'.length)), served.get('p0.jpg')!)).toBe(0);
    expect(pairs[9]!.meta['finalUrl']).toBe(server.url('/chain/0/p3.jpg'));
    expect(pairs[1]!.imageRef).toBe(`url:${rows[1]!.url}`);
    expectEvery(pairs, (p) => p.fate.kind === 'open' || (p.fate.kind === 'failed' && p.fate.stage === 'source'));
  });

  it('the cache means a second read makes zero requests; transient failures are asked again', async () => {
    const rows = [
      ...Array.from({ length: 8 }, (_, i) => ({ url: server.url(`/img/p${i}.jpg`), caption: `c${i}` })),
      { url: server.url('/status/404'), caption: 'permanent' },
      { url: server.url('/fake/x.jpg'), caption: 'permanent' },
    ];
    await writeJsonl('cached.jsonl', rows);
    const cacheDir = path.join(dir, 'cache-b');
    server.resetStats();
    const first = await collect(urlSource('cached.jsonl', cacheDir).read(context(dir)));
    expect(server.count()).toBe(10);
    server.resetStats();
    const second = await collect(urlSource('cached.jsonl', cacheDir).read(context(dir)));
    expect(server.count()).toBe(0);
    const strip = (pairs: Pair[]) => sortByKey(pairs).map((p) => ({ key: p.key, code: failureOf(p)?.code ?? null, bytes: p.imageBytes?.length ?? 0, ref: p.imageRef }));
    expect(strip(second)).toEqual(strip(first));
    // The cache holds 8 bodies and 10 records.
    const files = (await Promise.all((await readdir(cacheDir)).map((d) => readdir(path.join(cacheDir, d))))).flat();
    expect(files.filter((f) => f.endsWith('.bin'))).toHaveLength(8);
    expect(files.filter((f) => f.endsWith('.json'))).toHaveLength(10);

    // A transient failure (503) is not cached: the next read asks again.
    await writeJsonl('transient.jsonl', [{ url: server.url('/status/503'), caption: 'x' }]);
    server.resetStats();
    await collect(urlSource('transient.jsonl', cacheDir, { download: { retries: 0 } }).read(context(dir)));
    await collect(urlSource('transient.jsonl', cacheDir, { download: { retries: 0 } }).read(context(dir)));
    expect(server.count('/status/503')).toBe(2);
  });

  it('a URL repeated in the manifest is downloaded once', async () => {
    await writeJsonl('repeat.jsonl', Array.from({ length: 6 }, () => ({ url: server.url('/slow-headers/p5.jpg?ms=100'), caption: 'same' })));
    server.resetStats();
    const pairs = await collect(urlSource('repeat.jsonl', path.join(dir, 'cache-c')).read(context(dir)));
    expect(pairs).toHaveLength(6);
    expectEvery(pairs, (p) => failureOf(p) === null);
    expect(server.count('/slow-headers')).toBe(1);
  });

  it('sharding: rows outside the shard are never downloaded, and N=3 covers every row once', async () => {
    const rows = Array.from({ length: 12 }, (_, i) => ({ url: server.url(`/img/p${i}.jpg`), caption: `c${i}` }));
    await writeJsonl('sharded.jsonl', rows);
    const keys: string[] = [];
    let requests = 0;
    for (let index = 0; index < 3; index++) {
      server.resetStats();
      const pairs = await collect(urlSource('sharded.jsonl', path.join(dir, `cache-shard-${index}`)).read(context(dir, {}, { index, count: 3 })));
      expect(server.count()).toBe(pairs.length);
      requests += server.count();
      keys.push(...pairs.map((p) => p.key));
    }
    expect(keys.sort()).toEqual(rows.map((_, i) => `web_${String(i).padStart(9, '0')}`));
    expect(requests).toBe(12);
  });

  it('isDone: finished keys are not downloaded', async () => {
    const rows = Array.from({ length: 6 }, (_, i) => ({ url: server.url(`/img/p${i}.jpg`), caption: `c${i}` }));
    await writeJsonl('resume.jsonl', rows);
    server.resetStats();
    const done = new Set(['web_000000000', 'web_000000002', 'web_000000004']);
    const pairs = await collect(
      urlSource('resume.jsonl', path.join(dir, 'cache-resume')).read(context(dir, { isDone: (keys) => new Set(keys.filter((k) => done.has(k))) })),
    );
    expect(pairs.map((p) => p.key).sort()).toEqual(['web_000000001', 'web_000000003', 'web_000000005']);
    expect(server.requests.map((r) => r.path).sort()).toEqual(['/img/p1.jpg', '/img/p3.jpg', '/img/p5.jpg']);
  });

  it('aborting stops the read and the downloads in flight; unfinished pairs are not yielded', async () => {
    const rows = Array.from({ length: 40 }, (_, i) => ({ url: server.url(`/slow-headers/p${i % 12}.jpg?ms=${i < 2 ? 0 : 3000}&i=${i}`), caption: 'x' }));
    await writeJsonl('abort.jsonl', rows);
    const controller = new AbortController();
    const ctx = { ...context(dir), signal: controller.signal };
    const started = performance.now();
    const pairs: Pair[] = [];
    setTimeout(() => controller.abort(), 400);
    for await (const pair of urlSource('abort.jsonl', path.join(dir, 'cache-abort'), { download: { timeoutMs: 10_000 } }).read(ctx)) pairs.push(pair);
    expect(performance.now() - started).toBeLessThan(2500);
    expectEvery(pairs, (p) => failureOf(p) === null);
    expect(pairs.length).toBeLessThanOrEqual(2);
  });

  it('parquet manifests download too (LAION layout: URL, TEXT)', async () => {
    const file = path.join(dir, 'laion.parquet');
    writeParquet(file, [
      { name: 'URL', data: [server.url('/img/p6.jpg'), server.url('/status/403')], type: 'STRING' },
      { name: 'TEXT', data: ['a photo', 'forbidden'], type: 'STRING' },
    ]);
    const pairs = await collect(
      sourceFrom({ type: 'parquet', name: 'laion', path: 'laion.parquet', image: 'URL', caption: 'TEXT', order: 'input', download: { ...FAST, cacheDir: 'cache-laion' } }).read(
        context(dir),
      ),
    );
    expect(pairs.map((p) => [p.key, failureOf(p)?.code ?? 'ok', p.captions[0]?.text])).toEqual([
      ['laion_000000000', 'ok', 'a photo'],
      ['laion_000000001', 'http_403', 'forbidden'],
    ]);
  });
});

describe('DownloadCache and Downloader', () => {
  it('a cached too_large is asked again when maxBytes grows; robots when robots are ignored', async () => {
    const cacheDir = path.join(dir, 'cache-settings');
    const url = server.url('/robots/p7.jpg?tag=noai');
    server.resetStats();
    const strict = new Downloader(new UrlFetcher({ ...FAST }), new DownloadCache(cacheDir));
    expect(await strict.download(url)).toMatchObject({ ok: false, code: 'robots_disallowed', cached: false });
    expect(await strict.download(url)).toMatchObject({ ok: false, code: 'robots_disallowed', cached: true });
    const lenient = new Downloader(new UrlFetcher({ ...FAST, ignoreRobots: true }), new DownloadCache(cacheDir));
    expect(await lenient.download(url)).toMatchObject({ ok: true, cached: false });
    expect(await lenient.download(url)).toMatchObject({ ok: true, cached: true });
    expect(server.count('/robots')).toBe(2);
    strict.fetcher.close();
    lenient.fetcher.close();
  });

  it('a damaged cache body is not served: it is downloaded again', async () => {
    const cacheDir = path.join(dir, 'cache-damaged');
    const cache = new DownloadCache(cacheDir);
    const url = server.url('/img/p8.jpg');
    const downloader = new Downloader(new UrlFetcher(FAST), cache);
    await downloader.download(url);
    await writeFile(cache.paths(url).blob, 'garbage');
    server.resetStats();
    const again = await downloader.download(url);
    expect(again).toMatchObject({ ok: true, cached: false });
    expect(server.count()).toBe(1);
    downloader.fetcher.close();
  });

  it('isPermanentFailure: 4xx other than 408/429 and content problems are permanent; the rest are not', () => {
    expect(isPermanentFailure('http_404', false)).toBe(true);
    expect(isPermanentFailure('http_429', true)).toBe(false);
    expect(isPermanentFailure('http_408', false)).toBe(false);
    expect(isPermanentFailure('http_500', true)).toBe(false);
    expect(isPermanentFailure('not_an_image', false)).toBe(true);
    expect(isPermanentFailure('timeout', true)).toBe(false);
    expect(isPermanentFailure('connection_failed', false)).toBe(false);
  });
});
