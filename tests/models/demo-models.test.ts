/**
 * The bundled demo models (models/shapes-*): the TypeScript path reproduces PyTorch's outputs on the
 * reference inputs, and each model's quality on the shapes test split holds with a margin below the figure
 * measured at training time (models/README.md).
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { captionIsCorrect, generateShapes, readGroundTruth, relationsAreCorrect, SPLIT_SEEDS } from '../../datasets/shapes/index.js';
import type { GroundTruthRecord } from '../../datasets/shapes/index.js';
import { loadItcModel, loadItmModel, type ItcModel, type ItmModel } from '../../src/models/index.js';
import { OnnxCaptioner } from '../../src/captioner/onnx-captioner.js';

const MODELS = resolve(import.meta.dirname, '../../models');
const reference = (name: string) => JSON.parse(readFileSync(join(MODELS, name, 'reference.json'), 'utf8'));
const refImages = (name: string, ref: { images: { file: string }[] }) => ref.images.map((i) => readFileSync(join(MODELS, name, i.file)));

let dir: string;
let truth: GroundTruthRecord[];
const images = new Map<string, Buffer>();
let itc: ItcModel;
let itm: ItmModel;
let captioner: OnnxCaptioner;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'vlc-demo-models-'));
  // The test split, every web caption noisy: labelled negatives (mismatch, swap, boilerplate, empty).
  const summary = await generateShapes({ out: join(dir, 'test'), count: 200, noise: 1, seed: SPLIT_SEEDS.test });
  truth = [...readGroundTruth(summary.groundTruth).values()];
  for (const r of truth) images.set(r.key, readFileSync(join(dir, 'test', 'coco', 'images', `${r.key}.jpg`)));
  [itc, itm, captioner] = await Promise.all([
    loadItcModel(join(MODELS, 'shapes-clip')),
    loadItmModel(join(MODELS, 'shapes-itm')),
    OnnxCaptioner.load(join(MODELS, 'shapes-captioner')),
  ]);
});

afterAll(async () => {
  await Promise.all([itc?.close(), itm?.close(), captioner?.close()]);
  rmSync(dir, { recursive: true, force: true });
});

function maxDiff(a: ArrayLike<number>, b: readonly number[]): number {
  let worst = 0;
  for (let i = 0; i < b.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
  return worst;
}

/** ROC-AUC by the rank-sum: the chance a random positive scores above a random negative. */
function auc(positives: number[], negatives: number[]): number {
  let wins = 0;
  for (const p of positives) for (const n of negatives) wins += p > n ? 1 : p === n ? 0.5 : 0;
  return wins / (positives.length * negatives.length);
}

describe('parity with PyTorch (reference.json)', () => {
  it('shapes-clip: image and text embeddings and cosines to 1e-4', async () => {
    const ref = reference('shapes-clip');
    const imageEmbeds = await itc.encodeImages(refImages('shapes-clip', ref));
    const textEmbeds = await itc.encodeTexts(ref.texts);
    const cos = itc.score(imageEmbeds, textEmbeds);
    const dim = imageEmbeds.dims[1]!;
    ref.cosine.forEach((row: number[], i: number) =>
      row.slice(0, ref.texts.length).forEach((c: number, j: number) => expect(Math.abs(cos[i * ref.texts.length + j]! - c)).toBeLessThan(1e-4)),
    );
    // Embeddings are compared after normalising the reference (ours are L2-normalised).
    ref.image_embeds.forEach((row: number[], i: number) => {
      const norm = Math.hypot(...row);
      expect(maxDiff(imageEmbeds.data.subarray(i * dim, (i + 1) * dim), row.map((x) => x / norm))).toBeLessThan(1e-4);
    });
  });

  it('shapes-itm: p(match) of the reference pairs to 1e-4, split and single graphs alike', async () => {
    const ref = reference('shapes-itm');
    const encoded = await itm.encodeImages(refImages('shapes-itm', ref));
    const { pMatch } = await itm.scoreIndexed(encoded, ref.pairs.map((p: { image: number }) => p.image), ref.pairs.map((p: { text: string }) => p.text));
    expect(maxDiff(pMatch, ref.p_match)).toBeLessThan(1e-4);
  });

  it('shapes-captioner: greedy token ids and captions equal PyTorch, cached and uncached', async () => {
    const ref = reference('shapes-captioner');
    const out = await captioner.caption(refImages('shapes-captioner', ref), { strategy: 'greedy', k: 1, minLength: 0, maxLength: 30, repetitionPenalty: 1 });
    expect(out.map((c) => c[0]!.text)).toEqual(ref.captions);
    expect(out.map((c) => [39, ...c[0]!.tokenIds, 40])).toEqual(ref.generated_ids);
  });
});

