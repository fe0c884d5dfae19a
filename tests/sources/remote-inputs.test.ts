/**
 * Every input a recipe names may be an s3:// object (a local s3rver through the real AWS SDK v3 client) or
 * an https:// URL (a local HTTP server): WebDataset shards with brace patterns and listings, streamed and
 * resumed after dropped connections; JSONL/CSV manifests and LLaVA files with their relative images;
 * Parquet read by byte ranges. Before issue 16, `s3://bucket/x.tar` was the local path `./s3:/bucket/x.tar`
 * (`shard_missing`) and a manifest at `s3://...` a missing file.
 */
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { S3Store } from '../../src/backends/s3-store.js';
import { parseRecipe } from '../../src/config/recipe.js';
import { HttpStore } from '../../src/storage/http-store.js';
import { openResumable } from '../../src/storage/resumable-read.js';
import { failureOf, type Pair } from '../../src/core/sample.js';
import { storageSchema, s3Connection, type StorageSettings } from '../../src/storage/storage-settings.js';
import { makeGoodSamples, makeImage, makeTempDir, sampleMembers, writeTar, type GoodSample } from '../fixtures/make-webdataset.js';
import { startCuttingProxy, type CuttingProxy } from '../s3-server/cutting-proxy.js';
import { startLocalS3, type LocalS3 } from '../s3-server/s3-server.js';
import { collect, context, sourceFrom, writeParquet } from './manifest-fixtures.js';

let s3: LocalS3;
let proxy: CuttingProxy;
let direct: StorageSettings;
let viaProxy: StorageSettings;
let store: S3Store;
let dir: string;
let cleanup: () => Promise<void>;
const savedEnv = { ...process.env };
let small: GoodSample[];
let big: GoodSample[];

