/**
 * Instruction samples in LLaVA's record shape. Conversations are stored exactly as exported: the first
 * human turn starts with `<image>\n` for samples with an image; turns alternate human, gpt, human, gpt...
 */

export type Speaker = 'human' | 'gpt';

export interface Turn {
  from: Speaker;
  value: string;
}

/**
 * LLM-written tasks, tasks derived from templates without an LLM, and `imported`: a conversation a source
 * brought with the image (a record of an existing LLaVA file), kept as it was.
 */
export type InstructionTask = 'imported' | 'conversation' | 'detail' | 'reasoning' | 'stage1' | 'grounding' | 'referring';

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
