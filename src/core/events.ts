/**
 * The one event stream a run emits. The ink UI, the plain logger and `--progress json` all consume it.
 */

export interface StageCounts {
  stage: string;
  /** Samples the stage has pulled from upstream. */
  in: number;
  /** Samples it has passed downstream (failed and dropped ones included: they still get recorded). */
  out: number;
  /** Samples this stage marked failed. */
  failed: number;
  /** Samples this stage marked dropped. */
  dropped: number;
  /** Samples out per second over the last few seconds. */
  rateNow: number;
  /** Samples out per second since the stage started. */
  rateAvg: number;
  /** Mean latency of the stage's last batches, for model stages that report it. */
  batchLatencyMs?: number;
}

export interface LlmCounters {
  stage: string;
  inFlight: number;
  requests: number;
  retries: number;
  cached: number;
  promptTokens: number;
  completionTokens: number;
  costUsd: number;
}

export type PipelineEvent =
  | { type: 'run-start'; runId: number; stages: string[]; total: number | null; resumed: number }
  | { type: 'progress'; elapsedMs: number; total: number | null; stages: StageCounts[] }
  | { type: 'sample-error'; stage: string; key: string; code: string; message: string }
  | { type: 'llm'; counters: LlmCounters }
  | { type: 'log'; level: 'info' | 'warn'; message: string }
  | { type: 'aborting'; reason: string }
  | { type: 'run-end'; elapsedMs: number; aborted: boolean; stages: StageCounts[]; summary: RunSummary };

export interface RunSummary {
  samples: { total: number; ok: number; failed: number; dropped: number };
  failures: Record<string, number>;
  exported: Record<string, number>;
  /** Instruction samples (synthesis), when the run has any. */
  synthesis?: SynthesisSummary;
  /** Samples the captioner held back for a later run, when there are any (they count as failed too). */
  captioning?: CaptioningSummary;
  /** Exports that hold no sample, or left most of what reached them out for one reason; absent when none. */
  exportProblems?: ExportProblem[];
}

export interface CaptioningSummary {
  /** Samples failed by the captioner with a code a later run can fix (`server_unreachable`, `timeout`, ...). */
  heldBack: number;
  /** The same by code. */
  reasons: Record<string, number>;
  /** Why captioning stopped (a rejected key, an unreachable server), while samples wait because of it. */
  stopped?: string;
}

/** An export that did not do what the recipe asked (`store/export-problems.ts`); the build exits 1. */
export interface ExportProblem {
  export: string;
  /** `empty`: it holds no sample; `mostly_left_out`: one reason left out more than half of its records. */
  kind: 'empty' | 'mostly_left_out';
  /** Samples the export holds. */
  written: number;
  /** Records it decided on (written and left out); for an export that records none, the run's samples. */
  total: number;
  /** The most frequent reason records were left out, and how many; null and 0 when none was recorded. */
  reason: string | null;
  count: number;
  /** One line for the summary. */
  message: string;
}

export interface SynthesisSummary {
  ok: number;
  /** Every attempt's answer was rejected (reason recorded). */
  rejected: number;
  /** No usable answer came back (request errors); `retriable` of them a later run asks again. */
  failed: number;
  retriable: number;
  /** Rejected and failed ones by reason code. */
  reasons: Record<string, number>;
  /**
   * Tasks with nothing to work from (`no_caption`, `no_boxes`, `no_context`): no failure, nothing to act
   * on, so they never make the exit code 1. By reason code in `notApplicableReasons`.
   */
  notApplicable: number;
  notApplicableReasons: Record<string, number>;
  /** Why LLM synthesis stopped (a rejected key, an unreachable server), while samples wait because of it. */
  stopped?: string;
}

/**
 * Events a stage may emit itself; the runner adds counts and timing. Sample failures are not among them:
 * a stage sets `failure` on the sample and the runner reports it, so each failure is reported once.
 */
export type StageEvent =
  | { type: 'batch-latency'; ms: number }
  | { type: 'llm'; counters: Omit<LlmCounters, 'stage'> }
  | { type: 'log'; level: 'info' | 'warn'; message: string };
