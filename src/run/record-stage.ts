import type { DedupedPair } from '../core/sample.js';
import type { Stage } from '../core/stage.js';
import { batch } from '../iter/batch.js';
import type { SampleRecorder } from '../store/stage-ports.js';

/**
 * Commits samples to the run database in batched transactions and passes each sample on only after its
 * batch is committed, so later stages (exports) never reference a sample the database lacks.
 */
export function createRecordStage<T extends DedupedPair>(store: SampleRecorder, runId: number, commitEvery: number): Stage<T, T> {
  return {
    name: 'record',
    async *run(input, ctx) {
      for await (const samples of batch(input, commitEvery)) {
        const started = performance.now();
        const recorded = store.writeSamples(runId, samples);
        ctx.emit({ type: 'batch-latency', ms: performance.now() - started });
        yield* recorded;
      }
    },
  };
}
