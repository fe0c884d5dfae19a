/**
 * The rule that holds a sample back as `deferred` when its synthesis was left for a later run: some of its
 * instruction rows failed with a resumable code (budget exhausted, interrupted, server trouble). The
 * build's synthesis stage and the re-export reader both apply it, so a sample is held back the same way.
 */
import { RESUMABLE_LLM_CODES } from '../core/failure-codes.js';
import { SYNTH_STAGE } from '../core/stage-names.js';

/**
 * `{ reason: 'llm_unfinished: budget_exhausted, interrupted', stage: 'synth' }` (each resumable code once,
 * in the order the rows give them) when some row failed with a resumable code; null otherwise.
 */
export function unfinishedSynthesis(rows: readonly { status: string; code: string | null }[]): { reason: string; stage: string } | null {
  const codes = new Set<string>();
  for (const row of rows) {
    if (row.status === 'failed' && row.code !== null && RESUMABLE_LLM_CODES.has(row.code)) codes.add(row.code);
  }
  return codes.size > 0 ? { reason: `llm_unfinished: ${[...codes].join(', ')}`, stage: SYNTH_STAGE } : null;
}
