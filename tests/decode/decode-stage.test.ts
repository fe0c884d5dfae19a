import { createHash } from 'node:crypto';
import sharp from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/core/errors.js';
import type { StageEvent } from '../../src/core/events.js';
import { failureOf, OPEN, type DecodedPair, type Pair, type SampleFate } from '../../src/core/sample.js';
import { createDecodeStage, decodeImage, decodeOptionsSchema } from '../../src/decode/decode-stage.js';
import { makeImage, makeOrientedJpeg, makePngClaiming } from '../fixtures/make-webdataset.js';
import type { Stage } from '../../src/core/stage.js';
import { releasingPixels } from '../../src/decode/release-pixels.js';
import { ImagePreprocessor } from '../../src/models/preprocess.js';

const LIMIT = 89_478_485;

function pair(key: string, imageBytes: Buffer | null, fate: SampleFate = OPEN): Pair {
  return { key, source: 'test', imageRef: `file:/x/${key}`, imageBytes, captions: [], boxes: [], meta: {}, fate };
}

async function runStage(pairs: Pair[], options = {}): Promise<{ out: DecodedPair[]; events: StageEvent[] }> {
  const events: StageEvent[] = [];
  async function* feed() {
    yield* pairs;
  }
  const out: DecodedPair[] = [];
  const stage = createDecodeStage(options);
  for await (const p of stage.run(feed(), { signal: new AbortController().signal, emit: (e) => events.push(e) })) {
    out.push(p);
  }
  return { out, events };
}

async function expectFailure(bytes: Buffer, code: string, maxPixels = LIMIT) {
  const result = await decodeImage(bytes, maxPixels);
  expect(result.ok, JSON.stringify(result)).toBe(false);
  if (!result.ok) expect(result.code, result.message).toBe(code);
  return result.ok ? '' : result.message;
}

let smallJpeg: Buffer;
let largeJpeg: Buffer;

beforeAll(async () => {
  smallJpeg = await makeImage(64, 48, 'jpeg', 1);
  largeJpeg = await makeImage(1600, 1200, 'jpeg', 2); // 1.9 MP: checked with the 1/8 shrink
});

