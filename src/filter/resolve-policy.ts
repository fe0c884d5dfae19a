import type { Db } from '../store/database.js';
import { scorePercentile } from '../store/caption-verdicts.js';
import { DEFAULT_ITC_THRESHOLD, DEFAULT_ITM_THRESHOLD, type FilterOptions } from './filter-options.js';
import type { ResolvedPolicy } from './policy.js';

type Cut = { threshold?: number | undefined; percentile?: number | undefined; topFraction?: number | undefined };

/** True when a cut depends on the whole run's scores (percentile, topFraction). */
export function isRunLevel(cut: Cut | undefined): boolean {
  return cut !== undefined && (cut.percentile !== undefined || cut.topFraction !== undefined);
}

export function needsRunLevelCuts(options: FilterOptions): boolean {
  return isRunLevel(options.itc) || isRunLevel(options.itm);
}

function resolveCut(db: Db | null, score: 'itc' | 'itm', cut: Cut | undefined, fallback: number): number | null {
  if (!cut) return null;
  if (cut.threshold !== undefined) return cut.threshold;
  const percentile = cut.percentile ?? (cut.topFraction !== undefined ? 100 * (1 - cut.topFraction) : undefined);
  if (percentile === undefined) return fallback;
  if (!db) throw new Error(`${score}: a run-level cut needs the run's scores`);
  // Keep captions strictly above the share cut away: the percentile's own value is the threshold.
  return scorePercentile(db, score, percentile) ?? Number.POSITIVE_INFINITY;
}

/**
 * Turn filter options into absolute thresholds. Run-level cuts (percentile, topFraction) read the run
 * database, so they can only be resolved once every caption is scored.
 */
export function resolvePolicy(options: FilterOptions, db: Db | null): ResolvedPolicy {
  const policy = options.policy ?? (options.itc && options.itm ? 'both' : options.itm ? 'itm' : 'itc');
  return {
    policy,
    itcThreshold: resolveCut(db, 'itc', options.itc, DEFAULT_ITC_THRESHOLD),
    itmThreshold: resolveCut(db, 'itm', options.itm, DEFAULT_ITM_THRESHOLD),
    topK: options.topK ?? null,
    topKBy: options.topKBy ?? (options.itm ? 'itm' : 'itc'),
    preferWeb: options.preferWeb,
  };
}
