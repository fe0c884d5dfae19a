import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import sharp from 'sharp';
import { describe, expect, it } from 'vitest';

import { ConfigError, SampleError } from '../../src/core/errors.js';
import { ImagePreprocessor, loadPreprocessor } from '../../src/models/preprocess.js';
import { fixtureRoot, maxAbsDiff, meanAbsDiff, readImage, referencePixels } from './fixtures.js';
import { expectEvery } from '../expect-every.js';

const configs = ['clip', 'siglip', 'blip'] as const;
const configFile = (name: string): string => path.join(fixtureRoot, 'preprocess', `${name}.json`);
const rawConfig = (name: string): Record<string, unknown> =>
  JSON.parse(readFileSync(configFile(name), 'utf8')) as Record<string, unknown>;

/** Pixels as 8-bit levels: no rescale, no normalize. */
const levels = (extra: Record<string, unknown>): ImagePreprocessor =>
  ImagePreprocessor.fromConfig({ do_rescale: false, do_normalize: false, ...extra }, 'test config');

describe('preprocessing matches the PIL reference (transformers image processors)', () => {
  // These images need no resampling for a 32x32 model input: RGB, EXIF-rotated, greyscale and RGBA.
  for (const config of configs) {
    for (const image of ['square-a.png', 'square-b.png', 'rotated.png', 'gray.png', 'rgba.png']) {
      it(`${config}: ${image} is identical`, async () => {
        const pre = await loadPreprocessor(configFile(config));
        const got = await pre.preprocess(readImage(image));
        expect(maxAbsDiff(got, referencePixels(config, image))).toBeLessThanOrEqual(1e-6);
      });
    }
  }

  // wide.png (48x40) is resampled: sharp (libvips) and PIL differ slightly. Bounds from the measured
  // differences (bicubic: max 0.088 ~ 6 levels at edges, mean 0.0014 ~ 0.1 level; bilinear: max 0.008).
  it('clip: wide.png resized by its shortest edge (bicubic) and center-cropped stays close', async () => {
    const pre = await loadPreprocessor(configFile('clip'));
    expect(pre.resizeTarget(48, 40)).toEqual({ width: 38, height: 32 });
    const got = await pre.preprocess(readImage('wide.png'));
    const ref = referencePixels('clip', 'wide.png');
    expect(meanAbsDiff(got, ref)).toBeLessThan(0.004);
    expect(maxAbsDiff(got, ref)).toBeLessThan(0.15);
  });

  it('siglip: wide.png resized to 32x32 (bilinear) stays close', async () => {
    const pre = await loadPreprocessor(configFile('siglip'));
    const got = await pre.preprocess(readImage('wide.png'));
    const ref = referencePixels('siglip', 'wide.png');
    expect(meanAbsDiff(got, ref)).toBeLessThan(0.002);
    expect(maxAbsDiff(got, ref)).toBeLessThan(0.02);
  });

  it('blip: wide.png resized to 32x32 (bicubic) stays close', async () => {
    const pre = await loadPreprocessor(configFile('blip'));
    const got = await pre.preprocess(readImage('wide.png'));
    const ref = referencePixels('blip', 'wide.png');
    expect(meanAbsDiff(got, ref)).toBeLessThan(0.004);
    expect(maxAbsDiff(got, ref)).toBeLessThan(0.15);
  });
});