describe('decodeImage', () => {
  it('reports format, size, byte length and the sha256 of the original bytes', async () => {
    for (const format of ['jpeg', 'png', 'webp'] as const) {
      const bytes = await makeImage(30, 20, format, 3);
      const result = await decodeImage(bytes, LIMIT);
      expect(result).toEqual({
        ok: true,
        image: {
          width: 30,
          height: 20,
          format,
          byteLength: bytes.length,
          sha256: createHash('sha256').update(bytes).digest('hex'),
          orientation: 1,
        },
      });
    }
  });

  it('accepts a large JPEG checked through shrink-on-load', async () => {
    const result = await decodeImage(largeJpeg, LIMIT);
    expect(result).toMatchObject({ ok: true, image: { width: 1600, height: 1200, format: 'jpeg' } });
  });

  it('swaps width and height for EXIF orientation 6 (and 5-8), not for 1-4', async () => {
    const six = await decodeImage(await makeOrientedJpeg(40, 20, 6), LIMIT);
    expect(six).toMatchObject({ ok: true, image: { width: 20, height: 40, orientation: 6 } });
    for (const orientation of [5, 7, 8]) {
      const result = await decodeImage(await makeOrientedJpeg(40, 20, orientation), LIMIT);
      expect(result).toMatchObject({ ok: true, image: { width: 20, height: 40, orientation } });
    }
    for (const orientation of [2, 3, 4]) {
      const result = await decodeImage(await makeOrientedJpeg(40, 20, orientation), LIMIT);
      expect(result).toMatchObject({ ok: true, image: { width: 40, height: 20, orientation } });
    }
  });

  it('empty bytes -> image_empty; no bytes -> image_missing', async () => {
    expect(await expectFailure(Buffer.alloc(0), 'image_empty')).toMatch(/0 bytes/);
    expect(await decodeImage(null, LIMIT)).toMatchObject({ ok: false, code: 'image_missing' });
  });

  it('text, HTML and random bytes named as images -> image_unsupported', async () => {
    expect(await expectFailure(Buffer.from('hello, this is text\n'), 'image_unsupported')).toMatch(/"hello, t"/);
    await expectFailure(Buffer.from('<!DOCTYPE html><html><body>404 Not Found</body></html>'), 'image_unsupported');
    await expectFailure(Buffer.from(Array.from({ length: 300 }, (_, i) => (i * 7919) % 251)), 'image_unsupported');
  });

  it('SVG is not accepted as a training image -> image_unsupported', async () => {
    const svg = Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10"/></svg>');
    expect(await expectFailure(svg, 'image_unsupported')).toMatch(/svg is not a raster image format/);
  });

  it('truncated small JPEG -> image_truncated', async () => {
    const message = await expectFailure(smallJpeg.subarray(0, Math.floor(smallJpeg.length * 0.6)), 'image_truncated');
    expect(message).toMatch(/jpeg data is cut off .*no end-of-image marker/);
  });

  it('truncation is still caught on the shrink-on-load path (large JPEG), even a few bytes short', async () => {
    await expectFailure(largeJpeg.subarray(0, Math.floor(largeJpeg.length / 2)), 'image_truncated');
    await expectFailure(largeJpeg.subarray(0, largeJpeg.length - 2), 'image_truncated');
    await expectFailure(largeJpeg.subarray(0, largeJpeg.length - 500), 'image_truncated');
  });

  it('a web-size JPEG (checked with shrink-on-load) is refused exactly where a full decode refuses it', async () => {
    // 640x480: below the 1 MP line, so before issue 15 this was a full decode; now the 1/8 shrink.
    const jpeg = await makeImage(640, 480, 'jpeg', 9);
    expect((await decodeImage(jpeg, LIMIT)).ok).toBe(true);
    const cuts = [0.05, 0.3, 0.5, 0.9, 0.99].map((keep) => jpeg.subarray(0, Math.floor(jpeg.length * keep)));
    cuts.push(...[2, 3, 16, 200].map((short) => jpeg.subarray(0, jpeg.length - short)));
    expect(cuts).toHaveLength(9);
    for (const cut of cuts) await expectFailure(cut, 'image_truncated');

    // Damaged entropy-coded data with the end intact: garbage bytes, a stray restart marker, a zeroed run,
    const scan = jpeg.lastIndexOf(Buffer.from([0xff, 0xda])) + 16;
    const damaged: Buffer[] = [];
    for (const at of [0.2, 0.5, 0.8]) {
      const offset = scan + Math.floor((jpeg.length - scan - 4) * at);
      const garbage = Buffer.from(jpeg);
      for (let i = 0; i < 64; i++) garbage[offset + i] = (i * 37 + 11) & 0xfe;
      const restart = Buffer.from(jpeg);
      restart[offset] = 0xff;
      restart[offset + 1] = 0xd3;
      const zeroed = Buffer.from(jpeg);
      zeroed.fill(0, offset, offset + 2000);
      // A run of scan bytes missing from the middle: the decoder meets the end marker early.
      const gap = Buffer.concat([jpeg.subarray(0, offset), jpeg.subarray(offset + Math.floor((jpeg.length - offset) / 2))]);
      damaged.push(garbage, restart, zeroed, gap);
    }
    expect(damaged).toHaveLength(12);
    const fullDecodeAccepts = (bytes: Buffer) =>
      sharp(bytes, { failOn: 'truncated' })
        .raw()
        .toBuffer()
        .then(
          () => true,
          () => false,
        );
    // Whatever the full decode refuses, the check refuses (the cuts, as image_truncated above)...
    let refusedByFull = 0;
    for (const cut of cuts) if (!(await fullDecodeAccepts(cut))) refusedByFull++;
    expect(refusedByFull).toBeGreaterThan(4);
    // ...and with the end intact, the check accepts exactly what the full decode accepts.
    for (const bytes of damaged) {
      const full = await fullDecodeAccepts(bytes);
      const result = await decodeImage(bytes, LIMIT);
      expect(result.ok, `full decode ${full ? 'accepts' : 'refuses'}; check: ${JSON.stringify(result)}`).toBe(full);
    }
  });

  it('a JPEG or PNG with bytes trailing after its end (camera trailers) is not called truncated', async () => {
    const trailer = Buffer.from(Array.from({ length: 5000 }, (_, i) => (i * 31) % 256).filter((b) => b !== 0xff));
    for (const image of [largeJpeg, smallJpeg, await makeImage(40, 30, 'png', 3)]) {
      const result = await decodeImage(Buffer.concat([image, trailer]), 89_478_485);
      expect(result.ok, JSON.stringify(result)).toBe(true);
    }
  });

  it('JPEG cut inside its header -> image_truncated', async () => {
    await expectFailure(smallJpeg.subarray(0, 200), 'image_truncated');
  });

  it('truncated PNG and WebP -> image_truncated', async () => {
    const png = await makeImage(200, 100, 'png', 4);
    expect(await expectFailure(png.subarray(0, Math.floor(png.length / 2)), 'image_truncated')).toMatch(/no IEND/);
    const webp = await makeImage(200, 100, 'webp', 5);
    expect(await expectFailure(webp.subarray(0, Math.floor(webp.length / 2)), 'image_truncated')).toMatch(/RIFF header declares/);
  });

  it('a TIFF cut before its directory (written after the pixels) -> image_truncated, not image_unsupported', async () => {
    for (const compression of ['none', 'lzw'] as const) {
      const tiff = await sharp(await makeImage(40, 30, 'png', 7)).tiff({ compression }).toBuffer();
      expect(tiff.readUInt32LE(4)).toBeGreaterThan(tiff.length / 2);
      expect(await expectFailure(tiff.subarray(0, Math.floor(tiff.length / 2)), 'image_truncated')).toMatch(/first directory starts at byte \d+, past the end/);
      expect((await decodeImage(tiff, LIMIT)).ok).toBe(true);
    }
    const bigEndian = Buffer.from('MM\0*\0\0\xff\xff', 'latin1');
    expect(await expectFailure(bigEndian, 'image_truncated')).toMatch(/byte 65535/);
  });

  it('a PNG with damaged pixel data but an intact end -> image_corrupt', async () => {
    const png = Buffer.from(await makeImage(64, 64, 'png', 6));
    const idat = png.indexOf('IDAT');
    for (let i = idat + 8; i < idat + 200; i++) png[i] = png[i]! ^ 0x5a;
    const message = await expectFailure(png, 'image_corrupt');
    expect(message).toMatch(/^png is damaged/);
  });

  it('a PNG whose header claims 30000x30000 -> image_too_large, naming the size and limit', async () => {
    const message = await expectFailure(await makePngClaiming(30_000, 30_000), 'image_too_large');
    expect(message).toBe('png claims 30000x30000 = 900,000,000 pixels, more than maxPixels 89,478,485');
  });

  it('a GIF bomb whose header is readable but whose data is cut off -> image_too_large, not image_truncated', async () => {
    // The shape of Pillow's Tests/images/decompression_bomb.gif (44 bytes): a 32x32 screen, then a frame of
    // 65535x1321 placed at top 65280, so the canvas is 65535x66601; the file ends inside the frame's data.
    // Built here byte by byte (our own bytes, same layout), so the test needs no copy of Pillow's file.
    const u16 = (v: number) => [v & 0xff, v >> 8];
    const bomb = Buffer.from([
      ...Buffer.from('GIF89a', 'latin1'),
      ...u16(32), ...u16(32), 0xf1, 0, 0, // logical screen: 32x32, global colour table of 4 entries
      ...[0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255], // the 4 colours
      0x21, 0xf9, 4, 0, 0, 0, 0, 0, // graphic control extension
      0x2c, ...u16(0), ...u16(65280), ...u16(65535), ...u16(1321), 0, // image descriptor
      2, // LZW minimum code size; the data stops here
    ]);
    expect(bomb.length).toBeLessThan(64);
    const message = await expectFailure(bomb, 'image_too_large');
    expect(message).toMatch(/65535x66601/);
    expect(message).toMatch(/maxPixels 89,478,485/);
    // A GIF of ordinary size cut off the same way is still truncated.
    const gif = await sharp({ create: { width: 300, height: 200, channels: 3, background: 'red' } }).gif().toBuffer();
    await expectFailure(gif.subarray(0, gif.length - 20), 'image_truncated');
  });

  it('maxPixels is configurable', async () => {
    await expectFailure(smallJpeg, 'image_too_large', 64 * 48 - 1);
    expect((await decodeImage(smallJpeg, 64 * 48)).ok).toBe(true);
  });
});

