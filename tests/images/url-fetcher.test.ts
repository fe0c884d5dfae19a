import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { robotsRefusal, sniffImage, UrlFetcher, type FetchResult } from '../../src/images/url-fetcher.js';
import { makeImage } from '../fixtures/make-webdataset.js';
import { startImageServer, type ImageServer } from '../http-server/image-server.js';
import { expectEvery } from '../expect-every.js';

let server: ImageServer;
let jpeg: Buffer;
let png: Buffer;

beforeAll(async () => {
  jpeg = await makeImage(32, 24, 'jpeg', 1);
  png = await makeImage(16, 16, 'png', 2);
  server = await startImageServer({ hosts: ['127.0.0.1', '127.0.0.2'], images: { 'a.jpg': jpeg, 'b.png': png } });
});

afterAll(async () => {
  await server.close();
});

/** Fast settings so failure paths do not wait long. */
function fetcher(options: ConstructorParameters<typeof UrlFetcher>[0] = {}): UrlFetcher {
  // The test server is on 127.0.0.1, which downloads refuse by default.
  return new UrlFetcher({ timeoutMs: 2000, retryBaseMs: 10, allowPrivateNetworks: true, ...options });
}

async function get(path: string, options?: ConstructorParameters<typeof UrlFetcher>[0]): Promise<FetchResult> {
  const f = fetcher(options);
  try {
    return await f.fetch(path.startsWith('http') || path.includes(':') ? path : server.url(path));
  } finally {
    f.close();
  }
}

function failure(result: FetchResult) {
  expect(result.ok).toBe(false);
  return result as Extract<FetchResult, { ok: false }>;
}

