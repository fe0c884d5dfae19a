import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { OnnxCaptioner } from '../../src/captioner/onnx-captioner.js';
import { LAYOUT_DIRS, optionsOf, readExpected, readImage } from './fixtures.js';

const expected = readExpected();
const images = expected.images.map(readImage);

describe.each(Object.entries(LAYOUT_DIRS))('captioner %s layout matches the PyTorch reference', (layout, dir) => {
  let captioner: OnnxCaptioner;
  beforeAll(async () => {
    captioner = await OnnxCaptioner.load(dir);
  });
  afterAll(async () => {
    await captioner.close();
  });

  it('detects the layout and reads ids and cache dims from the graphs', () => {
    expect(captioner.layout).toBe(layout);
    expect(captioner.ids.startId).toBe(expected.start_id);
    expect(captioner.ids.eosIds).toEqual([expected.eos_id]);
    expect(captioner.ids.padId).toBe(expected.pad_id);
    if (layout === 'no-cache') expect(captioner.cache).toBeUndefined();
    else expect(captioner.cache).toMatchObject({ layers: expected.layers, heads: expected.heads, headDim: expected.head_dim });
  });

  for (const c of expected.cases) {
    it(`${c.name}: same token ids, log-probabilities and texts`, async () => {
      const out = await captioner.caption(images, { ...optionsOf(c), keys: expected.keys });
      expect(out.map((per) => per.map((x) => x.tokenIds))).toEqual(c.results.map((per) => per.map((x) => x.token_ids)));
      expect(out.map((per) => per.map((x) => x.text))).toEqual(c.results.map((per) => per.map((x) => x.text)));
      out.flat().forEach((x, i) => expect(x.logProb).toBeCloseTo(c.results.flat()[i]!.log_prob, 4));
    });
  }
});
