/**
 * What synthesis will cost before anything is spent (`vlcurate estimate`). Counts the samples the sources
 * hold (cheaply when a source knows its count, otherwise by reading it), builds the real requests for the
 * first `sample` samples to measure prompt tokens (about four characters a token), takes each task's
 * completion length from its few-shot answers, and prices the total with the recipe's price table. Retries
 * and re-asks after rejected answers are not included; the upper bound assumes every request is asked
 * `maxAttempts` times and writes `maxTokens` tokens. When the recipe's run database exists, requests it
 * already answered are counted as paid, and the remaining cost is given.
 */
import { resolve } from 'node:path';
import { estimatePromptTokens, estimateTextTokens, costUsd } from '../backends/llm-tokens.js';
import { formatIssues } from '../core/format-issues.js';
import type { LoadedRecipe } from '../config/recipe.js';
import { ConfigError } from '../core/errors.js';
import type { Pair } from '../core/sample.js';
import { WHOLE } from '../core/shard.js';
import { createSource } from '../sources/registry.js';
import { synthProgress } from '../store/synth-progress.js';
import { isLlmTask, taskContext } from '../synth/llm-tasks.js';
import { defaultPromptsDir } from '../core/prompt-files.js';
import { buildMessages, loadTaskPrompt, type LlmTaskName } from '../synth/prompts.js';
import { synthOptionsSchema, type SynthOptions } from '../synth/synth-options.js';

export interface TaskEstimate {
  requests: number;
  promptTokens: number;
  completionTokens: number;
  costUsd: number;
  /** Requests whose final answer the run database already holds (a resumed run reuses them). */
  answered: number;
  /** `costUsd` for the requests not answered yet. */
  remainingCostUsd: number;
}

export interface SynthEstimate {
  model: string | null;
  /** Samples the sources hold. */
  samples: number;
  /** Samples read to measure prompt sizes. */
  sampled: number;
  requests: number;
  promptTokens: number;
  completionTokens: number;
  costUsd: number;
  /** Every request asked `maxAttempts` times, each answer `maxTokens` long. */
  upperBoundCostUsd: number;
  /** Requests already answered in the recipe's run database(s), and what their answers cost. */
  answered: number;
  spentUsd: number;
  /** What the run still has to pay (estimated), and the upper bound of that. */
  remainingCostUsd: number;
  remainingUpperBoundCostUsd: number;
  tasks: Record<string, TaskEstimate>;
  /** Tasks made from templates, without requests. */
  templateTasks: string[];
}

/** The recipe's `synth` section, validated. */
export function synthSection(loaded: LoadedRecipe, origin: string): SynthOptions {
  const raw = (loaded.recipe as unknown as { synth?: unknown }).synth;
  if (raw === undefined) throw new ConfigError(`${origin}: the recipe has no \`synth\` section, so there is nothing to estimate`);
  const parsed = synthOptionsSchema.safeParse(raw);
  if (!parsed.success) throw new ConfigError(`${origin}: invalid synth section\n  ${formatIssues(parsed.error, raw).map((l) => `synth.${l}`).join('\n  ')}`);
  return parsed.data;
}

/** Image size for normalising boxes before decoding: the source's metadata, else the boxes' extent. */
function sizeOf(pair: Pair): { width: number; height: number } {
  const meta = pair.meta as { width?: unknown; height?: unknown };
  if (typeof meta.width === 'number' && typeof meta.height === 'number' && meta.width > 0 && meta.height > 0) {
    return { width: meta.width, height: meta.height };
  }
  const width = Math.max(1, ...pair.boxes.map((b) => b.box[2]));
  const height = Math.max(1, ...pair.boxes.map((b) => b.box[3]));
  return { width, height };
}

