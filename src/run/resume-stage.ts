import type { Pair } from '../core/sample.js';
import type { Stage } from '../core/stage.js';
import { batch } from '../iter/batch.js';
import { groupBy } from '../iter/group-by.js';
import { asCollision } from '../store/key-collision.js';
import type { DoneRule } from '../store/done-rule.js';
import type { DoneKeys } from '../store/stage-ports.js';

/**
 * Resume: drops pairs an earlier run already finished (failed, dropped, or exported everywhere and
 * synthesized: `store/done-rule.ts`) before any image is decoded. A pair whose key another source already
 * claimed (recorded, or passed here moments ago and not recorded yet) becomes its `key_duplicate` failure
 * here, so no model works on it and dedup never takes it for an original. Looks keys up in batches, so
 * memory does not grow with the run.
 */
export function createResumeStage(store: DoneKeys, rule: DoneRule, lookupEvery = 256): Stage<Pair, Pair> {
  return {
    name: 'resume',
    async *run(input, ctx) {
      let reopened = 0;
      const recent = new Map<string, string>(); // key -> source, for keys not recorded yet; oldest first
      const claim = (key: string, source: string) => {
        recent.set(key, source);
        if (recent.size > RECENT_WINDOW) recent.delete(recent.keys().next().value!);
      };
      for await (const pairs of batch(input, lookupEvery)) {
        const done = new Set<Pair>();
        const recorded = new Map<Pair, string>();
        for (const [source, group] of groupBy(pairs, (p) => p.source)) {
          const { done: finished, owners, reopened: again } = store.resumeState(group.map((p) => p.key), rule, source);
          reopened += again.size;
          for (const pair of group) {
            if (finished.has(pair.key)) done.add(pair);
            else if (owners.has(pair.key)) recorded.set(pair, owners.get(pair.key)!);
          }
        }
        for (const pair of pairs) {
          if (done.has(pair)) continue;
          const passed = recent.get(pair.key);
          const owner = recorded.get(pair) ?? (passed !== undefined && passed !== pair.source ? passed : undefined);
          if (owner !== undefined && pair.fate.kind !== 'failed') {
            yield asCollision(pair, owner);
            continue;
          }
          if (passed === undefined) claim(pair.key, pair.source);
          yield pair;
        }
      }
      if (reopened > 0) {
        ctx.emit({
          type: 'log',
          level: 'warn',
          message:
            `resume: ${reopened} samples the exports already hold lack LLM tasks (tasks added to the recipe, or a rejected key that an older version stored as final, http_401/403): ` +
            'synthesis asks for them now, and the exports written earlier keep those samples without them; write the exports again with `vlcurate export RUN.db --fresh ...` to include them',
        });
      }
    },
  };
}

/** Keys passed but maybe not recorded yet: far more than the stages between here and `record` hold. */
const RECENT_WINDOW = 16_384;
