/**
 * Arithmetic on one row of next-token logits, in float64. Every strategy runs the same processors first
 * (transformers' order): the repetition penalty, then the minimum length (end-of-sequence blocked); the
 * sampling warpers (temperature, top-k, top-p) come after, in nucleus.ts.
 */

/** Row `row` of row-major `[rows, vocab]` logits, as a new float64 array. */
export function logitsRow(logits: Float32Array, row: number, vocab: number): Float64Array {
  const out = new Float64Array(vocab);
  const start = row * vocab;
  for (let i = 0; i < vocab; i++) out[i] = logits[start + i]!;
  return out;
}

/**
 * The CTRL repetition penalty, as transformers applies it: for every distinct token already in the
 * sequence, a positive logit is divided by `penalty` and a negative one multiplied by it. In place.
 */
export function applyRepetitionPenalty(x: Float64Array, tokens: readonly number[], penalty: number): void {
  if (penalty === 1) return;
  const seen = new Set<number>();
  for (const t of tokens) {
    if (seen.has(t) || t < 0 || t >= x.length) continue;
    seen.add(t);
    const v = x[t]!;
    x[t] = v > 0 ? v / penalty : v * penalty;
  }
}

/** Set the logits of `ids` to -Infinity (e.g. the end-of-sequence tokens before the minimum length). In place. */
export function blockTokens(x: Float64Array, ids: readonly number[]): void {
  for (const id of ids) if (id >= 0 && id < x.length) x[id] = -Infinity;
}

/** The processors every strategy applies: repetition penalty over `sequence`, then EOS blocked while `generated < minLength`. */
export function processLogits(
  x: Float64Array,
  sequence: readonly number[],
  generated: number,
  options: { repetitionPenalty: number; minLength: number },
  eosIds: readonly number[],
): Float64Array {
  applyRepetitionPenalty(x, sequence, options.repetitionPenalty);
  if (generated < options.minLength) blockTokens(x, eosIds);
  return x;
}

/** log(sum(exp(x))), computed as max + log(sum(exp(x - max))). */
export function logSumExp(x: Float64Array): number {
  let max = -Infinity;
  for (let i = 0; i < x.length; i++) if (x[i]! > max) max = x[i]!;
  let total = 0;
  for (let i = 0; i < x.length; i++) total += Math.exp(x[i]! - max);
  return max + Math.log(total);
}

/** log(softmax(x)) = x - logSumExp(x). */
export function logSoftmax(x: Float64Array): Float64Array {
  const lse = logSumExp(x);
  const out = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = x[i]! - lse;
  return out;
}

/** Index of the largest value; the lowest index among equals. */
export function argmax(x: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < x.length; i++) if (x[i]! > x[best]!) best = i;
  return best;
}
