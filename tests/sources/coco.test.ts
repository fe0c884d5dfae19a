import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/core/errors.js';
import type { Pair } from '../../src/core/sample.js';
import { WHOLE, type ShardSpec } from '../../src/core/shard.js';
import { cocoOptionsSchema, cocoSource } from '../../src/sources/coco.js';
import type { SourceContext } from '../../src/sources/source.js';
import { makeImage, makeTempDir } from '../fixtures/make-webdataset.js';

let dir: string;
let cleanup: () => Promise<void>;
const imageBytes = new Map<string, Buffer>();

function context(shard: ShardSpec = WHOLE, signal = new AbortController().signal): SourceContext {
  return { signal, shard, baseDir: dir };
}

function source(extra: Record<string, unknown>) {
  const options = cocoOptionsSchema.parse({ type: 'coco', images: 'images', ...extra });
  return cocoSource.create(options, 'coco-test');
}

async function collect(iterable: AsyncIterable<Pair>): Promise<Pair[]> {
  const out: Pair[] = [];
  for await (const item of iterable) out.push(item);
  return out;
}

async function writeJson(name: string, value: unknown): Promise<void> {
  await writeFile(path.join(dir, name), typeof value === 'string' ? value : JSON.stringify(value));
}

const images = [
  { id: 1, file_name: '000000000001.jpg', width: 40, height: 30, license: 3 },
  { id: 2, file_name: '000000000002.jpg', width: 40, height: 30 },
  { id: 3, file_name: 'not-on-disk.jpg', width: 40, height: 30 },
  { id: 4, file_name: 'sub dir/four.png', width: 40, height: 30 },
];

beforeAll(async () => {
  ({ dir, cleanup } = await makeTempDir('vlcurate-coco-'));
  await mkdir(path.join(dir, 'images', 'sub dir'), { recursive: true });
  for (const [i, name] of ['000000000001.jpg', '000000000002.jpg', 'sub dir/four.png'].entries()) {
    const bytes = await makeImage(40, 30, name.endsWith('png') ? 'png' : 'jpeg', i);
    imageBytes.set(name, bytes);
    await writeFile(path.join(dir, 'images', name), bytes);
  }
  await writeJson('captions.json', {
    info: { description: 'test' },
    images,
    annotations: [
      { id: 11, image_id: 1, caption: 'A cat sitting on a mat.' },
      { id: 12, image_id: 1, caption: '  a cat\non a  mat ' },
      { id: 13, image_id: 2, caption: 'Two dogs\u0000 playing.' },
      { id: 14, image_id: 99, caption: 'caption of an image nobody listed' },
      { id: 15, image_id: 99, caption: 'another one' },
    ],
  });
  await writeJson('instances.json', {
    images,
    categories: [
      { id: 17, name: 'cat', supercategory: 'animal' },
      { id: 18, name: 'dog', supercategory: 'animal' },
    ],
    annotations: [
      { id: 21, image_id: 1, category_id: 17, bbox: [10.5, 5, 20, 15.25], area: 300, iscrowd: 0 },
      { id: 22, image_id: 2, category_id: 18, bbox: [0, 0, 10, 10] },
      { id: 23, image_id: 2, category_id: 18, bbox: [12, 3, 8, 9] },
      { id: 24, image_id: 77, category_id: 18, bbox: [1, 1, 1, 1] },
    ],
  });
});

afterAll(async () => {
  await cleanup();
});

