import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/core/errors.js';
import { briefCaption, llavaOptionsSchema, llavaSource } from '../../src/sources/llava-json.js';
import { makeImage, makeTempDir } from '../fixtures/make-webdataset.js';
import { collect, context, sourceFrom } from './manifest-fixtures.js';
import { expectEvery } from '../expect-every.js';
import { failureOf, OPEN } from '../../src/core/sample.js';

let dir: string;
let cleanup: () => Promise<void>;
const bytes = new Map<string, Buffer>();

const human = (value: string) => ({ from: 'human', value });
const gpt = (value: string) => ({ from: 'gpt', value });

const RECORDS: unknown[] = [
  { id: '000000033471', image: 'coco/000000033471.jpg', conversations: [human('<image>\nWhat are the colors of the bus?'), gpt('White and red.'), human('Anything else?'), gpt('No.')] },
  { id: 'GCC_1', image: 'cc/GCC_1.jpg', conversations: [human('Give a brief description of the image.\n<image>'), gpt('a dog running on the beach')] },
  { id: 'text-only-1', conversations: [human('Tell me a joke.'), gpt('No.')] },
  { id: 'detail 2', image: 'cc/GCC_1.jpg', conversations: [human('<image>\nDescribe the image in detail.'), gpt('A long description.')] },
  { id: 'missing', image: 'coco/nope.jpg', conversations: [human('<image>\nShort caption please.'), gpt('x')] },
  { id: 'GCC_1', image: ['cc/GCC_1.jpg'], conversations: [] },
  { id: 'multi', image: ['coco/000000033471.jpg', 'cc/GCC_1.jpg'], conversations: [] },
  { id: 'badconv', image: 'cc/GCC_1.jpg', conversations: [{ from: 'human' }] },
  { image: 'cc/GCC_1.jpg', conversations: [human('<image>\nSummarize the visual content of the image.'), gpt('  a beach ')] },
];

beforeAll(async () => {
  ({ dir, cleanup } = await makeTempDir('vlcurate-llava-'));
  for (const [name, seed] of [
    ['coco/000000033471.jpg', 1],
    ['cc/GCC_1.jpg', 2],
  ] as const) {
    const image = await makeImage(16, 12, 'jpeg', seed);
    bytes.set(name, image);
    await mkdir(path.join(dir, 'images', path.dirname(name)), { recursive: true });
    await writeFile(path.join(dir, 'images', name), image);
  }
  const text = `[\n${RECORDS.map((r) => JSON.stringify(r, null, 2)).join(',\n')}\n]`;
  await writeFile(path.join(dir, 'llava.json'), text);
  await writeFile(path.join(dir, 'llava.json.gz'), gzipSync(text));
});

afterAll(async () => {
  await cleanup();
});

function llava(extra: Record<string, unknown> = {}) {
  return sourceFrom({ type: 'llava', name: 'lv', path: 'llava.json', images: 'images', ...extra });
}

