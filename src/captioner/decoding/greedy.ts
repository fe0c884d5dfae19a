/**
 * Greedy decoding: the most likely next token (after the repetition penalty and minimum length), the
 * lowest id among equals. One caption per image.
 */
import { decodeIndependent, type LoopOptions } from './independent-rows.js';
import { argmax } from './logits.js';
import type { GeneratedSequence, GenerationSetup, StepModel } from './step-model.js';

/** Decode one sequence per row of `model` (which starts with `rows` rows holding the prefix). */
export function greedyDecode(model: StepModel, setup: GenerationSetup, options: LoopOptions, rows: number): Promise<GeneratedSequence[]> {
  return decodeIndependent(model, setup, options, rows, 1, (_row, logits) => argmax(logits));
}
