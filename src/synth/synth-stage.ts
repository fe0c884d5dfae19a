/**
 * The `synth` stage: for every ok sample, the instruction samples the recipe asks for — template tasks
 * (`stage1`, `grounding`, `referring`) at once, LLM tasks (`conversation`, `detail`, `reasoning`)
 * through the LLM client (cache, limits, retries, budget) or the Batch API — written to the
 * `instructions` table and attached to the sample as `instructions`.
 *
 * Failure is data at two levels: an LLM task that fails or whose answers are all rejected is recorded
 * on its own row with the reason, and the sample itself stays ok. Samples failed or dropped upstream
 * pass through untouched. Re-running is cheap: every answer already received comes from the cache, so a
 * resumed run sends only the requests that never got an answer. When the client stops (a rejected key,
 * a server that cannot be reached; see `llm-client.ts`) the stage says so in one line, and every LLM
 * task left is recorded with the stop's code: the samples are held back and the next run finishes them.
 */
import { setMaxListeners } from 'node:events';
import { dirname, resolve } from 'node:path';
import type { InstructionSample, WithInstructions } from '../core/conversation.js';
import { ConfigError } from '../core/errors.js';
import type { DecodedPair } from '../core/sample.js';
import type { Stage, StageContext } from '../core/stage.js';
import { batch as batchOf } from '../iter/batch.js';
import { mapConcurrent } from '../iter/map-concurrent.js';
import { LlmClient, type ChatRequest, type ChatResult, type PreparedRequest } from '../backends/llm-client.js';
import { LlmAbortError, LlmBudgetError, LlmError, STOP_CODES } from '../backends/llm-errors.js';
import type { Db } from '../store/database.js';
import { InstructionStore, reasonCode, type InstructionRow } from '../store/instruction-store.js';
import { LlmCache } from '../store/llm-cache.js';
import { unfinishedSynthesis } from '../store/unfinished-synthesis.js';
import { BatchRunner } from './batch/batch-runner.js';
import { isLlmTask, taskContext } from './llm-tasks.js';
import { PendingRequest, runLlmTask, type Ask, type TaskOutcome } from './llm-task-runner.js';
import { defaultPromptsDir, loadInstructionList, loadTaskPrompt, type LlmTaskName, type TaskPrompt } from './prompts.js';
import { seededPick } from './seeded.js';
import { groundingSample, referringSample, stage1Sample, type InstructionLists, type TemplateResult } from './template-tasks.js';
import { timedBatches } from './timed-batches.js';
import { SYNTH_TASKS, type SynthOptions } from './synth-options.js';

export { synthOptionsSchema, synthBatchSchema, SYNTH_TASKS, type SynthOptions, type SynthTask } from './synth-options.js';

export const SYNTH_STAGE = 'synth';

export interface SynthStageDeps {
  db: Db;
  /** The run (sent as batch metadata, so a provider's batch list shows which run it belongs to). */
  runId: number;
  /** Stops new LLM requests (the stage context's signal is honoured as well). */
  signal?: AbortSignal;
  /** `--max-cost`: US dollars this run may spend on LLM requests. */
  maxCostUsd?: number | null;
  /** Where `apiKeyEnv` is looked up (default `process.env`). */
  env?: Record<string, string | undefined>;
  /** Folder relative paths (`promptsDir`, `batch.dir`) resolve against: the recipe's folder. */
  baseDir?: string;
  /** The window `rpm`/`tpm` refer to (60,000 ms; tests and benchmarks shorten it). */
  minuteMs?: number;
  /** A client to use instead of one built from `options.llm`. */
  client?: LlmClient;
}

export type SynthesizedPair = DecodedPair & WithInstructions;

/** How long a finished sample may wait for its commit group. */
const COMMIT_WAIT_MS = 500;

const TASK_ORDER = new Map<string, number>(SYNTH_TASKS.map((task, i) => [task, i]));

