/**
 * Beam search, as transformers' BeamSearchScorer does it, over the processed log-probabilities
 * (repetition penalty and minimum length applied; no temperature or top-k/top-p).
 *
 * Per image and step: every beam's log-softmax plus its running score gives `numBeams * vocab`
 * candidates; the best `2 * numBeams` are taken in order of score (ties by lower beam * vocab + token).
 * An end-of-sequence candidate among the first `numBeams` of them finishes a hypothesis, scored
 * `logProb / length ** lengthPenalty` (length = tokens generated, the end-of-sequence token included);
 * the other candidates become the next beams until there are `numBeams`. The cache follows by
 * reordering rows. An image is done when `numBeams` hypotheses are finished and either `earlyStopping`
 * is set or the best running beam, scored at the current length, cannot beat the worst of them; at
 * `maxLength` the running beams join the hypotheses. The `k` best hypotheses are returned, best first.
 *
 * The model starts with one row per image; at the first step the image's beams are copies of it (beam 0
 * scored 0, the others -1e9 so that only beam 0's candidates count), and only then are rows duplicated.
 */
import { logitsRow, logSoftmax, processLogits } from './logits.js';
import type { GeneratedSequence, GenerationSetup, StepModel } from './step-model.js';

export interface BeamOptions {
  numBeams: number;
  lengthPenalty: number;
  earlyStopping: boolean;
  repetitionPenalty: number;
  minLength: number;
  maxLength: number;
  /** Hypotheses to return per image (at most numBeams). */
  k: number;
}

interface Beam {
  seq: number[];
  score: number;
}

interface Hypothesis {
  penalized: number;
  seq: number[];
  score: number;
  finished: boolean;
}

interface Candidate {
  score: number;
  beam: number;
  token: number;
}

/** Dead beams at the first step: as in transformers, low enough never to compete. */
const DEAD_BEAM = -1e9;

class Hypotheses {
  readonly items: Hypothesis[] = [];
  constructor(
    private readonly numBeams: number,
    private readonly lengthPenalty: number,
  ) {}

  get worst(): number {
    let worst = Infinity;
    for (const h of this.items) if (h.penalized < worst) worst = h.penalized;
    return worst;
  }

  add(seq: number[], score: number, length: number, finished: boolean): void {
    const penalized = score / length ** this.lengthPenalty;
    if (this.items.length >= this.numBeams && !(penalized > this.worst)) return;
    this.items.push({ penalized, seq, score, finished });
    if (this.items.length > this.numBeams) {
      // Drop the worst; among equals the one added last.
      let at = 0;
      for (let i = 1; i < this.items.length; i++) if (this.items[i]!.penalized <= this.items[at]!.penalized) at = i;
      this.items.splice(at, 1);
    }
  }

  best(k: number): Hypothesis[] {
    return this.items
      .map((h, i) => ({ h, i }))
      .sort((a, b) => (b.h.penalized > a.h.penalized ? 1 : b.h.penalized < a.h.penalized ? -1 : a.i - b.i))
      .slice(0, k)
      .map((e) => e.h);
  }
}

/** The best `count` of `beams x vocab` candidates, best first (ties: lower beam * vocab + token first). */
function topCandidates(rows: Float64Array[], scores: readonly number[], count: number): Candidate[] {
  const top: Candidate[] = [];
  rows.forEach((lsm, beam) => {
    const base = scores[beam]!;
    for (let token = 0; token < lsm.length; token++) {
      const score = base + lsm[token]!;
      // Candidates come in index order, so an equal score never displaces an earlier one.
      if (top.length === count && !(score > top[count - 1]!.score)) continue;
      let at = top.length;
      while (at > 0 && score > top[at - 1]!.score) at--;
      top.splice(at, 0, { score, beam, token });
      if (top.length > count) top.pop();
    }
  });
  return top;
}

/** Beam search for each row of `model` (one row per image, holding the prefix). */
export async function beamSearch(
  model: StepModel,
  setup: GenerationSetup,
  options: BeamOptions,
  images: number,
): Promise<GeneratedSequence[][]> {
  const nb = options.numBeams;
  const eos = new Set(setup.eosIds);
  const beams: Beam[][] = Array.from({ length: images }, () =>
    Array.from({ length: nb }, (_, j) => ({ seq: [...setup.prefix], score: j === 0 ? 0 : DEAD_BEAM })),
  );
  const hyps = Array.from({ length: images }, () => new Hypotheses(nb, options.lengthPenalty));
  const done = new Array<boolean>(images).fill(false);
  // Physical rows of the model, per active image: at the first step one, afterwards one per beam.
  for (let step = 0; step < options.maxLength; step++) {
    const first = step === 0;
    const active = [...done.keys()].filter((b) => !done[b]);
    const offsets: number[] = [];
    const inputs: number[][] = [];
    for (const b of active) {
      offsets.push(inputs.length);
      if (first) inputs.push(beams[b]![0]!.seq);
      else for (const beam of beams[b]!) inputs.push(beam.seq);
    }
    const logits = await model.next(inputs);
    const vocab = logits.length / inputs.length;
    const keep: number[] = [];
    const length = step + 1;
    active.forEach((b, a) => {
      const current = beams[b]!;
      const rows = current.map((beam, j) => {
        const physical = offsets[a]! + (first ? 0 : j);
        return logSoftmax(processLogits(logitsRow(logits, physical, vocab), beam.seq, step, options, setup.eosIds));
      });
      const candidates = topCandidates(rows, current.map((beam) => beam.score), 2 * nb);
      const next: Array<Beam & { source: number }> = [];
      for (let rank = 0; rank < candidates.length && next.length < nb; rank++) {
        const c = candidates[rank]!;
        const source = current[c.beam]!;
        if (eos.has(c.token)) {
          if (rank >= nb) continue;
          hyps[b]!.add([...source.seq, c.token], c.score, length, true);
        } else {
          next.push({ seq: [...source.seq, c.token], score: c.score, source: c.beam });
        }
      }
      if (length === options.maxLength || next.length === 0) {
        for (const beam of next) hyps[b]!.add(beam.seq, beam.score, length, false);
        done[b] = true;
      } else if (hyps[b]!.items.length >= nb) {
        if (options.earlyStopping) {
          done[b] = true;
        } else {
          const best = Math.max(...next.map((beam) => beam.score));
          done[b] = hyps[b]!.worst >= best / length ** options.lengthPenalty;
        }
      }
      if (!done[b]) for (const beam of next) keep.push(offsets[a]! + (first ? 0 : beam.source));
      beams[b] = next.map(({ seq, score }) => ({ seq, score }));
    });
    if (done.every(Boolean)) break;
    model.select(keep);
  }
  const prefixLength = setup.prefix.length;
  return hyps.map((h) =>
    h.best(options.k).map((hyp) => {
      const tokens = hyp.seq.slice(prefixLength);
      if (hyp.finished) tokens.pop();
      return { tokens, logProb: hyp.score, finished: hyp.finished };
    }),
  );
}
