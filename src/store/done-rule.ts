/**
 * When a recorded sample needs no more work, so that resume skips it before reading its image: it failed
 * (except when the captioner held it back for a later run: `heldBackCondition`) or was dropped, or it is ok and
 * - every export of the recipe holds it, and
 * - when the recipe synthesizes, it has a final instruction row for every task and variant the recipe asks
 *   for (ok, rejected, or failed for a reason a later run cannot fix; failures such as `budget_exhausted`
 *   are asked again).
 * The second part is what brings a sample that `refilter` revived (or one recorded by a run killed before
 * synthesis, or one of a recipe that only synthesizes and exports later) back through synthesis.
 */
import { RESUMABLE_LLM_CODES } from '../core/failure-codes.js';
import { CAPTIONER_STAGE } from '../core/stage-names.js';

export interface DoneRule {
  /** Exports that must hold every ok sample. */
  exports: readonly string[];
  /** Instruction rows every ok sample with an image must have (`synth/wanted-instructions.ts`). */
  synth: readonly { task: string; variants: number }[];
}

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
    const resumable = [...RESUMABLE_LLM_CODES];
    parts.push(
      `(s.format IS NULL OR (SELECT COUNT(*) FROM instructions i WHERE i.sample_key = s.key AND (${wanted})
          AND NOT (i.status = 'failed' AND i.code IN (${resumable.map(() => '?').join(',')}))) >= ?)`,
    );
    params.push(...rule.synth.flatMap((t) => [t.task, t.variants]), ...resumable, rule.synth.reduce((n, t) => n + t.variants, 0));
  }
  const held = heldBackCondition();
  return {
    sql: `((s.status != 'ok' AND NOT ${held.sql}) OR (s.status = 'ok'${parts.length > 0 ? ` AND (${parts.join(' AND ')})` : ''}))`,
    params: [...held.params, ...params],
  };
}

/**
 * A boolean SQL expression over `samples s`: true for a sample the captioner held back (failed with a code
 * a later run can fix, such as `server_unreachable`): the next run captions it.
 */
export function heldBackCondition(): { sql: string; params: unknown[] } {
  const codes = [...RESUMABLE_LLM_CODES];
  return {
    sql: `(s.status = 'failed' AND coalesce(s.error_stage, '') = ? AND coalesce(s.error_code, '') IN (${codes.map(() => '?').join(',')}))`,
    params: [CAPTIONER_STAGE, ...codes],
  };
}

/**
 * A boolean SQL expression over `samples s`: true when every one of `exports` holds the sample or left it out
 * on purpose (`export_left_out`; false for no exports).
 */
export function exportedCondition(exports: readonly string[]): { sql: string; params: unknown[] } {
  if (exports.length === 0) return { sql: '0', params: [] };
  const names = exports.map(() => '?').join(',');
  return {
    sql:
      `((SELECT COUNT(*) FROM exports e WHERE e.sample_key = s.key AND e.export_name IN (${names})) + ` +
      `(SELECT COUNT(*) FROM export_left_out l WHERE l.sample_key = s.key AND l.export_name IN (${names}))) >= ?`,
    params: [...exports, ...exports, exports.length],
  };
}
