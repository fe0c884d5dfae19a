import type { Pair } from './sample.js';
import type { Stage } from './stage.js';

/** What the runner needs of every record that flows between stages: its key (for events) and its fate (to count it). */
export type Countable = Pick<Pair, 'key' | 'fate'>;

/** Named in the compiler's message when a stage is appended where its input is not made yet. */
type InputMismatch<Made, Wanted> = { stageInputNotMadeYet: { made: Made; wanted: Wanted } };

/**
 * Stages in order, typed end to end: `then` takes only a stage whose input is what the chain yields so
 * far, so the record type grows through the pipeline (`Pair` -> `DecodedPair` -> `DedupedPair` ->
 * `SynthesizedPair` ...) and a stage put where its input is not made yet does not compile.
 */
export class StageChain<In extends Countable, Out extends Countable> {
  private constructor(
    /** The stages, for the runner: it only meters them and passes each one's output to the next. */
    readonly stages: readonly Stage<Countable, Countable>[],
  ) {}

  /** An empty chain over records of type `T` (what the source yields). */
  static from<T extends Countable>(): StageChain<T, T> {
    return new StageChain<T, T>([]);
  }

  /**
   * Append a stage. Its input type `I` must accept what the chain yields so far (`Out`); `Stage.run` is a
   * method, whose parameter TypeScript checks both ways, so that direction is checked here explicitly.
   */
  then<I, Next extends Countable>(stage: Stage<I, Next>, ...inputMatches: [Out] extends [I] ? [] : [InputMismatch<Out, I>]): StageChain<In, Next> {
    void inputMatches;
    // The one unchecked step: both ends were checked above, and the runner never looks inside a record.
    return new StageChain<In, Next>([...this.stages, stage as unknown as Stage<Countable, Countable>]);
  }

  /** Stages that keep the record type, in order (those a recipe may leave out or repeat: exports, CapFilt). */
  thenAll<I>(stages: readonly Stage<I, Out>[], ...inputMatches: [Out] extends [I] ? [] : [InputMismatch<Out, I>]): StageChain<In, Out> {
    void inputMatches;
    return new StageChain<In, Out>([...this.stages, ...stages.map((stage) => stage as unknown as Stage<Countable, Countable>)]);
  }
}
