import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/core/errors.js';
import { failureOf, type Pair } from '../../src/core/sample.js';
import { WHOLE, type ShardSpec } from '../../src/core/shard.js';
import { cocoOptionsSchema, cocoSource } from '../../src/sources/coco.js';
import type { SourceContext } from '../../src/sources/source.js';
import { makeImage, makeTempDir } from '../fixtures/make-webdataset.js';
import { expectEvery } from '../expect-every.js';

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

/** The annotations a pair left out, as `[code, message]`. */
function dropped(pair: Pair): [string, string][] {
  const list = (pair.meta['droppedAnnotations'] ?? []) as { code: string; message: string }[];
  return list.map((d) => [d.code, d.message]);
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
    expect(failureOf(first)).toBeNull();
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
    expect(failureOf(fourth)).toBeNull();
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
    expect(failureOf(missing)).toMatchObject({ code: 'image_missing', stage: 'source' });
    expect(failureOf(missing)!.message).toContain(path.join(dir, 'images', 'not-on-disk.jpg'));
    expect(missing.imageBytes).toBeNull();
    expect(pairs.filter((p) => failureOf(p) === null).map((p) => p.key)).toEqual(['000000000001', '000000000002', 'sub_dir_four']);
  });

  it('annotations of an unknown image id -> annotation_unknown_image naming the annotation ids', async () => {
    const pairs = await collect(source({ captions: 'captions.json', instances: 'instances.json' }).read(context()));
    const orphan = pairs.find((p) => p.key === 'coco_orphan_99')!;
    expect(failureOf(orphan)).toMatchObject({ code: 'annotation_unknown_image', stage: 'source' });
    expect(failureOf(orphan)!.message).toContain('image id 99');
    expect(failureOf(orphan)!.message).toContain('captions annotations 14, 15');
    const other = pairs.find((p) => p.key === 'coco_orphan_77')!;
    expect(failureOf(other)!.message).toContain('instances annotation 24');
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

  it('an unknown category or a negative box size drops that annotation only; the image keeps its captions and good boxes', async () => {
    await writeJson('bad-instances.json', {
      images: images.slice(0, 2),
      categories: [{ id: 1, name: 'cat' }],
      annotations: [
        { id: 1, image_id: 1, category_id: 5, bbox: [0, 0, 1, 1] },
        { id: 2, image_id: 2, category_id: 1, bbox: [0, 0, -3, 1] },
        { id: 3, image_id: 1, category_id: 1, bbox: [2, 2, 4, 4] },
      ],
    });
    const pairs = await collect(source({ captions: 'captions.json', instances: 'bad-instances.json' }).read(context()));
    const [one, two] = pairs;
    expect(one!.key).toBe('000000000001');
    expect(failureOf(one!)).toBeNull();
    expect(one!.imageBytes).not.toBeNull();
    expect(one!.captions.map((c) => c.text)).toEqual(['A cat sitting on a mat.', 'a cat on a mat']);
    expect(one!.boxes).toEqual([{ label: 'cat', box: [2, 2, 6, 6], original: { frame: 'coco_xywh', values: [2, 2, 4, 4] } }]);
    const file = `instances file "${path.join(dir, 'bad-instances.json')}"`;
    expect(dropped(one!)).toEqual([['annotation_unknown_category', `annotations[0] (id 1) of ${file}: category_id 5 is not in "categories"`]]);
    expect(failureOf(two!)).toBeNull();
    expect(two!.boxes).toEqual([]);
    expect(dropped(two!)).toEqual([
      ['annotation_invalid_box', `annotations[1] (id 2) of ${file}: bbox [0, 0, -3, 1] has a width or height of 0 or less (width -3, height 1)`],
    ]);
    // The image record's own fields stay as they were; an image with nothing dropped gets no extra field.
    expect(one!.meta).toMatchObject({ id: 1, file_name: '000000000001.jpg', license: 3 });
    const clean = await collect(source({ instances: 'instances.json' }).read(context()));
    expectEvery(clean.filter((p) => !failureOf(p)), (p) => !('droppedAnnotations' in p.meta));
    expect(clean.filter((p) => !failureOf(p)).length).toBeGreaterThan(0);
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
    expect(failureOf(pairs[0]!)).toMatchObject({ code: 'image_path_invalid' });
    expect(pairs[0]!.imageBytes).toBeNull();
  });

  describe('bad entries fail only their own sample', () => {
    const good = images.slice(0, 2);
    const captionsPath = () => `captions file "${path.join(dir, 'entries-captions.json')}"`;
    const instancesPath = () => `instances file "${path.join(dir, 'entries-instances.json')}"`;

    async function read(extra: Record<string, unknown>): Promise<Pair[]> {
      const src = source(extra);
      const pairs = await collect(src.read(context()));
      // Every recorded failure is counted too, so progress and sharding still add up.
      expect(await src.count!(context())).toBe(pairs.length);
      return pairs;
    }

    it('a caption that is not a string is dropped as row_invalid, naming the annotation; the rest of the image stays', async () => {
      await writeJson('entries-captions.json', {
        images: good,
        annotations: [
          { id: 11, image_id: 1, caption: 12345 },
          { id: 12, image_id: 1, caption: 'still read' },
          { id: 13, image_id: 2, caption: 'Two dogs.' },
          { image_id: 2, caption: 'no id is fine' },
        ],
      });
      const pairs = await read({ captions: 'entries-captions.json' });
      expect(pairs.map((p) => [p.key, failureOf(p)?.code ?? null])).toEqual([
        ['000000000001', null],
        ['000000000002', null],
      ]);
      expect(dropped(pairs[0]!)).toEqual([['row_invalid', `annotations[0] (id 11) of ${captionsPath()}: caption: expected a string, got 12345`]]);
      expect(pairs[0]!.captions.map((c) => c.text)).toEqual(['still read']);
      expect(pairs[1]!.captions.map((c) => c.text)).toEqual(['Two dogs.', 'no id is fine']);
      expect(Buffer.compare(pairs[1]!.imageBytes!, imageBytes.get('000000000002.jpg')!)).toBe(0);
    });

    it('a bbox that is not 4 numbers is dropped as annotation_invalid_box; other wrong fields as row_invalid', async () => {
      await writeJson('entries-instances.json', {
        images: [...good, images[3]],
        categories: [{ id: 1, name: 'cat' }],
        annotations: [
          { id: 1, image_id: 1, category_id: 1, bbox: 'nope' },
          { id: 2, image_id: 2, category_id: 1, bbox: [1, 2, 3, 4] },
          { id: 3, image_id: 2, category_id: 1, bbox: [1, 2, 3] },
          { id: 4, image_id: 4, category_id: null, bbox: [1, 2, 3, 4], area: 12 },
          { id: { bad: true }, image_id: 4, category_id: 1, bbox: [1, 2, 3, 4] },
        ],
      });
      const pairs = await read({ instances: 'entries-instances.json' });
      expect(pairs.map((p) => [p.key, failureOf(p)?.code ?? null])).toEqual([
        ['000000000001', null],
        ['000000000002', null],
        ['sub_dir_four', null],
      ]);
      expect(dropped(pairs[0]!)).toEqual([
        ['annotation_invalid_box', `annotations[0] (id 1) of ${instancesPath()}: bbox: expected [x, y, width, height] as 4 finite numbers, got "nope"`],
      ]);
      expect(dropped(pairs[1]!).map(([code]) => code)).toEqual(['annotation_invalid_box']);
      expect(dropped(pairs[1]!)[0]![1]).toContain('annotations[2] (id 3)');
      expect(dropped(pairs[1]!)[0]![1]).toContain('got [1,2,3]');
      expect(pairs[1]!.boxes.map((b) => b.box)).toEqual([[1, 2, 4, 6]]);
      expect(dropped(pairs[2]!).map(([code]) => code)).toEqual(['row_invalid', 'row_invalid']);
      expect(dropped(pairs[2]!)[0]![1]).toBe(
        `annotations[3] (id 4) of ${instancesPath()}: category_id: expected an integer or a non-empty string, got null`,
      );
      expect(pairs[2]!.boxes).toEqual([]);
    });

    it('annotations without a usable image_id -> one row_invalid record listing them; images are unaffected', async () => {
      await writeJson('entries-captions.json', {
        images: good,
        annotations: [
          { id: 11, caption: 'no image id' },
          { id: 12, image_id: 1, caption: 'fine' },
          42,
          { id: 14, image_id: 1.5, caption: 'fractional id' },
          { id: 15, image_id: 99, caption: 'unknown image' },
        ],
      });
      const pairs = await read({ captions: 'entries-captions.json' });
      expect(pairs.map((p) => [p.key, failureOf(p)?.code ?? null])).toEqual([
        ['000000000001', null],
        ['000000000002', null],
        ['coco_orphan_99', 'annotation_unknown_image'],
        ['coco_orphan_invalid_image_id', 'row_invalid'],
      ]);
      expect(pairs[0]!.captions.map((c) => c.text)).toEqual(['fine']);
      const unattached = pairs[3]!;
      expect(unattached.imageBytes).toBeNull();
      expect(unattached.meta).toEqual({ annotations: 3 });
      expect(failureOf(unattached)!.message).toBe(
        `3 annotations have no usable image_id, so no image can carry them: ` +
          `annotations[0] (id 11) of ${captionsPath()}: image_id: expected an integer or a non-empty string, got nothing; ` +
          `annotations[2] of ${captionsPath()}: expected an object {image_id, caption}, got 42; ` +
          `annotations[3] (id 14) of ${captionsPath()}: image_id: expected an integer or a non-empty string, got 1.5`,
      );
    });

    it('a bad images entry -> row_invalid for that image only; its annotations stay with it', async () => {
      await writeJson('entries-captions.json', {
        images: [
          images[0],
          { id: 2, file_name: 5 },
          { id: null, file_name: 'sub dir/four.png' },
          'not an image',
          { id: 5, file_name: '000000000002.jpg', width: -1, height: 30 },
        ],
        annotations: [
          { id: 11, image_id: 1, caption: 'good' },
          { id: 12, image_id: 2, caption: 'of the image without a file name' },
        ],
      });
      const pairs = await read({ captions: 'entries-captions.json' });
      expect(pairs.map((p) => [p.key, failureOf(p)?.code ?? null])).toEqual([
        ['000000000001', null],
        ['coco_image_2', 'row_invalid'],
        ['sub_dir_four', 'row_invalid'],
        ['coco_captions_images_3', 'row_invalid'],
        ['000000000002', 'row_invalid'],
      ]);
      expect(pairs[0]!.imageBytes).not.toBeNull();
      const messages = pairs.slice(1).map((p) => failureOf(p)!.message);
      expect(messages).toEqual([
        `images[1] of ${captionsPath()}: file_name: expected a non-empty string, got 5`,
        `images[2] of ${captionsPath()}: id: expected an integer or a non-empty string, got null`,
        `images[3] of ${captionsPath()}: expected an object {id, file_name}, got "not an image"`,
        `images[4] of ${captionsPath()}: width: expected a number above 0, got -1`,
      ]);
      // Image 2 is known, so its caption is not an orphan.
      expect(pairs[1]!.captions.map((c) => c.text)).toEqual(['of the image without a file name']);
      expect(pairs[1]!.imageRef).toBe('');
      expect(pairs[2]!.imageRef).toBe(`file:${path.join(dir, 'images', 'sub dir', 'four.png')}`);
    });

    it('a repeated image id -> key_duplicate for the later entry; annotations stay with the first', async () => {
      await writeJson('entries-captions.json', {
        images: [
          images[0],
          { id: 1, file_name: 'four.png' },
          images[0],
          { id: 2, file_name: 'zz.jpg' },
          { id: 2, file_name: '000000000002.jpg' },
          { id: 3, file_name: 'four.png' },
        ],
        annotations: [
          { id: 11, image_id: 1, caption: 'cat' },
          { id: 12, image_id: 2, caption: 'dog' },
        ],
      });
      const pairs = await read({ captions: 'entries-captions.json' });
      expect(pairs.map((p) => [p.key, failureOf(p)?.code ?? null])).toEqual([
        ['000000000001', null],
        // Keys of first listings are given first: image 3 keeps `four`, the repeat of id 1 gets `four_1`.
        ['four_1', 'key_duplicate'],
        ['000000000001_1', 'key_duplicate'],
        ['zz', 'image_missing'],
        ['000000000002', 'key_duplicate'],
        ['four', 'image_missing'],
      ]);
      expect(failureOf(pairs[1]!)!.message).toBe(
        `images[1] of ${captionsPath()}: image id 1 repeats (first at images[0] of ${captionsPath()}, "000000000001.jpg"); its annotations stay with the first`,
      );
      expect(pairs[0]!.captions.map((c) => c.text)).toEqual(['cat']);
      expect(pairs[1]!.captions).toEqual([]);
      expect(pairs[3]!.captions.map((c) => c.text)).toEqual(['dog']);
      expect(pairs[4]!.imageBytes).toBeNull();
      expect(pairs[4]!.imageRef).toBe(`file:${path.join(dir, 'images', '000000000002.jpg')}`);
    });

    it('the same images list in both files is one set of images; a repeat in both is recorded once', async () => {
      const list = [images[0], images[1], { id: 1, file_name: 'sub dir/four.png' }];
      await writeJson('entries-captions.json', { images: list, annotations: [{ id: 11, image_id: 1, caption: 'cat' }] });
      await writeJson('entries-instances.json', {
        images: [...list, { id: 2, file_name: 'other.jpg' }],
        categories: [{ id: 1, name: 'cat' }],
        annotations: [{ id: 21, image_id: 1, category_id: 1, bbox: [1, 1, 5, 5] }],
      });
      const pairs = await read({ captions: 'entries-captions.json', instances: 'entries-instances.json' });
      expect(pairs.map((p) => [p.key, failureOf(p)?.code ?? null])).toEqual([
        ['000000000001', null],
        ['000000000002', null],
        ['sub_dir_four', 'key_duplicate'],
        ['other', 'key_duplicate'],
      ]);
      expect(pairs[0]!.captions).toHaveLength(1);
      expect(pairs[0]!.boxes).toHaveLength(1);
      expect(failureOf(pairs[3]!)!.message).toBe(
        `images[3] of ${instancesPath()}: image id 2 repeats (first at images[1] of ${captionsPath()}, "000000000002.jpg"); its annotations stay with the first`,
      );
    });

    it('an annotation whose category entry has no name is dropped as annotation_unknown_category, saying why', async () => {
      await writeJson('entries-instances.json', {
        images: good,
        categories: [{ id: 1, name: 'cat' }, { id: 2 }, 'junk'],
        annotations: [
          { id: 1, image_id: 1, category_id: 2, bbox: [1, 1, 5, 5] },
          { id: 2, image_id: 2, category_id: 1, bbox: [1, 1, 5, 5] },
        ],
      });
      const pairs = await read({ instances: 'entries-instances.json' });
      expect(pairs.map((p) => failureOf(p)?.code ?? null)).toEqual([null, null]);
      expect(dropped(pairs[0]!)).toEqual([
        [
          'annotation_unknown_category',
          `annotations[0] (id 1) of ${instancesPath()}: category_id 2 has no usable entry in "categories": categories[1].name: expected a string, got nothing`,
        ],
      ]);
      expect(pairs[1]!.boxes).toHaveLength(1);
    });
  });

  describe('boxes are checked against the image', () => {
    let boxDir: string;
    const sized = (id: number, extra: Record<string, unknown> = {}) => ({ id, file_name: `${id}.jpg`, width: 128, height: 64, ...extra });

    beforeAll(async () => {
      boxDir = path.join(dir, 'box-images');
      await mkdir(boxDir, { recursive: true });
      for (let id = 1; id <= 7; id++) await writeFile(path.join(boxDir, `${id}.jpg`), await makeImage(128, 64, 'jpeg', id));
    });

    it('clips boxes to the image, keeps the box as given, and drops zero-size and outside boxes', async () => {
      await writeJson('box-instances.json', {
        images: [
          sized(1),
          sized(2),
          sized(3),
          sized(4),
          { id: 5, file_name: '5.jpg' },
          { id: 6, file_name: '6.jpg' },
          sized(7),
        ],
        categories: [{ id: 1, name: 'cat' }],
        annotations: [
          { id: 1, image_id: 1, category_id: 1, bbox: [-10, 5, 500, 5] },
          { id: 2, image_id: 1, category_id: 1, bbox: [100, 50, 28, 14] },
          { id: 3, image_id: 2, category_id: 1, bbox: [10, 5, 0, 5] },
          { id: 4, image_id: 3, category_id: 1, bbox: [10, 5, 5, -2] },
          { id: 5, image_id: 4, category_id: 1, bbox: [200, 5, 10, 5] },
          { id: 6, image_id: 5, category_id: 1, bbox: [-5, -5, 300, 10] },
          { id: 7, image_id: 6, category_id: 1, bbox: [-20, 0, 10, 10] },
          { id: 8, image_id: 7, category_id: 1, bbox: [128, 0, 10, 10] },
        ],
      });
      const pairs = await collect(source({ instances: 'box-instances.json', images: 'box-images' }).read(context()));
      expect(pairs.map((p) => [p.key, failureOf(p)?.code ?? null, dropped(p).map(([code]) => code)])).toEqual([
        ['1', null, []],
        ['2', null, ['annotation_invalid_box']],
        ['3', null, ['annotation_invalid_box']],
        ['4', null, ['annotation_invalid_box']],
        ['5', null, []],
        ['6', null, ['annotation_invalid_box']],
        ['7', null, ['annotation_invalid_box']],
      ]);
      expect(pairs[0]!.boxes).toEqual([
        { label: 'cat', box: [0, 5, 128, 10], original: { frame: 'coco_xywh', values: [-10, 5, 500, 5] } },
        { label: 'cat', box: [100, 50, 128, 64], original: { frame: 'coco_xywh', values: [100, 50, 28, 14] } },
      ]);
      expect(pairs[0]!.imageBytes).not.toBeNull();
      const where = (i: number, id: number) => `annotations[${i}] (id ${id}) of instances file "${path.join(dir, 'box-instances.json')}"`;
      expect(dropped(pairs[1]!)[0]![1]).toBe(`${where(2, 3)}: bbox [10, 5, 0, 5] has a width or height of 0 or less (width 0, height 5)`);
      expect(dropped(pairs[2]!)[0]![1]).toBe(`${where(3, 4)}: bbox [10, 5, 5, -2] has a width or height of 0 or less (width 5, height -2)`);
      expect(dropped(pairs[3]!)[0]![1]).toBe(`${where(4, 5)}: bbox [200, 5, 10, 5] lies entirely outside the 128x64 image`);
      // Without a size in the record, only the image's own origin is known.
      expect(pairs[4]!.boxes).toEqual([
        { label: 'cat', box: [0, 0, 295, 5], original: { frame: 'coco_xywh', values: [-5, -5, 300, 10] } },
      ]);
      expect(dropped(pairs[5]!)[0]![1]).toBe(`${where(6, 7)}: bbox [-20, 0, 10, 10] lies entirely outside the ?x? image`);
      expect(dropped(pairs[6]!)[0]![1]).toContain('bbox [128, 0, 10, 10] lies entirely outside the 128x64 image');
    });
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

    it('a file that is not COCO at all -> ConfigError naming the file and the field', async () => {
      await writeJson('not-coco.json', { images: [{ id: 1, file_name: 'a.jpg' }], annotations: {}, categories: [] });
      const err = await readError({ instances: 'not-coco.json' });
      expect(err).toBeInstanceOf(ConfigError);
      expect(err.message).toContain(path.join(dir, 'not-coco.json'));
      expect(err.message).toContain('annotations: expected array');

      await writeJson('a-list.json', [{ id: 1, file_name: 'a.jpg' }]);
      const list = await readError({ captions: 'a-list.json' });
      expect(list).toBeInstanceOf(ConfigError);
      expect(list.message).toMatch(/a-list\.json" is not in COCO format: \(top level\): expected object/);

      await writeJson('no-categories.json', { images: [], annotations: [] });
      const noCategories = await readError({ instances: 'no-categories.json' });
      expect(noCategories.message).toContain('categories: expected array');
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
