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
 * a server that cannot be reached; see `backends/llm-client.ts`) the stage says so in one line, and every LLM
 * task left is recorded with the stop's code: the samples are held back and the next run finishes them.
 *
 * This file sets the stage up and says what happens; the work is in `sample-synthesis.ts` (one sample),
 * `live-synthesis.ts` (requests through the client) and `batch-synthesis.ts` (the Batch API).
 */
import { setMaxListeners } from 'node:events';
import { resolve } from 'node:path';
import { ConfigError } from '../core/errors.js';
import { isOpen, type DecodedPair } from '../core/sample.js';
import type { Stage, StageContext } from '../core/stage.js';
import { LlmClient, type ChatRequest, type LlmResponseStore } from '../backends/llm-client.js';
import { STOP_CODES } from '../core/failure-codes.js';
import { instructionReasonText, type InstructionRow } from '../store/instruction-store.js';
import type { InstructionWriter } from '../store/stage-ports.js';
import { batchSynthesis } from './batch-synthesis.js';
import { liveSynthesis } from './live-synthesis.js';
import { isLlmTask } from './llm-tasks.js';
import type { Ask } from './llm-task-runner.js';
import { defaultPromptsDir, loadInstructionList } from '../core/prompt-files.js';
import { SYNTH_STAGE } from '../core/stage-names.js';
import { loadTaskPrompt, type LlmTaskName, type TaskPrompt } from './prompts.js';
import { sampleSynthesis, type SynthesizedPair } from './sample-synthesis.js';
import type { InstructionLists } from './template-tasks.js';
import type { SynthOptions } from './synth-options.js';

export { synthOptionsSchema, synthBatchSchema, SYNTH_TASKS, type SynthOptions, type SynthTask } from './synth-options.js';
export type { SynthesizedPair } from './sample-synthesis.js';

export interface SynthStageDeps {
  /** Where the instruction rows go (the run database's `InstructionStore`). */
  instructions: InstructionWriter;
  /** Answers already paid for (the run database's `LlmCache`). */
  llmCache: LlmResponseStore;
  /** The run database's folder: batch files go to `batches/` there unless `synth.batch.dir` says otherwise. */
  runFolder: string;
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
  const work = sampleSynthesis(options, prompts, lists);
  const store = deps.instructions;
  const client =
    llmTasks.length === 0
      ? null
      : (deps.client ??
        new LlmClient(options.llm!, { cache: deps.llmCache, maxCostUsd: deps.maxCostUsd ?? null, env: deps.env, minuteMs: deps.minuteMs }));
  const batchDir = options.batch.dir ? resolve(baseDir, options.batch.dir) : resolve(deps.runFolder, 'batches');

  const workable = (sample: DecodedPair) => isOpen(sample) && sample.image !== null;

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
          const code = row.code ?? '';
          // Said once for all by noteBudget / noteStop.
          if (row.status !== 'failed' || failuresShown >= SHOWN_FAILURES || code === 'budget_exhausted' || STOP_CODES.has(code)) continue;
          failuresShown++;
          const more = failuresShown === SHOWN_FAILURES ? ' (further failures only in the summary and the run database)' : '';
          ctx.emit({ type: 'log', level: 'warn', message: `synth: ${row.task} of ${row.sampleKey} failed: ${instructionReasonText(row)}${more}` });
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
      const commit = (rows: InstructionRow[]) => {
        store.write(rows);
        noteStop();
        noteFailures(rows);
        noteBudget();
      };
      try {
        if (options.batch.enabled && client) {
          yield* batchSynthesis(input, work, {
            client,
            signal,
            size: options.batch.size,
            dir: batchDir,
            pollIntervalMs: options.batch.pollIntervalMs,
            maxWaitMs: options.batch.maxWaitMs,
            metadata: { run: String(deps.runId) },
            maxAttempts: options.maxAttempts,
            maxCostUsd: deps.maxCostUsd ?? null,
            workable,
            commit,
            log: (message) => ctx.emit({ type: 'log', level: 'info', message }),
          });
        } else {
          // Without LLM tasks there is no client, and nothing asks.
          const ask: Ask = (request: ChatRequest) => client!.complete(request, { signal });
          yield* liveSynthesis(input, work, { ask, concurrency: options.concurrency, commitEvery: options.commitEvery, workable, commit });
        }
      } finally {
        ctx.signal.removeEventListener('abort', follow);
        deps.signal?.removeEventListener('abort', follow);
        client?.flushCounters();
        unsubscribe();
      }
    },
  };
}
