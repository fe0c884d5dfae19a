/**
 * Instruction samples in LLaVA's record shape. Conversations are stored exactly as exported: the first
 * human turn starts with `<image>\n` for samples with an image; turns alternate human, gpt, human, gpt...
 */

export type Speaker = 'human' | 'gpt';

export interface Turn {
  from: Speaker;
  value: string;
}

/** LLM-written tasks, and tasks derived from templates without an LLM. */
export type InstructionTask = 'conversation' | 'detail' | 'reasoning' | 'stage1' | 'grounding' | 'referring';

export const IMAGE_TOKEN = '<image>';

export interface InstructionSample {
  sampleKey: string;
  task: InstructionTask;
  /** Several samples of one task per image are numbered 0, 1, ... */
  variant: number;
  conversations: Turn[];
}

/** A sample that has been through synthesis: its instruction samples ride along to the exports. */
export interface WithInstructions {
  instructions?: InstructionSample[];
}
