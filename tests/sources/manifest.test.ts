import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/core/errors.js';
import { failureOf, type Pair } from '../../src/core/sample.js';
import { makeImage, makeTempDir } from '../fixtures/make-webdataset.js';
import { collect, context, sourceFrom, writeParquet } from './manifest-fixtures.js';
import { expectEvery } from '../expect-every.js';

let dir: string;
let cleanup: () => Promise<void>;
const images = new Map<string, Buffer>();

/**
 * The same eight logical rows in every format:
 * 0 good, caption with a comma        4 good, empty caption
 * 1 good, caption with a newline, box 5 ftp URL -> url_invalid
 * 2 image file missing               6 good, caption with quotes, extra
 * 3 empty image cell -> row_invalid  7 bad boxes -> row_invalid
 */
const ROWS = [
  { image: 'a.jpg', caption: 'A red, round ball', boxes: '', tag: 't0' },
  { image: 'sub/b.png', caption: 'two lines\nsecond line', boxes: '[{"label":"cat","box":[1,2,30,20]}]', tag: 't1' },
  { image: 'missing.jpg', caption: 'gone', boxes: '', tag: 't2' },
  { image: '', caption: 'no image', boxes: '', tag: 't3' },
  { image: 'c.webp', caption: '', boxes: '', tag: 't4' },
  { image: 'ftp://example.com/x.jpg', caption: 'ftp', boxes: '', tag: 't5' },
  { image: 'a.jpg', caption: 'he said "hi"', boxes: '[]', tag: 't6' },
  { image: 'a.jpg', caption: 'bad box', boxes: '[{"label":"dog","box":[5,5,1,1]}]', tag: 't7' },
];

