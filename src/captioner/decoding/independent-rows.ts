/**
 * The decoding loop of the strategies whose rows do not interact (greedy, nucleus sampling): every row
 * picks its own next token; a row that emits an end-of-sequence token leaves the batch.
 */
import { logitsRow, logSumExp, processLogits } from './logits.js';
import type { GeneratedSequence, GenerationSetup, StepModel } from './step-model.js';

/** Picks the next token of row `row` from its processed logits (must not modify them). */
export type TokenChooser = (row: number, logits: Float64Array) => number;

export interface LoopOptions {
  repetitionPenalty: number;
  minLength: number;
  maxLength: number;
}

/**
 * Decode `groups * perGroup` rows. The model starts with one row per group (an image), holding the
 * prefix; after the first step each group's row is copied `perGroup` times (the samples of an image
 * share the prefix pass). Row `g * perGroup + s` is sample `s` of group `g`.
 */
export async function decodeIndependent(
  model: StepModel,
  setup: GenerationSetup,
  options: LoopOptions,
  groups: number,
  perGroup: number,
  choose: TokenChooser,
): Promise<GeneratedSequence[]> {
  const n = groups * perGroup;
  const seqs = Array.from({ length: n }, () => [...setup.prefix]);
  const logProb = new Array<number>(n).fill(0);
  const finished = new Array<boolean>(n).fill(false);
  const eos = new Set(setup.eosIds);
  let active = Array.from({ length: n }, (_, r) => r);
  for (let step = 0; step < options.maxLength && active.length > 0; step++) {
    const first = step === 0;
    const inputs = first ? Array.from({ length: groups }, () => setup.prefix) : active.map((r) => seqs[r]!);
    const logits = await model.next(inputs);
    const vocab = logits.length / inputs.length;
    const keep: number[] = [];
    const still: number[] = [];
    active.forEach((r, j) => {
      const physical = first ? Math.floor(r / perGroup) : j;
      const x = processLogits(logitsRow(logits, physical, vocab), seqs[r]!, step, options, setup.eosIds);
      const lse = logSumExp(x);
      const token = choose(r, x);
      logProb[r] = logProb[r]! + (x[token]! - lse);
      seqs[r]!.push(token);
      if (eos.has(token)) {
        finished[r] = true;
      } else {
        keep.push(physical);
        still.push(r);
      }
    });
    if (still.length > 0 && step + 1 < options.maxLength && (first ? perGroup !== 1 || still.length < active.length : still.length < active.length)) {
      model.select(keep);
    }
    active = still;
  }
  const prefixLength = setup.prefix.length;
  return seqs.map((seq, r) => {
    const generated = seq.slice(prefixLength);
    if (finished[r]) generated.pop();
    return { tokens: generated, logProb: logProb[r]!, finished: finished[r]! };
  });
}
