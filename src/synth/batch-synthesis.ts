/**
 * Batch synthesis (`synth.batch.enabled`): samples are taken in groups of `batch.size`; for each group
 * every task is evaluated against the cache, the requests still unanswered go to the provider's Batch API
 * as one batch (`batch/batch-runner.ts`), and the group is evaluated again (rejected answers need fresh
 * requests) until nothing is pending or no progress can be made. Requests left without an answer are
 * recorded as failed with the reason (the client's stop, the budget, an interruption, `batch_incomplete`).
 */
import type { ChatRequest, ChatResult, LlmClient, PreparedRequest } from '../backends/llm-client.js';
import { LlmAbortError, LlmBudgetError, LlmError } from '../backends/llm-errors.js';
import type { DecodedPair } from '../core/sample.js';
import { batch as batchOf } from '../iter/batch.js';
import type { InstructionRow } from '../store/instruction-store.js';
import { BatchRunner } from './batch/batch-runner.js';
import { PendingRequest, type Ask, type TaskOutcome } from './llm-task-runner.js';
import type { SampleSynthesis, SynthesizedPair, SynthOutcome } from './sample-synthesis.js';

export interface BatchSynthesisOptions {
  client: LlmClient;
  signal: AbortSignal;
  /** Samples per group (`synth.batch.size`). */
  size: number;
  /** Folder of the batch files and their state (`synth.batch.dir`). */
  dir: string;
  pollIntervalMs: number;
  maxWaitMs: number;
  /** Sent with each batch, so a provider's batch list shows which run it belongs to. */
  metadata: Record<string, string>;
  /** Answers asked for per request (`synth.maxAttempts`): bounds the rounds of one group. */
  maxAttempts: number;
  /** `--max-cost`: a batch holds only the requests the budget still covers. */
  maxCostUsd: number | null;
  /** Samples to synthesize for; the others pass through untouched. */
  workable: (sample: DecodedPair) => boolean;
  /** Store one group's rows (and say what needs saying). */
  commit: (rows: InstructionRow[]) => void;
  log: (message: string) => void;
}

export async function* batchSynthesis(input: AsyncIterable<DecodedPair>, work: SampleSynthesis, options: BatchSynthesisOptions): AsyncGenerator<SynthesizedPair> {
  const { client, signal } = options;
  const runner = new BatchRunner(client, {
    dir: options.dir,
    pollIntervalMs: options.pollIntervalMs,
    maxWaitMs: options.maxWaitMs,
    metadata: options.metadata,
    log: options.log,
  });
  try {
    await runner.recover(signal);
  } catch (err) {
    // A stopped client (rejected key, server not there): every group below records why.
    if (!client.stopped) throw err;
  }
  for await (const group of batchOf(input, options.size)) {
    const results = await synthesizeGroup(group.filter(options.workable), work, runner, options);
    const rows: InstructionRow[] = [];
    const out = group.map((sample) => {
      const outcomes = results.get(sample);
      if (!outcomes) return sample as SynthesizedPair;
      const done = work.finish(sample, outcomes);
      rows.push(...done.rows);
      return done.sample;
    });
    options.commit(rows);
    yield* out;
  }
}

/**
 * One group: evaluate every task against the cache; collect the requests still unanswered; run them as
 * one batch; repeat until nothing is pending or no progress can be made.
 */
async function synthesizeGroup(
  samples: readonly DecodedPair[],
  work: SampleSynthesis,
  runner: BatchRunner,
  options: BatchSynthesisOptions,
): Promise<Map<DecodedPair, SynthOutcome[]>> {
  const { client: c, signal } = options;
  const errors = new Map<string, LlmError>();
  const failures = new Map<string, number>();
  const ask: Ask = async (request: ChatRequest): Promise<ChatResult> => {
    const prepared = c.prepare(request);
    const hit = c.cachedResult(prepared, { count: false });
    if (hit) return hit;
    const error = errors.get(prepared.hash);
    if (error) throw error;
    throw new PendingRequest(prepared);
  };
  const maxRounds = options.maxAttempts * (c.options.maxRetries + 1) + 1;
  for (let round = 0; ; round++) {
    const results = new Map<DecodedPair, SynthOutcome[]>();
    for (const sample of samples) results.set(sample, await work.synthesize(sample, ask));
    const pending = new Map<string, PreparedRequest>();
    for (const outcomes of results.values()) {
      for (const o of outcomes) if ('pending' in o && o.pending) pending.set(o.pending.hash, o.pending);
    }
    const stop = pending.size === 0 ? null : signal.aborted ? new LlmAbortError() : (c.stopped ?? (round >= maxRounds ? 'rounds' : null));
    if (pending.size === 0 || stop !== null) {
      if (stop instanceof LlmError) markPending(results, stop);
      return results;
    }
    const affordable = withinBudget(c, [...pending.values()], options.maxCostUsd);
    if (affordable.length === 0) {
      markPending(results, new LlmBudgetError(`--max-cost reached ($${c.spentUsd.toFixed(4)} spent): the request was not submitted (a later run resumes it)`));
      return results;
    }
    let outcome;
    try {
      outcome = await runner.run(affordable, signal);
    } catch (err) {
      if (!c.stopped) throw err;
      markPending(results, c.stopped);
      return results;
    }
    for (const [hash, error] of outcome.errors) {
      const n = (failures.get(hash) ?? 0) + 1;
      failures.set(hash, n);
      if (!error.isRetryable || n > c.options.maxRetries) errors.set(hash, Object.assign(error, { attempts: n }));
    }
    if (outcome.answered === 0 && outcome.errors.size === 0) {
      // Nothing came back (the batch is still running, expired or was cancelled): record and stop.
      markPending(results, signal.aborted ? new LlmAbortError() : null);
      return results;
    }
  }
}

/** Requests that fit in what is left of the budget, counting each at its most expensive (prompt estimate + max tokens). */
function withinBudget(c: LlmClient, requests: PreparedRequest[], maxCostUsd: number | null): PreparedRequest[] {
  if (maxCostUsd === null) return requests;
  let projected = c.spentUsd;
  const out: PreparedRequest[] = [];
  for (const request of requests) {
    projected += (request.promptEstimate * c.options.price.inputPerMTok + request.maxTokens * c.options.price.outputPerMTok) / 1_000_000;
    if (projected > maxCostUsd) break;
    out.push(request);
  }
  return out;
}

/** Outcomes still pending become failures with the given reason (or `batch_incomplete`). */
function markPending(results: Map<DecodedPair, SynthOutcome[]>, error: LlmError | null): void {
  for (const outcomes of results.values()) {
    for (const o of outcomes) {
      if (o.status !== 'pending') continue;
      const pending = o as TaskOutcome;
      pending.status = 'failed';
      pending.code = error ? error.code : 'batch_incomplete';
      pending.message = error ? error.message : 'the batch gave no answer for this request (a later run collects it)';
      delete pending.pending;
    }
  }
}
