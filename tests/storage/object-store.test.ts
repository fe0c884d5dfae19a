/**
 * The object-store contract, run against each store: a local folder, S3 through the real AWS SDK v3 client
 * against a local s3rver, and (reading only) an HTTP server on 127.0.0.1.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { collect, StorageError, type ObjectStore } from '../../src/core/object-store.js';
import { S3Store } from '../../src/backends/s3-store.js';
import { LocalStore } from '../../src/storage/local-store.js';
import { HttpStore } from '../../src/storage/http-store.js';
import { openLocation } from '../../src/storage/open-store.js';
import { parseLocation } from '../../src/storage/location.js';
import { s3Connection, storageSchema } from '../../src/storage/storage-settings.js';
import { startLocalS3, type LocalS3 } from '../s3-server/s3-server.js';

let s3: LocalS3;
let folder: string;
const savedEnv = { ...process.env };

beforeAll(async () => {
  s3 = await startLocalS3(['vlc-test']);
  Object.assign(process.env, s3.env);
  folder = await mkdtemp(path.join(os.tmpdir(), 'vlc-store-'));
});

afterAll(async () => {
  process.env = savedEnv;
  await s3.close();
  await rm(folder, { recursive: true, force: true });
});

const stores: [string, () => ObjectStore][] = [
  ['local', () => new LocalStore(folder)],
  ['s3', () => new S3Store('vlc-test', s3Connection(storageSchema.parse({ s3: { endpoint: s3.endpoint, partSizeMb: 5 } })))],
];

describe.each(stores)('%s store', (_name, make) => {
  it('puts, stats, reads whole and in ranges, lists in key order and deletes', async () => {
    const store = make();
    await store.put('run/b.txt', Buffer.from('hello world'));
    await store.put('run/a/x.bin', Readable.from([Buffer.from('abc'), Buffer.from('def')]));
    await store.put('other.txt', Buffer.from('x'));

    const info = await store.stat('run/b.txt');
    expect(info?.size).toBe(11);
    expect(info?.etag).toBeTruthy();
    expect((await store.readBytes('run/b.txt')).toString()).toBe('hello world');
    expect((await store.readBytes('run/b.txt', { start: 6 })).toString()).toBe('world');
    expect((await store.readBytes('run/b.txt', { start: 0, end: 4 })).toString()).toBe('hello');
    expect((await collect(await store.read('run/a/x.bin'))).toString()).toBe('abcdef');

    const listed = [];
    for await (const object of store.list('run/')) listed.push([object.key, object.size]);
    expect(listed).toEqual([
      ['run/a/x.bin', 6],
      ['run/b.txt', 11],
    ]);

    await store.delete('run/b.txt');
    await store.delete('run/b.txt');
    expect(await store.stat('run/b.txt')).toBeUndefined();
  });

  it('says an object is missing with kind "missing"', async () => {
    const store = make();
    expect(await store.stat('nope/none')).toBeUndefined();
    const error = await store.read('nope/none').catch((err: unknown) => err);
    expect(error).toBeInstanceOf(StorageError);
    expect((error as StorageError).kind).toBe('missing');
  });

  it('refuses a read whose etag no longer matches (a resumed read never splices two versions)', async () => {
    const store = make();
    await store.put('v.txt', Buffer.from('first'));
    const etag = (await store.stat('v.txt'))?.etag;
    await new Promise((resolve) => setTimeout(resolve, 5));
    await store.put('v.txt', Buffer.from('second!'));
    const error = await store.readBytes('v.txt', { start: 2, ifMatch: etag }).catch((err: unknown) => err);
    expect((error as StorageError).kind).toBe('changed');
  });

  it('replaces an object whole, including one larger than a part (multipart on S3)', async () => {
    const store = make();
    const big = Buffer.alloc(11 * 1024 * 1024);
    for (let i = 0; i < big.length; i += 4096) big[i] = i % 251;
    await store.put('big.bin', big);
    const back = await store.readBytes('big.bin');
    expect(back.length).toBe(big.length);
    expect(back.equals(big)).toBe(true);
  });
});

describe('local store', () => {
  it('leaves no temporary file behind and refuses keys that leave its folder', async () => {
    const store = new LocalStore(folder);
    await store.put('t/one.txt', Buffer.from('1'));
    expect(await readdir(path.join(folder, 't'))).toEqual(['one.txt']);
    await expect(store.put('../escape.txt', Buffer.from('x'))).rejects.toThrow(/leaves the folder/);
  });
});

describe('s3 store errors', () => {
  it('says a missing bucket is a missing bucket, not a missing object', async () => {
    const store = new S3Store('vlc-no-such-bucket', s3Connection(storageSchema.parse({ s3: { endpoint: s3.endpoint } })));
    const error = await store.readBytes('x').catch((err: unknown) => err);
    expect(error).toBeInstanceOf(StorageError);
    expect((error as StorageError).kind).toBe('missing');
    expect((error as StorageError).message).toMatch(/^s3:\/\/vlc-no-such-bucket\/x: NoSuchBucket.*no such bucket$/);
  });

  it('says a dead endpoint is a network failure', async () => {
    const dead = createServer();
    await new Promise<void>((resolve) => dead.listen(0, '127.0.0.1', resolve));
    const port = (dead.address() as AddressInfo).port;
    await new Promise((resolve) => dead.close(resolve));
    const store = new S3Store('vlc-test', { ...s3Connection(storageSchema.parse({ s3: { endpoint: `http://127.0.0.1:${port}` } })), region: 'eu-west-1' });
    const error = await store.readBytes('x').catch((err: unknown) => err);
    expect((error as StorageError).kind).toBe('network');
  }, 30_000);
});

describe('http store', () => {
  let server: Server;
  let base: string;
  const files: Record<string, Buffer> = { 'data/a.txt': Buffer.from('0123456789') };
  let honourRange = true;

  beforeAll(async () => {
    server = createServer((req, res) => {
      const body = files[decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname.slice(1))];
      if (!body) return void res.writeHead(404).end('no');
      res.setHeader('etag', '"v1"');
      if (req.headers['if-match'] && req.headers['if-match'] !== '"v1"') return void res.writeHead(412).end();
      const range = /bytes=(\d+)-(\d*)/.exec(req.headers.range ?? '');
      if (range && honourRange) {
        const start = Number(range[1]);
        const end = range[2] ? Number(range[2]) : body.length - 1;
        res.writeHead(206, { 'content-range': `bytes ${start}-${end}/${body.length}`, 'content-length': end - start + 1 });
        return void res.end(req.method === 'HEAD' ? undefined : body.subarray(start, end + 1));
      }
      res.writeHead(200, { 'content-length': body.length });
      res.end(req.method === 'HEAD' ? undefined : body);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  });
  afterAll(() => new Promise((resolve) => server.close(resolve)));

  it('reads whole, in ranges (also from a server that ignores Range), stats, and is read-only', async () => {
    const store = new HttpStore(base);
    expect((await store.readBytes('data/a.txt')).toString()).toBe('0123456789');
    expect((await store.readBytes('data/a.txt', { start: 3, end: 5 })).toString()).toBe('345');
    honourRange = false;
    expect((await store.readBytes('data/a.txt', { start: 3, end: 5 })).toString()).toBe('345');
    expect((await store.readBytes('data/a.txt', { start: 7 })).toString()).toBe('789');
    honourRange = true;
    expect(await store.stat('data/a.txt')).toEqual({ key: 'data/a.txt', size: 10, etag: '"v1"' });
    expect(await store.stat('data/none')).toBeUndefined();
    expect(((await store.readBytes('data/a.txt', { ifMatch: '"v0"' }).catch((e: unknown) => e)) as StorageError).kind).toBe('changed');
    await expect(store.put('x')).rejects.toThrow(/read-only/);
    await expect((async () => {
      for await (const _ of store.list('data/')) void _;
    })()).rejects.toThrow(/cannot be listed/);
  });
});

describe('locations', () => {
  it('parses local paths, s3:// and https://, and names the field for schemes it cannot read', () => {
    expect(parseLocation('data/x.tar', 'sources[0].path', '/base')).toEqual({ kind: 'local', path: '/base/data/x.tar' });
    expect(parseLocation('s3://my-bucket/shards/000.tar', 'f')).toEqual({ kind: 's3', bucket: 'my-bucket', key: 'shards/000.tar' });
    expect(parseLocation('https://example.org/a b.tar', 'f')).toEqual({ kind: 'http', url: 'https://example.org/a%20b.tar' });
    expect(() => parseLocation('gs://b/x', 'sources[0].path')).toThrow(/sources\[0\]\.path: "gs:\/\/b\/x" uses the scheme gs: .*storage.googleapis.com/);
    expect(() => parseLocation('pipe:curl x', 'sources[0].path')).toThrow(/pipe:.*shell commands/);
    expect(() => parseLocation('s3://B/x', 'out')).toThrow(/out: "s3:\/\/B\/x" has no valid bucket name/);
  });

  it('opens each kind of location on its store', () => {
    expect(openLocation(parseLocation('/tmp/a/b.txt', 'f')).key).toBe('tmp/a/b.txt');
    const s3Object = openLocation(parseLocation('s3://vlc-test/a/b.tar', 'f'));
    expect([s3Object.store.name, s3Object.key]).toEqual(['s3://vlc-test', 'a/b.tar']);
    const web = openLocation(parseLocation('https://example.org/d/x.tar?sig=1', 'f'));
    expect([web.store.name, web.key]).toEqual(['https://example.org/', 'd/x.tar?sig=1']);
  });
});

describe('the recipe storage section', () => {
  it('names the field, the value and what was expected', async () => {
    const { parseRecipe } = await import('../../src/config/recipe.js');
    const base = { sources: [{ type: 'folder', path: 'x' }] };
    expect(() => parseRecipe({ ...base, storage: { s3: { partSizeMb: 2 } } }, 'r.yaml', '/')).toThrow(/storage\.s3\.partSizeMb: expected an integer from 5 .*, got 2/);
    expect(() => parseRecipe({ ...base, storage: { s3: { endpoint: 'minio:9000' } } }, 'r.yaml', '/')).toThrow(/storage\.s3\.endpoint: expected an http:\/\/ or https:\/\/ URL.*got "minio:9000"/);
    expect(() => parseRecipe({ ...base, storage: { s3: { secretAccessKey: 'x' } } }, 'r.yaml', '/')).toThrow(/secretAccessKey/);
  });
});