describe('coco source', () => {
  it('groups captions and instances per image, converts boxes and keeps the COCO frame', async () => {
    const pairs = await collect(source({ captions: 'captions.json', instances: 'instances.json' }).read(context()));
    const first = pairs.find((p) => p.key === '000000000001')!;
    expect(first.failure).toBeNull();
    expect(first.source).toBe('coco-test');
    expect(first.imageRef).toBe(`file:${path.join(dir, 'images', '000000000001.jpg')}`);
    expect(Buffer.compare(first.imageBytes!, imageBytes.get('000000000001.jpg')!)).toBe(0);
    expect(first.captions).toEqual([
      { text: 'A cat sitting on a mat.', origin: 'annotation', issue: null, usable: true },
      { text: 'a cat on a mat', origin: 'annotation', issue: null, usable: true },
    ]);
    expect(first.boxes).toEqual([
      { label: 'cat', box: [10.5, 5, 30.5, 20.25], original: { frame: 'coco_xywh', values: [10.5, 5, 20, 15.25] } },
    ]);
    expect(first.meta).toEqual(images[0]);

    const second = pairs.find((p) => p.key === '000000000002')!;
    expect(second.captions).toEqual([{ text: 'Two dogs playing.', origin: 'annotation', issue: 'control_chars_removed', usable: true }]);
    expect(second.boxes.map((b) => [b.label, b.box])).toEqual([
      ['dog', [0, 0, 10, 10]],
      ['dog', [12, 3, 20, 12]],
    ]);

    const fourth = pairs.find((p) => p.key === 'sub_dir_four')!;
    expect(fourth.failure).toBeNull();
    expect(fourth.captions).toEqual([]);
    expect(fourth.boxes).toEqual([]);
  });

  it('yields images in file order, then one failed pair per orphaned image id', async () => {
    const pairs = await collect(source({ captions: 'captions.json', instances: 'instances.json' }).read(context()));
    expect(pairs.map((p) => p.key)).toEqual([
      '000000000001',
      '000000000002',
      'not-on-disk',
      'sub_dir_four',
      'coco_orphan_99',
      'coco_orphan_77',
    ]);
  });

  it('a missing image file -> image_missing naming the path; the others still come out', async () => {
    const pairs = await collect(source({ captions: 'captions.json' }).read(context()));
    const missing = pairs.find((p) => p.key === 'not-on-disk')!;
    expect(missing.failure).toMatchObject({ code: 'image_missing', stage: 'source' });
    expect(missing.failure!.message).toContain(path.join(dir, 'images', 'not-on-disk.jpg'));
    expect(missing.imageBytes).toBeNull();
    expect(pairs.filter((p) => p.failure === null).map((p) => p.key)).toEqual(['000000000001', '000000000002', 'sub_dir_four']);
  });

  it('annotations of an unknown image id -> annotation_unknown_image naming the annotation ids', async () => {
    const pairs = await collect(source({ captions: 'captions.json', instances: 'instances.json' }).read(context()));
    const orphan = pairs.find((p) => p.key === 'coco_orphan_99')!;
    expect(orphan.failure).toMatchObject({ code: 'annotation_unknown_image', stage: 'source' });
    expect(orphan.failure!.message).toContain('image id 99');
    expect(orphan.failure!.message).toContain('captions annotations 14, 15');
    const other = pairs.find((p) => p.key === 'coco_orphan_77')!;
    expect(other.failure!.message).toContain('instances annotation 24');
  });

  it('works with instances alone and with a key prefix', async () => {
    const pairs = await collect(source({ instances: 'instances.json', keyPrefix: 'val_' }).read(context()));
    expect(pairs.map((p) => p.key)).toEqual([
      'val_000000000001',
      'val_000000000002',
      'val_not-on-disk',
      'val_sub_dir_four',
      'val_coco_orphan_77',
    ]);
    expect(pairs[0]!.captions).toEqual([]);
    expect(pairs[0]!.boxes).toHaveLength(1);
  });

  it('shards cover every pair once, and count() matches what read() yields per shard', async () => {
    const src = source({ captions: 'captions.json', instances: 'instances.json' });
    const seen: string[] = [];
    for (let index = 0; index < 3; index++) {
      const ctx = context({ index, count: 3 });
      const pairs = await collect(src.read(ctx));
      expect(await src.count!(ctx)).toBe(pairs.length);
      seen.push(...pairs.map((p) => p.key));
    }
    expect(seen.sort()).toEqual(
      ['000000000001', '000000000002', 'not-on-disk', 'sub_dir_four', 'coco_orphan_99', 'coco_orphan_77'].sort(),
    );
    expect(await src.count!(context())).toBe(6);
  });

  it('reads image bytes lazily, one sample at a time', async () => {
    const iterator = source({ captions: 'captions.json' }).read(context())[Symbol.asyncIterator]();
    const first = await iterator.next();
    expect(first.done).toBe(false);
    // The second image is replaced after the first was yielded: a lazy reader sees the new bytes.
    const replacement = await makeImage(12, 12, 'jpeg', 42);
    await writeFile(path.join(dir, 'images', '000000000002.jpg'), replacement);
    try {
      const second = await iterator.next();
      expect(Buffer.compare((second.value as Pair).imageBytes!, replacement)).toBe(0);
    } finally {
      await writeFile(path.join(dir, 'images', '000000000002.jpg'), imageBytes.get('000000000002.jpg')!);
      await iterator.return?.(undefined);
    }
  });

  it('unknown categories and negative box sizes fail only their image', async () => {
    await writeJson('bad-instances.json', {
      images: images.slice(0, 2),
      categories: [{ id: 1, name: 'cat' }],
      annotations: [
        { id: 1, image_id: 1, category_id: 5, bbox: [0, 0, 1, 1] },
        { id: 2, image_id: 2, category_id: 1, bbox: [0, 0, -3, 1] },
      ],
    });
    const pairs = await collect(source({ instances: 'bad-instances.json' }).read(context()));
    expect(pairs.map((p) => p.failure?.code)).toEqual(['annotation_unknown_category', 'annotation_invalid_box']);
    expect(pairs[0]!.failure!.message).toContain('category_id 5');
  });

  it('keys stay unique when two files share a name up to the extension', async () => {
    await writeJson('same-name.json', {
      images: [
        { id: 1, file_name: 'a.jpg' },
        { id: 2, file_name: 'a.png' },
      ],
      annotations: [],
    });
    const pairs = await collect(source({ captions: 'same-name.json' }).read(context()));
    expect(pairs.map((p) => p.key)).toEqual(['a', 'a_2']);
  });

  it('a file_name pointing outside the images folder is refused', async () => {
    await writeJson('escape.json', { images: [{ id: 1, file_name: '../captions.json' }], annotations: [] });
    const pairs = await collect(source({ captions: 'escape.json' }).read(context()));
    expect(pairs[0]!.failure).toMatchObject({ code: 'image_path_invalid' });
    expect(pairs[0]!.imageBytes).toBeNull();
  });

  describe('configuration errors', () => {
    async function readError(extra: Record<string, unknown>): Promise<Error> {
      try {
        await collect(source(extra).read(context()));
      } catch (err) {
        return err as Error;
      }
      throw new Error('expected the read to fail');
    }

    it('malformed COCO json -> ConfigError naming the file and the field', async () => {
      await writeJson('not-coco.json', {
        images: [{ id: 1, file_name: 'a.jpg' }],
        annotations: [{ id: 1, image_id: 1, category_id: 1, bbox: 'oops' }],
        categories: [],
      });
      const err = await readError({ instances: 'not-coco.json' });
      expect(err).toBeInstanceOf(ConfigError);
      expect(err.message).toContain(path.join(dir, 'not-coco.json'));
      expect(err.message).toContain('annotations[0].bbox');
    });

    it('a missing required list -> ConfigError naming the field', async () => {
      await writeJson('no-images.json', { annotations: [] });
      const err = await readError({ captions: 'no-images.json' });
      expect(err).toBeInstanceOf(ConfigError);
      expect(err.message).toMatch(/no-images\.json.*images: expected array/);
    });

    it('invalid JSON and missing files -> ConfigError naming the file', async () => {
      await writeJson('broken.json', '{"images": [');
      const broken = await readError({ captions: 'broken.json' });
      expect(broken).toBeInstanceOf(ConfigError);
      expect(broken.message).toMatch(/broken\.json" is not valid JSON/);
      const missing = await readError({ captions: 'nope.json' });
      expect(missing).toBeInstanceOf(ConfigError);
      expect(missing.message).toMatch(/coco captions: file ".*nope\.json" does not exist/);
    });

    it('a missing images folder -> ConfigError', async () => {
      const err = await readError({ captions: 'captions.json', images: 'no-such-folder' });
      expect(err).toBeInstanceOf(ConfigError);
      expect(err.message).toContain('no-such-folder');
    });

    it('the schema requires captions or instances, and rejects unknown keys', () => {
      const neither = cocoOptionsSchema.safeParse({ type: 'coco', images: 'x' });
      expect(neither.success).toBe(false);
      expect(neither.error!.issues[0]!.message).toMatch(/`captions` or `instances`/);
      expect(cocoOptionsSchema.safeParse({ type: 'coco', images: 'x', captions: 'c', caption: 'c' }).success).toBe(false);
    });
  });
});
