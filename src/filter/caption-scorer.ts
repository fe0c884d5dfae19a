import type { ItcModel } from '../models/itc-model.js';
import type { ItmModel } from '../models/itm-model.js';
import type { ImageInput } from '../models/preprocess.js';
import type { PixelPreparer } from '../core/decoded-pixels.js';

/** One image and the texts to score against it. */
export interface ScoreRequest {
  /** Encoded bytes, or the pixels the decode stage prepared for these models (`preparers`). */
  image: ImageInput;
  texts: readonly string[];
}

export interface ScoreResult {
  itc: (number | null)[];
  itm: (number | null)[];
}

/**
 * Scores several images' captions in one batch per model: every image is preprocessed and encoded once
 * (dual-encoder ITC; split ITM encodes the image once for all its captions), texts are encoded together.
 */
export class CaptionScorer {
  constructor(
    readonly itc: ItcModel | null,
    readonly itm: ItmModel | null,
  ) {}

  /** The models' resize steps, for the decode stage to prepare each image's pixels once for both. */
  get preparers(): PixelPreparer[] {
    return [this.itc?.preprocessor, this.itm?.preprocessor].filter((p) => p !== undefined);
  }

  async score(requests: readonly ScoreRequest[]): Promise<ScoreResult[]> {
    const results: ScoreResult[] = requests.map((r) => ({ itc: r.texts.map(() => null), itm: r.texts.map(() => null) }));
    const texts: string[] = [];
    const owner: { request: number; index: number }[] = [];
    requests.forEach((r, request) =>
      r.texts.forEach((text, index) => {
        texts.push(text);
        owner.push({ request, index });
      }),
    );
    if (texts.length === 0) return results;
    const images = requests.map((r) => r.image);
    await Promise.all([this.scoreItc(images, texts, owner, results), this.scoreItm(images, texts, owner, results)]);
    return results;
  }

  private async scoreItc(images: ImageInput[], texts: string[], owner: { request: number; index: number }[], results: ScoreResult[]): Promise<void> {
    if (!this.itc) return;
    const [imageEmbeds, textEmbeds] = await Promise.all([this.itc.encodeImages(images), this.itc.encodeTexts(texts)]);
    owner.forEach(({ request, index }, t) => {
      results[request]!.itc[index] = this.itc!.cosine(imageEmbeds, request, textEmbeds, t);
    });
  }

  private async scoreItm(images: ImageInput[], texts: string[], owner: { request: number; index: number }[], results: ScoreResult[]): Promise<void> {
    if (!this.itm) return;
    const encoded = await this.itm.encodeImages(images);
    const { pMatch } = await this.itm.scoreIndexed(encoded, owner.map((o) => o.request), texts);
    owner.forEach(({ request, index }, t) => {
      results[request]!.itm[index] = pMatch[t]!;
    });
  }

  async close(): Promise<void> {
    await Promise.all([this.itc?.close(), this.itm?.close()]);
  }
}
