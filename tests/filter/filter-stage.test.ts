/**
 * The filter's score stage on the bundled demo models: an image the models cannot read fails alone, and its
 * `score_failed` message carries the cause (the decoder's own words), as `caption_failed` does.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { StageEvent } from '../../src/core/events.js';
import { failureOf, OPEN, type DecodedPair } from '../../src/core/sample.js';
import type { Stage } from '../../src/core/stage.js';
import { CaptionScorer } from '../../src/filter/caption-scorer.js';
import { createFilterStage } from '../../src/filter/filter-stage.js';
import { loadItcModel, loadItmModel } from '../../src/models/index.js';
import { decodeImage } from '../../src/decode/decode-stage.js';

const MODELS = resolve(import.meta.dirname, '../../models');
let scorer: CaptionScorer;

beforeAll(async () => {
  scorer = new CaptionScorer(await loadItcModel(resolve(MODELS, 'shapes-clip')), await loadItmModel(resolve(MODELS, 'shapes-itm')));
});
afterAll(async () => {
  await scorer?.close();
});

/** A JPEG whose scan holds a stray restart marker: decode's check (failOn truncated) passes, a strict decode does not. */
async function jpegWithCorruptData(): Promise<Buffer> {
  const width = 256;
  const height = 192;
  const raw = Buffer.alloc(width * height * 3);
  for (let i = 0; i < raw.length; i++) raw[i] = (i * 7919) % 251;
  const jpeg = Buffer.from(await sharp(raw, { raw: { width, height, channels: 3 } }).jpeg({ quality: 90 }).toBuffer());
  const scan = jpeg.indexOf(Buffer.from([0xff, 0xda]));
  jpeg[scan + 500] = 0xff;
  jpeg[scan + 501] = 0xd3;
  return jpeg;
}

async function sample(key: string, bytes: Buffer): Promise<DecodedPair> {
  const decoded = await decodeImage(bytes, 89_478_485);
  if (!decoded.ok) throw new Error(`fixture ${key} does not decode: ${decoded.message}`);
  return {
    key,
    source: 'test',
    imageRef: `file:/x/${key}`,
    imageBytes: bytes,
    image: decoded.image,
    captions: [{ text: 'a red circle', origin: 'web', issue: null, usable: true }],
    boxes: [],
    meta: {},
    fate: OPEN,
  };
}

const CAUSE = /^the filter models could not score this image: .*Could not decode image: (VipsJpeg: Corrupt JPEG data: premature end of data segment|Warning treated as error due to failOn setting)/;

describe('score stage', () => {
  it('a sample the models cannot read fails alone, with the cause in its message', async () => {
    const good = await sharp({ create: { width: 64, height: 64, channels: 3, background: 'red' } }).jpeg().toBuffer();
    const input = [await sample('good', good), await sample('bad', await jpegWithCorruptData())];
    const stage = createFilterStage(scorer, { name: 'filter', batchSize: 8 });
    const out: DecodedPair[] = [];
    async function* feed() {
      yield* input;
    }
    for await (const s of stage.run(feed(), { signal: new AbortController().signal, emit: () => {} })) out.push(s);
    expect(out.map((s) => s.key)).toEqual(['good', 'bad']);
    expect(failureOf(out[0]!)).toBeNull();
    expect(typeof out[0]!.captions[0]!.itc).toBe('number');
    expect(typeof out[0]!.captions[0]!.itm).toBe('number');
    expect(failureOf(out[1]!)).toMatchObject({ code: 'score_failed', stage: 'filter' });
    // libvips words the cause either way (its warning text, or the failOn note when another thread took the
    // warning first, as under load); either is the decoder's own cause, after the stage's words.
    expect(failureOf(out[1]!)!.message).toMatch(CAUSE);
  });

  it('a batch holding only such a sample fails that sample, not the run', async () => {
    const stage = createFilterStage(scorer, { name: 'filter', batchSize: 1 });
    const input = [await sample('bad', await jpegWithCorruptData())];
    const out: DecodedPair[] = [];
    async function* feed() {
      yield* input;
    }
    for await (const s of stage.run(feed(), { signal: new AbortController().signal, emit: () => {} })) out.push(s);
    expect(out).toHaveLength(1);
    expect(failureOf(out[0]!)).toMatchObject({ code: 'score_failed' });
    expect(failureOf(out[0]!)!.message).toMatch(CAUSE);
  });
});

/** The committed demo images with their web captions (datasets/shapes-sample). */
async function shapes(count: number): Promise<DecodedPair[]> {
  const root = resolve(import.meta.dirname, '../../datasets/shapes-sample');
  const truth = readFileSync(resolve(root, 'ground_truth.jsonl'), 'utf8').trim().split('\n').slice(0, count);
  return Promise.all(
    truth.map(async (line) => {
      const { key, web_caption } = JSON.parse(line) as { key: string; web_caption: string };
      const s = await sample(key, readFileSync(resolve(root, 'coco', 'images', `${key}.jpg`)));
      return { ...s, captions: [{ text: web_caption, origin: 'web' as const, issue: null, usable: true }] };
    }),
  );
}

