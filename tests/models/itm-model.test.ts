import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { ConfigError } from '../../src/core/errors.js';
import { ItmModel, loadItmModel } from '../../src/models/itm-model.js';
import { expectClose, fixtureRoot, modelDir, readExpected, readImage } from './fixtures.js';

interface ItmExpected {
  images: string[];
  texts: string[];
  variants: { fp32: { itm_logits: number[][][] | number[][][][]; p_match: number[][] } };
}

const cases = [
  { folder: 'itm', layout: 'single', logitDims: [9, 2] },
  { folder: 'itm-queries', layout: 'single', logitDims: [9, 4, 2] },
  { folder: 'itm-split', layout: 'split', logitDims: [9, 2] },
] as const;

for (const c of cases) {
  describe(`ITM ${c.folder} matches the PyTorch reference`, () => {
    const expected = readExpected<ItmExpected>(c.folder);
    const ref = expected.variants.fp32;
    let model: ItmModel;
    beforeAll(async () => {
      model = await loadItmModel(modelDir(c.folder));
    });
    afterAll(async () => {
      await model.close();
    });

    it('loads the layout', () => {
      expect(model.layout).toBe(c.layout);
      expect(model.maxTextLength).toBe(32);
    });

    it('scores one image against many captions', async () => {
      for (const [i, name] of expected.images.entries()) {
        const p = await model.scorePairs(readImage(name), expected.texts);
        expectClose(p, ref.p_match[i], 1e-4);
      }
    });

    it('scores indexed pairs with the raw logits (averaged over queries before the softmax)', async () => {
      const images = await model.encodeImages(expected.images.map(readImage));
      if (c.layout === 'split') expect(images.tensor.dims).toEqual([3, 17, 16]); // encoded once per image
      const index = expected.images.flatMap((_, i) => expected.texts.map(() => i));
      const texts = expected.images.flatMap(() => expected.texts);
      const scores = await model.scoreIndexed(images, index, texts);
      expect(scores.logitDims).toEqual(c.logitDims);
      expectClose(scores.logits, ref.itm_logits, 1e-4);
      expectClose(scores.pMatch, ref.p_match, 1e-4);
    });

    it('scores aligned image-caption pairs', async () => {
      const p = await model.scoreAligned(expected.images.map(readImage), expected.texts);
      expectClose(p, ref.p_match.map((row, i) => row[i]!), 1e-4);
    });
  });
}

describe('ITM input checks', () => {
  it('rejects mismatched indices and texts', async () => {
    const model = await loadItmModel(modelDir('itm-split'));
    try {
      const images = await model.encodeImages([readImage('square-a.png')]);
      await expect(model.scoreIndexed(images, [0, 1], ['a', 'b'])).rejects.toThrow('Image index 1 is out of range for 1 images');
      await expect(model.scoreIndexed(images, [0], ['a', 'b'])).rejects.toThrow('Expected one image index per text, got 1 indices for 2 texts');
      expect((await model.scorePairs(readImage('square-a.png'), [])).length).toBe(0);
    } finally {
      await model.close();
    }
  });
});

describe('ITM model folder errors', () => {
  const scratch = mkdtempSync(path.join(tmpdir(), 'vlcurate-itm-'));
  afterAll(() => rmSync(scratch, { recursive: true, force: true }));
  let n = 0;
  const copyFolder = (name: string): string => {
    const dir = path.join(scratch, `${name}-${n++}`);
    cpSync(modelDir(name), dir, { recursive: true });
    return dir;
  };

  it('names a missing tokenizer.json', async () => {
    const dir = copyFolder('itm');
    rmSync(path.join(dir, 'tokenizer.json'));
    const load = loadItmModel(dir);
    await expect(load).rejects.toBeInstanceOf(ConfigError);
    await expect(load).rejects.toThrow(`Missing tokenizer: ${path.join(dir, 'tokenizer.json')} does not exist`);
  });

  it('names a graph without itm_logits', async () => {
    const dir = copyFolder('itm');
    cpSync(path.join(fixtureRoot, 'session', 'add.onnx'), path.join(dir, 'onnx', 'itm_model.onnx'));
    await expect(loadItmModel(dir)).rejects.toThrow(
      `ONNX model ${path.join(dir, 'onnx', 'itm_model.onnx')} has none of the outputs itm_logits (match logits); it declares outputs: sum, scaled`,
    );
  });

  it('names a fusion graph without itm_logits', async () => {
    const dir = copyFolder('itm-split');
    cpSync(path.join(modelDir('clip-split'), 'onnx', 'text_model.onnx'), path.join(dir, 'onnx', 'itm_fusion.onnx'));
    await expect(loadItmModel(dir)).rejects.toThrow(
      `ONNX model ${path.join(dir, 'onnx', 'itm_fusion.onnx')} has none of the outputs itm_logits (match logits)`,
    );
  });

  it('names the missing half of the split layout', async () => {
    const dir = copyFolder('itm-split');
    rmSync(path.join(dir, 'onnx', 'itm_vision.onnx'));
    await expect(loadItmModel(dir)).rejects.toThrow(`has only one half of the split layout: ${path.join(dir, 'onnx', 'itm_vision.onnx')} is missing`);
  });

  it('names the expected files when onnx/ has none of them', async () => {
    const dir = copyFolder('itm');
    rmSync(path.join(dir, 'onnx'), { recursive: true });
    mkdirSync(path.join(dir, 'onnx'));
    await expect(loadItmModel(dir, { variant: 'quantized' })).rejects.toThrow(
      /ITM model folder .* has no quantized graphs: expected .*itm_model_quantized\.onnx, or .*itm_vision_quantized\.onnx and .*itm_fusion_quantized\.onnx \(onnx\/ holds: nothing\)/,
    );
  });

  it('names a broken preprocessor field', async () => {
    const dir = copyFolder('itm');
    writeFileSync(path.join(dir, 'preprocessor_config.json'), JSON.stringify({ size: { height: 32, width: 32 }, image_mean: [0.5, 0.5, 0.5], image_std: 'one' }));
    await expect(loadItmModel(dir)).rejects.toThrow(
      `${path.join(dir, 'preprocessor_config.json')}: field \`image_std\` expected the per-channel standard deviation: a number or 3 numbers, got "one"`,
    );
  });
});
