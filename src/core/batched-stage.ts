import { batch, unbatch } from '../iter/batch.js';
import { mapConcurrent } from '../iter/map-concurrent.js';
import { isOpen, type HasFate } from './sample.js';
import type { StageContext } from './stage.js';

/** What a batched model stage does with the samples it works on; `runBatched` does the rest. */
export interface BatchedWork<T> {
  /** Samples per batch (closed and unwanted ones included: they keep their places in it). */
  batchSize: number;
  /** Batches in flight at once. Default 2: one is prepared while the other runs in the model. */
  inFlight?: number;
  /** Whether an open sample has work here. Closed samples (`isOpen`) are never offered. */
  wants(sample: T): boolean;
  /**
   * The work on the wanted samples of one batch: one result per sample, in order. A throw means the batch
   * failed; its samples are then done one by one, so one bad sample fails alone.
   */
  process(samples: T[]): Promise<T[]>;
  /** A sample whose work failed on its own: the sample with the failure recorded (code and cause). */
  fail(sample: T, error: unknown): T;
  /**
   * Whether an error is the sample's own (a bad image) rather than the stage's (a broken model). When every
   * sample of a failed batch fails alone with an error not its own, the batch's error stops the run.
   * Default: every error is the sample's own.
   */
  isOwnError?(error: unknown): boolean;
}

/**
 * The shape of a batched model stage: batches of `batchSize` samples, `inFlight` batches at once, output
 * in input order. Samples no longer open and those the stage does not want pass through untouched, in
 * their places. A failed batch is retried sample by sample; a sample that fails alone is failed with
 * `fail`. Each batch with work reports its latency (retries included) as a `batch-latency` event.
 */
export function runBatched<T extends HasFate>(
  input: AsyncIterable<T>,
  ctx: StageContext,
  work: BatchedWork<T>,
): AsyncIterable<T> {
  const processBatch = async (samples: T[]): Promise<T[]> => {
    const chosen = samples.flatMap((sample, i) => (isOpen(sample) && work.wants(sample) ? [i] : []));
    if (chosen.length === 0) return samples;
    const started = performance.now();
    const results = await processOrRetry(chosen.map((i) => samples[i]!), work);
    ctx.emit({ type: 'batch-latency', ms: performance.now() - started });
    const out = samples.slice();
    chosen.forEach((i, k) => (out[i] = results[k]!));
    return out;
  };
  return unbatch(mapConcurrent(batch(input, work.batchSize), processBatch, { concurrency: work.inFlight ?? 2 }));
}

async function processOrRetry<T>(samples: T[], work: BatchedWork<T>): Promise<T[]> {
  let results: T[];
  try {
    results = await work.process(samples);
  } catch (batchError) {
    // One bad sample must not sink its batch: do them one by one to find it, keeping each one's error.
    const alone: ({ ok: true; sample: T } | { ok: false; error: unknown })[] = [];
    for (const sample of samples) {
      let result: T[];
      try {
        result = await work.process([sample]);
      } catch (error) {
        alone.push({ ok: false, error });
        continue;
      }
      alone.push({ ok: true, sample: counted(result, 1)[0]! });
    }
    // Every sample failing, none for a reason of its own, is the stage's fault: stop the run.
    const isOwn = work.isOwnError ?? (() => true);
    if (alone.every((r) => !r.ok && !isOwn(r.error))) throw batchError;
    return alone.map((r, i) => (r.ok ? r.sample : work.fail(samples[i]!, r.error)));
  }
  return counted(results, samples.length);
}

/** A result missing or extra is a bug in the stage, not a sample's failure: it stops the run. */
function counted<T>(results: T[], expected: number): T[] {
  if (results.length !== expected) throw new Error(`a batched stage gave ${results.length} results for ${expected} samples`);
  return results;
}
