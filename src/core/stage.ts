import type { StageEvent } from './events.js';

export interface StageContext {
  /** Aborted on Ctrl-C: stop starting new work, finish what is in flight, return. */
  readonly signal: AbortSignal;
  emit(event: StageEvent): void;
}

/**
 * A pipeline step: an async iterable in, an async iterable out. Backpressure comes from pulling;
 * batching and concurrency come from `src/iter` (for batched model work, `runBatched` in
 * `batched-stage.ts`), never hand-rolled in a stage.
 */
export interface Stage<I, O> {
  readonly name: string;
  run(input: AsyncIterable<I>, ctx: StageContext): AsyncIterable<O>;
}
