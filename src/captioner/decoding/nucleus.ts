/**
 * Nucleus (top-p) sampling with top-k and temperature, BLIP's CapFilt captioner strategy.
 *
 * For each row and step, after the repetition penalty and minimum length: logits / temperature; top-k
 * keeps the tokens whose logit is at least the k-th largest (ties kept); softmax; top-p keeps the
 * smallest set of tokens, taken in order of decreasing probability (ties by lower id), whose probability
 * reaches `topP`; one uniform draw from the row's own seeded stream picks a token in proportion to the
 * kept probabilities.
 */
import { decodeIndependent, type LoopOptions } from './independent-rows.js';
import type { RandomStream } from './rng.js';
import type { GeneratedSequence, GenerationSetup, StepModel } from './step-model.js';

export interface SamplingOptions {
  topP: number;
  topK: number;
  temperature: number;
}

/** Temperature then top-k on a copy of `logits`: tokens below the k-th largest value become -Infinity. */
export function warpLogits(logits: Float64Array, options: SamplingOptions): Float64Array {
  const t = options.temperature;
  const z = new Float64Array(logits.length);
  for (let i = 0; i < z.length; i++) z[i] = t !== 1 ? logits[i]! / t : logits[i]!;
  const k = options.topK;
  if (k > 0 && k < z.length) {
    const kth = kthLargest(z, k);
    for (let i = 0; i < z.length; i++) if (z[i]! < kth) z[i] = -Infinity;
  }
  return z;
}

/** The k-th largest value of `values` (1-based), with a size-k min-heap: O(n log k). */
function kthLargest(values: Float64Array, k: number): number {
  const heap = new Float64Array(k);
  let size = 0;
  const down = (from: number): void => {
    let i = from;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < size && heap[l]! < heap[m]!) m = l;
      if (r < size && heap[r]! < heap[m]!) m = r;
      if (m === i) return;
      [heap[i], heap[m]] = [heap[m]!, heap[i]!];
      i = m;
    }
  };
  for (let n = 0; n < values.length; n++) {
    const v = values[n]!;
    if (size < k) {
      let i = size++;
      heap[i] = v;
      while (i > 0) {
        const parent = (i - 1) >> 1;
        if (heap[parent]! <= heap[i]!) break;
        [heap[i], heap[parent]] = [heap[parent]!, heap[i]!];
        i = parent;
      }
    } else if (v > heap[0]!) {
      heap[0] = v;
      down(0);
    }
  }
  return heap[0]!;
}

/** softmax of `z` (entries at -Infinity get probability 0). */
export function softmax(z: Float64Array): Float64Array {
  let max = -Infinity;
  for (let i = 0; i < z.length; i++) if (z[i]! > max) max = z[i]!;
  const w = new Float64Array(z.length);
  let total = 0;
  for (let i = 0; i < z.length; i++) {
    w[i] = z[i] === -Infinity ? 0 : Math.exp(z[i]! - max);
    total += w[i]!;
  }
  for (let i = 0; i < z.length; i++) w[i] = w[i]! / total;
  return w;
}

/**
 * The tokens with probability > 0, most likely first (ties: lower id first), produced one at a time
 * from a binary heap, so that taking the few most likely of a large vocabulary costs O(V + m log V)
 * instead of a full sort.
 */
class ProbabilityOrder {
  private readonly heap: Int32Array;
  private size = 0;

  /** Over the tokens whose probability is above 0 and at least `floor`. */
  constructor(
    private readonly probs: Float64Array,
    floor = 0,
  ) {
    this.heap = new Int32Array(probs.length);
    for (let i = 0; i < probs.length; i++) if (probs[i]! > 0 && probs[i]! >= floor) this.heap[this.size++] = i;
    for (let i = (this.size >> 1) - 1; i >= 0; i--) this.down(i);
  }