describe('UrlFetcher', () => {
  it('downloads an image: exact bytes, content type, final URL', async () => {
    const result = await get('/img/a.jpg');
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect(Buffer.compare(result.bytes, jpeg)).toBe(0);
    expect(result.contentType).toBe('image/jpeg');
    expect(result.finalUrl).toBe(server.url('/img/a.jpg'));
    expect(result.attempts).toBe(1);
  });

  it('accepts octet-stream and a missing content type when the bytes are an image, and decodes gzip', async () => {
    for (const path of ['/octet/b.png', '/img/b.png?type=none', '/gzip/b.png']) {
      const result = await get(path);
      expect(result.ok, path).toBe(true);
      if (result.ok) expect(Buffer.compare(result.bytes, png), path).toBe(0);
    }
  });

  it('only http and https URLs are requested (url_invalid, no request made)', async () => {
    const before = server.count();
    for (const url of ['ftp://example.com/a.jpg', 'file:///etc/passwd', 'not a url', 'http://', 'data:image/png;base64,AAAA']) {
      const result = failure(await get(url));
      expect(result.code, url).toBe('url_invalid');
      expect(result.attempts).toBe(0);
    }
    expect(server.count()).toBe(before);
  });

  it('404 -> http_404 without retrying; 410 likewise', async () => {
    server.resetStats();
    const result = failure(await get('/status/404', { retries: 3 }));
    expect(result.code).toBe('http_404');
    expect(result.transient).toBe(false);
    expect(server.count('/status/404')).toBe(1);
    expect(failure(await get('/status/410')).code).toBe('http_410');
  });

  it('500 is retried, and fails as http_500 once the retries are spent', async () => {
    server.resetStats();
    const result = failure(await get('/status/500', { retries: 2 }));
    expect(result.code).toBe('http_500');
    expect(result.transient).toBe(true);
    expect(result.attempts).toBe(3);
    expect(server.count('/status/500')).toBe(3);
    expect(result.message).toContain('after 3 attempts');
  });

  it('429 with Retry-After waits that long, then succeeds', async () => {
    server.resetStats();
    const started = performance.now();
    const result = await get('/flaky/r1/a.jpg?fail=1&status=429&retryAfter=1', { retries: 2, retryBaseMs: 1 });
    const elapsed = performance.now() - started;
    expect(result.ok).toBe(true);
    expect(result.attempts).toBe(2);
    expect(server.count('/flaky/r1')).toBe(2);
    // retryBaseMs is 1 ms: only Retry-After explains a wait of about a second.
    expect(elapsed).toBeGreaterThanOrEqual(950);
  });

  it('a Retry-After longer than maxRetryDelayMs fails at once with the status', async () => {
    server.resetStats();
    const result = failure(await get('/flaky/r2/a.jpg?fail=5&status=503&retryAfter=3600', { retries: 3, maxRetryDelayMs: 1000 }));
    expect(result.code).toBe('http_503');
    expect(result.message).toMatch(/retry after 3600 s/);
    expect(server.count('/flaky/r2')).toBe(1);
  });

  it('the backoff is capped at maxRetryDelayMs: many retries wait that long at most, none is refused for it', async () => {
    server.resetStats();
    const started = performance.now();
    // Steps 100, 200, 400, 800 ms, each capped at 150 ms, equal jitter: waits in [50, 100), then [75, 150).
    const result = failure(await get('/status/500', { retries: 4, retryBaseMs: 100, maxRetryDelayMs: 150 }));
    const elapsed = performance.now() - started;
    expect(result.code).toBe('http_500');
    expect(result.attempts).toBe(5);
    expect(server.count('/status/500')).toBe(5);
    expect(result.message).toContain('after 5 attempts');
    expect(result.message).not.toMatch(/asks to retry/);
    expect(elapsed).toBeGreaterThanOrEqual(275);
  });

  it('a 409 is not retried for downloads (only the LLM API retries it)', async () => {
    server.resetStats();
    const result = failure(await get('/status/409', { retries: 3 }));
    expect(result.code).toBe('http_409');
    expect(result.transient).toBe(false);
    expect(server.count('/status/409')).toBe(1);
  });

  it('a connection reset is retried; when it persists -> connection_failed', async () => {
    server.resetStats();
    const ok = await get('/reset/c1/a.jpg?times=1', { retries: 1 });
    expect(ok.ok).toBe(true);
    expect(server.count('/reset/c1')).toBe(2);
    const bad = failure(await get('/reset/c2/a.jpg?times=10', { retries: 1 }));
    expect(bad.code).toBe('connection_failed');
    expect(bad.transient).toBe(true);
    expect(server.count('/reset/c2')).toBe(2);
  });

  it('a refused connection -> connection_failed', async () => {
    const closed = await startImageServer();
    const url = closed.url('/img/a.jpg');
    await closed.close();
    const result = failure(await get(url, { retries: 0 }));
    expect(result.code).toBe('connection_failed');
    expect(result.message).toMatch(/ECONNREFUSED/);
  });

  it('slow headers and a slow body both time out (timeout), and are retried', async () => {
    server.resetStats();
    const headers = failure(await get('/slow-headers/a.jpg?ms=3000', { timeoutMs: 200, retries: 1 }));
    expect(headers.code).toBe('timeout');
    expect(server.count('/slow-headers')).toBe(2);
    const body = failure(await get('/slow-body/a.jpg?ms=3000', { timeoutMs: 200, retries: 0 }));
    expect(body.code).toBe('timeout');
    expect(body.message).toContain('200 ms');
  });

  it('follows redirects, relative and absolute, up to maxRedirects', async () => {
    const chain = await get('/chain/3/a.jpg', { maxRedirects: 5 });
    expect(chain.ok).toBe(true);
    if (chain.ok) {
      expect(chain.redirects).toBe(3);
      expect(chain.finalUrl).toBe(server.url('/chain/0/a.jpg'));
    }
    const absolute = await get(`/redirect?status=301&to=${encodeURIComponent(server.url('/img/b.png'))}`);
    expect(absolute.ok && Buffer.compare(absolute.bytes, png)).toBe(0);
    const tooLong = failure(await get('/chain/6/a.jpg', { maxRedirects: 5 }));
    expect(tooLong.code).toBe('too_many_redirects');
    expect(tooLong.message).toContain('maxRedirects 5');
  });

  it('a redirect loop -> too_many_redirects, detected without using up the hops', async () => {
    server.resetStats();
    const result = failure(await get('/loop/a', { maxRedirects: 50 }));
    expect(result.code).toBe('too_many_redirects');
    expect(result.message).toContain('loop');
    expect(server.count('/loop')).toBe(2);
  });

  it('redirects to ftp: or file: are refused (redirect_invalid), as is a redirect without Location', async () => {
    for (const to of ['ftp://example.com/a.jpg', 'file:///etc/passwd']) {
      const result = failure(await get(`/redirect?to=${encodeURIComponent(to)}`));
      expect(result.code, to).toBe('redirect_invalid');
      expect(result.message).toContain(to.split(':')[0]);
    }
    expect(failure(await get('/redirect?status=302')).code).toBe('http_302');
  });

  it('wrong content types -> not_an_image: HTML, and HTML served as image/jpeg', async () => {
    const html = failure(await get('/html'));
    expect(html.code).toBe('not_an_image');
    expect(html.message).toContain('text/html');
    const fake = failure(await get('/fake/x.jpg'));
    expect(fake.code).toBe('not_an_image');
    expect(fake.message).toMatch(/start like no image format/);
  });

  it('oversized bodies -> too_large: declared length refused before reading, undeclared read stopped', async () => {
    const started = performance.now();
    const declared = failure(await get('/big-declared?bytes=50000000', { maxBytes: 1_000_000 }));
    expect(declared.code).toBe('too_large');
    expect(declared.message).toContain('declares 50000000 bytes');
    // The server holds the connection for 5 s after the first bytes: we did not wait for it.
    expect(performance.now() - started).toBeLessThan(3000);
    const f = fetcher({ maxBytes: 1_000_000 });
    try {
      const undeclared = failure(await f.fetch(server.url('/big-undeclared?bytes=20000000')));
      expect(undeclared.code).toBe('too_large');
      expect(undeclared.message).toContain('no Content-Length');
      // Stopped soon after the limit, not after 20 MB.
      expect(f.stats.bytes).toBeGreaterThan(1_000_000);
      expect(f.stats.bytes).toBeLessThan(3_000_000);
    } finally {
      f.close();
    }
  });

  it('X-Robots-Tag noai / noimageai -> robots_disallowed; other agents and ignoreRobots let it through', async () => {
    for (const tag of ['noai', 'noimageai', 'noindex, noai', 'vlcurate: noai']) {
      const result = failure(await get(`/robots/a.jpg?tag=${encodeURIComponent(tag)}`));
      expect(result.code, tag).toBe('robots_disallowed');
    }
    expect((await get(`/robots/a.jpg?tag=${encodeURIComponent('otherbot: noai')}`)).ok).toBe(true);
    expect((await get('/robots/a.jpg?tag=nofollow')).ok).toBe(true);
    // Two headers: one for another bot, one for everyone.
    const two = failure(await get(`/robots/a.jpg?tag=${encodeURIComponent('otherbot: noindex')}&tag=noai`));
    expect(two.code).toBe('robots_disallowed');
    expect((await get('/robots/a.jpg?tag=noai', { ignoreRobots: true })).ok).toBe(true);
  });

  it('keeps at most perHost requests in flight to one host and concurrency overall', async () => {
    server.resetStats();
    const f = fetcher({ concurrency: 8, perHost: 3 });
    try {
      const results = await Promise.all(Array.from({ length: 12 }, () => f.fetch(server.url('/slow-headers/a.jpg?ms=100'))));
      expectEvery(results, (r) => r.ok);
      expect(server.maxInFlight).toBe(3);
    } finally {
      f.close();
    }
    // Two hosts, 3 each would be 6 at once; the overall limit of 5 holds.
    server.resetStats();
    const g = fetcher({ concurrency: 5, perHost: 3 });
    try {
      const urls = Array.from({ length: 12 }, (_, i) => server.url('/slow-headers/a.jpg?ms=150', i % 2));
      const results = await Promise.all(urls.map((u) => g.fetch(u)));
      expectEvery(results, (r) => r.ok);
      expect(server.maxInFlight).toBe(5);
    } finally {
      g.close();
    }
  });

  it('aborting the signal rejects and stops the request', async () => {
    const f = fetcher({ timeoutMs: 10_000 });
    const controller = new AbortController();
    const started = performance.now();
    const promise = f.fetch(server.url('/slow-headers/a.jpg?ms=5000'), controller.signal);
    setTimeout(() => controller.abort(), 100);
    await expect(promise).rejects.toMatchObject({ name: 'AbortError' });
    expect(performance.now() - started).toBeLessThan(2000);
    f.close();
  });
});

