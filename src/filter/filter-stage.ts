import { runBatched } from '../core/batched-stage.js';
import { describeError, SampleError } from '../core/errors.js';
import type { Caption, DecodedPair } from '../core/sample.js';
import { failSample, isOpen } from '../core/sample.js';
import type { Stage } from '../core/stage.js';
import type { CaptionScorer } from './caption-scorer.js';

/** Captions the filter has not scored yet and can score (usable, non-empty text). */
function needsScore(c: Caption): boolean {
  return c.usable && c.text.trim() !== '' && c.itc === undefined && c.itm === undefined;
}

/** Captions the filter can never score (unusable or empty text) get null scores. */
async function* withUnscorableNulled(input: AsyncIterable<DecodedPair>): AsyncGenerator<DecodedPair> {
  for await (const sample of input) {
    yield isOpen(sample) ? { ...sample, captions: sample.captions.map((c) => ((c.usable && c.text.trim() !== '') || c.itc !== undefined ? c : { ...c, itc: null, itm: null })) } : sample;
  }
}

/**
 * Scores every not-yet-scored caption of each sample with ITC and/or ITM, batching images across
 * samples (`runBatched`: two batches in flight, so one is preprocessed while the other runs in the model
 * worker). Used twice in CapFilt: for web captions, then for the captioner's. An image the models cannot
 * read fails alone (`score_failed`); every image of a batch failing, none for a reason of its own (a
 * `SampleError`), is the models' fault and stops the run.
 */
export function createFilterStage(
  scorer: CaptionScorer,
  options: { name: string; batchSize: number; /** Batches at once (default 2); more when the models have more workers. */ inFlight?: number },
): Stage<DecodedPair, DecodedPair> {
  const score = async (samples: DecodedPair[]): Promise<DecodedPair[]> => {
    const todo = samples.map((sample) => sample.captions.flatMap((c, j) => (needsScore(c) ? [j] : [])));
    const results = await scorer.score(samples.map((sample, i) => ({ image: sample.pixels ?? sample.imageBytes!, texts: todo[i]!.map((j) => sample.captions[j]!.text) })));
    return samples.map((sample, i) => {
      const captions = sample.captions.slice();
      todo[i]!.forEach((j, t) => {
        captions[j] = { ...captions[j]!, itc: results[i]!.itc[t] ?? null, itm: results[i]!.itm[t] ?? null };
      });
      return { ...sample, captions };
    });
  };

  return {
    name: options.name,
    run(input, ctx) {
      return runBatched(withUnscorableNulled(input), ctx, {
        batchSize: options.batchSize,
        ...(options.inFlight === undefined ? {} : { inFlight: options.inFlight }),
        wants: (sample) => sample.captions.some(needsScore),
        process: score,
        fail: (sample, error) => failSample(sample, options.name, 'score_failed', `the filter models could not score this image: ${describeError(error)}`),
        isOwnError: (error) => error instanceof SampleError,
      });
    },
  };
}