async function putTar(key: string, samples: GoodSample[]): Promise<Buffer> {
  const file = path.join(dir, key.replace(/\//g, '_'));
  await writeTar(file, samples.flatMap(sampleMembers));
  const bytes = await readFile(file);
  await store.put(key, bytes);
  return bytes;
}

beforeAll(async () => {
  s3 = await startLocalS3(['vlc-data']);
  // Credentials and region the way a user gives them: the AWS SDK's environment variables.
  Object.assign(process.env, s3.env);
  proxy = await startCuttingProxy(s3.endpoint);
  direct = storageSchema.parse({ s3: { endpoint: s3.endpoint } });
  viaProxy = storageSchema.parse({ s3: { endpoint: proxy.endpoint } });
  store = new S3Store('vlc-data', s3Connection(direct));
  ({ dir, cleanup } = await makeTempDir('vlc-remote-'));
  small = await makeGoodSamples(20);
  big = await makeGoodSamples(40, 1000, 96);
  await putTar('wds/shard-000.tar', small.slice(0, 10));
  await putTar('wds/shard-001.tar', small.slice(10));
  await putTar('big/big.tar', big);
}, 60_000);

afterAll(async () => {
  process.env = savedEnv;
  await proxy?.close();
  await s3?.close();
  await cleanup?.();
});

function webdataset(paths: string | string[], storage: StorageSettings = direct) {
  return collect(sourceFrom({ type: 'webdataset', paths }).read(context(dir, { storage })));
}

function expectSamples(pairs: Pair[], samples: GoodSample[]): void {
  const ok = pairs.filter((p) => failureOf(p) === null);
  expect(ok.map((p) => p.key).sort()).toEqual(samples.map((s) => s.key).sort());
  for (const sample of samples) {
    const pair = ok.find((p) => p.key === sample.key)!;
    expect(Buffer.compare(pair.imageBytes!, sample.image)).toBe(0);
  }
}

describe('WebDataset shards on S3', () => {
  it('streams shards named by a brace pattern, with tar: references to the objects', async () => {
    const pairs = await webdataset('s3://vlc-data/wds/shard-{000..001}.tar');
    expect(pairs).toHaveLength(20);
    expectSamples(pairs, small);
    expect(pairs[0]!.imageRef).toBe(`tar:s3://vlc-data/wds/shard-000.tar#${small[0]!.key}.${small[0]!.ext}`);
  });

  it('records a missing object and a missing bucket as shard_missing and reads on', async () => {
    const pairs = await webdataset(['s3://vlc-data/wds/shard-{000..002}.tar', 's3://no-such-bucket/x.tar']);
    expectSamples(pairs, small);
    const failed = pairs.filter((p) => failureOf(p) !== null);
    expect(failed.map((p) => [p.key, failureOf(p)!.code])).toEqual([
      ['shard-002_tar__shard', 'shard_missing'],
      ['x_tar__shard', 'shard_missing'],
    ]);
    expect(failureOf(failed[1]!)!.message).toMatch(/no such bucket/i);
  });

  it('records refused credentials as storage_denied per shard, with the reason the service gives, and reads on', async () => {
    // Another endpoint spelling gets its own client, which picks up these (wrong) credentials.
    const saved = { id: process.env['AWS_ACCESS_KEY_ID'], secret: process.env['AWS_SECRET_ACCESS_KEY'] };
    process.env['AWS_ACCESS_KEY_ID'] = 'WRONGKEY';
    process.env['AWS_SECRET_ACCESS_KEY'] = 'WRONGSECRET';
    try {
      const wrong = storageSchema.parse({ s3: { endpoint: s3.endpoint.replace('127.0.0.1', 'localhost') } });
      const pairs = await webdataset(['s3://vlc-data/wds/shard-000.tar', 's3://vlc-data/wds/shard-001.tar'], wrong);
      expect(pairs.map((p) => [p.key, failureOf(p)?.code])).toEqual([
        ['shard-000_tar__shard', 'storage_denied'],
        ['shard-001_tar__shard', 'storage_denied'],
      ]);
      expect(failureOf(pairs[0]!)!.message).toMatch(/s3:\/\/vlc-data\/wds\/shard-000\.tar.*(InvalidAccessKeyId|AccessDenied|SignatureDoesNotMatch)/);
    } finally {
      process.env['AWS_ACCESS_KEY_ID'] = saved.id;
      process.env['AWS_SECRET_ACCESS_KEY'] = saved.secret;
    }
  });

  it('lists a prefix ending in / and a * pattern; a listing that finds nothing stops the build before it starts', async () => {
    expectSamples(await webdataset('s3://vlc-data/wds/'), small);
    expectSamples(await webdataset('s3://vlc-data/wds/shard-*.tar'), small);
    const source = sourceFrom({ type: 'webdataset', paths: 's3://vlc-data/nothing-here/' });
    await expect(source.count!(context(dir, { storage: direct }))).rejects.toThrow(/lists no \.tar, \.tar\.gz or \.tgz objects/);
  });

  it('resumes a shard whose connection drops mid-tar: every sample exactly once', async () => {
    proxy.cutAfter(60_000, 1);
    const before = proxy.cuts;
    const pairs = await webdataset('s3://vlc-data/big/big.tar', viaProxy);
    expect(proxy.cuts - before).toBe(1);
    expect(pairs).toHaveLength(40);
    expect(new Set(pairs.map((p) => p.key)).size).toBe(40);
    expectSamples(pairs, big);
  });

  it('gives up after the resumes run out: the samples before are kept, the next shard is read', async () => {
    // The first read and each of the 5 resumes are cut after a few kilobytes.
    proxy.cutAfter(4000, 6);
    const pairs = await webdataset(['s3://vlc-data/big/big.tar', 's3://vlc-data/wds/shard-000.tar'], viaProxy);
    const failed = pairs.filter((p) => failureOf(p) !== null);
    expect(failed).toHaveLength(1);
    expect(failureOf(failed[0]!)!.code).toBe('storage_interrupted');
    expect(failureOf(failed[0]!)!.message).toMatch(/gave up after 5 resumed reads/);
    const fromBig = pairs.filter((p) => p.key >= '000001000' && failureOf(p) === null);
    expect(fromBig.length).toBeGreaterThan(0);
    expect(fromBig.length).toBeLessThan(40);
    expectSamples(fromBig, big.slice(0, fromBig.length));
    expectSamples(pairs.filter((p) => p.key < '000001000'), small.slice(0, 10));
  }, 30_000);

  it('fails a recipe naming gs:// or pipe: at the field, with the interoperability hint', () => {
    const recipe = (paths: string) => ({ run: { db: 'run.db' }, sources: [{ type: 'webdataset', paths }], export: [] });
    expect(() => parseRecipe(recipe('gs://bucket/shard-{000..009}.tar'), 'r.yaml', dir)).toThrow(/sources\[0\]\.paths.*storage\.googleapis\.com/s);
    expect(() => parseRecipe(recipe('pipe:curl -s https://x/a.tar'), 'r.yaml', dir)).toThrow(/sources\[0\]\.paths.*does not run shell commands/s);
    expect(() => parseRecipe({ ...recipe('a.tar'), sources: [{ type: 'jsonl', path: 'gs://b/m.jsonl', image: 'image' }] }, 'r.yaml', dir)).toThrow(
      /sources\[0\]\.path.*storage\.googleapis\.com/s,
    );
    expect(() => parseRecipe({ ...recipe('a.tar'), sources: [{ type: 'folder', path: 's3://bucket/images/' }] }, 'r.yaml', dir)).toThrow(
      /sources\[0\]\.path.*not a local path; a folder source reads a local folder/s,
    );
  });
});

describe('manifests, LLaVA files, COCO and Parquet on S3', () => {
  let jpeg: Buffer;
  let png: Buffer;
  beforeAll(async () => {
    jpeg = await makeImage(40, 30, 'jpeg', 7);
    png = await makeImage(30, 20, 'png', 8);
    await store.put('sets/one/images/a.jpg', jpeg);
    await store.put('sets/one/images/b.png', png);
    await store.put('elsewhere/c.jpg', jpeg);
    const lines = [
      { image: 'images/a.jpg', caption: 'relative' },
      { image: 's3://vlc-data/sets/one/images/b.png', caption: 'absolute in the folder' },
      { image: 'images/none.jpg', caption: 'missing' },
      { image: '../../elsewhere/c.jpg', caption: 'leaves the folder' },
      { image: 's3://vlc-data/elsewhere/c.jpg', caption: 'another prefix' },
      { image: 's3://vlc-data/sets/one/images/../../../elsewhere/c.jpg', caption: 'dot-dot' },
    ];
    await store.put('sets/one/m.jsonl', Buffer.from(lines.map((l) => JSON.stringify(l)).join('\n')));
    await store.put('sets/one/m.csv', Buffer.from('image,caption\nimages/a.jpg,from csv\n'));
    const llava = [
      { id: 'l1', image: 'images/a.jpg', conversations: [{ from: 'human', value: '<image>\nWhat colour?' }, { from: 'gpt', value: 'Red.' }] },
      { id: 'l2', image: 'images/gone.jpg', conversations: [{ from: 'human', value: '<image>\nWhat?' }, { from: 'gpt', value: 'X.' }] },
    ];
    await store.put('sets/one/llava.json', Buffer.from(JSON.stringify(llava)));
  });

  it('reads a JSONL manifest and its relative images from S3; a missing image and one outside the folder fail per sample', async () => {
    const pairs = await collect(sourceFrom({ type: 'jsonl', path: 's3://vlc-data/sets/one/m.jsonl', image: 'image', caption: 'caption', order: 'input' }).read(context(dir, { storage: direct })));
    expect(pairs.map((p) => [p.captions[0]?.text, failureOf(p)?.code ?? 'ok'])).toEqual([
      ['relative', 'ok'],
      ['absolute in the folder', 'ok'],
      ['missing', 'image_missing'],
      ['leaves the folder', 'image_path_invalid'],
      ['another prefix', 'image_path_invalid'],
      ['dot-dot', 'image_path_invalid'],
    ]);
    expect(Buffer.compare(pairs[0]!.imageBytes!, jpeg)).toBe(0);
    expect(Buffer.compare(pairs[1]!.imageBytes!, png)).toBe(0);
    expect(pairs[0]!.imageRef).toBe('file:s3://vlc-data/sets/one/images/a.jpg');
    expect(failureOf(pairs[2]!)!.message).toMatch(/s3:\/\/vlc-data\/sets\/one\/images\/none\.jpg/);
  });

  it('reads images under another prefix when imageRoots lists it, and a CSV manifest', async () => {
    const pairs = await collect(
      sourceFrom({ type: 'jsonl', path: 's3://vlc-data/sets/one/m.jsonl', image: 'image', caption: 'caption', order: 'input', imageRoots: ['s3://vlc-data/elsewhere'] }).read(
        context(dir, { storage: direct }),
      ),
    );
    expect(pairs.map((p) => failureOf(p)?.code ?? 'ok')).toEqual(['ok', 'ok', 'image_missing', 'ok', 'ok', 'ok']);
    expect(pairs[5]!.imageRef).toBe('file:s3://vlc-data/elsewhere/c.jpg');
    const csv = await collect(sourceFrom({ type: 'csv', path: 's3://vlc-data/sets/one/m.csv', image: 'image', caption: 'caption' }).read(context(dir, { storage: direct })));
    expect(csv.map((p) => [p.captions[0]?.text, failureOf(p)?.code ?? 'ok'])).toEqual([['from csv', 'ok']]);
  });

  it('says a missing manifest object is a configuration error naming the option', async () => {
    const source = sourceFrom({ type: 'jsonl', path: 's3://vlc-data/sets/one/none.jsonl', image: 'image' });
    await expect(source.count!(context(dir, { storage: direct }))).rejects.toThrow(/jsonl path: file "s3:\/\/vlc-data\/sets\/one\/none\.jsonl" does not exist/);
  });

  it('reads a LLaVA file and its images from S3', async () => {
    const pairs = await collect(sourceFrom({ type: 'llava', path: 's3://vlc-data/sets/one/llava.json' }).read(context(dir, { storage: direct })));
    expect(pairs.map((p) => [p.key, failureOf(p)?.code ?? 'ok'])).toEqual([
      ['l1', 'ok'],
      ['l2', 'image_missing'],
    ]);
    expect(Buffer.compare(pairs[0]!.imageBytes!, jpeg)).toBe(0);
    expect(pairs[0]!.conversations).toHaveLength(2);
  });

  it('reads COCO annotation files and their images from S3; a missing image fails that sample', async () => {
    const captions = {
      images: [
        { id: 1, file_name: 'a.jpg', width: 40, height: 30 },
        { id: 2, file_name: 'missing.jpg', width: 10, height: 10 },
      ],
      annotations: [
        { id: 10, image_id: 1, caption: 'a picture on s3' },
        { id: 11, image_id: 2, caption: 'gone' },
      ],
    };
    await store.put('coco/annotations/captions_val.json', Buffer.from(JSON.stringify(captions)));
    const pairs = await collect(
      sourceFrom({ type: 'coco', captions: 's3://vlc-data/coco/annotations/captions_val.json', images: 's3://vlc-data/sets/one/images' }).read(context(dir, { storage: direct })),
    );
    expect(pairs.map((p) => [p.key, p.captions[0]?.text, failureOf(p)?.code ?? 'ok'])).toEqual([
      ['a', 'a picture on s3', 'ok'],
      ['missing', 'gone', 'image_missing'],
    ]);
    expect(Buffer.compare(pairs[0]!.imageBytes!, jpeg)).toBe(0);
  });

  it('reads a Parquet manifest by byte ranges: far fewer bytes than the file holds', async () => {
    // 12 rows with a 400 KB column (random, so it does not compress) the manifest does not use: the reader fetches the footer and the used columns only.
    const rows = 12;
    const filler = Array.from({ length: rows }, () => randomBytes(300_000).toString('base64'));
    const file = path.join(dir, 'm.parquet');
    writeParquet(
      file,
      [
        { name: 'image', data: Array.from({ length: rows }, (_, i) => (i % 2 === 0 ? 'images/a.jpg' : 'images/b.png')), type: 'STRING' },
        { name: 'caption', data: Array.from({ length: rows }, (_, i) => `row ${i}`), type: 'STRING' },
        { name: 'filler', data: filler, type: 'STRING' },
      ],
      4,
    );
    const bytes = await readFile(file);
    await store.put('sets/one/m.parquet', bytes);
    const before = proxy.bytesDown;
    const pairs = await collect(sourceFrom({ type: 'parquet', path: 's3://vlc-data/sets/one/m.parquet', image: 'image', caption: 'caption', order: 'input' }).read(context(dir, { storage: viaProxy })));
    const read = proxy.bytesDown - before;
    expect(pairs.map((p) => failureOf(p)?.code ?? 'ok')).toEqual(Array(rows).fill('ok'));
    expect(pairs.map((p) => p.captions[0]!.text)).toEqual(Array.from({ length: rows }, (_, i) => `row ${i}`));
    expect(Buffer.compare(pairs[1]!.imageBytes!, png)).toBe(0);
    expect(bytes.length).toBeGreaterThan(3_000_000);
    // The footer read (hyparquet asks for the last 512 KiB first), the two small columns, and the images.
    expect(read).toBeLessThan(bytes.length / 4);
  }, 30_000);
});

describe('https:// shards', () => {
  let server: Server;
  let base: string;
  let shard: Buffer;
  beforeAll(async () => {
    const file = path.join(dir, 'http-shard.tar');
    await writeTar(file, small.slice(0, 10).flatMap(sampleMembers));
    shard = await readFile(file);
    server = createServer((req, res) => {
      const url = new URL(req.url ?? '/', 'http://x');
      if (url.pathname.startsWith('/private/')) return void res.writeHead(403).end('no');
      if (!/^\/data\/part-00[01]\.tar$/.test(url.pathname)) return void res.writeHead(404).end('no');
      res.setHeader('etag', '"s1"');
      const range = /bytes=(\d+)-(\d*)/.exec(req.headers.range ?? '');
      if (range) {
        const start = Number(range[1]);
        res.writeHead(206, { 'content-range': `bytes ${start}-${shard.length - 1}/${shard.length}`, 'content-length': shard.length - start });
        return void res.end(req.method === 'HEAD' ? undefined : shard.subarray(start));
      }
      res.writeHead(200, { 'content-length': shard.length });
      res.end(req.method === 'HEAD' ? undefined : shard);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  it('streams shards from a web server; 404 is shard_missing, 403 storage_denied', async () => {
    const pairs = await webdataset([`${base}/data/part-{000..002}.tar`, `${base}/private/part-000.tar`]);
    const ok = pairs.filter((p) => failureOf(p) === null);
    expect(ok).toHaveLength(20);
    expect(new Set(ok.map((p) => p.key)).size).toBe(10);
    expect(pairs.filter((p) => failureOf(p) !== null).map((p) => [p.key, failureOf(p)!.code])).toEqual([
      ['part-002_tar__shard', 'shard_missing'],
      ['part-000_tar__shard', 'storage_denied'],
    ]);
  });
});

describe('remote reads that stall or refuse HEAD', () => {
  let server: Server;
  let base: string;
  let body: Buffer;
  let requests: string[] = [];
  beforeAll(async () => {
    const file = path.join(dir, 'stall-shard.tar');
    await writeTar(file, big.slice(0, 20).flatMap(sampleMembers));
    body = await readFile(file);
    let stalled = false;
    server = createServer((req, res) => {
      requests.push(`${req.method} ${req.headers.range ?? ''}`);
      const url = new URL(req.url ?? '/', 'http://x');
      // A presigned-URL-like server: GET only, HEAD is refused.
      if (url.pathname === '/signed/shard.tar') {
        if (req.method !== 'GET' || url.searchParams.get('sig') !== 'ok') return void res.writeHead(403).end();
        res.writeHead(200, { 'content-length': body.length });
        return void res.end(body);
      }
      res.setHeader('etag', '"e1"');
      const start = Number(/bytes=(\d+)-/.exec(req.headers.range ?? '')?.[1] ?? 0);
      res.writeHead(start > 0 ? 206 : 200, { 'content-length': body.length - start, ...(start > 0 ? { 'content-range': `bytes ${start}-${body.length - 1}/${body.length}` } : {}) });
      if (req.method === 'HEAD') return void res.end();
      if (!stalled) {
        // The first GET sends a third of the shard, then nothing, and never closes.
        stalled = true;
        res.write(body.subarray(0, Math.floor(body.length / 3)));
        return;
      }
      res.end(body.subarray(start));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  it('drops a body that stalls and resumes it from the byte reached', async () => {
    requests = [];
    const { chunks } = await openResumable(new HttpStore(base), 'stall/shard.tar', 'shard', { idleTimeoutMs: 300 });
    const parts: Buffer[] = [];
    for await (const chunk of chunks) parts.push(chunk);
    expect(Buffer.compare(Buffer.concat(parts), body)).toBe(0);
    expect(requests).toEqual(['HEAD ', 'GET ', `GET bytes=${Math.floor(body.length / 3)}-`]);
  });

  it('reads a shard whose server refuses HEAD (a presigned URL) with one GET', async () => {
    const pairs = await webdataset([`${base}/signed/shard.tar?sig=ok`, `${base}/signed/shard.tar?sig=bad`]);
    expectSamples(pairs.filter((p) => failureOf(p) === null), big.slice(0, 20));
    expect(pairs.filter((p) => failureOf(p) !== null).map((p) => [p.key, failureOf(p)!.code])).toEqual([['shard_tar__shard', 'storage_denied']]);
  });
});
