import type { RunSummary, StageCounts } from '../../core/events.js';

export function formatRate(perSecond: number): string {
  if (perSecond >= 100) return `${Math.round(perSecond)}/s`;
  if (perSecond >= 10) return `${perSecond.toFixed(1)}/s`;
  return `${perSecond.toFixed(2)}/s`;
}

export function formatDuration(ms: number): string {
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

/** Remaining time from the first stage's pace, when the total is known. */
export function estimateRemainingMs(stages: readonly StageCounts[], total: number | null, resumed: number): number | null {
  const first = stages[0];
  if (!first || total === null || first.rateAvg <= 0) return null;
  const left = Math.max(0, total - resumed - first.out);
  return (left / first.rateAvg) * 1000;
}

/** One stage as `name out (failed, dropped) rate`; `rate` is the recent pace while running, the average at the end. */
export function formatStageCounts(s: StageCounts, rate: 'now' | 'avg' = 'now'): string {
  const extra = [s.failed ? `${s.failed} failed` : '', s.dropped ? `${s.dropped} dropped` : ''].filter(Boolean).join(', ');
  return `${s.stage} ${s.out}${extra ? ` (${extra})` : ''} ${formatRate(rate === 'now' ? s.rateNow : s.rateAvg)}`;
}

export function formatSummary(summary: RunSummary): string[] {
  const { samples } = summary;
  const lines = [`samples: ${samples.total} total, ${samples.ok} ok, ${samples.failed} failed, ${samples.dropped} dropped`];
  const failures = Object.entries(summary.failures);
  if (failures.length) lines.push(`failures: ${failures.map(([code, n]) => `${code} ${n}`).join(', ')}`);
  const exported = Object.entries(summary.exported);
  if (exported.length) lines.push(`exported: ${exported.map(([name, n]) => `${name} ${n}`).join(', ')}`);
  const instructions = formatInstructions(summary);
  if (instructions) lines.push(instructions);
  const stopped = formatStopped(summary);
  if (stopped) lines.push(stopped);
  const captioning = formatCaptioningHeld(summary);
  if (captioning) lines.push(captioning);
  for (const problem of summary.exportProblems ?? []) lines.push(problem.message);
  return lines;
}

/**
 * `instructions: 40 ok, 2 rejected, 15 failed (connection_error 15, bad_format 2), 6 not applicable (no_boxes 6);
 * a later run asks 15 again`, or null.
 */
export function formatInstructions(summary: RunSummary): string | null {
  const i = summary.synthesis;
  if (!i) return null;
  const list = (counts: Record<string, number>) => Object.entries(counts).slice(0, 5).map(([code, n]) => `${code} ${n}`).join(', ');
  const reasons = list(i.reasons);
  const notApplicable = i.notApplicable > 0 ? `, ${i.notApplicable} not applicable (${list(i.notApplicableReasons)})` : '';
  const retry = i.retriable > 0 ? `; a later run asks ${i.retriable} again` : '';
  return `instructions: ${i.ok} ok, ${i.rejected} rejected, ${i.failed} failed${reasons ? ` (${reasons})` : ''}${notApplicable}${retry}`;
}

/** `LLM synthesis stopped: API key rejected by URL (...); the samples wait for the next run`, or null. */
export function formatStopped(summary: RunSummary): string | null {
  const why = summary.synthesis?.stopped;
  return why ? `LLM synthesis stopped: ${why}; the samples wait for the next run` : null;
}

/**
 * `captioning stopped: cannot reach URL: ...; 40 samples wait for the next run`, or, without a stop,
 * `captioner: 3 samples held back (timeout 3); the next run captions them`, or null.
 */
export function formatCaptioningHeld(summary: RunSummary): string | null {
  const c = summary.captioning;
  if (!c) return null;
  if (c.stopped) return `captioning stopped: ${c.stopped}; ${c.heldBack} samples wait for the next run`;
  const reasons = Object.entries(c.reasons).map(([code, n]) => `${code} ${n}`).join(', ');
  return `captioner: ${c.heldBack} samples held back (${reasons}); the next run captions them`;
}