describe('preprocessing steps', () => {
  it('applies the EXIF orientation (6: rotate 90 degrees clockwise)', async () => {
    const file = readImage('rotated.png');
    const stored = await sharp(file).raw().toBuffer({ resolveWithObject: true });
    expect((await sharp(file).metadata()).orientation).toBe(6);
    const { width: w, height: h } = stored.info;
    const pre = levels({ size: { height: w, width: h } });
    const got = await pre.preprocess(file);
    // Displayed pixel (x', y') is stored pixel (x = y', y = H - 1 - x').
    let mismatches = 0;
    for (let y = 0; y < w; y++) {
      for (let x = 0; x < h; x++) {
        for (let c = 0; c < 3; c++) {
          const want = stored.data[((h - 1 - x) * w + y) * 3 + c]!;
          if (got[c * w * h + y * h + x] !== want) mismatches++;
        }
      }
    }
    expect(mismatches).toBe(0);
    // The stored (unrotated) layout does not match: the test would catch a missing rotation.
    let unrotated = 0;
    for (let i = 0; i < w * h; i++) if (got[i] !== stored.data[i * 3]) unrotated++;
    expect(unrotated).toBeGreaterThan(w * h / 2);
  });

  it('writes CHW planes with rescale and normalize from the config', async () => {
    const pre = ImagePreprocessor.fromConfig(
      { size: { height: 32, width: 32 }, rescale_factor: 1 / 255, image_mean: 0.5, image_std: [0.5, 0.25, 1] },
      'test config',
    );
    const raw = await levels({ size: { height: 32, width: 32 } }).preprocess(readImage('square-a.png'));
    const got = await pre.preprocess(readImage('square-a.png'));
    const plane = 32 * 32;
    for (const i of [0, 17, 500, plane - 1]) {
      expect(got[i]).toBeCloseTo((raw[i]! / 255 - 0.5) / 0.5, 6);
      expect(got[plane + i]).toBeCloseTo((raw[plane + i]! / 255 - 0.5) / 0.25, 6);
      expect(got[2 * plane + i]).toBeCloseTo(raw[2 * plane + i]! / 255 - 0.5, 6);
    }
  });

  it('follows transformers rounding for shortest_edge (and longest_edge) resizes', () => {
    const pre = levels({ size: { shortest_edge: 224 }, do_center_crop: true, crop_size: { height: 224, width: 224 } });
    expect(pre.resizeTarget(640, 480)).toEqual({ width: 298, height: 224 });
    expect(pre.resizeTarget(480, 640)).toEqual({ width: 224, height: 298 });
    expect(pre.resizeTarget(333, 500)).toEqual({ width: 224, height: 336 });
    const capped = levels({ size: { shortest_edge: 100, longest_edge: 150 }, do_center_crop: true, crop_size: 100 });
    expect(capped.resizeTarget(400, 100)).toEqual({ width: 150, height: 37 });
  });

  it('reads a bare number size as the shortest edge for CLIP processors and as a square otherwise', () => {
    const clip = levels({ image_processor_type: 'CLIPImageProcessor', size: 24, do_center_crop: true, crop_size: 24 });
    expect(clip.resizeTarget(48, 40)).toEqual({ width: 28, height: 24 });
    const vit = levels({ image_processor_type: 'ViTImageProcessor', size: 24 });
    expect(vit.resizeTarget(48, 40)).toEqual({ width: 24, height: 24 });
    expect([vit.height, vit.width]).toEqual([24, 24]);
  });

  it('pads with zeros when the crop is larger than the resized image', async () => {
    const pre = levels({ size: { height: 20, width: 20 }, do_center_crop: true, crop_size: { height: 32, width: 32 } });
    const got = await pre.preprocess(readImage('square-b.png'));
    const inner = await levels({ size: { height: 20, width: 20 } }).preprocess(readImage('square-b.png'));
    // (20 - 32) // 2 = -6: six padded rows/columns before the image, six after.
    for (let c = 0; c < 3; c++) {
      for (let y = 0; y < 32; y++) {
        for (let x = 0; x < 32; x++) {
          const v = got[c * 1024 + y * 32 + x]!;
          const inside = y >= 6 && y < 26 && x >= 6 && x < 26;
          expect(v).toBe(inside ? inner[c * 400 + (y - 6) * 20 + (x - 6)]! : 0);
        }
      }
    }
  });

  it('fills a preallocated batch and records a corrupt image without losing the others', async () => {
    const pre = await loadPreprocessor(configFile('clip'));
    const out = new Float32Array(4 * pre.imageSize).fill(7);
    const images = [readImage('square-a.png'), Buffer.from('not an image'), readImage('square-b.png')];
    const batch = await pre.preprocessBatch(images, { out, concurrency: 2 });
    expect(batch.data).toBe(out);
    expect(batch.dims).toEqual([3, 3, 32, 32]);
    expect(batch.errors[0]).toBeUndefined();
    expect(batch.errors[2]).toBeUndefined();
    expect(batch.errors[1]).toBeInstanceOf(SampleError);
    expect(batch.errors[1]!.code).toBe('image_decode');
    const size = pre.imageSize;
    expect(maxAbsDiff(out.subarray(0, size), referencePixels('clip', 'square-a.png'))).toBeLessThanOrEqual(1e-6);
    expectEvery(out.subarray(size, 2 * size), (v) => v === 0);
    expect(maxAbsDiff(out.subarray(2 * size, 3 * size), referencePixels('clip', 'square-b.png'))).toBeLessThanOrEqual(1e-6);
    expect(out[3 * size]).toBe(7); // beyond the batch: untouched

    await expect(pre.preprocessBatch(images, { out: new Float32Array(size) })).rejects.toThrow(
      `Expected \`out\` to hold at least ${3 * size} values for 3 images, got ${size}`,
    );
  });

  it('refuses images over the pixel limit as a sample error', async () => {
    const pre = ImagePreprocessor.fromConfig(rawConfig('clip'), 'clip.json', { limitInputPixels: 100 });
    await expect(pre.preprocess(readImage('square-a.png'))).rejects.toMatchObject({ code: 'image_decode' });
  });
});

