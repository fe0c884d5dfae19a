/**
 * The distribution of sequence lengths of an export (visual tokens included): quantiles and a histogram
 * with power-of-two buckets, and how many sequences are over `maxLength`.
 */

export interface LengthHistogramBucket {
  /** Lengths from `from` up to and including `to`. */
  from: number;
  to: number;
  count: number;
}

export interface LengthStats {
  count: number;
  min: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
  mean: number;
  histogram: LengthHistogramBucket[];
  /** Longest sequence allowed, when configured. */
  maxLength: number | null;
  /** Sequences longer than `maxLength` (dropped or truncated, as configured). */
  overMaxLength: number;
}

/** Nearest-rank percentile of sorted values. */
function percentile(sorted: Int32Array, p: number): number {
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[rank - 1]!;
}

/** Histogram edges: up to 64, then doubling (65-128, 129-256, ...) until the longest sequence is covered. */
export function lengthStats(lengths: ArrayLike<number>, maxLength: number | null = null): LengthStats | null {
  if (lengths.length === 0) return null;
  const sorted = Int32Array.from(lengths).sort();
  let sum = 0;
  for (const v of sorted) sum += v;
  const max = sorted[sorted.length - 1]!;
  const histogram: LengthHistogramBucket[] = [];
  let from = 0;
  let to = 64;
  let at = 0;
  for (;;) {
    let count = 0;
    while (at < sorted.length && sorted[at]! <= to) {
      count++;
      at++;
    }
    histogram.push({ from, to, count });
    if (to >= max) break;
    from = to + 1;
    to *= 2;
  }
  let over = 0;
  if (maxLength !== null) for (const v of sorted) if (v > maxLength) over++;
  return {
    count: sorted.length,
    min: sorted[0]!,
    p50: percentile(sorted, 50),
    p90: percentile(sorted, 90),
    p99: percentile(sorted, 99),
    max,
    mean: Math.round((sum / sorted.length) * 100) / 100,
    histogram,
    maxLength,
    overMaxLength: over,
  };
}
