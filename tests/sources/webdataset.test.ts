import { copyFile, readFile, stat, truncate, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { failureOf, type DecodedPair, type Pair } from '../../src/core/sample.js';
import { WHOLE, type ShardSpec } from '../../src/core/shard.js';
import { createDecodeStage } from '../../src/decode/decode-stage.js';
import type { SourceContext } from '../../src/sources/source.js';
import { webdatasetOptionsSchema, webdatasetSource } from '../../src/sources/webdataset.js';
import {
  makeGoodSamples,
  makeImage,
  makePngClaiming,
  makeTempDir,
  sampleMembers,
  writeTar,
  type GoodSample,
  type Member,
} from '../fixtures/make-webdataset.js';
import { expectEvery } from '../expect-every.js';

let dir: string;
let cleanup: () => Promise<void>;
let good: GoodSample[];

function context(baseDir: string, shard: ShardSpec = WHOLE, signal = new AbortController().signal): SourceContext {
  return { signal, shard, baseDir };
}

async function collect<T>(iterable: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of iterable) out.push(item);
  return out;
}

function source(paths: string | string[], extra: Record<string, unknown> = {}) {
  const options = webdatasetOptionsSchema.parse({ type: 'webdataset', paths, ...extra });
  return webdatasetSource.create(options, 'wds-test');
}

async function readAll(paths: string | string[], shard: ShardSpec = WHOLE, extra: Record<string, unknown> = {}) {
  return collect(source(paths, extra).read(context(dir, shard)));
}

async function decodeAll(pairs: Pair[]): Promise<DecodedPair[]> {
  async function* feed() {
    yield* pairs;
  }
  const stage = createDecodeStage({});
  return collect(stage.run(feed(), { signal: new AbortController().signal, emit: () => undefined }));
}

function expectGood(pair: Pair | undefined, sample: GoodSample, shardFile: string): void {
  expect(pair).toBeDefined();
  expect(failureOf(pair!)).toBeNull();
  expect(pair!.key).toBe(sample.key);
  expect(pair!.source).toBe('wds-test');
  expect(pair!.imageRef).toBe(`tar:${path.join(dir, shardFile)}#${sample.key}.${sample.ext}`);
  expect(Buffer.compare(pair!.imageBytes!, sample.image)).toBe(0);
  expect(pair!.captions).toEqual([{ text: sample.json!['caption'], origin: 'web', issue: null, usable: true }]);
  expect(pair!.meta).toEqual(sample.json);
  expect(pair!.boxes).toEqual([]);
}

beforeAll(async () => {
  ({ dir, cleanup } = await makeTempDir());
  good = await makeGoodSamples(20);
  await writeTar(path.join(dir, 'good-000000.tar'), good.slice(0, 10).flatMap(sampleMembers));
  await writeTar(path.join(dir, 'good-000001.tar'), good.slice(10).flatMap(sampleMembers));
});

afterAll(async () => {
  await cleanup();
});