/** Failed requests reported as they happen, before the rest wait for the summary. */
const SHOWN_FAILURES = 3;

export function createSynthStage(options: SynthOptions, deps: SynthStageDeps): Stage<DecodedPair, SynthesizedPair> {
  const llmTasks = options.tasks.filter(isLlmTask);
  if (llmTasks.length > 0 && !options.llm && !deps.client) {
    throw new ConfigError(
      `synth.llm: the tasks ${llmTasks.map((t) => `"${t}"`).join(', ')} need an LLM endpoint, got none; add synth.llm { baseURL, model, apiKeyEnv, ... } or remove them from synth.tasks`,
    );
  }
  const baseDir = deps.baseDir ?? process.cwd();
  const promptsDir = options.promptsDir ? resolve(baseDir, options.promptsDir) : defaultPromptsDir();
  const prompts = new Map<LlmTaskName, TaskPrompt>(llmTasks.map((task) => [task, loadTaskPrompt(task, promptsDir)]));
  const lists: InstructionLists = {
    brief: loadInstructionList('brief', promptsDir),
    detailed: loadInstructionList('detailed', promptsDir),
    grounding: loadInstructionList('grounding', promptsDir),
    referring: loadInstructionList('referring', promptsDir),
  };
  const store = new InstructionStore(deps.db);
  const client =
    llmTasks.length === 0
      ? null
      : (deps.client ??
        new LlmClient(options.llm!, { cache: new LlmCache(deps.db), maxCostUsd: deps.maxCostUsd ?? null, env: deps.env, minuteMs: deps.minuteMs }));
  const batchDir = options.batch.dir ? resolve(baseDir, options.batch.dir) : resolve(dirname(deps.db.name), 'batches');

  /** Every instruction row of one sample; LLM tasks run concurrently (the client enforces the limits). */
  async function synthesize(sample: DecodedPair, ask: Ask): Promise<(TaskOutcome | InstructionRowDraft)[]> {
    const input = { key: sample.key, captions: sample.captions, boxes: sample.boxes, width: sample.image!.width, height: sample.image!.height };
    const templates = { seed: options.seed, regionFormat: options.regionFormat, padToSquare: options.padToSquare, maxRegions: options.maxRegions };
    const drafts: InstructionRowDraft[] = [];
    const jobs: Promise<TaskOutcome>[] = [];
    for (const task of options.tasks) {
      if (isLlmTask(task)) {
        const context = taskContext(task, input);
        for (let variant = 0; variant < options.samplesPerTask; variant++) {
          jobs.push(
            runLlmTask(ask, {
              key: sample.key,
              task,
              variant,
              seed: options.seed,
              maxAttempts: options.maxAttempts,
              prompt: prompts.get(task)!,
              context,
              detailInstruction: seededPick(lists.detailed, options.seed, sample.key, 'detail', variant),
            }),
          );
        }
        continue;
      }
      const make = task === 'stage1' ? stage1Sample : task === 'grounding' ? groundingSample : referringSample;
      drafts.push(templateDraft(task, make(input, lists, templates)));
    }
    return [...drafts, ...(await Promise.all(jobs))];
  }

  function finish(sample: DecodedPair, outcomes: readonly (TaskOutcome | InstructionRowDraft)[]): { sample: SynthesizedPair; rows: InstructionRow[] } {
    const rows: InstructionRow[] = outcomes.map((o) => ({
      sampleKey: sample.key,
      task: o.task,
      variant: o.variant,
      status: o.status === 'pending' ? 'failed' : o.status,
      reason: o.status === 'pending' ? 'batch_incomplete: the batch gave no answer for this request' : o.reason,
      conversations: o.conversations,
      requestHash: o.requestHash,
      attempts: o.attempts,
    }));
    const instructions: InstructionSample[] = rows
      .filter((row) => row.status === 'ok' && row.conversations)
      .sort((a, b) => TASK_ORDER.get(a.task)! - TASK_ORDER.get(b.task)! || a.variant - b.variant)
      .map((row) => ({ sampleKey: row.sampleKey, task: row.task, variant: row.variant, conversations: row.conversations! }));
    // Tasks that failed for a reason a later run can fix (budget, interruption, server trouble) hold the
    // sample back from exports; resuming re-asks only those (answered ones come from the cache).
    const deferred = unfinishedSynthesis(rows);
    return { sample: { ...sample, instructions, deferred }, rows };
  }

  const workable = (sample: DecodedPair) => !sample.failure && !sample.dropped && sample.image !== null;

  return {
    name: SYNTH_STAGE,
    async *run(input, ctx: StageContext) {
      // One signal for every request of the run: each queued request listens to it, so lift the
      // listener limit (Node warns above 10) on a signal of our own that follows the run's.
      const local = new AbortController();
      setMaxListeners(0, local.signal);
      const follow = () => local.abort(ctx.signal.aborted ? ctx.signal.reason : deps.signal?.reason);
      for (const outer of [ctx.signal, deps.signal]) {
        if (outer?.aborted) follow();
        else outer?.addEventListener('abort', follow, { once: true });
      }
      const signal = local.signal;
      const unsubscribe = client?.onCounters((counters) => ctx.emit({ type: 'llm', counters })) ?? (() => undefined);
      // The first few failed requests are said at once (the run may take long; the summary comes last).
      let failuresShown = 0;
      const noteFailures = (rows: readonly InstructionRow[]) => {
        for (const row of rows) {
          const code = reasonCode(row.reason) ?? '';
          // Said once for all by noteBudget / noteStop.
          if (row.status !== 'failed' || failuresShown >= SHOWN_FAILURES || code === 'budget_exhausted' || STOP_CODES.has(code)) continue;
          failuresShown++;
          const more = failuresShown === SHOWN_FAILURES ? ' (further failures only in the summary and the run database)' : '';
          ctx.emit({ type: 'log', level: 'warn', message: `synth: ${row.task} of ${row.sampleKey} failed: ${row.reason}${more}` });
        }
      };
      let budgetWarned = false;
      const noteBudget = () => {
        if (!budgetWarned && client?.budgetExhausted()) {
          budgetWarned = true;
          ctx.emit({
            type: 'log',
            level: 'warn',
            message: `--max-cost reached ($${client.spentUsd.toFixed(4)} spent): no new LLM requests; the remaining tasks are recorded as budget_exhausted and a later run resumes them`,
          });
        }
      };
      let stopWarned = false;
      const noteStop = () => {
        const stop = client?.stopped;
        if (stopWarned || !stop) return;
        stopWarned = true;
        ctx.emit({ type: 'log', level: 'warn', message: `synth: LLM synthesis stopped: ${stop.message}; the samples wait for the next run` });
      };
      try {
        if (options.batch.enabled && client) {
          const runner = new BatchRunner(client, {
            dir: batchDir,
            pollIntervalMs: options.batch.pollIntervalMs,
            maxWaitMs: options.batch.maxWaitMs,
            metadata: { run: String(deps.runId) },
            log: (message) => ctx.emit({ type: 'log', level: 'info', message }),
          });
          try {
            await runner.recover(signal);
          } catch (err) {
            // A stopped client (rejected key, server not there): every group below records why.
            if (!client.stopped) throw err;
          }
          for await (const group of batchOf(input, options.batch.size)) {
            const results = await synthesizeInBatches(group.filter(workable), runner, signal);
            const rows: InstructionRow[] = [];
            const out = group.map((sample) => {
              const outcomes = results.get(sample);
              if (!outcomes) return sample;
              const done = finish(sample, outcomes);
              rows.push(...done.rows);
              return done.sample;
            });
            store.write(rows);
            noteStop();
            noteFailures(rows);
            noteBudget();
            yield* out;
          }
          return;
        }
        const ask: Ask = (request: ChatRequest) => client!.complete(request, { signal });
        const processed = mapConcurrent(
          input,
          async (sample) => {
            if (!workable(sample)) return { sample: sample as SynthesizedPair, rows: [] as InstructionRow[] };
            return finish(sample, await synthesize(sample, ask));
          },
          { concurrency: options.concurrency, ordered: false },
        );
        for await (const group of timedBatches(processed, options.commitEvery, COMMIT_WAIT_MS)) {
          const rows = group.flatMap((g) => g.rows);
          store.write(rows);
          noteStop();
          noteFailures(rows);
          noteBudget();
          for (const g of group) yield g.sample;
        }
      } finally {
        ctx.signal.removeEventListener('abort', follow);
        deps.signal?.removeEventListener('abort', follow);
        client?.flushCounters();
        unsubscribe();
      }
    },
  };

  /**
   * Batch mode for one group: evaluate every task against the cache; collect the requests still
   * unanswered; run them as one batch; repeat (rejected answers need fresh requests) until nothing is
   * pending or no progress can be made.
   */
  async function synthesizeInBatches(
    samples: readonly DecodedPair[],
    runner: BatchRunner,
    signal: AbortSignal,
  ): Promise<Map<DecodedPair, (TaskOutcome | InstructionRowDraft)[]>> {
    const c = client!;
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
      const results = new Map<DecodedPair, (TaskOutcome | InstructionRowDraft)[]>();
      for (const sample of samples) results.set(sample, await synthesize(sample, ask));
      const pending = new Map<string, PreparedRequest>();
      for (const outcomes of results.values()) {
        for (const o of outcomes) if ('pending' in o && o.pending) pending.set(o.pending.hash, o.pending);
      }
      const stop = pending.size === 0 ? null : signal.aborted ? new LlmAbortError() : (c.stopped ?? (round >= maxRounds ? 'rounds' : null));
      if (pending.size === 0 || stop !== null) {
        if (stop instanceof LlmError) markPending(results, stop);
        return results;
      }
      const affordable = withinBudget([...pending.values()]);
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
  function withinBudget(requests: PreparedRequest[]): PreparedRequest[] {
    const c = client!;
    if (deps.maxCostUsd === undefined || deps.maxCostUsd === null) return requests;
    let projected = c.spentUsd;
    const out: PreparedRequest[] = [];
    for (const request of requests) {
      projected += (request.promptEstimate * c.options.price.inputPerMTok + request.maxTokens * c.options.price.outputPerMTok) / 1_000_000;
      if (projected > deps.maxCostUsd) break;
      out.push(request);
    }
    return out;
  }
}

/** A template task's row before it has a sample key. */
interface InstructionRowDraft {
  task: InstructionRow['task'];
  variant: number;
  status: 'ok' | 'not_applicable';
  reason: string | null;
  conversations: InstructionRow['conversations'];
  requestHash: null;
  attempts: number;
}

function templateDraft(task: InstructionRow['task'], result: TemplateResult): InstructionRowDraft {
  return result.ok
    ? { task, variant: 0, status: 'ok', reason: null, conversations: result.conversations, requestHash: null, attempts: 1 }
    : { task, variant: 0, status: 'not_applicable', reason: `${result.code}: ${result.detail}`, conversations: null, requestHash: null, attempts: 1 };
}

/** Outcomes still pending become failures with the given reason (or `batch_incomplete`). */
function markPending(results: Map<DecodedPair, (TaskOutcome | InstructionRowDraft)[]>, error: LlmError | null): void {
  for (const outcomes of results.values()) {
    for (const o of outcomes) {
      if (o.status !== 'pending') continue;
      const pending = o as TaskOutcome;
      pending.status = 'failed';
      pending.reason = error ? `${error.code}: ${error.message}` : 'batch_incomplete: the batch gave no answer for this request (a later run collects it)';
      delete pending.pending;
    }
  }
}
