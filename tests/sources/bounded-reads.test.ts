/**
 * Every place that reads image bytes (issue 12, "Unbounded reads"): manifest and LLaVA image references,
 * folder images and sidecars, COCO files, references read back from the run database, WebDataset tar
 * members. A FIFO, `/dev/zero` (directly, as a `file:` URL, through a symbolic link) and files or members
 * over `decode.maxBytes` each become a per-sample failure with a specific code; nothing waits or buffers.
 */
import { execFileSync } from 'node:child_process';
import { mkdir, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { failureOf, OPEN, type Pair } from '../../src/core/sample.js';
import { createDecodeStage } from '../../src/decode/decode-stage.js';
import { loadImages, type ImageRefSample } from '../../src/images/image-ref.js';
import { makeImage, makeTempDir, writeTar } from '../fixtures/make-webdataset.js';
import { collect, context, sourceFrom } from './manifest-fixtures.js';

let dir: string;
let cleanup: () => Promise<void>;
let image: Buffer;

beforeAll(async () => {
  ({ dir, cleanup } = await makeTempDir('vlcurate-bounded-'));
  image = await makeImage(16, 12, 'jpeg', 3);
  await writeFile(path.join(dir, 'ok.jpg'), image);
  await writeFile(path.join(dir, 'big.jpg'), Buffer.concat([image, Buffer.alloc(5000)]));
  execFileSync('mkfifo', [path.join(dir, 'pipe.jpg')]);
  await symlink('/dev/zero', path.join(dir, 'zero.jpg'));
});

afterAll(async () => {
  await cleanup();
});

const byKey = (pairs: Pair[]) => Object.fromEntries(pairs.map((p) => [p.key, p.fate.kind === 'failed' ? `${p.fate.code}: ${p.fate.message}` : `ok ${p.imageBytes?.length}`]));

describe('manifest and LLaVA image references', () => {
  it('fail a FIFO, a link to /dev/zero and an over-size file, each on its own sample', async () => {
    const rows = [
      { key: 'ok', image: 'ok.jpg' },
      { key: 'fifo', image: 'pipe.jpg' },
      { key: 'zero_link', image: 'zero.jpg' },
      { key: 'big', image: 'big.jpg' },
    ];
    await writeFile(path.join(dir, 'm.jsonl'), rows.map((r) => JSON.stringify(r)).join('\n'));
    const pairs = await collect(
      sourceFrom({ type: 'jsonl', path: 'm.jsonl', image: 'image', key: 'key', keyPrefix: '', order: 'input' }).read(context(dir, { maxFileBytes: image.length + 100 })),
    );
    const got = byKey(pairs);
    expect(Object.keys(got)).toEqual(['ok', 'fifo', 'zero_link', 'big']);
    expect(got['ok']).toBe(`ok ${image.length}`);
    expect(got['fifo']).toMatch(/^image_unreadable: image file .*pipe\.jpg is not a regular file \(a FIFO\)/);
    // The link leads out of the manifest's folder: refused before anything is opened.
    expect(got['zero_link']).toMatch(/^image_path_invalid: image file .*zero\.jpg \(a symbolic link to \/dev\/zero\) is outside the folders this source may read/);
    expect(got['big']).toMatch(/^image_too_large: image file .*big\.jpg is [\d,]+ bytes, more than decode\.maxBytes/);
  });

  it('fail /dev/zero as a path, a file: URL and a link with image_unreadable when any path is allowed', async () => {
    const rows = [
      { key: 'zero_abs', image: '/dev/zero' },
      { key: 'zero_url', image: 'file:///dev/zero' },
      { key: 'zero_link', image: 'zero.jpg' },
    ];
    await writeFile(path.join(dir, 'abs.jsonl'), rows.map((r) => JSON.stringify(r)).join('\n'));
    const pairs = await collect(
      sourceFrom({ type: 'jsonl', path: 'abs.jsonl', image: 'image', key: 'key', keyPrefix: '', order: 'input', allowAbsolutePaths: true }).read(context(dir)),
    );
    expect(pairs.map((p) => failureOf(p)?.code)).toEqual(['image_unreadable', 'image_unreadable', 'image_unreadable']);
    for (const pair of pairs) expect(failureOf(pair)!.message).toContain('is not a regular file (a character device)');
  });

  it('fail a FIFO named by a LLaVA record', async () => {
    await writeFile(
      path.join(dir, 'llava.json'),
      JSON.stringify([
        { id: 'a', image: 'pipe.jpg', conversations: [{ from: 'human', value: '<image>\nWhat?' }, { from: 'gpt', value: 'A thing.' }] },
        { id: 'b', image: 'ok.jpg', conversations: [{ from: 'human', value: '<image>\nWhat?' }, { from: 'gpt', value: 'A thing.' }] },
      ]),
    );
    const pairs = await collect(sourceFrom({ type: 'llava', path: 'llava.json' }).read(context(dir)));
    expect(pairs.map((p) => [p.key, failureOf(p)?.code ?? 'ok'])).toEqual([
      ['a', 'image_unreadable'],
      ['b', 'ok'],
    ]);
  });
});

describe('folder source', () => {
  it('fails an image over maxBytes and a sidecar that is a FIFO; the other images are read', async () => {
    const folder = path.join(dir, 'photos');
    await mkdir(folder);
    await writeFile(path.join(folder, 'a.jpg'), image);
    await writeFile(path.join(folder, 'b.jpg'), Buffer.concat([image, Buffer.alloc(5000)]));
    await writeFile(path.join(folder, 'c.jpg'), image);
    execFileSync('mkfifo', [path.join(folder, 'c.txt')]);
    await writeFile(path.join(folder, 'd.jpg'), image);
    await symlink('/dev/zero', path.join(folder, 'd.json'));
    const pairs = await collect(sourceFrom({ type: 'folder', path: 'photos' }).read(context(dir, { maxFileBytes: image.length + 100 })));
    const got = byKey(pairs);
    expect(Object.keys(got)).toEqual(['a', 'b', 'c', 'd']);
    expect(got['a']).toBe(`ok ${image.length}`);
    expect(got['b']).toMatch(/^image_too_large: /);
    expect(got['c']).toMatch(/^caption_unreadable: sidecar .*c\.txt is not a regular file \(a FIFO\)/);
    expect(got['d']).toMatch(/^json_invalid: sidecar .*d\.json \(a symbolic link to \/dev\/zero\) is outside the folders/);
  });
});

describe('COCO source', () => {
  it('fails an image file that is a FIFO', async () => {
    const coco = path.join(dir, 'coco');
    await mkdir(path.join(coco, 'images'), { recursive: true });
    await writeFile(path.join(coco, 'images', 'ok.jpg'), image);
    execFileSync('mkfifo', [path.join(coco, 'images', 'pipe.jpg')]);
    await writeFile(
      path.join(coco, 'captions.json'),
      JSON.stringify({
        images: [
          { id: 1, file_name: 'ok.jpg', width: 16, height: 12 },
          { id: 2, file_name: 'pipe.jpg', width: 16, height: 12 },
        ],
        annotations: [
          { id: 1, image_id: 1, caption: 'one' },
          { id: 2, image_id: 2, caption: 'two' },
        ],
      }),
    );
    const pairs = await collect(sourceFrom({ type: 'coco', captions: 'coco/captions.json', images: 'coco/images' }).read(context(dir)));
    expect(pairs.map((p) => failureOf(p)?.code ?? 'ok')).toEqual(['ok', 'image_unreadable']);
  });
});

describe('WebDataset members', () => {
  it('read past a member over maxBytes without buffering it, failing only its sample', async () => {
    const big = Buffer.concat([image, Buffer.alloc(5000)]);
    await writeTar(path.join(dir, 'shard.tar'), [
      { name: 's1.jpg', data: image },
      { name: 's1.txt', data: 'first' },
      { name: 's2.jpg', data: big },
      { name: 's2.txt', data: 'second' },
      { name: 's3.jpg', data: image },
      { name: 's3.txt', data: 'x'.repeat(image.length + 200) },
      { name: 's4.jpg', data: image },
    ]);
    const pairs = await collect(sourceFrom({ type: 'webdataset', paths: 'shard.tar' }).read(context(dir, { maxFileBytes: image.length + 100 })));
    const got = byKey(pairs);
    expect(Object.keys(got)).toEqual(['s1', 's2', 's3', 's4']);
    expect(got['s1']).toBe(`ok ${image.length}`);
    expect(got['s2']).toMatch(/^image_too_large: member s2\.jpg of .*shard\.tar is [\d,]+ bytes, more than decode\.maxBytes [\d,]+; it was not read/);
    expect(got['s3']).toMatch(/^member_too_large: member s3\.txt /);
    expect(got['s4']).toBe(`ok ${image.length}`);
    expect(pairs.find((p) => p.key === 's2')!.imageRef).toMatch(/#s2\.jpg$/);
  });

  it('fails a shard path that is a FIFO at once (shard_unreadable)', async () => {
    execFileSync('mkfifo', [path.join(dir, 'pipe.tar')]);
    const pairs = await collect(sourceFrom({ type: 'webdataset', paths: 'pipe.tar' }).read(context(dir)));
    expect(pairs.map((p) => [failureOf(p)?.code, failureOf(p)?.message])).toEqual([['shard_unreadable', expect.stringContaining('is not a regular file (a FIFO)')]]);
  });
});

describe('references read back from the run database', () => {
  async function load(refs: string[], maxBytes?: number) {
    async function* feed(): AsyncGenerator<ImageRefSample> {
      for (const [i, imageRef] of refs.entries()) yield { key: `k${i}`, imageRef, imageBytes: null, fate: OPEN };
    }
    const out: ImageRefSample[] = [];
    for await (const s of loadImages(feed(), maxBytes === undefined ? {} : { maxBytes })) out.push(s);
    return out.map((s) => failureOf(s)?.code ?? `ok ${s.imageBytes?.length}`);
  }

  it('fail file: references to /dev/zero and a FIFO, and tar members over maxBytes', async () => {
    await writeTar(path.join(dir, 'back.tar'), [
      { name: 'x.jpg', data: image },
      { name: 'y.jpg', data: Buffer.concat([image, Buffer.alloc(5000)]) },
    ]);
    const tar = path.join(dir, 'back.tar');
    expect(await load(['file:/dev/zero', `file:${path.join(dir, 'pipe.jpg')}`, `file:${path.join(dir, 'ok.jpg')}`])).toEqual([
      'image_unreadable',
      'image_unreadable',
      `ok ${image.length}`,
    ]);
    expect(await load([`tar:${tar}#x.jpg`, `tar:${tar}#y.jpg`], image.length + 100)).toEqual([`ok ${image.length}`, 'image_too_large']);
    expect(await load([`tar:${path.join(dir, 'pipe.tar')}#x.jpg`])).toEqual(['shard_unreadable']);
  });
});

describe('decode stage', () => {
  it('fails bytes over decode.maxBytes from any source (a Parquet cell, a download) as image_too_large', async () => {
    const stage = createDecodeStage({ maxBytes: image.length - 1 });
    async function* feed(): AsyncGenerator<Pair> {
      yield { key: 'p', source: 's', imageRef: 'x', imageBytes: image, captions: [], boxes: [], meta: {}, fate: OPEN };
    }
    const out = await collect(stage.run(feed(), { signal: new AbortController().signal, emit: () => undefined }) as AsyncIterable<Pair>);
    expect(out.map((p) => failureOf(p)?.code)).toEqual(['image_too_large']);
    expect(failureOf(out[0]!)!.message).toMatch(/more than decode\.maxBytes/);
  });
});

describe('caption length (decode.maxCaptionChars)', () => {
  it('cuts every caption over the limit on ok and failed samples alike, marked too_long and unusable', async () => {
    const stage = createDecodeStage({ maxCaptionChars: 100 });
    const caption = (text: string) => ({ text, origin: 'web' as const, issue: null, usable: true });
    async function* feed(): AsyncGenerator<Pair> {
      yield { key: 'ok', source: 's', imageRef: 'x', imageBytes: image, captions: [caption('short'), caption('w'.repeat(5000))], boxes: [], meta: {}, fate: OPEN };
      const fate = { kind: 'failed', code: 'image_missing', message: 'gone', stage: 'source' } as const;
      yield { key: 'failed', source: 's', imageRef: 'y', imageBytes: null, captions: [caption('v'.repeat(101))], boxes: [], meta: {}, fate };
    }
    const out = await collect(stage.run(feed(), { signal: new AbortController().signal, emit: () => undefined }) as AsyncIterable<Pair>);
    expect(out.map((p) => p.captions.map((c) => [c.text.length, c.issue, c.usable]))).toEqual([
      [
        [5, null, true],
        [100, 'too_long', false],
      ],
      [[100, 'too_long', false]],
    ]);
  });
});
