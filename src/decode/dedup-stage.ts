/**
 * `decode.dedup: exact`: drops a sample whose image bytes (sha256, from decoding) equal those of an
 * earlier sample, before any model sees it. Earlier means recorded in the run database (this run or an
 * earlier one) or seen by this stage moments ago and not recorded yet; the first stays the owner even when
 * CapFilt later drops it. Memory is bounded: the database answers for everything but the recent window.
 */
import { dropSample, isOpen, type DecodedPair, type DedupedPair } from '../core/sample.js';
import type { Stage } from '../core/stage.js';
import { DEDUP_STAGE, DUPLICATE_IMAGE } from '../core/stage-names.js';
import { batch } from '../iter/batch.js';
import type { ContentIndex } from '../store/stage-ports.js';

/** Samples seen here but maybe not recorded yet: far more than stages between here and `record` hold. */
const RECENT_WINDOW = 16_384;

export function createDedupStage(store: ContentIndex, lookupEvery = 64): Stage<DecodedPair, DedupedPair> {
  return {
    name: DEDUP_STAGE,
    async *run(input) {
      const recent = new Map<string, string>(); // sha256 -> key, oldest first
      const remember = (sha256: string, key: string) => {
        recent.set(sha256, key);
        if (recent.size > RECENT_WINDOW) recent.delete(recent.keys().next().value!);
      };
      for await (const samples of batch(input, lookupEvery)) {
        const candidates = samples.filter((s) => isOpen(s) && s.image?.sha256);
        const recorded = store.imageOwners(candidates.map((s) => s.image!.sha256));
        for (const sample of samples) {
          const sha256 = sample.image?.sha256;
          if (!isOpen(sample) || !sha256) {
            yield sample;
            continue;
          }
          // A resumed sample finds its own row: that is not a duplicate.
          const owner = [recent.get(sha256), ...(recorded.get(sha256) ?? [])].find((key) => key !== undefined && key !== sample.key);
          if (owner === undefined) {
            remember(sha256, sample.key);
            yield sample;
          } else {
            yield dropSample({ ...sample, duplicateOf: owner }, DEDUP_STAGE, DUPLICATE_IMAGE);
          }
        }
      }
    },
  };
}
