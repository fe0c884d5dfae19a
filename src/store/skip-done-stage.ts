import type { Pair } from '../core/sample.js';
import type { Stage } from '../core/stage.js';
import { batch } from '../iter/batch.js';
import { groupBy } from '../iter/group-by.js';
import type { RunStore } from './run-store.js';

/**
 * Resume: drops pairs an earlier run already finished (failed, dropped, or exported everywhere) before
 * any image is decoded. Looks keys up in batches, so memory does not grow with the size of the run.
 */
export function createSkipDoneStage(
  store: RunStore,
  exportNames: readonly string[],
  lookupEvery = 256,
): Stage<Pair, Pair> {
  return {
    name: 'resume',
    async *run(input) {
      for await (const pairs of batch(input, lookupEvery)) {
        const done = new Set<Pair>();
        for (const [source, group] of groupBy(pairs, (p) => p.source)) {
          const keys = store.doneKeys(group.map((p) => p.key), exportNames, source);
          for (const pair of group) if (keys.has(pair.key)) done.add(pair);
        }
        for (const pair of pairs) if (!done.has(pair)) yield pair;
      }
    },
  };
}