describe('download helpers', () => {
  it('robotsRefusal follows img2dataset: untargeted or our token', () => {
    const directives = new Set(['noai', 'noimageai']);
    expect(robotsRefusal(['X-Robots-Tag', 'noai'], 'vlcurate', directives)).toBe('noai');
    expect(robotsRefusal(['x-robots-tag', 'googlebot: noai'], 'vlcurate', directives)).toBeNull();
    expect(robotsRefusal(['X-Robots-Tag', 'VLCURATE: NoImageAI'], 'vlcurate', directives)).toBe('VLCURATE: NoImageAI');
    expect(robotsRefusal(['X-Robots-Tag', 'unavailable_after: 25 Jun 2010, noai'], 'vlcurate', directives)).not.toBeNull();
    expect(robotsRefusal(['Content-Type', 'noai'], 'vlcurate', directives)).toBeNull();
  });

  it('sniffImage knows the common formats and refuses text', () => {
    expect(sniffImage(jpeg)).toBe('jpeg');
    expect(sniffImage(png)).toBe('png');
    expect(sniffImage(Buffer.from('GIF89a....'))).toBe('gif');
    expect(sniffImage(Buffer.from('RIFF\0\0\0\0WEBPVP8 '))).toBe('webp');
    expect(sniffImage(Buffer.from('<svg xmlns="http://www.w3.org/2000/svg"/>'))).toBeNull();
    expect(sniffImage(Buffer.alloc(0))).toBeNull();
  });
});
