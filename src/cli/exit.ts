import type { RunSummary } from '../core/events.js';

/** Exit codes (DESIGN.md): 0 success, 1 finished but some samples failed, 2 usage or configuration error. */
export const EXIT_OK = 0;
export const EXIT_SAMPLES_FAILED = 1;
export const EXIT_CONFIG = 2;
/** Conventional code for a run stopped by Ctrl-C (128 + SIGINT). */
export const EXIT_INTERRUPTED = 130;

/**
 * 1 when samples failed, when an export holds no sample or left most out for one reason, or when synthesis got no usable answer for some instruction samples (request
 * errors): a run whose LLM was unreachable must not look like a success. Samples held back on purpose
 * (`--max-cost` reached, Ctrl-C), in synthesis or by the captioner, do not count: the next run finishes them.
 * Nor do tasks that cannot apply (`not_applicable`: no caption for stage 1, no boxes to ground): 1 means a
 * user must look at something. Samples the captioner held back for other reasons (a rejected key, a server
 * it cannot reach, a timeout) do count: they wait for a fix or a retry.
 */
export function exitCodeOf(summary: RunSummary | null): number {
  if (!summary) return EXIT_OK;
  const held = summary.captioning?.reasons ?? {};
  const heldOnPurpose = (held['budget_exhausted'] ?? 0) + (held['aborted'] ?? 0);
  if (summary.samples.failed - heldOnPurpose > 0) return EXIT_SAMPLES_FAILED;
  // An export that holds nothing, or left most samples out for one reason, is not what the recipe asked for.
  if (summary.exportProblems?.length) return EXIT_SAMPLES_FAILED;
  const synthesis = summary.synthesis;
  if (!synthesis) return EXIT_OK;
  const onPurpose = (synthesis.reasons['budget_exhausted'] ?? 0) + (synthesis.reasons['aborted'] ?? 0);
  return synthesis.failed - onPurpose > 0 ? EXIT_SAMPLES_FAILED : EXIT_OK;
}
