import type { Caption, DecodedPair } from '../core/sample.js';
import { failSample, isOpen } from '../core/sample.js';
import type { Stage } from '../core/stage.js';
import { batch } from '../iter/batch.js';
import { mapConcurrent } from '../iter/map-concurrent.js';
import { unbatch } from '../iter/batch.js';
import { describeError, SampleError } from '../core/errors.js';
import type { CaptionScorer, ScoreRequest, ScoreResult } from './caption-scorer.js';

/** Captions the filter has not scored yet and can score (usable, non-empty text). */
function needsScore(c: Caption): boolean {
  return c.usable && c.text.trim() !== '' && c.itc === undefined && c.itm === undefined;
}

/**
 * Scores every not-yet-scored caption of each sample with ITC and/or ITM, batching images across
 * samples. Two batches are in flight, so one is preprocessed while the other runs in the model worker.
 * Used twice in CapFilt: for web captions, then for the captioner's. Unscorable captions get null scores.
 */
export function createFilterStage(scorer: CaptionScorer, options: { name: string; batchSize: number }): Stage<DecodedPair, DecodedPair> {
  const scoreBatch = async (samples: DecodedPair[], emit: (ms: number) => void): Promise<DecodedPair[]> => {
    const work = samples
      .map((sample, i) => ({ sample, i, todo: !isOpen(sample) ? [] : sample.captions.flatMap((c, j) => (needsScore(c) ? [j] : [])) }))
      .filter((w) => w.todo.length > 0);
    const out = samples.map((s) => (isOpen(s) ? { ...s, captions: s.captions.map((c) => (c.usable && c.text.trim() !== '') || c.itc !== undefined ? c : { ...c, itc: null, itm: null }) } : s));
    if (work.length === 0) return out;
    const started = performance.now();
    const requests: ScoreRequest[] = work.map((w) => ({ image: w.sample.imageBytes!, texts: w.todo.map((j) => w.sample.captions[j]!.text) }));
    let results: (ScoreResult | { error: unknown })[];
    try {
      results = await scorer.score(requests);
    } catch (batchError) {
      // One bad image must not sink its batch: score the samples one by one to find it, keeping each one's error.
      results = await Promise.all(requests.map((r) => scorer.score([r]).then((one) => one[0]!, (error: unknown) => ({ error }))));
      // Every image failing, none for a reason of its own (a SampleError), is the models' fault: stop the run.
      if (results.every((r) => 'error' in r && !(r.error instanceof SampleError))) throw batchError;
    }
    emit(performance.now() - started);
    work.forEach((w, k) => {
      const result = results[k]!;
      if ('error' in result) {
        out[w.i] = failSample(out[w.i]!, options.name, 'score_failed', `the filter models could not score this image: ${describeError(result.error)}`);
        return;
      }
      const captions = out[w.i]!.captions.slice();
      w.todo.forEach((j, t) => {
        captions[j] = { ...captions[j]!, itc: result.itc[t] ?? null, itm: result.itm[t] ?? null };
      });
      out[w.i] = { ...out[w.i]!, captions };
    });
    return out;
  };

  return {
    name: options.name,
    run(input, ctx) {
      const emit = (ms: number) => ctx.emit({ type: 'batch-latency', ms });
      return unbatch(mapConcurrent(batch(input, options.batchSize), (samples) => scoreBatch(samples, emit), { concurrency: 2 }));
    },
  };
}