export async function estimateSynthesis(loaded: LoadedRecipe, synth: SynthOptions, options: { sample: number; signal?: AbortSignal }): Promise<SynthEstimate> {
  const llmTasks = synth.tasks.filter(isLlmTask);
  const templateTasks = synth.tasks.filter((t) => !isLlmTask(t));
  const llm = synth.llm ?? null;
  if (llmTasks.length > 0 && !llm) {
    throw new ConfigError(`synth.llm: the tasks ${llmTasks.map((t) => `"${t}"`).join(', ')} need an LLM endpoint, got none`);
  }
  const promptsDir = synth.promptsDir ? resolve(loaded.baseDir, synth.promptsDir) : defaultPromptsDir();
  const prompts = new Map(llmTasks.map((task) => [task, loadTaskPrompt(task, promptsDir)]));
  const ctx = { signal: options.signal ?? new AbortController().signal, shard: WHOLE, baseDir: loaded.baseDir, ...(loaded.recipe.storage ? { storage: loaded.recipe.storage } : {}) };
  const sources = loaded.recipe.sources.map((entry, i) => createSource(entry, i));

  const sums = new Map<LlmTaskName, { requests: number; promptTokens: number }>(llmTasks.map((t) => [t, { requests: 0, promptTokens: 0 }]));
  let samples = 0;
  let sampled = 0;
  for (const source of sources) {
    const counted = source.count ? await source.count(ctx) : null;
    let read = 0;
    for await (const pair of source.read(ctx)) {
      read++;
      if (pair.fate.kind === 'failed') continue;
      if (sampled < options.sample) {
        sampled++;
        const { width, height } = sizeOf(pair);
        for (const task of llmTasks) {
          const { context } = taskContext(task, { key: pair.key, captions: pair.captions, boxes: pair.boxes, width, height });
          if (context.text === '') continue;
          const sum = sums.get(task)!;
          sum.requests += synth.samplesPerTask;
          sum.promptTokens += synth.samplesPerTask * estimatePromptTokens(buildMessages(prompts.get(task)!, context.text));
        }
      }
      // With a known count, reading stops once the sample is measured.
      if (counted !== null && sampled >= options.sample) break;
    }
    samples += counted ?? read;
  }

  const scale = sampled > 0 ? samples / sampled : 0;
  const price = llm?.price ?? { inputPerMTok: 0, outputPerMTok: 0 };
  const progress = synthProgress(resolve(loaded.baseDir, loaded.recipe.run.db));
  const tasks: Record<string, TaskEstimate> = {};
  let upperBound = 0;
  let remainingUpperBound = 0;
  for (const task of llmTasks) {
    const sum = sums.get(task)!;
    const examples = prompts.get(task)!.examples;
    const typical = examples.length > 0 ? examples.reduce((n, e) => n + estimateTextTokens(e.answer), 0) / examples.length : llm!.maxTokens;
    const requests = Math.round(sum.requests * scale);
    const promptTokens = Math.round(sum.promptTokens * scale);
    const completionTokens = Math.round(requests * Math.min(llm!.maxTokens, typical));
    const cost = costUsd({ promptTokens, completionTokens }, price);
    const answered = Math.min(requests, progress.answered[task] ?? 0);
    // Failed and dropped samples never reach synthesis: their requests will not be sent either.
    const settled = Math.min(requests, answered + progress.settledSamples * synth.samplesPerTask);
    const left = requests > 0 ? (requests - settled) / requests : 0;
    tasks[task] = { requests, promptTokens, completionTokens, costUsd: cost, answered, remainingCostUsd: cost * left };
    const taskUpperBound = synth.maxAttempts * costUsd({ promptTokens, completionTokens: requests * llm!.maxTokens }, price);
    upperBound += taskUpperBound;
    remainingUpperBound += taskUpperBound * left;
  }
  const total = Object.values(tasks).reduce(
    (acc, t) => ({ requests: acc.requests + t.requests, promptTokens: acc.promptTokens + t.promptTokens, completionTokens: acc.completionTokens + t.completionTokens, costUsd: acc.costUsd + t.costUsd }),
    { requests: 0, promptTokens: 0, completionTokens: 0, costUsd: 0 },
  );
  const answered = Object.values(tasks).reduce((n, t) => n + t.answered, 0);
  const remaining = Object.values(tasks).reduce((n, t) => n + t.remainingCostUsd, 0);
  for (const t of Object.values(tasks)) {
    t.costUsd = roundUsd(t.costUsd);
    t.remainingCostUsd = roundUsd(t.remainingCostUsd);
  }
  return {
    model: llm?.model ?? null,
    samples,
    sampled,
    ...total,
    costUsd: roundUsd(total.costUsd),
    upperBoundCostUsd: roundUsd(upperBound),
    answered,
    spentUsd: roundUsd(progress.spentUsd),
    remainingCostUsd: roundUsd(remaining),
    remainingUpperBoundCostUsd: roundUsd(remainingUpperBound),
    tasks,
    templateTasks,
  };
}

/** Dollars to a millionth, so printed figures carry no float noise. */
function roundUsd(value: number): number {
  return Math.round(value * 1e6) / 1e6;
}
