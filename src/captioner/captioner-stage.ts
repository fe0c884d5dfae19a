import { STOP_CODES, type FailureCode } from '../core/failure-codes.js';
import { runBatched } from '../core/batched-stage.js';
import { CAPTIONER_STAGE } from '../core/stage-names.js';
import { describeError } from '../core/errors.js';
import type { Caption, DecodedPair } from '../core/sample.js';
import { failSample } from '../core/sample.js';
import type { Stage } from '../core/stage.js';
import type { PreparedPixels } from '../core/decoded-pixels.js';

/**
 * An image's new captions, or why it must wait for a later run (`heldBack`: a failure code a later run can
 * fix, such as `server_unreachable`, and its message); then its captions are incomplete and not used.
 */
export interface CaptionedImage {
  captions: string[];
  heldBack?: { code: FailureCode; message: string } | null;
}

/** Writes K captions for each of a batch of images; one result per image, in order. */
export type CaptionBatch = (images: CaptionImage[]) => Promise<CaptionedImage[]>;

/** One image to caption: its encoded bytes, and the pixels the decode stage prepared when the captioner asked (`LoadedCaptioner.preparer`). */
export interface CaptionImage {
  key: string;
  bytes: Buffer;
  format: string;
  pixels?: PreparedPixels | undefined;
}

export interface CaptionerStageOptions {
  /** Recorded as each synthetic caption's `model`. */
  model: string;
  batchSize: number;
  /** Batches at once (default 2); more when the captioner has more workers. */
  inFlight?: number;
  /** Whether a sample gets new captions (all samples, or those whose own captions failed the filter). */
  wants: (sample: DecodedPair) => boolean;
}

/**
 * CapFilt's captioner: appends synthetic captions to each wanted sample, batching images across samples
 * (`runBatched`: two batches in flight, one preparing while the other decodes). Captions are seeded by sample key,
 * so a resumed run writes the same ones. A batch that fails is retried image by image, so one bad image
 * fails alone (`caption_failed`).
 *
 * A sample whose image is held back (see `CaptionedImage`) is recorded as failed with that code: not
 * decided, dropped or exported, and not done, so the next run captions it (`store/done-rule.ts`). When the
 * cause is a stopped LLM client (a rejected key, a server it cannot reach) the stage says so once, and
 * the samples it holds back for it get no line each.
 */
export function createCaptionerStage(captionBatch: CaptionBatch, options: CaptionerStageOptions, name = CAPTIONER_STAGE): Stage<DecodedPair, DecodedPair> {
  // A sample that already has synthetic captions (resumed with its recorded ones) is never captioned twice.
  const captioned = (sample: DecodedPair) => sample.captions.some((c) => c.origin === 'synthetic');

  return {
    name,
    run(input, ctx) {
      let stopSaid = false;
      const withCaptions = (sample: DecodedPair, result: CaptionedImage | undefined): DecodedPair => {
        const held = result?.heldBack;
        if (!held) {
          const added: Caption[] = (result?.captions ?? []).map((text) => ({ text, origin: 'synthetic', issue: null, usable: true, model: options.model }));
          return { ...sample, captions: [...sample.captions, ...added] };
        }
        const failed = failSample(sample, name, held.code, held.message);
        if (!STOP_CODES.has(held.code) || failed.fate.kind !== 'failed') return failed;
        if (!stopSaid) {
          stopSaid = true;
          ctx.emit({ type: 'log', level: 'warn', message: `${name}: captioning stopped: ${held.message}; the samples wait for the next run` });
        }
        return { ...failed, fate: { ...failed.fate, said: true } };
      };
      return runBatched(input, ctx, {
        batchSize: options.batchSize,
        ...(options.inFlight === undefined ? {} : { inFlight: options.inFlight }),
        wants: (sample) => Boolean(sample.image && sample.imageBytes) && !captioned(sample) && options.wants(sample),
        process: async (samples) => {
          const captions = await captionBatch(samples.map((s) => ({ key: s.key, bytes: s.imageBytes!, format: s.image!.format, pixels: s.pixels })));
          return samples.map((sample, k) => withCaptions(sample, captions[k]));
        },
        fail: (sample, error) => failSample(sample, name, 'caption_failed', `the captioner failed on this image: ${describeError(error)}`),
      });
    },
  };
}
