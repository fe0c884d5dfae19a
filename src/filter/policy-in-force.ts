/**
 * Which caption decisions hold now, and where they came from: the recipe's `filter` (of the latest run), or
 * a later `vlcurate refilter`. A refilter stays in force until a build runs with a recipe whose decision
 * settings (cuts, policy, topK, topKBy, preferWeb) differ from those it was laid over; then that recipe
 * decides again. Builds decide new and resumed samples with the policy in force (so a build after a
 * refilter neither undoes it nor drops what it revived), `refilter` lays its flags over it, and the report
 * shows it.
 */
import type { Db } from '../store/database.js';
import { DEFAULT_ITC_THRESHOLD, DEFAULT_ITM_THRESHOLD, filterOptionsSchema } from './filter-options.js';
import type { ResolvedPolicy } from './policy.js';
import { latestRefilter, type RefilterEntry } from '../store/refilter-log.js';
import { recordedRuns } from '../store/run-history.js';
import { resolvePolicy } from './resolve-policy.js';

export type DecisionSource =
  /** The `filter` of the latest run's recipe. */
  | { kind: 'recipe'; runId: number }
  /** A refilter laid over the recipe of run `refilter.runId`; no build since changed the recipe's decisions. */
  | { kind: 'refilter'; refilter: RefilterEntry<ResolvedPolicy> };

export interface PolicyInForce {
  policy: ResolvedPolicy;
  source: DecisionSource;
  /** The latest run's recipe's own policy (null when it has no filter), to show beside a refilter's. */
  recipe: ResolvedPolicy | null;
}

/** BLIP/LAION defaults, for a run whose recipe has no filter. */
export const DEFAULT_POLICY: ResolvedPolicy = {
  policy: 'both',
  itcThreshold: DEFAULT_ITC_THRESHOLD,
  itmThreshold: DEFAULT_ITM_THRESHOLD,
  topK: null,
  topKBy: 'itm',
  preferWeb: false,
};

interface RunFilter {
  id: number;
  /** The stored `filter` section, or undefined. */
  filter: unknown;
}

function runFilters(db: Db): RunFilter[] {
  return recordedRuns(db).map((row) => {
    try {
      return { id: row.id, filter: (JSON.parse(row.recipeJson) as { filter?: unknown }).filter };
    } catch {
      return { id: row.id, filter: undefined };
    }
  });
}

/** The settings of a stored filter section that decide captions (not models, batch sizes or recaptioning). */
function decisionSettings(filter: unknown): string {
  if (!filter || typeof filter !== 'object') return 'none';
  const f = filter as Record<string, Record<string, unknown> | unknown>;
  const cut = (name: 'itc' | 'itm') => {
    const c = f[name] as Record<string, unknown> | undefined;
    return c ? [c.threshold ?? null, c.percentile ?? null, c.topFraction ?? null] : null;
  };
  return JSON.stringify([cut('itc'), cut('itm'), f.policy ?? null, f.topK ?? null, f.topKBy ?? null, f.preferWeb ?? false]);
}

function recipePolicy(db: Db, filter: unknown): ResolvedPolicy | null {
  const parsed = filter ? filterOptionsSchema.safeParse(filter) : null;
  return parsed?.success ? resolvePolicy(parsed.data, db) : null;
}

/** The policy in force, or null when no run has a filter and nothing was refiltered. */
export function policyInForce(db: Db): PolicyInForce | null {
  const runs = runFilters(db);
  const latest = runs.at(-1);
  const recipe = latest ? recipePolicy(db, latest.filter) : null;
  const refilter = latestRefilter<ResolvedPolicy>(db);
  if (refilter) {
    const base = decisionSettings(runs.find((r) => r.id === refilter.runId)?.filter);
    const later = runs.filter((r) => refilter.runId === null || r.id > refilter.runId);
    if (later.every((r) => decisionSettings(r.filter) === base)) return { policy: refilter.policy, source: { kind: 'refilter', refilter }, recipe };
  }
  if (latest && recipe) return { policy: recipe, source: { kind: 'recipe', runId: latest.id }, recipe };
  return null;
}
