import type { Caption as SampleCaption, DecodedPair } from '../core/sample.js';
import { failSample } from '../core/sample.js';
import type { Stage } from '../core/stage.js';
import { describeError } from '../core/errors.js';
import { batch, unbatch } from '../iter/batch.js';
import { mapConcurrent } from '../iter/map-concurrent.js';

/** Writes K captions for each of a batch of images; one list per image, in order. */
export type CaptionBatch = (images: { key: string; bytes: Buffer; format: string }[]) => Promise<string[][]>;

export interface CaptionerStageOptions {
  /** Recorded as each synthetic caption's `model`. */
  model: string;
  batchSize: number;
  /** Whether a sample gets new captions (all samples, or those whose own captions failed the filter). */
  wants: (sample: DecodedPair) => boolean;
}

/**
 * CapFilt's captioner: appends synthetic captions to each wanted sample, batching images across samples
 * with two batches in flight (one preparing while the other decodes). Captions are seeded by sample key,
 * so a resumed run writes the same ones. A batch that fails is retried image by image, so one bad image
 * fails alone (`caption_failed`).
 */
export function createCaptionerStage(captionBatch: CaptionBatch, options: CaptionerStageOptions, name = 'captioner'): Stage<DecodedPair, DecodedPair> {
  const withCaptions = (sample: DecodedPair, texts: readonly string[]): DecodedPair => {
    const added: SampleCaption[] = texts.map((text) => ({ text, origin: 'synthetic', issue: null, usable: true, model: options.model }));
    return { ...sample, captions: [...sample.captions, ...added] };
  };

  const run = async (samples: DecodedPair[], emit: (ms: number) => void): Promise<DecodedPair[]> => {
    // A sample that already has synthetic captions (resumed with its recorded ones) is never captioned twice.
    const captioned = (s: DecodedPair) => s.captions.some((c) => c.origin === 'synthetic');
    const chosen = samples.flatMap((s, i) => (!s.failure && !s.dropped && s.image && s.imageBytes && !captioned(s) && options.wants(s) ? [i] : []));
    if (chosen.length === 0) return samples;
    const images = chosen.map((i) => ({ key: samples[i]!.key, bytes: samples[i]!.imageBytes!, format: samples[i]!.image!.format }));
    const started = performance.now();
    const out = samples.slice();
    try {
      const captions = await captionBatch(images);
      chosen.forEach((i, k) => (out[i] = withCaptions(samples[i]!, captions[k] ?? [])));
    } catch {
      for (const [k, i] of chosen.entries()) {
        try {
          out[i] = withCaptions(samples[i]!, (await captionBatch([images[k]!]))[0] ?? []);
        } catch (err) {
          out[i] = failSample(samples[i]!, name, 'caption_failed', `the captioner failed on this image: ${describeError(err)}`);
        }
      }
    }
    emit(performance.now() - started);
    return out;
  };

  return {
    name,
    run(input, ctx) {
      const emit = (ms: number) => ctx.emit({ type: 'batch-latency', ms });
      return unbatch(mapConcurrent(batch(input, options.batchSize), (samples) => run(samples, emit), { concurrency: 2 }));
    },
  };
}
