import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { ConfigError, SampleError } from '../../src/core/errors.js';
import { embeddingShape } from '../../src/models/embeddings.js';
import { ItcModel, loadItcModel } from '../../src/models/itc-model.js';
import type { ModelVariant } from '../../src/models/model-files.js';
import { expectClose, fixtureRoot, modelDir, readExpected, readImage } from './fixtures.js';

interface ItcReference {
  image_embeds: number[][] | number[][][];
  text_embeds: number[][];
  cosine: number[][];
  probability?: number[][];
  wide_image_embeds?: number[][];
}

interface ItcExpected {
  images: string[];
  resized_images?: string[];
  texts: string[];
  variants: Partial<Record<ModelVariant, ItcReference>>;
}

const cases: Array<{ folder: string; variant: ModelVariant; layout: 'split' | 'single'; family: 'clip' | 'siglip'; tolerance: number; queries?: number }> = [
  { folder: 'clip-split', variant: 'fp32', layout: 'split', family: 'clip', tolerance: 1e-4 },
  // onnxruntime fuses DequantizeLinear + MatMul into MatMulNBits, which computes with int8 activations
  // (a few 1e-3 off); the fixture's coarse weights differ from fp32 by 0.05-0.1, so the bound still
  // tells the variants apart.
  { folder: 'clip-split', variant: 'quantized', layout: 'split', family: 'clip', tolerance: 1e-2 },
  // float16 outputs: one float16 rounding step (~5e-4 relative) can land on either side.
  { folder: 'clip-split', variant: 'fp16', layout: 'split', family: 'clip', tolerance: 2e-3 },
  { folder: 'clip-single', variant: 'fp32', layout: 'single', family: 'clip', tolerance: 1e-4 },
  { folder: 'siglip', variant: 'fp32', layout: 'split', family: 'siglip', tolerance: 1e-4 },
  { folder: 'qformer', variant: 'fp32', layout: 'split', family: 'clip', tolerance: 1e-4, queries: 4 },
];

for (const c of cases) {
  describe(`ITC ${c.folder} (${c.variant}) matches the PyTorch reference`, () => {
    const expected = readExpected<ItcExpected>(c.folder);
    const ref = expected.variants[c.variant]!;
    let model: ItcModel;
    beforeAll(async () => {
      model = await loadItcModel(modelDir(c.folder), { variant: c.variant });
    });
    afterAll(async () => {
      await model.close();
    });

    it('loads the expected layout and files', () => {
      expect(model.layout).toBe(c.layout);
      expect(model.family).toBe(c.family);
      const suffix = c.variant === 'fp32' ? '' : `_${c.variant}`;
      const names = c.layout === 'split' ? [`vision_model${suffix}.onnx`, `text_model${suffix}.onnx`] : ['model.onnx'];
      expect(model.files.map((f) => path.basename(f))).toEqual(names);
    });

    it('embeds images and texts and scores them', async () => {
      const images = await model.encodeImages(expected.images.map(readImage));
      const texts = await model.encodeTexts(expected.texts);
      expect(embeddingShape(images).vectors).toBe(c.queries ?? 1);
      expectClose(images.data, ref.image_embeds, c.tolerance);
      expectClose(texts.data, ref.text_embeds, c.tolerance);
      expectClose(model.score(images, texts), ref.cosine, c.tolerance);
      expect(Math.abs(model.cosine(images, 2, texts, 1) - ref.cosine[2]![1]!)).toBeLessThanOrEqual(c.tolerance);
      if (ref.probability) {
        const probs = ref.cosine.flatMap((row) => row.map((cos) => model.probability(cos)));
        expectClose(probs, ref.probability, 1e-6);
      }
    });

    if (ref.wide_image_embeds) {
      it('stays close on an image that sharp resamples (48x40)', async () => {
        const wide = await model.encodeImages(expected.resized_images!.map(readImage));
        // Resampling differs by ~0.1 8-bit level on average (see preprocess.ts); the embeddings by little.
        expectClose(wide.data, ref.wide_image_embeds, 0.03);
      });
    }
  });
}

