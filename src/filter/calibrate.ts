/**
 * Threshold calibration from labelled pairs: precision and recall of "keep if score >= t" for each
 * candidate threshold, and the threshold that reaches a target precision with the most recall.
 */

export interface LabelledScore {
  score: number;
  match: boolean;
}

export interface CalibrationRow {
  threshold: number;
  kept: number;
  precision: number;
  recall: number;
  f1: number;
}

export interface Calibration {
  pairs: number;
  positives: number;
  rows: CalibrationRow[];
  /** Lowest threshold whose precision reaches the target (so recall is highest); null if none does. */
  pick: CalibrationRow | null;
  targetPrecision: number;
}

/** Evenly spaced thresholds over the observed score range, plus the exact cut points that matter. */
function candidateThresholds(scores: readonly number[], steps: number): number[] {
  // Loops, not Math.min(...scores): spreading a run's worth of scores overflows the call stack.
  let lo = Infinity;
  let hi = -Infinity;
  for (const score of scores) {
    if (score < lo) lo = score;
    if (score > hi) hi = score;
  }
  if (lo === hi) return [lo];
  return Array.from({ length: steps + 1 }, (_, i) => lo + ((hi - lo) * i) / steps);
}

export function calibrate(pairs: readonly LabelledScore[], targetPrecision: number, steps = 20): Calibration {
  const positives = pairs.filter((p) => p.match).length;
  const sorted = [...pairs].sort((a, b) => b.score - a.score);
  const rowAt = (threshold: number): CalibrationRow => {
    let kept = 0;
    let truePositive = 0;
    for (const p of sorted) {
      if (p.score < threshold) break;
      kept++;
      if (p.match) truePositive++;
    }
    const precision = kept ? truePositive / kept : 1;
    const recall = positives ? truePositive / positives : 0;
    return { threshold, kept, precision, recall, f1: precision + recall ? (2 * precision * recall) / (precision + recall) : 0 };
  };
  if (pairs.length === 0) return { pairs: 0, positives: 0, rows: [], pick: null, targetPrecision };
  const rows = candidateThresholds(pairs.map((p) => p.score), steps).map(rowAt);
  // The pick considers every distinct score, not only the table's grid, so it is the exact best cut: one
  // pass down the sorted scores with running counts; recall only grows as the threshold falls, so the
  // last cut that still reaches the target precision has the most recall.
  let pick: CalibrationRow | null = null;
  let kept = 0;
  let truePositive = 0;
  for (let i = 0; i < sorted.length; i++) {
    kept++;
    if (sorted[i]!.match) truePositive++;
    const boundary = i === sorted.length - 1 || sorted[i + 1]!.score < sorted[i]!.score;
    if (boundary && truePositive / kept >= targetPrecision) pick = rowAt(sorted[i]!.score);
  }
  return { pairs: pairs.length, positives, rows, pick, targetPrecision };
}
