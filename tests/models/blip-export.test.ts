// The BLIP folders written by tools/export (tools/make_blip_fixtures.py: tiny random-weight models built
// with salesforce/BLIP's own BLIP_ITM and BLIP_Decoder classes) load with vlcurate's real model code and
// reproduce the PyTorch references in their reference.json: ITC cosines, ITM p(match) with BLIP's [ENC]
// first token (train_retrieval.py `evaluation`: `text_ids[:,0] = model.tokenizer.enc_token_id`), and the
// greedy captions of the merged decoder with its KV caches (self-attention, and cross-attention computed at
// step 0 only; reference: BLIP's text_decoder re-run on the whole sequence each step, from
// BLIP_Decoder.generate's prefix [DEC] + prompt).
import { readFileSync } from 'node:fs';
import path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { OnnxCaptioner } from '../../src/captioner/onnx-captioner.js';
import { loadItcModel, type ItcModel } from '../../src/models/itc-model.js';
import { loadItmModel, type ItmModel } from '../../src/models/itm-model.js';
import { expectClose, maxAbsDiff, modelDir } from './fixtures.js';

interface ItmReference {
  images: string[];
  texts: string[];
  token_ids: number[][];
  itc: { cosine: number[][] };
  itm: { first_token: string; logits: number[][][]; p_match: number[][]; p_match_with_cls_first: number[][] };
}

interface CaptionReference {
  images: string[];
  prompt: string;
  prefix_ids: number[];
  max_new_tokens: number;
  eos_token_id: number;
  greedy: { token_ids: number[][]; captions: string[]; min_top2_margin: number };
}

const itmDir = modelDir('blip-itm');
const captionerDir = modelDir('blip-captioner');
const readJson = <T>(dir: string): T => JSON.parse(readFileSync(path.join(dir, 'reference.json'), 'utf8')) as T;
const images = (dir: string, names: string[]): Buffer[] => names.map((n) => readFileSync(path.join(dir, n)));

describe('BLIP ITC + ITM folder exported by tools/export', () => {
  const ref = readJson<ItmReference>(itmDir);
  let itc: ItcModel;
  let itm: ItmModel;
  beforeAll(async () => {
    [itc, itm] = await Promise.all([loadItcModel(itmDir), loadItmModel(itmDir)]);
  });
  afterAll(async () => {
    await Promise.all([itc.close(), itm.close()]);
  });

  it('has 3 images, 5 texts and a truncated text in its reference', () => {
    expect(ref.images).toHaveLength(3);
    expect(ref.texts).toHaveLength(5);
    expect(Math.max(...ref.token_ids.map((ids) => ids.length))).toBe(35); // BLIP's retrieval max_length
  });

  it('tokenizes as BLIP does: [CLS] ... [SEP], truncated to 35 keeping [SEP]', () => {
    expect(itc.maxTextLength).toBe(35);
    expect(itm.maxTextLength).toBe(35);
    const batch = itc.tokenizer.encodeBatch(ref.texts, { maxLength: 35, padding: 'longest' });
    const [rows, width] = batch.dims;
    expect(rows).toBe(ref.texts.length);
    ref.token_ids.forEach((ids, r) => {
      const got = Array.from(batch.inputIds.subarray(r * width, r * width + ids.length), Number);
      expect(got).toEqual(ids);
    });
  });

  it('ITC: split graphs give the cosines of BLIP_ITM.forward(match_head="itc")', async () => {
    expect(itc.layout).toBe('split');
    const imageEmbeds = await itc.encodeImages(images(itmDir, ref.images));
    const textEmbeds = await itc.encodeTexts(ref.texts);
    expectClose(itc.score(imageEmbeds, textEmbeds), ref.itc.cosine, 1e-4);
  });

  it('ITM: split graphs give BLIP\'s [ENC] scores, which differ from the [CLS] ones', async () => {
    expect(itm.layout).toBe('split');
    const encoded = await itm.encodeImages(images(itmDir, ref.images));
    expect(encoded.tensor.dims).toEqual([3, 17, 24]); // [CLS] + 4 x 4 patches, ViT width 24
    const index = ref.images.flatMap((_, i) => ref.texts.map(() => i));
    const texts = ref.images.flatMap(() => ref.texts);
    const scores = await itm.scoreIndexed(encoded, index, texts);
    expect(scores.logitDims).toEqual([15, 2]);
    expectClose(scores.logits, ref.itm.logits, 1e-4);
    expectClose(scores.pMatch, ref.itm.p_match, 1e-4);
    // The fusion graph put [ENC] in place of the tokenizer's [CLS]: the [CLS] scores are measurably different.
    expect(maxAbsDiff(scores.pMatch, ref.itm.p_match_with_cls_first.flat())).toBeGreaterThan(1e-3);
  });
});