describe('ITC model specifics', () => {
  it('pads SigLIP texts to max_length 64 and reads logit_scale / logit_bias from config.json', async () => {
    const model = await loadItcModel(modelDir('siglip'));
    try {
      expect(model.padding).toBe('max_length');
      expect(model.maxTextLength).toBe(64);
      expect(model.hasProbability).toBe(true);
      expect(model.probability(0)).toBeCloseTo(1 / (1 + Math.exp(2.5)), 12);
    } finally {
      await model.close();
    }
  });

  it('CLIP pads to the longest text, at most 16 tokens here (config.json and tokenizer_config.json)', async () => {
    const model = await loadItcModel(modelDir('clip-split'), { maxTextLength: 12 });
    try {
      expect(model.padding).toBe('longest');
      expect(model.maxTextLength).toBe(12);
      expect(model.hasProbability).toBe(false);
      expect(() => model.probability(0.3)).toThrow(/probabilities need model_type "siglip"/);
      // A truncated text still pools at EOS, so it embeds like its 12-token prefix + EOS.
      const long = 'two green triangles and a yellow star next to a purple circle above the big cat';
      const [a, b] = [await model.encodeTexts([long]), await model.encodeTexts([long, 'a red circle'])];
      expect(Array.from(b.data.subarray(0, a.data.length))).toEqual(Array.from(a.data));
    } finally {
      await model.close();
    }
  });

  it('embeds preprocessed pixels without taking the caller’s array', async () => {
    const model = await loadItcModel(modelDir('clip-split'));
    try {
      const batch = await model.preprocessor.preprocessBatch([readImage('square-a.png'), readImage('square-b.png')]);
      const fromPixels = await model.encodePixels(batch.data, 2);
      expect(batch.data.length).toBe(2 * model.preprocessor.imageSize);
      const fromImages = await model.encodeImages([readImage('square-a.png'), readImage('square-b.png')]);
      expect(Array.from(fromPixels.data)).toEqual(Array.from(fromImages.data));
    } finally {
      await model.close();
    }
  });

  it('returns empty embeddings for empty batches without running the graphs', async () => {
    const model = await loadItcModel(modelDir('clip-single'));
    try {
      expect((await model.encodeImages([])).dims).toEqual([0, 0]);
      expect((await model.encodeTexts([])).data.length).toBe(0);
    } finally {
      await model.close();
    }
  });

  it('reports which image of a batch could not be decoded', async () => {
    const model = await loadItcModel(modelDir('clip-split'));
    try {
      const encode = model.encodeImages([readImage('square-a.png'), Buffer.from('garbage')]);
      await expect(encode).rejects.toBeInstanceOf(SampleError);
      await expect(encode).rejects.toThrow(/Image 1 of 2: Could not decode image/);
    } finally {
      await model.close();
    }
  });
});

describe('ITC model folder errors', () => {
  const scratch = mkdtempSync(path.join(tmpdir(), 'vlcurate-itc-'));
  afterAll(() => rmSync(scratch, { recursive: true, force: true }));
  let n = 0;
  const copyFolder = (name: string): string => {
    const dir = path.join(scratch, `${name}-${n++}`);
    cpSync(modelDir(name), dir, { recursive: true });
    return dir;
  };

  it('names a missing tokenizer.json', async () => {
    const dir = copyFolder('clip-split');
    rmSync(path.join(dir, 'tokenizer.json'));
    const load = loadItcModel(dir);
    await expect(load).rejects.toBeInstanceOf(ConfigError);
    await expect(load).rejects.toThrow(`Missing tokenizer: ${path.join(dir, 'tokenizer.json')} does not exist`);
  });

  it('names a broken preprocessor_config.json field', async () => {
    const dir = copyFolder('clip-split');
    writeFileSync(path.join(dir, 'preprocessor_config.json'), JSON.stringify({ size: { shortest_edge: 32 }, do_center_crop: true, crop_size: 32, resample: 'bicubic', image_mean: 0.5, image_std: 0.5 }));
    await expect(loadItcModel(dir)).rejects.toThrow(
      `${path.join(dir, 'preprocessor_config.json')}: field \`resample\` expected 0 (nearest), 1 (lanczos), 2 (bilinear) or 3 (bicubic), got "bicubic"`,
    );
  });

  it('names a missing config.json', async () => {
    const dir = copyFolder('siglip');
    rmSync(path.join(dir, 'config.json'));
    await expect(loadItcModel(dir)).rejects.toThrow(`Missing model config: ${path.join(dir, 'config.json')} does not exist`);
  });

  it('names a graph without the embedding output', async () => {
    const dir = copyFolder('clip-split');
    cpSync(path.join(fixtureRoot, 'session', 'add.onnx'), path.join(dir, 'onnx', 'vision_model.onnx'));
    const load = loadItcModel(dir);
    await expect(load).rejects.toBeInstanceOf(ConfigError);
    await expect(load).rejects.toThrow(
      `ONNX model ${path.join(dir, 'onnx', 'vision_model.onnx')} has none of the outputs image_embeds, pooler_output (image embeddings); it declares outputs: sum, scaled`,
    );
  });

  it('names a single graph without text_embeds', async () => {
    const dir = copyFolder('itm');
    rmSync(path.join(dir, 'onnx'), { recursive: true });
    cpSync(path.join(modelDir('clip-split'), 'onnx', 'vision_model.onnx'), path.join(dir, 'onnx', 'model.onnx'));
    await expect(loadItcModel(dir)).rejects.toThrow(`ONNX model ${path.join(dir, 'onnx', 'model.onnx')} has no output text_embeds`);
  });

  it('lists what onnx/ holds when the variant is missing', async () => {
    await expect(loadItcModel(modelDir('clip-single'), { variant: 'fp16' })).rejects.toThrow(
      /has no fp16 graphs: expected .*vision_model_fp16\.onnx and .*text_model_fp16\.onnx, or .*model_fp16\.onnx \(onnx\/ holds: model\.onnx\)/,
    );
    await expect(loadItcModel(modelDir('clip-single'), { variant: 'int4' as ModelVariant })).rejects.toThrow(
      'Expected `variant` to be one of fp32, fp16, quantized, got "int4"',
    );
  });

  it('names the missing half of a split layout', async () => {
    const dir = copyFolder('clip-split');
    rmSync(path.join(dir, 'onnx', 'text_model.onnx'));
    await expect(loadItcModel(dir)).rejects.toThrow(`has only one of the two encoders: ${path.join(dir, 'onnx', 'text_model.onnx')} is missing`);
  });
});
