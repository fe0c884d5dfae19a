/**
 * When a recorded sample needs no more work, so that resume skips it before reading its image: it failed or
 * was dropped, or it is ok and
 * - every export of the recipe holds it, and
 * - when the recipe synthesizes, it has a final instruction row for every task and variant the recipe asks
 *   for (ok, rejected, or failed for a reason a later run cannot fix; failures such as `budget_exhausted`
 *   are asked again).
 * The second part is what brings a sample that `refilter` revived (or one recorded by a run killed before
 * synthesis, or one of a recipe that only synthesizes and exports later) back through synthesis.
 */
import { RESUMABLE_CODES } from '../backends/llm-errors.js';

export interface DoneRule {
  /** Exports that must hold every ok sample. */
  exports: readonly string[];
  /** Instruction rows every ok sample with an image must have: per task, variants 0 .. variants-1. */
  synth: readonly { task: string; variants: number }[];
}

/** The reason's code, as `reasonCode` in instruction-store.ts reads it. */
const REASON_CODE = `trim(CASE WHEN instr(i.reason, ':') > 0 THEN substr(i.reason, 1, instr(i.reason, ':') - 1) ELSE i.reason END)`;

/** A boolean SQL expression over `samples s`: true when the sample needs no more work under `rule`. */
export function doneCondition(rule: DoneRule): { sql: string; params: unknown[] } {
  const parts: string[] = [];
  const params: unknown[] = [];
  if (rule.exports.length > 0) {
    const exported = exportedCondition(rule.exports);
    parts.push(exported.sql);
    params.push(...exported.params);
  }
  if (rule.synth.length > 0) {
    const wanted = rule.synth.map(() => '(i.task = ? AND i.variant < ?)').join(' OR ');
    const resumable = [...RESUMABLE_CODES];
    parts.push(
      `(s.format IS NULL OR (SELECT COUNT(*) FROM instructions i WHERE i.sample_key = s.key AND (${wanted})
          AND NOT (i.status = 'failed' AND ${REASON_CODE} IN (${resumable.map(() => '?').join(',')}))) >= ?)`,
    );
    params.push(...rule.synth.flatMap((t) => [t.task, t.variants]), ...resumable, rule.synth.reduce((n, t) => n + t.variants, 0));
  }
  return { sql: `(s.status != 'ok'${parts.length > 0 ? ` OR (${parts.join(' AND ')})` : ' OR 1'})`, params };
}

/** A boolean SQL expression over `samples s`: true when every one of `exports` holds the sample (false for none). */
export function exportedCondition(exports: readonly string[]): { sql: string; params: unknown[] } {
  if (exports.length === 0) return { sql: '0', params: [] };
  return {
    sql: `(SELECT COUNT(*) FROM exports e WHERE e.sample_key = s.key AND e.export_name IN (${exports.map(() => '?').join(',')})) >= ?`,
    params: [...exports, exports.length],
  };
}
