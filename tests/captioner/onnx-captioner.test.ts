import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { OnnxCaptioner } from '../../src/captioner/onnx-captioner.js';
import { ConfigError, SampleError } from '../../src/core/errors.js';
import { LAYOUT_DIRS, optionsOf, readExpected, readImage } from './fixtures.js';

const expected = readExpected();
const [a, b] = expected.images.map(readImage) as [Buffer, Buffer];
const c = readImage('rotated.png');
const sampling = { strategy: 'nucleus', k: 4, seed: 5, minLength: 0, maxLength: 14 } as const;

describe('OnnxCaptioner', () => {
  let captioner: OnnxCaptioner;
  beforeAll(async () => {
    captioner = await OnnxCaptioner.load(LAYOUT_DIRS.merged);
  });
  afterAll(async () => {
    await captioner.close();
  });

  it('the same seed gives the same captions; another seed other captions', async () => {
    const first = await captioner.caption([a, b], sampling);
    const again = await captioner.caption([a, b], sampling);
    const other = await captioner.caption([a, b], { ...sampling, seed: 6 });
    expect(again).toEqual(first);
    expect(other.flat().map((x) => x.text)).not.toEqual(first.flat().map((x) => x.text));
  });

  it('an image`s samples do not depend on the other images in the batch', async () => {
    const pair = await captioner.caption([a, b], { ...sampling, keys: ['ka', 'kb'] });
    const alone = await captioner.caption([b], { ...sampling, keys: ['kb'] });
    const crowd = await captioner.caption([c, b, a, b], { ...sampling, keys: ['kc', 'kb', 'ka', 'kb2'] });
    expect(alone[0]).toEqual(pair[1]);
    expect(crowd[1]).toEqual(pair[1]);
    expect(crowd[2]).toEqual(pair[0]);
    expect(crowd[3]).not.toEqual(crowd[1]); // another key, other samples
    // Default keys are the images' content hashes: order in the batch does not matter.
    const ab = await captioner.caption([a, b], sampling);
    const ba = await captioner.caption([b, a], sampling);
    expect(ba).toEqual([ab[1], ab[0]]);
  });

  it('writes K captions per image, samples in order, beams best first', async () => {
    const sampled = await captioner.caption([a, b, c], { ...sampling, k: 5 });
    expect(sampled.map((per) => per.length)).toEqual([5, 5, 5]);
    const beams = await captioner.caption([a, b], { strategy: 'beam', numBeams: 4, k: 3, minLength: 0, maxLength: 12, lengthPenalty: 1 });
    for (const per of beams) {
      expect(per).toHaveLength(3);
      const scores = per.map((x) => x.logProb / (x.tokenIds.length + (x.finished ? 1 : 0)));
      expect([...scores].sort((p, q) => q - p)).toEqual(scores);
    }
    const greedy = await captioner.caption([a, b], { strategy: 'greedy', minLength: 0, maxLength: 12 });
    expect(greedy.map((per) => per.length)).toEqual([1, 1]);
    // The fixture model is one where beam search finds likelier captions than greedy decoding.
    expect(beams[0]![0]!.logProb).toBeGreaterThan(greedy[0]![0]!.logProb);
  });

  it('forces the prompt and strips it from the text and token ids', async () => {
    const prompt = 'a picture of ';
    const promptIds = captioner.promptIds(prompt);
    expect(promptIds.map((id) => expected.vocab[id])).toEqual(['a', 'picture', 'of']);
    const out = await captioner.caption([a, b], { strategy: 'greedy', prompt, minLength: 2, maxLength: 10 });
    const plain = await captioner.caption([a, b], { strategy: 'greedy', minLength: 2, maxLength: 10 });
    for (const [i, per] of out.entries()) {
      const caption = per[0]!;
      expect(caption.text.startsWith('a picture of')).toBe(false);
      expect(caption.text).toBe(caption.tokenIds.map((id) => expected.vocab[id]).join(' ').replace(/ \./g, '.'));
      expect(caption.tokenIds).not.toEqual(plain[i]![0]!.tokenIds); // the prompt conditions the caption
    }
  });

  it('caps maxLength at the decoder`s positions (config.json n_positions)', async () => {
    expect(captioner.maxPositions).toBe(32);
    const prompt = 'a picture of '; // 3 tokens after the start token: room for 32 - 4 + 1 = 29
    const out = await captioner.caption([a, b], { strategy: 'nucleus', k: 3, seed: 1, minLength: 29, maxLength: 100, prompt });
    for (const x of out.flat()) {
      expect(x.tokenIds).toHaveLength(29);
      expect(x.finished).toBe(false);
    }
  });

  it('honours min and max length', async () => {
    const out = await captioner.caption([a, b, c], { ...sampling, k: 6, minLength: 7, maxLength: 9 });
    for (const x of out.flat()) {
      expect(x.tokenIds.length).toBeGreaterThanOrEqual(7);
      expect(x.tokenIds.length).toBeLessThanOrEqual(9);
      expect(x.tokenIds).not.toContain(expected.eos_id);
    }
  });

  it('captions preprocessed pixels like encoded images', async () => {
    const batch = await captioner.preprocessor.preprocessBatch([a, b]);
    const fromPixels = await captioner.captionPixels(batch.data, 2, { ...sampling, keys: ['x', 'y'] });
    const fromImages = await captioner.caption([a, b], { ...sampling, keys: ['x', 'y'] });
    expect(fromPixels).toEqual(fromImages);
    expect(batch.data.length).toBe(2 * captioner.preprocessor.imageSize); // not moved away
  });

  it('returns nothing for no images, and rejects bad options naming the option and value', async () => {
    expect(await captioner.caption([])).toEqual([]);
    await expect(captioner.caption([a], { topP: 1.5 })).rejects.toThrow(/`topP` to be a number greater than 0 and at most 1, got 1\.5/);
    await expect(captioner.caption([a], { strategy: 'greedy', k: 2 })).rejects.toThrow(/`k` to be 1 with strategy "greedy"/);
    await expect(captioner.caption([a], { strategy: 'beam', numBeams: 2, k: 3 })).rejects.toThrow(/`k` to be at most `numBeams` \(2\)/);
    await expect(captioner.caption([a], { minLength: 5, maxLength: 4 })).rejects.toThrow(/`minLength` to be at most `maxLength` \(4\), got 5/);
    await expect(captioner.caption([a], { strategy: 'sample' as never })).rejects.toThrow(/`strategy` to be one of greedy, beam, nucleus, got "sample"/);
    await expect(captioner.caption([a], { topp: 0.5 } as never)).rejects.toThrow(/Unknown decoding option `topp`/);
    await expect(captioner.caption([a, b], { keys: ['only-one'] })).rejects.toThrow(ConfigError);
    await expect(captioner.caption([a], { minLength: 33, maxLength: 40 })).rejects.toThrow(/`minLength` to be at most 32 .*32 positions/);
    await expect(captioner.caption([a, Buffer.from('not an image')])).rejects.toThrow(SampleError);
  });
});

