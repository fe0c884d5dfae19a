import type { Caption, Pair } from '../core/sample.js';
import type { Stage } from '../core/stage.js';
import { batch } from '../iter/batch.js';
import { groupBy } from '../iter/group-by.js';
import type { RunStore } from './run-store.js';

/**
 * Resume: drops pairs an earlier run already finished (failed, dropped, or exported everywhere) before
 * any image is decoded. A pair an earlier run recorded but did not export everywhere (killed before its
 * export batch, or an export added to the recipe) gets that run's captions and scores back when the run
 * used the same CapFilt settings (`reuseRuns`): the filter and captioner stages then have nothing left
 * to compute for it. Looks keys up in batches, so memory does not grow with the size of the run.
 */
export function createSkipDoneStage(
  store: RunStore,
  exportNames: readonly string[],
  options: { reuseRuns?: readonly number[]; lookupEvery?: number } = {},
): Stage<Pair, Pair> {
  const reuseRuns = options.reuseRuns ?? [];
  return {
    name: 'resume',
    async *run(input) {
      for await (const pairs of batch(input, options.lookupEvery ?? 256)) {
        const done = new Set<Pair>();
        const recorded = new Map<Pair, Caption[]>();
        for (const [source, group] of groupBy(pairs, (p) => p.source)) {
          const keys = store.doneKeys(group.map((p) => p.key), exportNames, source);
          for (const pair of group) if (keys.has(pair.key)) done.add(pair);
          const left = group.filter((p) => !done.has(p));
          const captions = store.recordedCaptions(left.map((p) => p.key), source, reuseRuns);
          for (const pair of left) {
            const found = captions.get(pair.key);
            if (found) recorded.set(pair, found);
          }
        }
        for (const pair of pairs) {
          if (done.has(pair)) continue;
          const captions = recorded.get(pair);
          yield captions ? { ...pair, captions } : pair;
        }
      }
    },
  };
}

