/**
 * A hand-made step model for the decoding tests: next-token log-probabilities depend only on the last
 * token (a Markov chain given as a table), and the model checks the cache contract the ONNX stepper
 * relies on: after the first call, every row's sequence must extend the sequence that row had at the
 * previous call by exactly one token, with rows following `select`.
 */
import type { StepModel } from '../../src/captioner/decoding/step-model.js';

export class ScriptedModel implements StepModel {
  calls = 0;
  rowsPerCall: number[] = [];
  private rows: number[][] | undefined;

  /** `table[lastToken]` = probabilities of the next token (missing tokens get ~0). */
  constructor(
    private readonly table: Record<number, Record<number, number>>,
    readonly vocab: number,
  ) {}

  async next(sequences: readonly (readonly number[])[]): Promise<Float32Array> {
    if (this.rows !== undefined) {
      if (sequences.length !== this.rows.length) throw new Error(`expected ${this.rows.length} rows, got ${sequences.length}`);
      sequences.forEach((seq, r) => {
        const before = this.rows![r]!;
        if (seq.length !== before.length + 1 || before.some((t, i) => seq[i] !== t)) {
          throw new Error(`row ${r}: [${seq.join(', ')}] does not extend [${before.join(', ')}] by one token`);
        }
      });
    }
    this.rows = sequences.map((s) => [...s]);
    this.calls++;
    this.rowsPerCall.push(sequences.length);
    const out = new Float32Array(sequences.length * this.vocab);
    sequences.forEach((seq, r) => {
      const probs = this.table[seq[seq.length - 1]!] ?? {};
      for (let v = 0; v < this.vocab; v++) out[r * this.vocab + v] = Math.log(probs[v] ?? 1e-9);
    });
    return out;
  }

  select(rows: readonly number[]): void {
    if (this.rows === undefined) throw new Error('select before next');
    this.rows = rows.map((r) => {
      const row = this.rows![r];
      if (row === undefined) throw new Error(`select: no row ${r}`);
      return [...row];
    });
  }
}

/**
 * The chain both decoding test files use. Tokens: 0 EOS, 1..4 words, 5 start. Greedy takes word 1 (0.55)
 * and ends with 1 3 (p = 0.55 * 0.34); beam search finds 2 EOS (p = 0.45 * 0.95), far more likely.
 */
export const EOS = 0;
export const START = 5;
export const chain = {
  [START]: { 1: 0.55, 2: 0.45 },
  1: { 3: 0.34, 4: 0.33, [EOS]: 0.33 },
  2: { [EOS]: 0.95, 1: 0.05 },
  3: { [EOS]: 1 },
  4: { [EOS]: 1 },
};
export const setup = { prefix: [START], eosIds: [EOS] };
