/**
 * What the decoding strategies need from a model: next-token logits for a batch of sequences, and a way
 * to drop, reorder or duplicate rows (finished captions leave the batch; beams are reordered; the samples
 * of an image start as copies of its single first row).
 */

export interface StepModel {
  /**
   * Next-token logits for each current row, row-major `[rows, vocab]`. `sequences` are the rows' whole
   * token sequences so far (start token, prompt and generated tokens), all equally long; a model with a
   * cache feeds only the tokens it has not seen yet.
   */
  next(sequences: readonly (readonly number[])[]): Promise<Float32Array>;
  /** Make row i of the batch the current row `rows[i]` (rows may repeat or be left out). */
  select(rows: readonly number[]): void;
  /** Drop what the model keeps for this batch (tensors held in a worker); called once decoding ends. */
  release?(): void;
}

/** Token ids and lengths that every strategy needs. */
export interface GenerationSetup {
  /** Tokens every sequence starts with: the start token, then the prompt's tokens. */
  prefix: readonly number[];
  /** End-of-sequence ids (generation of a row stops at any of them). */
  eosIds: readonly number[];
}

/** One decoded sequence. */
export interface GeneratedSequence {
  /** The tokens generated after the prefix, without the end-of-sequence token. */
  tokens: number[];
  /** Sum of the log-probabilities of the generated tokens (end-of-sequence included), after the repetition penalty and minimum length. */
  logProb: number;
  /** True when it ended with an end-of-sequence token, false when it stopped at `maxLength`. */
  finished: boolean;
}
