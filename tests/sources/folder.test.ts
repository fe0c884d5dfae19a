import { mkdir, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/core/errors.js';
import { makeImage, makeTempDir } from '../fixtures/make-webdataset.js';
import { collect, context, sourceFrom } from './manifest-fixtures.js';
import { failureOf } from '../../src/core/sample.js';

let dir: string;
let cleanup: () => Promise<void>;
const bytes = new Map<string, Buffer>();

/** Files of the folder, written in an order unrelated to the expected traversal order. */
const FILES: Record<string, string | 'image'> = {
  'photos/zebra.jpg': 'image',
  'photos/zebra.txt': 'A zebra\non grass.',
  'photos/apple.png': 'image',
  'photos/apple.json': JSON.stringify({ caption: 'a green apple', source_url: 'http://x/apple' }),
  'photos/b/nested.webp': 'image',
  'photos/b/nested.txt': '',
  'photos/a.jpg': 'image',
  'photos/a.png': 'image',
  'photos/both.jpg': 'image',
  'photos/both.txt': 'from txt',
  'photos/both.json': JSON.stringify({ caption: 'from json', license: 'cc-by' }),
  'photos/bad.jpg': 'image',
  'photos/bad.json': '{"caption": ',
  'photos/notes.md': 'not an image',
  'photos/.hidden.jpg': 'image',
  'photos/.cache/x.jpg': 'image',
  'photos/UPPER.JPG': 'image',
  'photos/multi.jpg': 'image',
  'photos/multi.json': JSON.stringify({ caption: ['one', 'two'] }),
};

beforeAll(async () => {
  ({ dir, cleanup } = await makeTempDir('vlcurate-folder-'));
  let seed = 0;
  for (const [name, content] of Object.entries(FILES)) {
    const file = path.join(dir, name);
    await mkdir(path.dirname(file), { recursive: true });
    if (content === 'image') {
      const ext = path.extname(name).slice(1).toLowerCase();
      const image = await makeImage(12, 10, ext === 'png' ? 'png' : ext === 'webp' ? 'webp' : 'jpeg', seed++);
      bytes.set(name, image);
      await writeFile(file, image);
    } else {
      await writeFile(file, content);
    }
  }
  await symlink(path.join(dir, 'photos', 'zebra.jpg'), path.join(dir, 'photos', 'link.jpg'));
  await symlink(path.join(dir, 'photos', 'b'), path.join(dir, 'photos', 'linked-dir'));
});

afterAll(async () => {
  await cleanup();
});

const EXPECTED_KEYS = ['UPPER', 'a', 'a_png', 'apple', 'b_nested', 'bad', 'both', 'link', 'multi', 'zebra'];

describe('folder source', () => {
  it('walks sorted and depth-first, skips hidden entries and non-images, keys from relative paths', async () => {
    const pairs = await collect(sourceFrom({ type: 'folder', path: 'photos' }).read(context(dir)));
    expect(pairs.map((p) => p.key)).toEqual(EXPECTED_KEYS);
    expect(pairs.find((p) => p.key === 'b_nested')!.meta['path']).toBe('b/nested.webp');
    expect(pairs.find((p) => p.key === 'a_png')!.meta['path']).toBe('a.png');
  });

  it('reads sidecars: .txt caption, .json metadata, the JSON caption when there is no .txt', async () => {
    const pairs = new Map((await collect(sourceFrom({ type: 'folder', path: 'photos' }).read(context(dir)))).map((p) => [p.key, p]));
    const zebra = pairs.get('zebra')!;
    expect(failureOf(zebra)).toBeNull();
    expect(Buffer.compare(zebra.imageBytes!, bytes.get('photos/zebra.jpg')!)).toBe(0);
    expect(zebra.imageRef).toBe(`file:${path.join(dir, 'photos', 'zebra.jpg')}`);
    expect(zebra.captions).toEqual([{ text: 'A zebra on grass.', origin: 'web', issue: null, usable: true }]);
    const apple = pairs.get('apple')!;
    expect(apple.captions.map((c) => c.text)).toEqual(['a green apple']);
    expect(apple.meta).toEqual({ caption: 'a green apple', source_url: 'http://x/apple', path: 'apple.png' });
    const both = pairs.get('both')!;
    expect(both.captions.map((c) => c.text)).toEqual(['from txt']);
    expect(both.meta['license']).toBe('cc-by');
    expect(pairs.get('multi')!.captions.map((c) => c.text)).toEqual(['one', 'two']);
    expect(pairs.get('b_nested')!.captions).toEqual([{ text: '', origin: 'web', issue: null, usable: true }]);
    expect(pairs.get('a')!.captions).toEqual([]);
  });

  it('a sidecar JSON that does not parse -> json_invalid on that image only', async () => {
    const pairs = await collect(sourceFrom({ type: 'folder', path: 'photos' }).read(context(dir)));
    expect(pairs.filter((p) => failureOf(p) !== null).map((p) => [p.key, failureOf(p)!.code])).toEqual([['bad', 'json_invalid']]);
    expect(failureOf(pairs.find((p) => p.key === 'bad')!)!.message).toContain('bad.json');
  });

  it('non-recursive, custom extensions, key prefix and caption origin', async () => {
    const flat = await collect(sourceFrom({ type: 'folder', path: 'photos', recursive: false, extensions: ['png'], keyPrefix: 'f_', captionOrigin: 'annotation' }).read(context(dir)));
    expect(flat.map((p) => p.key)).toEqual(['f_a', 'f_apple']);
    expect(flat[1]!.captions[0]!.origin).toBe('annotation');
  });

  it('shards cover every image once across N=3, count() agrees, isDone skips', async () => {
    const src = sourceFrom({ type: 'folder', path: 'photos' });
    const seen: string[] = [];
    for (let index = 0; index < 3; index++) {
      const ctx = context(dir, {}, { index, count: 3 });
      const pairs = await collect(src.read(ctx));
      expect(await src.count!(ctx)).toBe(pairs.length);
      seen.push(...pairs.map((p) => p.key));
    }
    expect(seen.sort()).toEqual([...EXPECTED_KEYS].sort());
    const rest = await collect(src.read(context(dir, { isDone: (keys) => new Set(keys.filter((k) => k.startsWith('a'))) })));
    expect(rest.map((p) => p.key)).toEqual(EXPECTED_KEYS.filter((k) => !k.startsWith('a')));
  });

  it('a missing folder is a ConfigError', async () => {
    await expect(collect(sourceFrom({ type: 'folder', path: 'nope' }).read(context(dir)))).rejects.toThrow(ConfigError);
  });
});