describe('decode stage', () => {
  it('keeps order, passes failed pairs through untouched, and records failures on the sample', async () => {
    const earlier: SampleFate = { kind: 'failed', code: 'image_missing', message: 'gone', stage: 'source' };
    const input = [
      pair('a', smallJpeg),
      pair('b', null, earlier),
      pair('c', Buffer.from('not an image')),
      pair('d', await makeImage(10, 10, 'png', 7)),
      pair('e', Buffer.alloc(0)),
    ];
    const { out, events } = await runStage(input, { concurrency: 3 });
    expect(out.map((p) => p.key)).toEqual(['a', 'b', 'c', 'd', 'e']);
    expect(out.map((p) => failureOf(p)?.code ?? 'ok')).toEqual(['ok', 'image_missing', 'image_unsupported', 'ok', 'image_empty']);
    expect(out[0]!.image).toMatchObject({ width: 64, height: 48, format: 'jpeg' });
    expect(out[1]).toEqual({ ...input[1], image: null });
    expect(failureOf(out[2]!)!.stage).toBe('decode');
    expect(out[2]!.image).toBeNull();
    expect(out[3]!.image).toMatchObject({ width: 10, height: 10, format: 'png' });
    // Failures are data on the sample; the pipeline runner reports them as events, so the stage emits none.
    expect(events.filter((e) => e.type === 'log')).toEqual([]);
    expect(out.filter((p) => failureOf(p)?.stage === 'decode').map((p) => `${p.key}:${failureOf(p)!.code}`)).toEqual(['c:image_unsupported', 'e:image_empty']);
  });

  it('runs many images with bounded concurrency and gets them all', async () => {
    const images = await Promise.all(Array.from({ length: 40 }, (_, i) => makeImage(16 + i, 16, 'jpeg', i)));
    const { out } = await runStage(images.map((bytes, i) => pair(`k${i}`, bytes)), { concurrency: 2 });
    expect(out.map((p) => p.image?.width)).toEqual(images.map((_, i) => 16 + i));
  });

  it('has its defaults and rejects bad options with a ConfigError naming the option', () => {
    expect(decodeOptionsSchema.parse({})).toEqual({ maxPixels: 89_478_485, maxBytes: 64 * 1024 * 1024, maxCaptionChars: 16_384, concurrency: 'auto', validate: 'structure', dedup: 'off' });
    expect(() => createDecodeStage({ validate: 'headers' } as never)).toThrow(/validate.*"structure" \| "decode"|validate.*structure.*decode/);
    expect(() => createDecodeStage({ concurrency: 0 })).toThrow(ConfigError);
    expect(() => createDecodeStage({ concurrency: 0 })).toThrow(/concurrency/);
    expect(() => createDecodeStage({ maxPixel: 5 } as never)).toThrow(/maxPixel/);
    expect(() => createDecodeStage({ dedup: 'fuzzy' } as never)).toThrow(/dedup.*"off" \| "exact"|dedup.*off.*exact/);
  });

  it('its name is decode', () => {
    expect(createDecodeStage().name).toBe('decode');
  });
});

