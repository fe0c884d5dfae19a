/**
 * The instruction rows a recipe's synthesis gives every kept sample: per task, how many variants (an LLM
 * task `samplesPerTask`, a template task one). Resume (`store/done-rule.ts`) and `vlcurate export` use it to
 * tell a sample whose synthesis is complete from one that still lacks some (revived by `refilter`, or
 * recorded by a run killed before synthesis).
 */
import { isLlmTask } from './llm-tasks.js';

export interface WantedInstruction {
  task: string;
  /** Variants 0 .. variants-1. */
  variants: number;
}

export function wantedInstructions(synth: { tasks: readonly string[]; samplesPerTask: number } | undefined | null): WantedInstruction[] {
  return (synth?.tasks ?? []).map((task) => ({ task, variants: isLlmTask(task) ? synth!.samplesPerTask : 1 }));
}

/** The same, from a recipe as the run database stores it (`runs.recipe_json`); none when unreadable. */
export function wantedInstructionsOfStored(recipeJson: string | null | undefined): WantedInstruction[] {
  if (!recipeJson) return [];
  try {
    const synth = (JSON.parse(recipeJson) as { synth?: { tasks?: unknown; samplesPerTask?: unknown } }).synth;
    if (!synth || !Array.isArray(synth.tasks)) return [];
    const perTask = typeof synth.samplesPerTask === 'number' ? synth.samplesPerTask : 1;
    return wantedInstructions({ tasks: synth.tasks.filter((t): t is string => typeof t === 'string'), samplesPerTask: perTask });
  } catch {
    return [];
  }
}
