/**
 * Live synthesis: every request goes through the LLM client as the samples arrive (`concurrency` samples
 * at a time, in whatever order they finish); rows are stored in commit groups of `commitEvery` samples,
 * or whatever finished within `COMMIT_WAIT_MS`.
 */
import type { DecodedPair } from '../core/sample.js';
import { mapConcurrent } from '../iter/map-concurrent.js';
import type { InstructionRow } from '../store/instruction-store.js';
import type { Ask } from './llm-task-runner.js';
import type { SampleSynthesis, SynthesizedPair } from './sample-synthesis.js';
import { timedBatches } from './timed-batches.js';

/** How long a finished sample may wait for its commit group. */
const COMMIT_WAIT_MS = 500;

export interface LiveSynthesisOptions {
  /** Asks the LLM client (called only for LLM tasks). */
  ask: Ask;
  concurrency: number;
  commitEvery: number;
  /** Samples to synthesize for; the others pass through untouched. */
  workable: (sample: DecodedPair) => boolean;
  /** Store one commit group's rows (and say what needs saying). */
  commit: (rows: InstructionRow[]) => void;
}

export async function* liveSynthesis(input: AsyncIterable<DecodedPair>, work: SampleSynthesis, options: LiveSynthesisOptions): AsyncGenerator<SynthesizedPair> {
  const processed = mapConcurrent(
    input,
    async (sample) => {
      if (!options.workable(sample)) return { sample: sample as SynthesizedPair, rows: [] as InstructionRow[] };
      return work.finish(sample, await work.synthesize(sample, options.ask));
    },
    { concurrency: options.concurrency, ordered: false },
  );
  for await (const group of timedBatches(processed, options.commitEvery, COMMIT_WAIT_MS)) {
    options.commit(group.flatMap((g) => g.rows));
    for (const g of group) yield g.sample;
  }
}