describe('fp16 variant', () => {
  it('loads the _fp16 graphs and matches the PyTorch reference with float16 tensors', async () => {
    const captioner = await OnnxCaptioner.load(LAYOUT_DIRS.merged, { variant: 'fp16' });
    try {
      expect(captioner.files.map((f) => path.basename(f))).toEqual(['encoder_model_fp16.onnx', 'decoder_model_merged_fp16.onnx']);
      for (const ref of expected.fp16_cases) {
        const out = await captioner.caption([a, b], { ...optionsOf(ref), keys: expected.keys });
        expect(out.map((per) => per.map((x) => x.tokenIds)), ref.name).toEqual(ref.results.map((per) => per.map((x) => x.token_ids)));
      }
    } finally {
      await captioner.close();
    }
  });
});

describe('captioner folders', () => {
  let tmp: string;
  beforeAll(() => {
    tmp = mkdtempSync(path.join(tmpdir(), 'vlcurate-captioner-'));
  });
  afterAll(() => {
    rmSync(tmp, { recursive: true, force: true });
  });

  /** A copy of a fixture folder, with `edit` applied. */
  function copy(name: string, from: string, edit: (dir: string) => void = () => {}): string {
    const dir = path.join(tmp, name);
    cpSync(from, dir, { recursive: true });
    edit(dir);
    return dir;
  }
  const readJson = (file: string) => JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;

  it('reads the ids from config.json`s decoder when there is no generation_config.json, and trusts the graph over config sizes', async () => {
    const dir = copy('nested-ids', LAYOUT_DIRS.pair, (d) => {
      rmSync(path.join(d, 'generation_config.json'));
      const config = readJson(path.join(d, 'config.json'));
      const decoder = config.decoder as Record<string, unknown>;
      decoder.n_head = 4; // wrong on purpose: the graph declares 2 heads
      decoder.eos_token_id = [2, 7];
      delete decoder.pad_token_id;
      writeFileSync(path.join(d, 'config.json'), JSON.stringify(config));
    });
    const captioner = await OnnxCaptioner.load(dir);
    try {
      expect(captioner.ids).toMatchObject({ startId: 1, eosIds: [2, 7], padId: 2 });
      expect(captioner.ids.sources.startId).toBe('config.json: decoder.decoder_start_token_id');
      expect(captioner.cache).toMatchObject({ layers: 2, heads: 2, headDim: 8 });
      const out = await captioner.caption([a], { strategy: 'greedy', minLength: 0, maxLength: 12 });
      for (const x of out.flat()) expect(x.tokenIds).not.toContain(7);
    } finally {
      await captioner.close();
    }
  });

  it('names the files and fields when the ids are missing or wrong', async () => {
    const noIds = copy('no-ids', LAYOUT_DIRS['no-cache'], (d) => {
      rmSync(path.join(d, 'generation_config.json'));
      writeFileSync(path.join(d, 'config.json'), JSON.stringify({ model_type: 'vision-encoder-decoder', decoder: { eos_token_id: 2 } }));
    });
    await expect(OnnxCaptioner.load(noIds)).rejects.toThrow(/expected `decoder_start_token_id` or `bos_token_id` in .*no-ids\/config.json \(top level or `decoder`\), got nothing/);
    const badEos = copy('bad-eos', LAYOUT_DIRS['no-cache'], (d) => {
      writeFileSync(path.join(d, 'generation_config.json'), JSON.stringify({ decoder_start_token_id: 1, eos_token_id: 'x' }));
    });
    await expect(OnnxCaptioner.load(badEos)).rejects.toThrow(/generation_config.json: field `eos_token_id` expected a token id or a non-empty list of token ids, got "x"/);
  });

  it('names missing graphs and the files onnx/ holds, for the detected or a forced layout', async () => {
    const noEncoder = copy('no-encoder', LAYOUT_DIRS.pair, (d) => rmSync(path.join(d, 'onnx', 'encoder_model.onnx')));
    await expect(OnnxCaptioner.load(noEncoder)).rejects.toThrow(/no fp32 encoder: expected .*encoder_model.onnx \(onnx\/ holds: decoder_model.onnx, decoder_with_past_model.onnx\)/);
    await expect(OnnxCaptioner.load(LAYOUT_DIRS['no-cache'], { layout: 'pair' })).rejects.toThrow(/not the "pair" layout: .*decoder_with_past_model.onnx is missing/);
    await expect(OnnxCaptioner.load(LAYOUT_DIRS.pair, { variant: 'quantized' })).rejects.toThrow(/no quantized encoder: expected .*encoder_model_quantized.onnx/);
    const fake = copy('fake-merged', LAYOUT_DIRS['no-cache'], (d) =>
      cpSync(path.join(d, 'onnx', 'decoder_model.onnx'), path.join(d, 'onnx', 'decoder_model_merged.onnx')),
    );
    await expect(OnnxCaptioner.load(fake)).rejects.toThrow(/decoder_model_merged.onnx declares no past_key_values.\* inputs/);
  });

  it('a forced no-cache layout on a pair folder decodes the same tokens', async () => {
    const forced = await OnnxCaptioner.load(LAYOUT_DIRS.pair, { layout: 'no-cache' });
    const detected = await OnnxCaptioner.load(LAYOUT_DIRS.pair);
    try {
      expect(forced.layout).toBe('no-cache');
      expect(detected.layout).toBe('pair');
      const options = { ...sampling, keys: ['p', 'q'] };
      const [viaFull, viaCache] = [await forced.caption([a, b], options), await detected.caption([a, b], options)];
      expect(viaFull.map((per) => per.map((x) => x.tokenIds))).toEqual(viaCache.map((per) => per.map((x) => x.tokenIds)));
      viaFull.flat().forEach((x, i) => expect(x.logProb).toBeCloseTo(viaCache.flat()[i]!.logProb, 4));
    } finally {
      await Promise.all([forced.close(), detected.close()]);
    }
  });
});