describe('quality on the shapes test split (held with a margin)', () => {
  it('ITC: image-to-text recall@1 among 100 candidates >= 0.95 (0.99 at training), strict form >= 0.85 (0.90)', async () => {
    const sample = truth.slice(0, 100);
    const imageEmbeds = await itc.encodeImages(sample.map((r) => images.get(r.key)!));
    const texts = sample.map((r) => r.captions[0]!);
    const textEmbeds = await itc.encodeTexts(texts);
    const scores = itc.score(imageEmbeds, textEmbeds);
    let hits = 0;
    let strictHits = 0;
    sample.forEach((record, i) => {
      const row = scores.subarray(i * sample.length, (i + 1) * sample.length);
      const top = row.indexOf(Math.max(...row));
      // A hit: the top caption names exactly this image's objects (two scenes can share one caption).
      if (captionIsCorrect(texts[top]!, record)) hits++;
      // Strict: the top caption is the image's own, so ties between identical scenes count as misses.
      if (top === i) strictHits++;
    });
    expect(hits / sample.length).toBeGreaterThanOrEqual(0.95);
    expect(strictHits / sample.length).toBeGreaterThanOrEqual(0.85);
  });

  it('ITM: ROC-AUC >= 0.98 for true captions vs mismatches and attribute swaps (0.9998 at training)', async () => {
    const sample = truth.filter((r) => r.noise === 'mismatch' || r.noise === 'swap');
    const encoded = await itm.encodeImages(sample.map((r) => images.get(r.key)!));
    const index = sample.flatMap((_, i) => [i, i]);
    const texts = sample.flatMap((r) => [r.captions[1]!, r.web_caption]);
    const { pMatch } = await itm.scoreIndexed(encoded, index, texts);
    const positives = sample.map((_, i) => pMatch[2 * i]!);
    const negatives = sample.map((_, i) => pMatch[2 * i + 1]!);
    expect(auc(positives, negatives)).toBeGreaterThanOrEqual(0.98);
  });

  it('ITM: ROC-AUC >= 0.9 for true captions that state a relation vs relation swaps (issue 17; 0.978 at training)', async () => {
    // The dataset's relation noise: the right objects, one relation false. The first shapes-itm scored these
    // at 0.54 in the demo (it read captions as bags of words: "A above B" = "B above A").
    const sample = truth.filter((r) => r.noise === 'relation');
    const encoded = await itm.encodeImages(sample.map((r) => images.get(r.key)!));
    expect(sample.length).toBeGreaterThan(20);
    const texts = sample.flatMap((r) => [r.captions.find((c) => relationsAreCorrect(c, r) !== null), r.web_caption]);
    expect(texts.filter((t) => typeof t !== 'string')).toEqual([]);
    const { pMatch } = await itm.scoreIndexed(encoded, sample.flatMap((_, i) => [i, i]), texts as string[]);
    expect(auc(sample.map((_, i) => pMatch[2 * i]!), sample.map((_, i) => pMatch[2 * i + 1]!))).toBeGreaterThanOrEqual(0.9);
  });

  it('captioner: >= 75% of the greedy captions that state a relation state it right (84.8% at training)', async () => {
    // Issue 17: on these 200 images, the first captioner (image position embedding too small to carry where
    // objects are) 32 of 58 (55%); with sine-cosine position codes, 44 of 71 (62%); with the position
    // targets, 86 of 102 (84%). Greedy decoding is deterministic.
    const sample = truth;
    const out = await captioner.caption(sample.map((r) => images.get(r.key)!), { strategy: 'greedy', k: 1, minLength: 0, maxLength: 30, repetitionPenalty: 1 });
    const judged = out.map((c, i) => relationsAreCorrect(c[0]!.text, sample[i]!)).filter((v) => v !== null);
    expect(judged.length).toBeGreaterThan(40);
    expect(judged.filter(Boolean).length / judged.length).toBeGreaterThanOrEqual(0.75);
  });

  it('captioner: >= 90% of greedy captions name exactly the right objects (97.8% at training)', async () => {
    const sample = truth.slice(0, 100);
    const out = await captioner.caption(sample.map((r) => images.get(r.key)!), { strategy: 'greedy', k: 1, minLength: 0, maxLength: 30, repetitionPenalty: 1 });
    const correct = out.filter((c, i) => captionIsCorrect(c[0]!.text, sample[i]!)).length;
    expect(correct / sample.length).toBeGreaterThanOrEqual(0.9);
  });
});
