/**
 * SSRF defaults (issue 12, "Safe by default"): URL downloads followed 127.0.0.1, localhost, 2130706433, other
 * ports, and cross-host redirects to loopback. Real HTTP servers, on 127.0.0.1 only: one stands for an
 * internal service that must never be asked anything, the other (for the redirect tests) for a public host,
 * told apart by port through the fetcher's `addressCheck` seam (the only way to have a "public" server on
 * 127.0.0.1); the default check is exercised on its own with every spelling of 127.0.0.1.
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { disallowedReason } from '../../src/images/address-policy.js';
import { UrlFetcher, type AddressCheck, type FetchResult } from '../../src/images/url-fetcher.js';
import { makeImage, makeTempDir } from '../fixtures/make-webdataset.js';
import { startImageServer, type ImageServer } from '../http-server/image-server.js';
import { collect, context, sourceFrom } from '../sources/manifest-fixtures.js';
import { failureOf } from '../../src/core/sample.js';

let internal: ImageServer;
let publicServer: ImageServer;
let jpeg: Buffer;
let dir: string;
let cleanup: () => Promise<void>;

beforeAll(async () => {
  jpeg = await makeImage(24, 16, 'jpeg', 4);
  internal = await startImageServer({ images: { 'secret.jpg': jpeg } });
  publicServer = await startImageServer({ images: { 'open.jpg': jpeg } });
  ({ dir, cleanup } = await makeTempDir('vlcurate-ssrf-'));
});

afterAll(async () => {
  await internal.close();
  await publicServer.close();
  await cleanup();
});

const FAST = { timeoutMs: 2000, retryBaseMs: 5, retries: 0 };

async function fetchWith(url: string, options: ConstructorParameters<typeof UrlFetcher>[0] = {}, addressCheck?: AddressCheck): Promise<FetchResult> {
  const fetcher = new UrlFetcher({ ...FAST, ...options }, addressCheck ? { addressCheck } : {});
  try {
    return await fetcher.fetch(url);
  } finally {
    fetcher.close();
  }
}

const port = (server: ImageServer) => new URL(server.origin).port;

describe('downloads refuse non-public destinations by default', () => {
  it('refuses 127.0.0.1 in every spelling, and localhost, before sending anything', async () => {
    const p = port(internal);
    const urls = [
      `http://127.0.0.1:${p}/img/secret.jpg`,
      `http://localhost:${p}/img/secret.jpg`,
      `http://2130706433:${p}/img/secret.jpg`,
      `http://0x7f.1:${p}/img/secret.jpg`,
      `http://0177.0.0.1:${p}/img/secret.jpg`,
      `http://127.1:${p}/img/secret.jpg`,
      `http://[::ffff:127.0.0.1]:${p}/img/secret.jpg`,
    ];
    internal.resetStats();
    for (const url of urls) {
      const result = await fetchWith(url);
      expect(result).toMatchObject({ ok: false, code: 'address_disallowed', transient: false });
      expect((result as { message: string }).message).toMatch(/(is a loopback address|resolves only to non-public addresses: .*\(loopback\)).*download\.allowPrivateNetworks: true/);
    }
    expect(internal.count()).toBe(0);
  });

  it('downloads from 127.0.0.1 when allowPrivateNetworks is set', async () => {
    const result = await fetchWith(internal.url('/img/secret.jpg'), { allowPrivateNetworks: true });
    expect(result.ok && result.bytes.equals(jpeg)).toBe(true);
  });

  it('checks every redirect hop: a public host redirecting to loopback (by address or by name) is refused', async () => {
    // Only the "public" server's port counts as public; everything else is what the default check says.
    const publicPort = port(publicServer);
    const check: AddressCheck = (address, url) => (url.port === publicPort && address === '127.0.0.1' ? null : disallowedReason(address));
    const direct = await fetchWith(publicServer.url('/img/open.jpg'), {}, check);
    expect(direct.ok).toBe(true);

    internal.resetStats();
    for (const target of [internal.url('/img/secret.jpg'), `http://localhost:${port(internal)}/img/secret.jpg`]) {
      const result = await fetchWith(publicServer.url(`/redirect?to=${encodeURIComponent(target)}`), {}, check);
      expect(result).toMatchObject({ ok: false, code: 'address_disallowed' });
    }
    expect(internal.count()).toBe(0);
    // With the option, the same redirect is followed.
    const allowed = await fetchWith(publicServer.url(`/redirect?to=${encodeURIComponent(internal.url('/img/secret.jpg'))}`), { allowPrivateNetworks: true }, check);
    expect(allowed.ok).toBe(true);
    expect(internal.count()).toBe(1);
  });

  it('is a per-sample code in a manifest, not cached, and allowed by the recipe option', async () => {
    await writeFile(path.join(dir, 'urls.jsonl'), JSON.stringify({ url: internal.url('/img/secret.jpg'), caption: 'internal' }));
    const cacheDir = path.join(dir, 'cache');
    const source = (download: Record<string, unknown>) =>
      sourceFrom({ type: 'jsonl', path: 'urls.jsonl', image: 'url', caption: 'caption', download: { ...FAST, cacheDir, ...download } });
    internal.resetStats();
    const refused = await collect(source({}).read(context(dir)));
    expect(refused.map((p) => failureOf(p)?.code)).toEqual(['address_disallowed']);
    expect(internal.count()).toBe(0);

    const allowed = await collect(source({ allowPrivateNetworks: true }).read(context(dir)));
    expect(allowed.map((p) => failureOf(p)?.code ?? 'ok')).toEqual(['ok']);
    expect(internal.count()).toBe(1);

    // What was downloaded while allowed is not handed to a run that refuses it.
    const again = await collect(source({}).read(context(dir)));
    expect(again.map((p) => failureOf(p)?.code)).toEqual(['address_disallowed']);
    expect(internal.count()).toBe(1);
  });
});
