/**
 * The filter's score stage on the bundled demo models: an image the models cannot read fails alone, and its
 * `score_failed` message carries the cause (the decoder's own words), as `caption_failed` does.
 */
import { resolve } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DecodedPair } from '../../src/core/sample.js';
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
    failure: null,
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
    expect(out[0]!.failure).toBeNull();
    expect(typeof out[0]!.captions[0]!.itc).toBe('number');
    expect(typeof out[0]!.captions[0]!.itm).toBe('number');
    expect(out[1]!.failure).toMatchObject({ code: 'score_failed', stage: 'filter' });
    // libvips words the cause either way (its warning text, or the failOn note when another thread took the
    // warning first, as under load); either is the decoder's own cause, after the stage's words.
    expect(out[1]!.failure!.message).toMatch(CAUSE);
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
    expect(out[0]!.failure).toMatchObject({ code: 'score_failed' });
    expect(out[0]!.failure!.message).toMatch(CAUSE);
  });
});