describe('preprocessor config errors name the file, the field and the value', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'vlcurate-pre-'));
  const write = (name: string, value: unknown): string => {
    const file = path.join(dir, name);
    writeFileSync(file, typeof value === 'string' ? value : JSON.stringify(value));
    return file;
  };
  const cases: Array<[string, Record<string, unknown>, RegExp]> = [
    ['negative shortest edge', { size: { shortest_edge: -3 } }, /field `size.shortest_edge` expected a positive integer, got -3/],
    ['unknown size form', { size: { edge: 32 } }, /field `size` expected a positive integer, \{"shortest_edge": n\} or \{"height": h, "width": w\}, got \{"edge":32\}/],
    ['box resampling', { resample: 4 }, /field `resample` expected 0 \(nearest\).*got 4/],
    ['two means', { image_mean: [0.5, 0.5] }, /field `image_mean` expected the per-channel mean: a number or 3 numbers, got \[0\.5,0\.5\]/],
    ['string flag', { do_normalize: 'yes' }, /field `do_normalize` expected true or false, got "yes"/],
    ['zero std', { image_std: [0.5, 0, 0.5] }, /field `image_std` expected non-zero standard deviations, got \[0\.5,0,0\.5\]/],
    ['zero rescale factor', { rescale_factor: 0 }, /field `rescale_factor` expected a positive number, got 0/],
    ['crop without a size', { crop_size: undefined }, /field `crop_size` is required when do_center_crop is true/],
  ];
  for (const [label, change, message] of cases) {
    it(label, async () => {
      const file = write(`${label.replace(/ /g, '-')}.json`, { ...rawConfig('clip'), ...change });
      const load = loadPreprocessor(file);
      await expect(load).rejects.toBeInstanceOf(ConfigError);
      await expect(load).rejects.toThrow(file);
      await expect(load).rejects.toThrow(message);
    });
  }

  it('shortest_edge without a crop cannot make a batch', async () => {
    const file = write('no-crop.json', { ...rawConfig('clip'), do_center_crop: false });
    await expect(loadPreprocessor(file)).rejects.toThrow(/images would come out in different sizes/);
  });

  it('a missing or malformed file', async () => {
    const missing = path.join(dir, 'nope', 'preprocessor_config.json');
    await expect(loadPreprocessor(path.join(dir, 'nope'))).rejects.toThrow(`Missing preprocessor config: ${missing} does not exist`);
    const bad = write('bad.json', '{"size": ');
    await expect(loadPreprocessor(bad)).rejects.toThrow(`preprocessor config ${bad} is not valid JSON`);
  });
});
