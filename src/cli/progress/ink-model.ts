/**
 * What the interactive progress UI shows, folded from the run's event stream. Pure (no ink, no React),
 * so the same state can be tested on recorded event streams and rendered by `ink-app.tsx`.
 */
import { escapeControlChars } from '../../core/control-chars.js';
import type { LlmCounters, PipelineEvent, RunSummary, StageCounts } from '../../core/events.js';

export interface ShownError {
  stage: string;
  key: string;
  code: string;
  message: string;
}

export interface ShownLog {
  level: 'info' | 'warn';
  message: string;
}

export interface ProgressView {
  runId: number | null;
  /** Stage names from `run-start`, so rows show before the first counts arrive. */
  stageNames: string[];
  /** Samples expected in this run (resumed ones included), when the sources can count them. */
  total: number | null;
  /** Samples an earlier run finished (skipped by this one). */
  resumed: number;
  elapsedMs: number;
  stages: StageCounts[];
  /** Latest counters of each LLM stage (they are cumulative). */
  llm: Record<string, LlmCounters>;
  /** The most recent sample errors, oldest first. */
  errors: ShownError[];
  errorCount: number;
  /** The most recent log lines, oldest first. */
  logs: ShownLog[];
  /** Set once Ctrl-C (or SIGTERM) asked the run to stop. */
  aborting: string | null;
  end: { elapsedMs: number; aborted: boolean; summary: RunSummary } | null;
}

export interface ViewLimits {
  /** Recent errors kept. Default 5. */
  errors?: number;
  /** Recent log lines kept. Default 3. */
  logs?: number;
}

export function emptyView(): ProgressView {
  return {
    runId: null,
    stageNames: [],
    total: null,
    resumed: 0,
    elapsedMs: 0,
    stages: [],
    llm: {},
    errors: [],
    errorCount: 0,
    logs: [],
    aborting: null,
    end: null,
  };
}

function pushBounded<T>(list: readonly T[], item: T, max: number): T[] {
  const next = [...list, item];
  return next.length > max ? next.slice(next.length - max) : next;
}

/** Fold one event into the view (returns a new object; the old one is left as it was). */
export function reduceView(view: ProgressView, event: PipelineEvent, limits: ViewLimits = {}): ProgressView {
  switch (event.type) {
    case 'run-start':
      return { ...view, runId: event.runId, stageNames: event.stages, total: event.total, resumed: event.resumed };
    case 'progress':
      return { ...view, elapsedMs: event.elapsedMs, total: event.total, stages: event.stages };
    case 'sample-error': {
      const { stage, key, code } = event;
      const message = escapeControlChars(event.message, { oneLine: true });
      return {
        ...view,
        errors: pushBounded(view.errors, { stage, key, code, message }, limits.errors ?? 5),
        errorCount: view.errorCount + 1,
      };
    }
    case 'llm':
      return { ...view, llm: { ...view.llm, [event.counters.stage]: event.counters } };
    case 'log':
      return { ...view, logs: pushBounded(view.logs, { level: event.level, message: escapeControlChars(event.message) }, limits.logs ?? 3) };
    case 'aborting':
      return { ...view, aborting: event.reason };
    case 'run-end':
      return {
        ...view,
        elapsedMs: event.elapsedMs,
        stages: event.stages,
        end: { elapsedMs: event.elapsedMs, aborted: event.aborted, summary: event.summary },
      };
  }
}

/** Rows to show: counted stages, or zero rows named by `run-start` before the first counts. */
export function stageRows(view: ProgressView): StageCounts[] {
  if (view.stages.length > 0) return view.stages;
  return view.stageNames.map((stage) => ({ stage, in: 0, out: 0, failed: 0, dropped: 0, rateNow: 0, rateAvg: 0 }));
}

/** Share of the run's samples read so far (0..1), when the total is known. */
export function fractionDone(view: ProgressView): number | null {
  const first = view.stages[0];
  if (view.total === null || view.total <= 0) return null;
  if (view.end && !view.end.aborted) return 1;
  return Math.min(1, (first?.out ?? 0) / view.total);
}

/**
 * Time left from the reading pace: the recent pace when there is one (resumed samples are skipped fast at
 * the start, so the whole-run average would be too hopeful), else the average. Null without a total.
 */
export function etaMs(view: ProgressView): number | null {
  const first = view.stages[0];
  if (view.total === null || !first || view.end) return null;
  const left = Math.max(0, view.total - first.out);
  if (left === 0) return 0;
  const rate = first.rateNow > 0 ? first.rateNow : first.rateAvg;
  return rate > 0 ? (left / rate) * 1000 : null;
}