describe('llava source', () => {
  it('yields one pair per record keyed by id; a text-only record is a dropped pair (text_only) without its conversation', async () => {
    const source = llavaSource.create(llavaOptionsSchema.parse({ type: 'llava', path: 'llava.json', images: 'images' }), 'lv');
    const pairs = await collect(source.read(context(dir)));
    expect(pairs.map((p) => p.key)).toEqual(['000000033471', 'GCC_1', 'text-only-1', 'detail_2', 'missing', 'GCC_1__dup2', 'multi', 'badconv', 'lv_000000008']);
    const textOnly = pairs[2]!;
    expect(textOnly).toMatchObject({ imageBytes: null, fate: { kind: 'dropped', reason: 'text_only', stage: 'source' }, meta: { id: 'text-only-1' } });
    expect(textOnly.meta).not.toHaveProperty('conversations');
    expect(textOnly.conversations).toBeUndefined();
    expect(pairs.filter((p) => p.fate.kind === 'dropped')).toHaveLength(1);
  });

  it('keeps the conversations in meta and the image bytes; a brief-caption answer becomes an annotation caption', async () => {
    const pairs = new Map((await collect(llava().read(context(dir)))).map((p) => [p.key, p]));
    const vqa = pairs.get('000000033471')!;
    expect(failureOf(vqa)).toBeNull();
    expect(Buffer.compare(vqa.imageBytes!, bytes.get('coco/000000033471.jpg')!)).toBe(0);
    expect(vqa.meta['conversations']).toEqual((RECORDS[0] as { conversations: unknown }).conversations);
    expect(vqa.captions).toEqual([]);
    expect(pairs.get('GCC_1')!.captions).toEqual([{ text: 'a dog running on the beach', origin: 'annotation', issue: null, usable: true }]);
    expect(pairs.get('detail_2')!.captions).toEqual([]);
    expect(pairs.get('detail_2')!.meta['originalId']).toBe('detail 2');
    expect(pairs.get('lv_000000008')!.captions.map((c) => c.text)).toEqual(['a beach']);
    // A one-element image list is that image; a duplicate id keeps its record under __dup2.
    expect(failureOf(pairs.get('GCC_1__dup2')!)).toBeNull();
    expect(pairs.get('GCC_1__dup2')!.meta['originalId']).toBe('GCC_1');
  });

  it('bad records fail alone: missing image, several images, bad conversations', async () => {
    const pairs = new Map((await collect(llava().read(context(dir)))).map((p) => [p.key, p]));
    expect(failureOf(pairs.get('missing')!)).toMatchObject({ code: 'image_missing' });
    expect(failureOf(pairs.get('multi')!)).toMatchObject({ code: 'row_invalid' });
    expect(failureOf(pairs.get('multi')!)!.message).toMatch(/record 6 \(line \d+\).*2 images/);
    expect(failureOf(pairs.get('badconv')!)).toMatchObject({ code: 'row_invalid' });
    expect(failureOf(pairs.get('badconv')!)!.message).toContain('conversations[0].value');
  });

  it('textOnly: fail records text-only conversations as failures; briefCaptions: false turns the rule off', async () => {
    const pairs = await collect(llava({ textOnly: 'fail', briefCaptions: false }).read(context(dir)));
    const textOnly = pairs.find((p) => p.key === 'text-only-1')!;
    expect(failureOf(textOnly)).toMatchObject({ code: 'text_only' });
    expectEvery(pairs, (p) => p.captions.length === 0);
  });

  it('reads gzip and JSON Lines, and a broken record in the middle does not stop the file', async () => {
    const gz = await collect(llava({ path: 'llava.json.gz' }).read(context(dir)));
    expect(gz).toHaveLength(9);
    await writeFile(
      path.join(dir, 'mixed.jsonl'),
      [JSON.stringify(RECORDS[1]), '{"id": "broken", "image": ', JSON.stringify({ ...(RECORDS[3] as object), id: 'after' })].join('\n'),
    );
    const pairs = await collect(llava({ path: 'mixed.jsonl' }).read(context(dir)));
    expect(pairs.map((p) => [p.key, failureOf(p)?.code ?? 'ok'])).toEqual([
      ['GCC_1', 'ok'],
      ['lv_000000001', 'row_invalid'],
      ['after', 'ok'],
    ]);
  });

  it('two ids that clean to one key keep both records and say so on the later one; the same id again is a plain __dup', async () => {
    // Found by QA: ids "a b" and "a_b" became a_b and a_b__dup2 with nothing saying why.
    const record = (id: string) => ({ id, image: 'cc/GCC_1.jpg', conversations: [human('<image>\nWhat is shown?'), gpt('A dog.')] });
    await writeFile(path.join(dir, 'collide.jsonl'), [record('a b'), record('a_b'), record('c'), record('c')].map((r) => JSON.stringify(r)).join('\n'));
    const pairs = await collect(llava({ path: 'collide.jsonl' }).read(context(dir)));
    expect(pairs.map((p) => [p.key, failureOf(p)?.code ?? 'ok', p.meta['originalId'] ?? null, p.meta['keyCollision'] ?? null])).toEqual([
      ['a_b', 'ok', 'a b', null],
      ['a_b__dup2', 'ok', 'a_b', '"a_b" and the earlier "a b" both become key "a_b" (keys keep only letters, digits, "_" and "-"); rename one of them'],
      ['c', 'ok', null, null],
      ['c__dup2', 'ok', 'c', null],
    ]);
  });

  it('shards cover every record once across N=3; isDone skips', async () => {
    const all = (await collect(llava().read(context(dir)))).map((p) => p.key).sort();
    const seen: string[] = [];
    for (let index = 0; index < 3; index++) seen.push(...(await collect(llava().read(context(dir, {}, { index, count: 3 })))).map((p) => p.key));
    expect(seen.sort()).toEqual(all);
    const rest = await collect(llava().read(context(dir, { isDone: (keys) => new Set(keys.filter((k) => k.startsWith('GCC'))) })));
    expect(rest.some((p) => p.key.startsWith('GCC'))).toBe(false);
    expect(rest).toHaveLength(all.length - 2);
  });

  it('a missing file is a ConfigError', async () => {
    await expect(collect(llava({ path: 'nope.json' }).read(context(dir)))).rejects.toThrow(ConfigError);
  });

  it('a file holding one JSON object, a bare value, or an object written over lines is a ConfigError naming the file', async () => {
    const inner = { id: 'GCC_1', image: 'cc/GCC_1.jpg', conversations: [] };
    const cases: [string, string, RegExp][] = [
      // `json.dump(obj, f)` writes one line: read as JSON Lines, it is one record that is no LLaVA record.
      ['wrapped.json', JSON.stringify({ data: [inner] }), /holds one JSON object \(keys "data"\) and no LLaVA records; expected a JSON list/],
      ['pretty.json', JSON.stringify({ data: [inner] }, null, 2), /is neither a JSON list nor JSON Lines: its first two lines \(1 and 2\) are not JSON values/],
      ['empty-object.json', '{}', /holds one JSON object \(an empty object\)/],
      ['string.json', '"hello"', /holds a JSON string and no LLaVA records/],
      ['number.json', '\n\n42\n', /holds a JSON number/],
    ];
    for (const [name, text, message] of cases) {
      await writeFile(path.join(dir, name), text);
      const error = await collect(llava({ path: name }).read(context(dir))).then(
        () => null,
        (err: unknown) => err,
      );
      expect(error, name).toBeInstanceOf(ConfigError);
      expect((error as Error).message, name).toMatch(message);
      expect((error as Error).message, name).toContain(`llava path: "${path.join(dir, name)}"`);
    }
  });

  it('a JSON Lines file with a broken first line, or one record, still reads; a record with neither image nor conversations is row_invalid', async () => {
    const good = JSON.stringify({ id: 'GCC_1', image: 'cc/GCC_1.jpg', conversations: [] });
    await writeFile(path.join(dir, 'broken-first.jsonl'), `{"id": "x", "ima\n${good}\n`);
    expect((await collect(llava({ path: 'broken-first.jsonl' }).read(context(dir)))).map((p) => [p.key, failureOf(p)?.code ?? 'ok'])).toEqual([
      ['lv_000000000', 'row_invalid'],
      ['GCC_1', 'ok'],
    ]);
    await writeFile(path.join(dir, 'one.jsonl'), good);
    expect((await collect(llava({ path: 'one.jsonl' }).read(context(dir)))).map((p) => p.key)).toEqual(['GCC_1']);
    await writeFile(path.join(dir, 'stray.jsonl'), `${good}\n{"data": [1]}\n`);
    const pairs = await collect(llava({ path: 'stray.jsonl' }).read(context(dir)));
    expect(pairs.map((p) => [p.key, failureOf(p)?.code ?? 'ok'])).toEqual([
      ['GCC_1', 'ok'],
      ['lv_000000001', 'row_invalid'],
    ]);
    expect(failureOf(pairs[1]!)!.message).toContain('neither "image" nor "conversations" (keys "data")');
  });
});

