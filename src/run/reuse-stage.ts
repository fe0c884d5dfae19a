/**
 * Resume without inference: a sample an earlier run recorded but did not export everywhere (killed before
 * its export batch, or an export added to the recipe) gets that run's captions and scores back, so the
 * filter and captioner have nothing left to compute for it. Only when nothing that decides them changed:
 * the earlier run had the same sources, decode, filter and captioner settings and model files
 * (`reuseRuns`), the image has the same sha256, and the source gives the same captions. Runs after decode,
 * which supplies the sha256.
 */
import { isOpen, type Caption, type DecodedPair } from '../core/sample.js';
import type { Stage } from '../core/stage.js';
import { batch } from '../iter/batch.js';
import { groupBy } from '../iter/group-by.js';
import type { RecordedWork, RecordedWorkLookup } from '../store/stage-ports.js';

export function createReuseStage(store: RecordedWorkLookup, reuseRuns: readonly number[], lookupEvery = 64): Stage<DecodedPair, DecodedPair> {
  return {
    name: 'reuse',
    async *run(input) {
      for await (const samples of batch(input, lookupEvery)) {
        const open = samples.filter((s) => isOpen(s) && s.image);
        const recorded = new Map<string, RecordedWork>();
        for (const [source, group] of groupBy(open, (s) => s.source)) {
          for (const [key, work] of store.recordedWork(group.map((s) => s.key), source, reuseRuns)) recorded.set(key, work);
        }
        for (const sample of samples) {
          const work = recorded.get(sample.key);
          yield work && sample.image && work.sha256 === sample.image.sha256 && sameInputCaptions(work.captions, sample.captions)
            ? { ...sample, captions: work.captions }
            : sample;
        }
      }
    },
  };
}

/** The recorded captions that came from the source (not the captioner) are the ones the source gives now. */
function sameInputCaptions(recorded: readonly Caption[], current: readonly Caption[]): boolean {
  const given = recorded.filter((c) => c.origin !== 'synthetic');
  return given.length === current.length && given.every((c, i) => c.text === current[i]!.text && c.origin === current[i]!.origin);
}
