/**
 * One sample's synthesis, shared by the live and the batch pipelines: every instruction row the recipe
 * asks for (template tasks at once, LLM tasks through an `Ask`), and the sample with its accepted
 * instruction samples once the rows are known.
 */
import type { InstructionSample, WithInstructions } from '../core/conversation.js';
import { deferSample, type DecodedPair } from '../core/sample.js';
import type { InstructionRow } from '../store/instruction-store.js';
import { unfinishedSynthesis } from '../store/unfinished-synthesis.js';
import { isLlmTask, taskContext } from './llm-tasks.js';
import { runLlmTask, type Ask, type TaskOutcome } from './llm-task-runner.js';
import type { LlmTaskName, TaskPrompt } from './prompts.js';
import { seededPick } from './seeded.js';
import { SYNTH_TASKS, type SynthOptions } from './synth-options.js';
import { groundingSample, referringSample, stage1Sample, type InstructionLists, type TemplateResult } from './template-tasks.js';

/** A sample after synthesis: its accepted instruction samples attached. */
export type SynthesizedPair = DecodedPair & WithInstructions;

/** A template task's row before it has a sample key. */
export interface InstructionRowDraft {
  task: InstructionRow['task'];
  variant: number;
  status: 'ok' | 'not_applicable';
  code: string | null;
  message: string | null;
  conversations: InstructionRow['conversations'];
  requestHash: null;
  attempts: number;
}

/** What one task of one sample came to: an LLM task's outcome or a template task's row. */
export type SynthOutcome = TaskOutcome | InstructionRowDraft;

export interface SampleSynthesis {
  /** Every instruction row of one sample; LLM tasks run concurrently (the client enforces the limits). */
  synthesize(sample: DecodedPair, ask: Ask): Promise<SynthOutcome[]>;
  /** The rows to store, and the sample with its accepted instruction samples (and `deferred` when unfinished). */
  finish(sample: DecodedPair, outcomes: readonly SynthOutcome[]): { sample: SynthesizedPair; rows: InstructionRow[] };
}

const TASK_ORDER = new Map<string, number>(SYNTH_TASKS.map((task, i) => [task, i]));

export function sampleSynthesis(options: SynthOptions, prompts: ReadonlyMap<LlmTaskName, TaskPrompt>, lists: InstructionLists): SampleSynthesis {
  async function synthesize(sample: DecodedPair, ask: Ask): Promise<SynthOutcome[]> {
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

  function finish(sample: DecodedPair, outcomes: readonly SynthOutcome[]): { sample: SynthesizedPair; rows: InstructionRow[] } {
    const rows: InstructionRow[] = outcomes.map((o) => ({
      sampleKey: sample.key,
      task: o.task,
      variant: o.variant,
      status: o.status === 'pending' ? 'failed' : o.status,
      code: o.status === 'pending' ? 'batch_incomplete' : o.code,
      message: o.status === 'pending' ? 'the batch gave no answer for this request' : o.message,
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
    const unfinished = unfinishedSynthesis(rows);
    const synthesized: SynthesizedPair = { ...sample, instructions };
    return { sample: unfinished ? deferSample(synthesized, unfinished.stage, unfinished.reason) : synthesized, rows };
  }

  return { synthesize, finish };
}

function templateDraft(task: InstructionRow['task'], result: TemplateResult): InstructionRowDraft {
  return result.ok
    ? { task, variant: 0, status: 'ok', code: null, message: null, conversations: result.conversations, requestHash: null, attempts: 1 }
    : { task, variant: 0, status: 'not_applicable', code: result.code, message: result.detail, conversations: null, requestHash: null, attempts: 1 };
}