  /** The next token, or -1 when none is left. */
  pop(): number {
    if (this.size === 0) return -1;
    const top = this.heap[0]!;
    this.heap[0] = this.heap[--this.size]!;
    this.down(0);
    return top;
  }

  private before(a: number, b: number): boolean {
    const pa = this.probs[a]!;
    const pb = this.probs[b]!;
    return pa > pb || (pa === pb && a < b);
  }

  private down(from: number): void {
    const h = this.heap;
    let i = from;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < this.size && this.before(h[l]!, h[m]!)) m = l;
      if (r < this.size && this.before(h[r]!, h[m]!)) m = r;
      if (m === i) return;
      const t = h[i]!;
      h[i] = h[m]!;
      h[m] = t;
      i = m;
    }
  }
}

/**
 * A probability the nucleus cannot go below: the highest of max/64, max/64^2, ... whose tokens (those at
 * or above it) already hold more than `topP` (with a margin for summation order), so only they need to be
 * ordered. 0 when no such floor is found.
 */
function nucleusFloor(probs: Float64Array, topP: number): number {
  let max = 0;
  for (let i = 0; i < probs.length; i++) if (probs[i]! > max) max = probs[i]!;
  for (let floor = max / 64; floor > 1e-300; floor /= 64) {
    let mass = 0;
    for (let i = 0; i < probs.length; i++) if (probs[i]! >= floor) mass += probs[i]!;
    if (mass >= topP + 1e-9) return floor;
  }
  return 0;
}

/**
 * The tokens sampling may pick, most likely first (ties by lower id): every token with probability > 0,
 * cut after the first prefix whose probability reaches `topP` (all of them when `topP` is 1).
 */
export function nucleus(probs: Float64Array, topP: number): number[] {
  const order = new ProbabilityOrder(probs, topP < 1 ? nucleusFloor(probs, topP) : 0);
  const kept: number[] = [];
  let mass = 0;
  for (let i = order.pop(); i >= 0; i = order.pop()) {
    kept.push(i);
    mass += probs[i]!;
    if (topP < 1 && mass >= topP) break;
  }
  return kept;
}

/**
 * Draw one token from processed `logits`. Does not modify `logits`. The draw u * (kept mass) walks the
 * kept tokens in order of probability; with `topP` 1 every token is kept, its mass summed in id order
 * and the walk stops as soon as it passes u.
 */
export function sampleToken(logits: Float64Array, options: SamplingOptions, stream: RandomStream): number {
  const probs = softmax(warpLogits(logits, options));
  if (options.topP < 1) {
    const kept = nucleus(probs, options.topP);
    let mass = 0;
    for (const i of kept) mass += probs[i]!;
    const u = stream.uniform() * mass;
    let acc = 0;
    for (const i of kept) {
      acc += probs[i]!;
      if (u < acc) return i;
    }
    return kept[kept.length - 1]!;
  }
  let mass = 0;
  for (let i = 0; i < probs.length; i++) mass += probs[i]!;
  const u = stream.uniform() * mass;
  const order = new ProbabilityOrder(probs);
  let acc = 0;
  let last = -1;
  for (let i = order.pop(); i >= 0; i = order.pop()) {
    acc += probs[i]!;
    last = i;
    if (u < acc) return i;
  }
  return last;
}

/**
 * Sample `streams[g].length` sequences for each row g of `model` (which starts with one row per image,
 * holding the prefix). Result `g * k + s` is sample s of image g and used `streams[g][s]`.
 */
export function nucleusDecode(
  model: StepModel,
  setup: GenerationSetup,
  options: LoopOptions & SamplingOptions,
  streams: readonly (readonly RandomStream[])[],
): Promise<GeneratedSequence[]> {
  const k = streams[0]?.length ?? 0;
  if (streams.some((s) => s.length !== k)) throw new RangeError('Expected the same number of streams for every image');
  return decodeIndependent(model, setup, options, streams.length, k, (row, logits) =>
    sampleToken(logits, options, streams[Math.floor(row / k)]![row % k]!),
  );
}