describe('briefCaption rule', () => {
  it('takes single-turn brief-description answers only', () => {
    expect(briefCaption([human('<image>\nDescribe the image concisely.'), gpt('a cat')])).toBe('a cat');
    expect(briefCaption([human('Provide a short caption for this photo <image>'), gpt('a cat')])).toBe('a cat');
    expect(briefCaption([human('<image>\nDescribe the image in detail.'), gpt('long')])).toBeNull();
    // Questions about the scene are not descriptions, however briefly they ask to be answered.
    expect(briefCaption([human('<image>\nWhat is the short man holding? Please answer in one word, be brief and precise about it.'), gpt('x')])).toBeNull();
    expect(briefCaption([human('<image>\nWhat color is the short bar on the right?'), gpt('Yellow.')])).toBeNull();
    expect(briefCaption([human('<image>\nWhat does the caption under the photo say?'), gpt('It says SALE.')])).toBeNull();
    // LLaVA's own stage-1 requests, and ours.
    for (const request of [
      'Provide a brief description of the given image.',
      'Offer a succinct explanation of the picture presented.',
      'Summarize the visual content of the image.',
      'Present a compact description of the photo\'s key features.',
      'Write a terse but informative summary of the picture.',
      'What does this picture show? Answer briefly.',
      'Describe the image in a few words.',
      'Sum up the image in one sentence.',
      'Write a short line that could go under this picture.',
      'What is this a picture of? Keep it short.',
      'Name the main content of the image in one line.',
    ]) {
      expect(briefCaption([human(`<image>\n${request}`), gpt('a cat')]), request).toBe('a cat');
    }
    expect(briefCaption([human('<image>\nbrief'), gpt('a'), human('more'), gpt('b')])).toBeNull();
    expect(briefCaption([gpt('a'), human('brief')])).toBeNull();
  });
});