describe('webdataset source', () => {
  it('reads a 20-sample, two-shard dataset back completely, captions from .txt or json', async () => {
    const pairs = await readAll('good-{000000..000001}.tar');
    expect(pairs).toHaveLength(20);
    for (const [i, sample] of good.entries()) {
      expectGood(pairs[i], sample, i < 10 ? 'good-000000.tar' : 'good-000001.tar');
    }
    // Every third sample had no .txt: its caption came from the json `caption` field.
    expect(good.filter((s) => s.txt === undefined)).toHaveLength(6);
  });

  it('decodes all 20 good samples without a failure', async () => {
    const decoded = await decodeAll(await readAll('good-{000000..000001}.tar'));
    expect(decoded.map((p) => failureOf(p))).toEqual(Array(20).fill(null));
    expect(decoded.map((p) => p.image!.format)).toEqual(good.map((s) => (s.ext === 'jpg' ? 'jpeg' : s.ext)));
    expect(decoded.map((p) => p.image!.width)).toEqual(good.map((_, i) => 32 + i));
  });

  it('three shard processes cover every key exactly once', async () => {
    const seen = new Map<string, number>();
    for (let index = 0; index < 3; index++) {
      const pairs = await readAll('good-{000000..000001}.tar', { index, count: 3 });
      expect(pairs.length).toBeGreaterThan(0);
      expect(pairs.length).toBeLessThan(20);
      for (const pair of pairs) seen.set(pair.key, (seen.get(pair.key) ?? 0) + 1);
    }
    expect([...seen.keys()].sort()).toEqual(good.map((s) => s.key).sort());
    expectEvery([...seen.values()], (n) => n === 1);
  });

  it('accepts a list of patterns, "::" and a key prefix', async () => {
    const pairs = await readAll(['good-000000.tar::good-000001.tar'], WHOLE, { keyPrefix: 'laion_' });
    expect(pairs.map((p) => p.key)).toEqual(good.map((s) => `laion_${s.key}`));
  });

  it('reads gzip-compressed shards', async () => {
    await writeFile(path.join(dir, 'gz.tar.gz'), gzipSync(await readFile(path.join(dir, 'good-000000.tar'))));
    const pairs = await readAll('gz.tar.gz');
    expect(pairs.map((p) => p.key)).toEqual(good.slice(0, 10).map((s) => s.key));
    expectEvery(pairs, (p) => failureOf(p) === null);
  });

  it('a gzip shard cut short -> the sample being read is tar_truncated, earlier ones fine', async () => {
    const gz = gzipSync(await readFile(path.join(dir, 'good-000000.tar')));
    await writeFile(path.join(dir, 'gz-cut.tar.gz'), gz.subarray(0, Math.floor(gz.length * 0.6)));
    const pairs = await readAll('gz-cut.tar.gz');
    expect(pairs.length).toBeGreaterThan(1);
    expect(pairs.length).toBeLessThan(10);
    expectEvery(pairs.slice(0, -1), (p) => failureOf(p) === null);
    expect(failureOf(pairs.at(-1)!)).toMatchObject({ code: 'tar_truncated' });
    expect(pairs.map((p) => p.key)).toEqual(good.slice(0, pairs.length).map((s) => s.key));
  });

  it('makes invalid keys valid and keeps the original, folders included', async () => {
    const image = await makeImage(8, 8, 'png', 1);
    await writeTar(path.join(dir, 'odd-keys.tar'), [
      { name: 'my photo!.png', data: image },
      { name: 'my photo!.txt', data: 'first' },
      { name: 'sub/dir/0001.png', data: image },
      { name: 'sub/dir/0001.json', data: '{"caption": "second"}' },
    ]);
    const pairs = await readAll('odd-keys.tar');
    expect(pairs.map((p) => p.key)).toEqual(['my_photo_', 'sub_dir_0001']);
    expect(pairs[0]!.meta).toEqual({ originalKey: 'my photo!' });
    expect(pairs[1]!.meta).toEqual({ caption: 'second', originalKey: 'sub/dir/0001' });
    expect(pairs[1]!.imageRef).toMatch(/#sub\/dir\/0001\.png$/);
    expect(pairs.map((p) => p.captions[0]?.text)).toEqual(['first', 'second']);
  });

  it('keeps Unicode keys; two member names that clean to one key are key_collision naming both, a repeated name key_duplicate', async () => {
    const image = await makeImage(8, 8, 'png', 1);
    await writeTar(path.join(dir, 'collide.tar'), [
      { name: 'ünïcødé.png', data: image },
      { name: 'a b.png', data: image },
      { name: 'a_b.png', data: image },
      { name: 'a b.txt', data: 'not consecutive: its own sample again' },
      { name: 'c.d.png', data: image },
    ]);
    const pairs = await readAll('collide.tar');
    expect(pairs.map((p) => [p.key, failureOf(p)?.code ?? 'ok'])).toEqual([
      ['ünïcødé', 'ok'],
      ['a_b', 'ok'],
      ['a_b__dup2', 'key_collision'],
      ['a_b__dup3', 'key_duplicate'],
      // Readers split at the first dot: key `c`, extension `d.png`, which is no image.
      ['c', 'image_missing'],
    ]);
    expect(pairs[0]!.meta).toEqual({});
    expect(failureOf(pairs[2]!)!.message).toBe(
      'member a_b.png: "a_b" and the earlier "a b" both become key "a_b" (keys keep only letters, digits, "_" and "-"); rename one of them',
    );
    expect(pairs[2]!.meta).toEqual({ originalKey: 'a_b' });
    expect(failureOf(pairs[3]!)!.message).toBe('key "a b" appears again at member a b.txt, apart from its earlier members');
  });

  it('yields no caption when neither .txt nor a json caption exists, and an empty .txt as an empty caption', async () => {
    const image = await makeImage(8, 8, 'jpeg', 2);
    await writeTar(path.join(dir, 'no-caption.tar'), [
      { name: 'a.jpg', data: image },
      { name: 'a.json', data: '{"url": "x"}' },
      { name: 'b.jpg', data: image },
      { name: 'b.txt', data: '' },
    ]);
    const pairs = await readAll('no-caption.tar');
    expect(pairs.map((p) => failureOf(p))).toEqual([null, null]);
    expect(pairs[0]!.captions).toEqual([]);
    expect(pairs[1]!.captions).toEqual([{ text: '', origin: 'web', issue: null, usable: true }]);
  });

  describe('bad samples become failures and every good sample still comes out', () => {
    let pairs: DecodedPair[];
    let badShard: string;
    const goodKeys = ['000000100', '000000101', '000000102', '000000103', '000000104'];

    beforeAll(async () => {
      const fine = await makeGoodSamples(5, 100);
      const jpeg = await makeImage(320, 240, 'jpeg', 7);
      const members: Member[] = [
        ...sampleMembers(fine[0]!),
        { name: 'truncjpeg.jpg', data: jpeg.subarray(0, Math.floor(jpeg.length / 2)) },
        { name: 'truncjpeg.txt', data: 'half a picture' },
        ...sampleMembers(fine[1]!),
        { name: 'zerobyte.jpg', data: Buffer.alloc(0) },
        { name: 'zerobyte.txt', data: 'nothing here' },
        { name: 'textjpg.jpg', data: 'this is plain text, not a JPEG at all\n'.repeat(4) },
        { name: 'bomb.png', data: await makePngClaiming(30_000, 30_000) },
        { name: 'bomb.txt', data: 'a very large picture' },
        ...sampleMembers(fine[2]!),
        { name: 'badutf8.jpg', data: await makeImage(16, 16, 'jpeg', 8) },
        { name: 'badutf8.txt', data: Buffer.from([0x61, 0x20, 0xff, 0xfe, 0x20, 0x62]) },
        { name: 'controls.jpg', data: await makeImage(16, 16, 'jpeg', 9) },
        { name: 'controls.txt', data: 'a \u0000cat\u001b on \u202Ea mat\u202C' },
        { name: 'noimage.txt', data: 'a caption without a picture' },
        { name: 'noimage.json', data: '{"url": "https://example.com/gone.jpg"}' },
        ...sampleMembers(fine[3]!),
        { name: 'badjson.jpg', data: await makeImage(16, 16, 'jpeg', 10) },
        { name: 'badjson.json', data: '{"caption": "unterminated' },
        ...sampleMembers(fine[4]!),
      ];
      badShard = path.join(dir, 'bad.tar');
      await writeTar(badShard, members);
      pairs = await decodeAll(await readAll('bad.tar'));
    });

    const byKey = (key: string) => {
      const pair = pairs.find((p) => p.key === key);
      expect(pair, `no pair with key ${key}`).toBeDefined();
      return pair!;
    };

    it('keeps every good sample', () => {
      for (const key of goodKeys) {
        const pair = byKey(key);
        expect(failureOf(pair)).toBeNull();
        expect(pair.image).not.toBeNull();
      }
      expect(pairs).toHaveLength(5 + 8);
    });

    it('truncated JPEG -> image_truncated', () => {
      const pair = byKey('truncjpeg');
      expect(failureOf(pair)).toMatchObject({ code: 'image_truncated', stage: 'decode' });
      expect(failureOf(pair)!.message).toMatch(/cut off/);
      expect(pair.image).toBeNull();
      expect(pair.captions[0]!.text).toBe('half a picture');
    });

    it('zero-byte member -> image_empty from the source', () => {
      expect(failureOf(byKey('zerobyte'))).toMatchObject({ code: 'image_empty', stage: 'source' });
      expect(byKey('zerobyte').imageBytes).toBeNull();
    });

    it('a text file named .jpg -> image_unsupported', () => {
      expect(failureOf(byKey('textjpg'))).toMatchObject({ code: 'image_unsupported', stage: 'decode' });
      expect(failureOf(byKey('textjpg'))!.message).toMatch(/not an image.*"this is /);
    });

    it('a PNG claiming 30000x30000 -> image_too_large before decoding', () => {
      const failure = failureOf(byKey('bomb'))!;
      expect(failure.code).toBe('image_too_large');
      expect(failure.message).toContain('30000x30000');
      expect(failure.message).toContain('89,478,485');
    });

    it('a caption with invalid UTF-8 is unusable; the sample itself is fine', () => {
      const pair = byKey('badutf8');
      expect(failureOf(pair)).toBeNull();
      expect(pair.captions).toEqual([{ text: 'a \uFFFD\uFFFD b', origin: 'web', issue: 'invalid_utf8', usable: false }]);
    });

    it('a caption with control characters is cleaned and stays usable', () => {
      const pair = byKey('controls');
      expect(failureOf(pair)).toBeNull();
      expect(pair.captions).toEqual([{ text: 'a cat on a mat', origin: 'web', issue: 'control_chars_removed', usable: true }]);
    });

    it('a sample without an image member -> image_missing, with its caption and meta kept', () => {
      const pair = byKey('noimage');
      expect(failureOf(pair)).toMatchObject({ code: 'image_missing', stage: 'source' });
      expect(pair.imageBytes).toBeNull();
      expect(pair.captions[0]!.text).toBe('a caption without a picture');
      expect(pair.meta).toEqual({ url: 'https://example.com/gone.jpg' });
    });

    it('bad json -> json_invalid on that sample only', () => {
      const pair = byKey('badjson');
      expect(failureOf(pair)).toMatchObject({ code: 'json_invalid', stage: 'source' });
      expect(failureOf(pair)!.message).toContain('badjson.json');
    });
  });

  it('a tar cut off mid-member: earlier samples fine, that sample tar_truncated, next shard read', async () => {
    const samples = await makeGoodSamples(6, 200);
    const cutPath = path.join(dir, 'cut-000000.tar');
    await writeTar(cutPath, samples.flatMap(sampleMembers));
    await copyFile(path.join(dir, 'good-000001.tar'), path.join(dir, 'cut-000001.tar'));
    // Cut in the middle of the 4th sample's image data.
    const bytes = await readFile(cutPath);
    const header = bytes.indexOf(Buffer.from(`${samples[3]!.key}.${samples[3]!.ext}\0`));
    expect(header).toBeGreaterThan(0);
    await truncate(cutPath, header + 512 + Math.floor(samples[3]!.image.length / 2));

    const pairs = await readAll('cut-{000000..000001}.tar');
    const firstShard = pairs.slice(0, 4);
    for (const i of [0, 1, 2]) expect(failureOf(firstShard[i]!)).toBeNull();
    expect(firstShard.map((p) => p.key)).toEqual(samples.slice(0, 4).map((s) => s.key));
    expect(failureOf(firstShard[3]!)).toMatchObject({ code: 'tar_truncated', stage: 'source' });
    expect(failureOf(firstShard[3]!)!.message).toContain(`inside member ${samples[3]!.key}.${samples[3]!.ext}`);
    expect(firstShard[3]!.imageBytes).toBeNull();
    // The whole next shard still comes out.
    expect(pairs.slice(4).map((p) => p.key)).toEqual(good.slice(10).map((s) => s.key));
    expectEvery(pairs.slice(4), (p) => failureOf(p) === null);
  });

  it('a tar cut off inside a header marks the sample being read', async () => {
    const samples = await makeGoodSamples(3, 300);
    const cutPath = path.join(dir, 'cut-header.tar');
    await writeTar(cutPath, samples.flatMap(sampleMembers));
    const bytes = await readFile(cutPath);
    const header = bytes.indexOf(Buffer.from(`${samples[2]!.key}.json\0`));
    await truncate(cutPath, header + 100);
    const pairs = await readAll('cut-header.tar');
    expect(pairs.map((p) => failureOf(p)?.code ?? 'ok')).toEqual(['ok', 'ok', 'tar_truncated']);
    expect(failureOf(pairs[2]!)!.message).toContain(`after member ${samples[2]!.key}.${samples[2]!.ext}`);
  });

  it('a missing shard -> one shard_missing failure, and the other shards are read', async () => {
    const pairs = await readAll('{missing-000000.tar,good-000000.tar}');
    expect(pairs).toHaveLength(11);
    expect(pairs[0]).toMatchObject({
      key: 'missing-000000_tar__shard',
      imageBytes: null,
      fate: { kind: 'failed', code: 'shard_missing', stage: 'source' },
    });
    expect(failureOf(pairs[0]!)!.message).toContain(path.join(dir, 'missing-000000.tar'));
    expectEvery(pairs.slice(1), (p) => failureOf(p) === null);
  });

  it('a file that is not a tar -> shard_unreadable; so is a folder', async () => {
    await writeFile(path.join(dir, 'not-a.tar'), 'hello, I am a text file pretending to be a tar\n'.repeat(40));
    await writeFile(path.join(dir, 'tiny.tar'), 'short');
    const pairs = await readAll(['not-a.tar', 'tiny.tar', 'good-000000.tar', '.']);
    expect(pairs.map((p) => failureOf(p)?.code ?? 'ok')).toEqual([
      'shard_unreadable',
      'shard_unreadable',
      ...Array(10).fill('ok'),
      'shard_unreadable',
    ]);
    expect(pairs[0]!.key).toBe('not-a_tar__shard');
    expect(failureOf(pairs[0]!)!.message).toMatch(/not a readable tar file/);
  });

  it('a key that reappears apart from its members gets its own failed record', async () => {
    const image = await makeImage(8, 8, 'png', 3);
    await writeTar(path.join(dir, 'dup.tar'), [
      { name: 'a.png', data: image },
      { name: 'b.png', data: image },
      { name: 'a.txt', data: 'late caption' },
    ]);
    const pairs = await readAll('dup.tar');
    expect(pairs.map((p) => p.key)).toEqual(['a', 'b', 'a__dup2']);
    expect(pairs.map((p) => failureOf(p)?.code ?? 'ok')).toEqual(['ok', 'ok', 'key_duplicate']);
  });

  it('stops between samples when the signal aborts', async () => {
    const controller = new AbortController();
    const seen: string[] = [];
    for await (const pair of source('good-{000000..000001}.tar').read(context(dir, WHOLE, controller.signal))) {
      seen.push(pair.key);
      if (seen.length === 3) controller.abort();
    }
    expect(seen).toHaveLength(3);
  });

  it('stops cleanly when the consumer stops early', async () => {
    const it = source('good-000000.tar').read(context(dir))[Symbol.asyncIterator]();
    expect((await it.next()).done).toBe(false);
    await it.return?.(undefined);
    expect((await it.next()).done).toBe(true);
  });

  it('skips keys the store says are done', async () => {
    const done = new Set(good.slice(0, 5).map((s) => s.key));
    const ctx: SourceContext = { ...context(dir), isDone: (keys) => new Set(keys.filter((k) => done.has(k))) };
    const pairs = await collect(source('good-000000.tar').read(ctx));
    expect(pairs.map((p) => p.key)).toEqual(good.slice(5, 10).map((s) => s.key));
  });

  it('count() is unknown', async () => {
    expect(await source('good-000000.tar').count!(context(dir))).toBeNull();
  });

  it('rejects unknown options', () => {
    expect(webdatasetOptionsSchema.safeParse({ type: 'webdataset', paths: 'a.tar', path: 'b.tar' }).success).toBe(false);
    expect(webdatasetOptionsSchema.safeParse({ type: 'webdataset', paths: [] }).success).toBe(false);
    expect(webdatasetOptionsSchema.safeParse({ type: 'webdataset', paths: 'a.tar', keyPrefix: 'a.b' }).success).toBe(false);
  });

  it('reads a shard of many large members (chunked streams) byte for byte', async () => {
    // 60 samples of several hundred KB each: each member arrives in many chunks.
    const big = await makeImage(400, 400, 'png', 11);
    const members: Member[] = [];
    for (let i = 0; i < 60; i++) members.push({ name: `big${String(i).padStart(3, '0')}.png`, data: big });
    const bigPath = path.join(dir, 'big.tar');
    await writeTar(bigPath, members);
    expect((await stat(bigPath)).size).toBeGreaterThan(60 * big.length);
    let count = 0;
    for await (const pair of source('big.tar').read(context(dir))) {
      expect(pair.imageBytes!.length).toBe(big.length);
      count++;
    }
    expect(count).toBe(60);
  });
});

describe('boxes in key.json', () => {
  it('reads well-formed pixel boxes and leaves out malformed ones', async () => {
    const { dir, cleanup } = await makeTempDir();
    try {
      const image = await makeImage(40, 30, 'jpeg', 1);
      const json = { boxes: [{ label: 'red circle', box: [1, 2, 11, 12] }, { label: 'bad', box: [5, 5, 1, 1] }, { label: '', box: [0, 0, 1, 1] }, 'junk'] };
      await writeTar(path.join(dir, 'b.tar'), [
        { name: 'k.jpg', data: image },
        { name: 'k.json', data: JSON.stringify(json) },
      ]);
      const source = webdatasetSource.create({ type: 'webdataset', paths: 'b.tar' }, 'w');
      const pairs: Pair[] = [];
      for await (const p of source.read({ signal: new AbortController().signal, shard: { index: 0, count: 1 }, baseDir: dir })) pairs.push(p);
      expect(pairs[0]!.boxes).toEqual([{ label: 'red circle', box: [1, 2, 11, 12] }]);
    } finally {
      await cleanup();
    }
  });
});