function csvCell(value: string, delimiter = ','): string {
  return /[",\n\r\t]/.test(value) || value.includes(delimiter) ? `"${value.replace(/"/g, '""')}"` : value;
}

function csvText(delimiter: string, newline = '\n'): string {
  const header = ['image', 'caption', 'boxes', 'tag'].join(delimiter);
  const lines = ROWS.map((r) => [r.image, r.caption, r.boxes, r.tag].map((v) => csvCell(v, delimiter)).join(delimiter));
  return [header, ...lines].join(newline) + newline;
}

beforeAll(async () => {
  ({ dir, cleanup } = await makeTempDir('vlcurate-manifest-'));
  await mkdir(path.join(dir, 'imgs', 'sub'), { recursive: true });
  for (const [name, format, seed] of [
    ['a.jpg', 'jpeg', 1],
    ['sub/b.png', 'png', 2],
    ['c.webp', 'webp', 3],
  ] as const) {
    const bytes = await makeImage(24, 16, format, seed);
    images.set(name, bytes);
    await writeFile(path.join(dir, 'imgs', name), bytes);
  }
  await writeFile(path.join(dir, 'm.csv'), `\uFEFF${csvText(',', '\r\n')}`);
  await writeFile(path.join(dir, 'm.csv.gz'), gzipSync(csvText(',')));
  await writeFile(path.join(dir, 'm.tsv'), csvText('\t'));
  const jsonl = ROWS.map((r) =>
    JSON.stringify({ image: r.image, caption: r.caption, boxes: r.boxes === '' ? null : JSON.parse(r.boxes), tag: r.tag }),
  ).join('\n');
  await writeFile(path.join(dir, 'm.jsonl'), `${jsonl}\n`);
  await writeFile(path.join(dir, 'm.jsonl.gz'), gzipSync(`${jsonl}\n`));
  writeParquet(
    path.join(dir, 'm.parquet'),
    [
      { name: 'image', data: ROWS.map((r) => r.image), type: 'STRING' },
      { name: 'caption', data: ROWS.map((r) => r.caption), type: 'STRING' },
      { name: 'boxes', data: ROWS.map((r) => r.boxes), type: 'STRING' },
      { name: 'tag', data: ROWS.map((r) => r.tag), type: 'STRING' },
    ],
    3, // three row groups: 3 + 3 + 2
  );
});

afterAll(async () => {
  await cleanup();
});

const FORMATS = [
  { type: 'csv', path: 'm.csv' },
  { type: 'csv', path: 'm.csv.gz' },
  { type: 'tsv', path: 'm.tsv' },
  { type: 'jsonl', path: 'm.jsonl' },
  { type: 'jsonl', path: 'm.jsonl.gz' },
  { type: 'parquet', path: 'm.parquet' },
] as const;

function manifest(format: { type: string; path: string }, extra: Record<string, unknown> = {}) {
  return sourceFrom({
    type: format.type,
    name: 'm',
    path: format.path,
    image: 'image',
    caption: 'caption',
    boxes: 'boxes',
    extra: ['tag'],
    imagesDir: 'imgs',
    order: 'input',
    ...extra,
  });
}

describe.each(FORMATS)('$type manifest ($path)', (format) => {
  let pairs: Pair[];
  beforeAll(async () => {
    pairs = await collect(manifest(format).read(context(dir)));
  });

  it('yields one pair per row, in order, keyed <name>_<row:09d>', () => {
    expect(pairs.map((p) => p.key)).toEqual(ROWS.map((_, i) => `m_${String(i).padStart(9, '0')}`));
    expectEvery(pairs, (p) => p.source === 'm');
  });

  it('good rows: image bytes, caption (commas, newlines, quotes), boxes, extra columns and row in meta', () => {
    const [first, second, , , , , seventh] = pairs as [Pair, Pair, Pair, Pair, Pair, Pair, Pair];
    expect(failureOf(first)).toBeNull();
    expect(Buffer.compare(first.imageBytes!, images.get('a.jpg')!)).toBe(0);
    expect(first.imageRef).toBe(`file:${path.join(dir, 'imgs', 'a.jpg')}`);
    expect(first.captions).toEqual([{ text: 'A red, round ball', origin: 'web', issue: null, usable: true }]);
    expect(first.boxes).toEqual([]);
    expect(first.meta).toEqual({ row: 0, tag: 't0' });
    expect(failureOf(second)).toBeNull();
    expect(Buffer.compare(second.imageBytes!, images.get('sub/b.png')!)).toBe(0);
    // Newlines collapse to a space in caption text, as for every source.
    expect(second.captions.map((c) => c.text)).toEqual(['two lines second line']);
    expect(second.boxes).toEqual([{ label: 'cat', box: [1, 2, 30, 20] }]);
    expect(seventh.captions.map((c) => c.text)).toEqual(['he said "hi"']);
  });

  it('an empty caption is kept and is not an error', () => {
    const fifth = pairs[4]!;
    expect(failureOf(fifth)).toBeNull();
    expect(fifth.imageBytes).not.toBeNull();
    expect(fifth.captions).toEqual([{ text: '', origin: 'web', issue: null, usable: true }]);
  });

  it('bad rows fail alone, each with its code and row', () => {
    expect(pairs.map((p) => failureOf(p)?.code ?? 'ok')).toEqual(['ok', 'ok', 'image_missing', 'row_invalid', 'ok', 'url_invalid', 'ok', 'row_invalid']);
    expect(failureOf(pairs[2]!)!.message).toContain(path.join(dir, 'imgs', 'missing.jpg'));
    expect(failureOf(pairs[3]!)!.message).toMatch(/^row 3\b/);
    expect(failureOf(pairs[3]!)!.message).toContain('column "image" (image) is empty');
    expect(failureOf(pairs[5]!)!.message).toContain('ftp:');
    expect(failureOf(pairs[7]!)!.message).toContain('boxes[0].box');
    expect(failureOf(pairs[7]!)!.message).toContain('x2 >= x1');
    expectEvery(pairs.filter((p) => failureOf(p)), (p) => p.imageBytes === null && failureOf(p)!.stage === 'source');
  });
});

describe('manifest keys, sharding and resume', () => {
  it('shards cover every row exactly once across N=3, for every format', async () => {
    for (const format of FORMATS) {
      const seen: string[] = [];
      for (let index = 0; index < 3; index++) {
        const pairs = await collect(manifest(format).read(context(dir, {}, { index, count: 3 })));
        seen.push(...pairs.map((p) => p.key));
      }
      expect(seen.sort(), format.path).toEqual(ROWS.map((_, i) => `m_${String(i).padStart(9, '0')}`));
    }
  });

  it('parquet count() comes from the footer, per shard too', async () => {
    const src = manifest({ type: 'parquet', path: 'm.parquet' });
    expect(await src.count!(context(dir))).toBe(8);
    let total = 0;
    for (let index = 0; index < 3; index++) {
      const ctx = context(dir, {}, { index, count: 3 });
      const n = await src.count!(ctx);
      expect(n).toBe((await collect(src.read(ctx))).length);
      total += n!;
    }
    expect(total).toBe(8);
    expect(await manifest({ type: 'csv', path: 'm.csv' }).count!(context(dir))).toBeNull();
  });

  it('isDone keys are skipped before their image is read', async () => {
    const asked: string[] = [];
    const isDone = (keys: string[]) => {
      asked.push(...keys);
      return new Set(keys.filter((k) => k.endsWith('0') || k.endsWith('2')));
    };
    const pairs = await collect(manifest({ type: 'jsonl', path: 'm.jsonl' }).read(context(dir, { isDone })));
    expect(asked).toHaveLength(8);
    expect(pairs.map((p) => p.key)).toEqual(['m_000000001', 'm_000000003', 'm_000000004', 'm_000000005', 'm_000000006', 'm_000000007']);
  });

  it('a key column gives the keys (made valid, original kept); duplicates -> key_duplicate with __dupN', async () => {
    await writeFile(
      path.join(dir, 'keys.jsonl'),
      ['{"id":"img 1","image":"a.jpg"}', '{"id":"two","image":"a.jpg"}', '{"id":"two","image":"a.jpg"}', '{"image":"a.jpg"}', ''].join('\n'),
    );
    const pairs = await collect(sourceFrom({ type: 'jsonl', path: 'keys.jsonl', image: 'image', key: 'id', imagesDir: 'imgs', order: 'input' }).read(context(dir)));
    expect(pairs.map((p) => p.key)).toEqual(['img_1', 'two', 'two__dup2', 'jsonl-0_000000003']);
    expect(pairs[0]!.meta['originalKey']).toBe('img 1');
    expect(failureOf(pairs[2]!)).toMatchObject({ code: 'key_duplicate' });
    expect(failureOf(pairs[3]!)).toMatchObject({ code: 'row_invalid' });
    expect(failureOf(pairs[3]!)!.message).toContain('missing column "id" (key)');
    const prefixed = await collect(
      sourceFrom({ type: 'jsonl', path: 'keys.jsonl', image: 'image', key: 'id', keyPrefix: 'x_', imagesDir: 'imgs', order: 'input' }).read(context(dir)),
    );
    expect(prefixed[0]!.key).toBe('x_img_1');
  });

  it('a key column keeps Unicode keys; two keys that clean to one are key_collision, not "already used"', async () => {
    await writeFile(
      path.join(dir, 'collide.jsonl'),
      ['{"id":"ünïcødé","image":"a.jpg"}', '{"id":"a b","image":"a.jpg"}', '{"id":"a_b","image":"a.jpg"}', '{"id":"a b","image":"a.jpg"}'].join('\n'),
    );
    const pairs = await collect(
      sourceFrom({ type: 'jsonl', path: 'collide.jsonl', image: 'image', key: 'id', keyPrefix: 'p_', imagesDir: 'imgs', order: 'input' }).read(context(dir)),
    );
    expect(pairs.map((p) => [p.key, failureOf(p)?.code ?? 'ok'])).toEqual([
      ['p_ünïcødé', 'ok'],
      ['p_a_b', 'ok'],
      ['p_a_b__dup2', 'key_collision'],
      ['p_a_b__dup3', 'key_duplicate'],
    ]);
    expect(pairs[0]!.meta['originalKey']).toBeUndefined();
    expect(failureOf(pairs[2]!)!.message).toMatch(
      /^row 2 \(line 3\) of .*collide\.jsonl: column "id" \(key\): "a_b" and the earlier "a b" both become key "a_b" \(keys keep only letters, digits, "_" and "-"\); rename one of them$/,
    );
    expect(failureOf(pairs[3]!)!.message).toContain('key "a b" was already used by an earlier row');
  });

  it('default order is completion order; the set of pairs is the same', async () => {
    const pairs = await collect(manifest({ type: 'csv', path: 'm.csv' }, { order: 'completion' }).read(context(dir)));
    expect(pairs.map((p) => p.key).sort()).toEqual(ROWS.map((_, i) => `m_${String(i).padStart(9, '0')}`));
  });
});

describe('manifest format details', () => {
  it('JSONL: a bad JSON line, a non-object line and a missing image field are row_invalid with their line', async () => {
    await writeFile(
      path.join(dir, 'bad.jsonl'),
      ['{"image":"a.jpg","caption":"ok"}', '{"image": "a.jpg", "caption": ', '', '[1,2]', '{"caption":"no image field"}', '{"image":"a.jpg","caption":null}'].join('\n'),
    );
    const pairs = await collect(sourceFrom({ type: 'jsonl', name: 'j', path: 'bad.jsonl', image: 'image', caption: 'caption', imagesDir: 'imgs', order: 'input' }).read(context(dir)));
    expect(pairs.map((p) => failureOf(p)?.code ?? 'ok')).toEqual(['ok', 'row_invalid', 'row_invalid', 'row_invalid', 'ok']);
    expect(failureOf(pairs[1]!)!.message).toMatch(/row 1 \(line 2\).*not valid JSON/);
    expect(failureOf(pairs[2]!)!.message).toMatch(/line 4.*holds a list/);
    expect(failureOf(pairs[3]!)!.message).toContain('missing column "image" (image)');
    // A blank line is not a row: the keys count rows, not lines.
    expect(pairs.map((p) => p.key)).toEqual(['j_000000000', 'j_000000001', 'j_000000002', 'j_000000003', 'j_000000004']);
    // A null caption is no caption (not an empty one).
    expect(pairs[4]!.captions).toEqual([]);
  });

  it('JSONL: a caption list gives several captions; nested boxes in COCO frame are converted', async () => {
    await writeFile(
      path.join(dir, 'multi.jsonl'),
      `${JSON.stringify({ image: 'a.jpg', caption: ['one', 'two'], boxes: [{ label: 'ball', bbox: [10, 5, 20, 10] }] })}\n`,
    );
    const [pair] = await collect(sourceFrom({ type: 'jsonl', path: 'multi.jsonl', image: 'image', caption: 'caption', boxes: 'boxes', boxFormat: 'coco', imagesDir: 'imgs' }).read(context(dir)));
    expect(pair!.captions.map((c) => c.text)).toEqual(['one', 'two']);
    expect(pair!.boxes).toEqual([{ label: 'ball', box: [10, 5, 30, 15], original: { frame: 'coco_xywh', values: [10, 5, 20, 10] } }]);
  });

  it('CSV: a row with a missing field, broken quoting, and an unterminated quote are row_invalid', async () => {
    await writeFile(path.join(dir, 'broken.csv'), 'image,caption\na.jpg,fine\na.jpg\n"a.jpg"x,bad quote\na.jpg,"never closed\n');
    const pairs = await collect(sourceFrom({ type: 'csv', name: 'c', path: 'broken.csv', image: 'image', caption: 'caption', imagesDir: 'imgs', order: 'input' }).read(context(dir)));
    expect(pairs.map((p) => failureOf(p)?.code ?? 'ok')).toEqual(['ok', 'row_invalid', 'row_invalid', 'row_invalid']);
    expect(failureOf(pairs[1]!)!.message).toMatch(/row 1 \(line 3\).*1 field, the header has 2/);
    expect(failureOf(pairs[2]!)!.message).toContain('after its closing quote');
    expect(failureOf(pairs[3]!)!.message).toContain('never closed');
  });

  it('CSV: caption bytes that are not UTF-8 are kept but marked unusable', async () => {
    await writeFile(path.join(dir, 'latin1.csv'), Buffer.concat([Buffer.from('image,caption\na.jpg,caf'), Buffer.from([0xe9]), Buffer.from('\n')]));
    const [pair] = await collect(sourceFrom({ type: 'csv', path: 'latin1.csv', image: 'image', caption: 'caption', imagesDir: 'imgs' }).read(context(dir)));
    expect(failureOf(pair!)).toBeNull();
    expect(pair!.captions[0]).toMatchObject({ issue: 'invalid_utf8', usable: false });
  });

  it('TSV without a header: `columns` names the fields (CC3M layout: caption, url)', async () => {
    await writeFile(path.join(dir, 'cc3m.tsv'), 'a "quoted" caption\ta.jpg\nsecond\tc.webp\n');
    const pairs = await collect(
      sourceFrom({ type: 'tsv', path: 'cc3m.tsv', columns: ['caption', 'url'], image: 'url', caption: 'caption', imagesDir: 'imgs', quoting: false, order: 'input' }).read(context(dir)),
    );
    expect(pairs.map((p) => p.captions[0]?.text)).toEqual(['a "quoted" caption', 'second']);
    expectEvery(pairs, (p) => failureOf(p) === null);
  });

  it('Parquet: extra INT64 and DOUBLE columns arrive as JSON numbers; a missing configured column is a ConfigError', async () => {
    writeParquet(path.join(dir, 'typed.parquet'), [
      { name: 'url', data: ['a.jpg', 'c.webp'], type: 'STRING' },
      { name: 'width', data: [640n, 9007199254740993n], type: 'INT64' },
      { name: 'similarity', data: [0.31, 0.29], type: 'DOUBLE' },
    ]);
    const pairs = await collect(sourceFrom({ type: 'parquet', path: 'typed.parquet', image: 'url', extra: ['width', 'similarity'], imagesDir: 'imgs', order: 'input' }).read(context(dir)));
    expect(pairs.map((p) => p.meta)).toEqual([
      { row: 0, width: 640, similarity: 0.31 },
      { row: 1, width: '9007199254740993', similarity: 0.29 },
    ]);
    const missing = sourceFrom({ type: 'parquet', path: 'typed.parquet', image: 'url', caption: 'TEXT' });
    await expect(collect(missing.read(context(dir)))).rejects.toThrow(/parquet caption: column "TEXT" is not among the columns/);
  });

  it('configuration errors: a missing file, a missing header column, a file that is not Parquet', async () => {
    await expect(collect(sourceFrom({ type: 'csv', path: 'nope.csv', image: 'image' }).read(context(dir)))).rejects.toThrow(ConfigError);
    await expect(collect(sourceFrom({ type: 'csv', path: 'm.csv', image: 'url' }).read(context(dir)))).rejects.toThrow(
      /csv image: column "url" is not among the columns of ".*m\.csv" \("image", "caption", "boxes", "tag"\)/,
    );
    await expect(collect(sourceFrom({ type: 'parquet', path: 'm.csv', image: 'image' }).read(context(dir)))).rejects.toThrow(/not a readable Parquet file/);
  });

  it('a gzip file cut off part-way -> one manifest_unreadable pair after the rows before the cut', async () => {
    const lines = Array.from({ length: 2000 }, (_, i) => JSON.stringify({ image: 'a.jpg', caption: `row ${i} ${'x'.repeat(40)}` })).join('\n');
    const whole = gzipSync(lines);
    await writeFile(path.join(dir, 'cut.jsonl.gz'), whole.subarray(0, Math.floor(whole.length / 2)));
    const pairs = await collect(sourceFrom({ type: 'jsonl', name: 'cut', path: 'cut.jsonl.gz', image: 'image', imagesDir: 'imgs', order: 'input' }).read(context(dir)));
    const last = pairs.at(-1)!;
    expect(failureOf(last)).toMatchObject({ code: 'manifest_unreadable' });
    expect(last.key).toBe('cut__unreadable_0');
    expect(pairs.length).toBeGreaterThan(10);
    expectEvery(pairs.slice(0, -1), (p) => failureOf(p) === null);
  });

  it('schema: unknown keys are rejected, defaults are filled in', () => {
    const src = sourceFrom({ type: 'parquet', path: 'x.parquet', image: 'url' });
    expect(src.name).toBe('parquet-0');
    expect(() => sourceFrom({ type: 'csv', path: 'x.csv', image: 'url', captions: 'c' })).toThrow();
    expect(() => sourceFrom({ type: 'jsonl', path: 'x.jsonl', image: 'url', download: { concurrency: 0 } })).toThrow();
  });
});

describe('manifest images as paths', () => {
  it('absolute paths and file: URLs outside the images folder are read only from imageRoots or with allowAbsolutePaths', async () => {
    const abs = path.join(dir, 'imgs', 'a.jpg');
    await mkdir(path.join(dir, 'nested'), { recursive: true });
    await writeFile(path.join(dir, 'nested', 'local.jpg'), images.get('a.jpg')!);
    await mkdir(path.join(dir, 'nested', 'imgs'), { recursive: true });
    await writeFile(
      path.join(dir, 'nested', 'paths.jsonl'),
      [{ image: abs }, { image: `file://${abs}` }, { image: 'local.jpg' }, { image: path.join(dir, 'nested', 'local.jpg') }, { image: 'imgs' }]
        .map((r) => JSON.stringify(r))
        .join('\n'),
    );
    const read = (extra: Record<string, unknown>) =>
      collect(sourceFrom({ type: 'jsonl', path: 'nested/paths.jsonl', image: 'image', order: 'input', ...extra }).read(context(dir)));
    // By default only the manifest's own folder: an absolute path or file: URL into it is fine, elsewhere is not.
    const confined = await read({});
    expect(confined.map((p) => failureOf(p)?.code ?? 'ok')).toEqual(['image_path_invalid', 'image_path_invalid', 'ok', 'ok', 'image_missing']);
    expect(failureOf(confined[0]!)!.message).toBe(
      `image path ${JSON.stringify(abs)} points outside the folders this source may read (${path.join(dir, 'nested')}); list its folder in imageRoots, or set allowAbsolutePaths: true`,
    );
    expect(confined[0]!.imageBytes).toBeNull();
    expect(confined[2]!.imageRef).toBe(`file:${path.join(dir, 'nested', 'local.jpg')}`);
    expect((await read({ imageRoots: ['imgs'] })).map((p) => failureOf(p)?.code ?? 'ok')).toEqual(['ok', 'ok', 'ok', 'ok', 'image_missing']);
    expect((await read({ allowAbsolutePaths: true })).map((p) => failureOf(p)?.code ?? 'ok')).toEqual(['ok', 'ok', 'ok', 'ok', 'image_missing']);
  });

  it('a relative path that leads out of the images folder is image_path_invalid, and nothing is read', async () => {
    await writeFile(path.join(dir, 'escape.jsonl'), [{ image: '../m.csv' }, { image: 'sub/../../imgs/a.jpg' }].map((r) => JSON.stringify(r)).join('\n'));
    const pairs = await collect(sourceFrom({ type: 'jsonl', path: 'escape.jsonl', image: 'image', imagesDir: 'imgs', order: 'input' }).read(context(dir)));
    expect(failureOf(pairs[0]!)).toEqual({
      code: 'image_path_invalid',
      message: `image path "../m.csv" points outside the folders this source may read (${path.join(dir, 'imgs')}); list its folder in imageRoots, or set allowAbsolutePaths: true`,
      stage: 'source',
    });
    expect(pairs[0]!.imageBytes).toBeNull();
    // `sub/../../imgs/a.jpg` lands back in imgs/: inside after all, and read.
    expect(failureOf(pairs[1]!)).toBeNull();
  });
});