async function runStage(stage: Stage<DecodedPair, DecodedPair>, input: readonly DecodedPair[]): Promise<{ out: DecodedPair[]; events: StageEvent[] }> {
  const out: DecodedPair[] = [];
  const events: StageEvent[] = [];
  async function* feed() {
    yield* input;
  }
  for await (const s of stage.run(feed(), { signal: new AbortController().signal, emit: (e) => events.push(e) })) out.push(s);
  return { out, events };
}

describe('filter stage fed an array of samples', () => {
  it('scores each open sample as the models score it alone, keeps order, fails the unreadable image alone and passes closed samples through', async () => {
    const [a, b, c, d, e, f] = await shapes(6);
    const input: DecodedPair[] = [
      a!,
      // Already scored captions keep their scores; empty and unusable ones get null; the rest are scored.
      {
        ...b!,
        captions: [
          { ...b!.captions[0]!, itc: 0.125, itm: 0.25 },
          { text: 'a small blue hexagon', origin: 'synthetic', issue: null, usable: true },
          { text: '  ', origin: 'web', issue: null, usable: true },
          { text: '\ufffd', origin: 'web', issue: 'invalid_utf8', usable: false },
        ],
      },
      { ...c!, fate: { kind: 'failed', code: 'caption_failed', message: 'the captioner failed', stage: 'captioner' } },
      await sample('bad', await jpegWithCorruptData()),
      d!,
      { ...e!, fate: { kind: 'dropped', reason: 'duplicate_image', stage: 'dedup' } },
      { ...f!, fate: { kind: 'deferred', reason: 'budget_exhausted', stage: 'synth' } },
      { ...a!, key: 'a_again', captions: [{ text: 'a small green triangle', origin: 'web', issue: null, usable: true }] },
    ];
    const { out, events } = await runStage(createFilterStage(scorer, { name: 'filter', batchSize: 3 }), input);
    expect(out.map((s) => s.key)).toEqual(input.map((s) => s.key));
    for (const i of [2, 5, 6]) expect(out[i], input[i]!.key).toBe(input[i]);

    // Scores as the models give them for that image and text alone: nothing crossed between samples.
    const alone = async (s: DecodedPair, texts: string[]) => (await scorer.score([{ image: s.imageBytes!, texts }]))[0]!;
    for (const i of [0, 4, 7]) {
      const expected = await alone(input[i]!, [input[i]!.captions[0]!.text]);
      expect(failureOf(out[i]!)).toBeNull();
      expect(out[i]!.captions[0]!.itc).toBeCloseTo(expected.itc[0]!, 5);
      expect(out[i]!.captions[0]!.itm).toBeCloseTo(expected.itm[0]!, 5);
    }
    // The same image with a caption that does not match scores lower than with its own.
    expect(out[7]!.captions[0]!.itm!).toBeLessThan(out[0]!.captions[0]!.itm!);

    const mixed = out[1]!.captions;
    expect([mixed[0]!.itc, mixed[0]!.itm]).toEqual([0.125, 0.25]);
    const hexagon = await alone(input[1]!, ['a small blue hexagon']);
    expect(mixed[1]!.itc).toBeCloseTo(hexagon.itc[0]!, 5);
    expect(mixed[1]!.itm).toBeCloseTo(hexagon.itm[0]!, 5);
    expect(mixed.slice(2).map((c) => [c.itc, c.itm])).toEqual([
      [null, null],
      [null, null],
    ]);

    expect(failureOf(out[3]!)).toMatchObject({ code: 'score_failed', stage: 'filter' });
    expect(failureOf(out[3]!)!.message).toMatch(CAUSE);
    // Batches of 3: [a b failed] [bad d dropped] [deferred a_again]: each has work, each says its latency.
    expect(events.filter((ev) => ev.type === 'batch-latency')).toHaveLength(3);
  });

  it('a second filter pass scores only the captions added since the first', async () => {
    const [a] = await shapes(1);
    const stage = createFilterStage(scorer, { name: 'filter', batchSize: 4 });
    const first = (await runStage(stage, [a!])).out[0]!;
    const added = { ...first, captions: [...first.captions, { text: 'a large orange circle', origin: 'synthetic' as const, issue: null, usable: true }] };
    const { out, events } = await runStage(createFilterStage(scorer, { name: 'filter:synthetic', batchSize: 4 }), [added, first]);
    expect(out[0]!.captions[0]).toBe(first.captions[0]);
    expect(typeof out[0]!.captions[1]!.itc).toBe('number');
    // Nothing left to score in the second sample: it passes untouched, and its batch still had work.
    expect(out[1]!.captions).toEqual(first.captions);
    expect(events.filter((ev) => ev.type === 'batch-latency')).toHaveLength(1);
  });
});