describe('BLIP captioner folder exported by tools/export', () => {
  const ref = readJson<CaptionReference>(captionerDir);
  let captioner: OnnxCaptioner;
  beforeAll(async () => {
    captioner = await OnnxCaptioner.load(captionerDir);
  });
  afterAll(async () => {
    await captioner.close();
  });

  it('is the merged layout with BLIP\'s ids: [DEC] starts, [SEP] ends', () => {
    expect(captioner.layout).toBe('merged');
    expect(captioner.cache?.layers).toBe(2);
    // Self-attention caches, then the cross-attention keys and values over the image, computed at step 0 only.
    expect(captioner.cache?.pastNames).toEqual([
      'past_key_values.0.key',
      'past_key_values.0.value',
      'past_key_values.1.key',
      'past_key_values.1.value',
      'past_key_values.0.encoder.key',
      'past_key_values.0.encoder.value',
      'past_key_values.1.encoder.key',
      'past_key_values.1.encoder.value',
    ]);
    expect(captioner.ids.startId).toBe(ref.prefix_ids[0]);
    expect(captioner.ids.eosIds).toEqual([ref.eos_token_id]);
    expect([captioner.ids.startId, ...captioner.promptIds(ref.prompt)]).toEqual(ref.prefix_ids);
  });

  it('writes the greedy captions of BLIP\'s decoder, token for token', async () => {
    expect(ref.greedy.min_top2_margin).toBeGreaterThan(1e-2); // no near-ties the runtimes could break differently
    const captions = await captioner.caption(images(captionerDir, ref.images), {
      strategy: 'greedy',
      minLength: 0,
      maxLength: ref.max_new_tokens,
      prompt: ref.prompt,
    });
    expect(captions).toHaveLength(ref.images.length);
    // One batch of 3: two captions end early, so the rows left (and their caches) are gathered mid-way.
    const finished = ref.greedy.token_ids.map((ids) => ids.at(-1) === ref.eos_token_id);
    expect(finished).toContain(true); // some captions end with [SEP], some run to the maximum length
    expect(finished).toContain(false);
    captions.forEach(([caption], i) => {
      const want = ref.greedy.token_ids[i]!;
      expect(caption!.finished).toBe(finished[i]);
      expect(caption!.tokenIds).toEqual(finished[i] ? want.slice(0, -1) : want);
      expect(caption!.text.replace(/\s+/g, '')).toBe(ref.greedy.captions[i]!.replace(/\s+/g, ''));
    });
  });
});

describe('BLIP-2 Q-Former ITC + ITM folder exported by tools/export', () => {
  // tools/make_blip_fixtures.py: LAVIS's own Blip2ITM (blip2_image_text_matching.py) at a tiny size, 4 query
  // tokens. References from Blip2ITM.forward(match_head='itc'): the best cosine over the queries, and
  // forward(match_head='itm'): itm_head on every query output, logits averaged over the queries.
  const dir = modelDir('blip2-itm');
  const ref = readJson<ItmReference>(dir);
  let itc: ItcModel;
  let itm: ItmModel;
  beforeAll(async () => {
    [itc, itm] = await Promise.all([loadItcModel(dir), loadItmModel(dir)]);
  });
  afterAll(async () => {
    await Promise.all([itc.close(), itm.close()]);
  });

  it('tokenizes with [CLS] first (BLIP-2 has no [ENC]), truncated to max_txt_len 32', () => {
    expect(itm.maxTextLength).toBe(32);
    const batch = itm.tokenizer.encodeBatch(ref.texts, { maxLength: 32, padding: 'longest' });
    const width = batch.dims[1];
    expect(ref.token_ids.at(-1)).toHaveLength(32);
    ref.token_ids.forEach((ids, r) => expect(Array.from(batch.inputIds.subarray(r * width, r * width + ids.length), Number)).toEqual(ids));
  });

  it('ITC: query embeddings [B, 4, D], scored as the best cosine over the queries', async () => {
    const imageEmbeds = await itc.encodeImages(images(dir, ref.images));
    expect(imageEmbeds.dims).toEqual([3, 4, 16]);
    const textEmbeds = await itc.encodeTexts(ref.texts);
    expectClose(itc.score(imageEmbeds, textEmbeds), ref.itc.cosine, 1e-4);
  });

  it('ITM: per-query logits [pairs, 4, 2], averaged over the queries before the softmax', async () => {
    const encoded = await itm.encodeImages(images(dir, ref.images));
    const index = ref.images.flatMap((_, i) => ref.texts.map(() => i));
    const scores = await itm.scoreIndexed(encoded, index, ref.images.flatMap(() => ref.texts));
    expect(scores.logitDims).toEqual([15, 4, 2]);
    expectClose(scores.logits, ref.itm.logits, 1e-4);
    expectClose(scores.pMatch, ref.itm.p_match, 1e-4);
  });
});