describe('fixture sanity', () => {
  it('the crafted PNG really claims 30000x30000 with a valid header CRC', async () => {
    const meta = await sharp(await makePngClaiming(30_000, 30_000), { limitInputPixels: false }).metadata();
    expect([meta.width, meta.height]).toEqual([30_000, 30_000]);
  });
});

describe('decode once: pixels prepared for the models (issue 15)', () => {
  const clip = ImagePreprocessor.fromConfig(
    {
      image_processor_type: 'CLIPImageProcessor',
      size: { shortest_edge: 32 },
      crop_size: 32,
      do_center_crop: true,
      resample: 3,
      image_mean: [0.48145466, 0.4578275, 0.40821073],
      image_std: [0.26862954, 0.26130258, 0.27577711],
    },
    'clip-like',
  );
  const blip = ImagePreprocessor.fromConfig({ image_processor_type: 'BlipImageProcessor', size: { height: 24, width: 24 }, resample: 2, image_mean: 0.5, image_std: 0.5 }, 'blip-like');
  const twinOfClip = ImagePreprocessor.fromConfig({ ...clip.config, image_mean: 0.5, image_std: 0.5 }, 'clip-resize, other normalisation');

  it('each model preprocesses the prepared pixels to exactly what it makes of the bytes (orientation, alpha, grey, sizes)', async () => {
    const grey = await sharp({ create: { width: 50, height: 30, channels: 3, background: { r: 90, g: 90, b: 90 } } }).greyscale().png().toBuffer();
    const alpha = await sharp(await makeImage(40, 60, 'png', 3)).ensureAlpha(0.5).png().toBuffer();
    const images = [
      await makeImage(64, 48, 'jpeg', 1),
      await makeImage(1400, 900, 'jpeg', 2), // above 1 MP: without models the check would shrink
      await makeOrientedJpeg(40, 24, 6),
      await makeOrientedJpeg(40, 24, 3),
      await makeImage(30, 20, 'webp', 4),
      grey,
      alpha,
    ];
    for (const [i, bytes] of images.entries()) {
      const result = await decodeImage(bytes, LIMIT, undefined, { preparers: [clip, blip, twinOfClip] });
      if (!result.ok) throw new Error(`image ${i}: ${result.message}`);
      // CLIP and its twin share a resize: one prepared copy for both.
      expect([...result.pixels!.keys()].sort()).toEqual([blip.key, clip.key].sort());
      for (const model of [clip, blip, twinOfClip]) {
        expect(Buffer.from((await model.preprocess(result.pixels!)).buffer), `image ${i}, ${model.source}`).toEqual(Buffer.from((await model.preprocess(bytes)).buffer));
      }
    }
  });

  it('the check refuses the same images with the same codes when it decodes for the models', async () => {
    const jpeg = await makeImage(640, 480, 'jpeg', 9);
    const png = await makeImage(200, 100, 'png', 4);
    const webp = await makeImage(200, 100, 'webp', 5);
    const damagedPng = Buffer.from(await makeImage(64, 64, 'png', 6));
    const idat = damagedPng.indexOf('IDAT');
    for (let i = idat + 8; i < idat + 200; i++) damagedPng[i] = damagedPng[i]! ^ 0x5a;
    const bad = [
      ...[0.05, 0.5, 0.99].map((keep) => jpeg.subarray(0, Math.floor(jpeg.length * keep))),
      jpeg.subarray(0, jpeg.length - 2),
      largeJpeg.subarray(0, largeJpeg.length - 500),
      smallJpeg.subarray(0, 200),
      png.subarray(0, Math.floor(png.length / 2)),
      webp.subarray(0, Math.floor(webp.length / 2)),
      damagedPng,
      await makePngClaiming(30000, 30000),
      Buffer.from('<html>not an image</html>'),
    ];
    expect(bad).toHaveLength(11);
    for (const [i, bytes] of bad.entries()) {
      const plain = await decodeImage(bytes, LIMIT);
      const forModels = await decodeImage(bytes, LIMIT, undefined, { preparers: [clip] });
      expect(plain.ok, `case ${i}`).toBe(false);
      expect(forModels.ok, `case ${i}`).toBe(false);
      if (!plain.ok && !forModels.ok) expect(forModels.code, `case ${i}: ${forModels.message}`).toBe(plain.code);
    }
  });

  it('without models the stage keeps no pixels; with them each sample carries its prepared pixels until released', async () => {
    const plain = await runStage([pair('a', smallJpeg)]);
    expect(plain.out).toHaveLength(1);
    expect('pixels' in plain.out[0]!).toBe(false);

    const stage = createDecodeStage({}, { preparers: [clip] });
    async function* feed() {
      yield pair('a', smallJpeg);
      yield pair('b', Buffer.from('not an image'));
    }
    const ctx = { signal: new AbortController().signal, emit: () => {} };
    const out: DecodedPair[] = [];
    for await (const sample of stage.run(feed(), ctx)) out.push(sample);
    expect(out).toHaveLength(2);
    expect(out[0]!.pixels?.get(clip.key)).toMatchObject({ width: 42, height: 32 }) // 64x48, shortest edge to 32: int(32 * 64 / 48);
    expect(out[1]!.pixels).toBeUndefined();

    // The last model stage, wrapped: what it passes on holds no pixels, and it saw them itself.
    const seen: boolean[] = [];
    const model: Stage<DecodedPair, DecodedPair> = {
      name: 'filter',
      async *run(input) {
        for await (const sample of input) {
          seen.push(sample.pixels !== undefined);
          yield sample;
        }
      },
    };
    const released: DecodedPair[] = [];
    async function* again() {
      yield* out;
    }
    const wrapped = releasingPixels(model);
    expect(wrapped.name).toBe('filter');
    for await (const sample of wrapped.run(again(), ctx)) released.push(sample);
    expect(seen).toEqual([true, false]);
    expect(released).toHaveLength(2);
    expect(released.map((s) => 'pixels' in s)).toEqual([false, false]);
    expect(released[0]!.image).toEqual(out[0]!.image);
  });
});
