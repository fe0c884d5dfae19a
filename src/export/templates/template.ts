import type { Turn } from '../../core/conversation.js';
import type { FailureCode } from '../../core/failure-codes.js';
import { VlcurateError } from '../../core/errors.js';

/** Label value of positions that carry no loss (PyTorch's `CrossEntropyLoss(ignore_index=-100)`). */
export const IGNORE_INDEX = -100;

/** LLaVA's id for the `<image>` placeholder in `input_ids` (`IMAGE_TOKEN_INDEX`); the model splices features there. */
export const LLAVA_IMAGE_TOKEN_INDEX = -200;

/** What a template needs to know about one conversation. */
export interface TemplateInput {
  /** Validated turns (human first, alternating, ending with gpt), regions already rendered. */
  conversations: readonly Turn[];
  /** Size of the image the first human turn's `<image>` stands for; null for a text-only conversation. */
  image: { width: number; height: number } | null;
}

/** Text a run of trained tokens must decode to. */
export interface ExpectedSpan {
  /** The assistant text plus the template's terminators, e.g. `" The cat.</s>"` or `"The cat.<|im_end|>\n"`. */
  text: string;
  /**
   * Whitespace the first trained token may carry from just before the span (a sentencepiece dummy prefix,
   * or a template space merged into the first word). The decoded span may start with a suffix of this.
   */
  absorbable: string;
  /**
   * Leading whitespace of the span the token before it may have taken (`straddling: 'masked'`: Qwen masks
   * the first token after `assistant`, and `\n` + an answer starting with `\n` is one token). The decoded
   * span may lack a prefix of this.
   */
  droppable?: string;
  /** Index of the turn the span belongs to, for messages. */
  turn: number;
}

/** A conversation as token ids with its loss mask. */
export interface TokenizedConversation {
  inputIds: Int32Array;
  /** `inputIds[i]` where trained, {@link IGNORE_INDEX} elsewhere. */
  labels: Int32Array;
  /** What the trained runs must decode to, in order. */
  spans: ExpectedSpan[];
  /** `[start, end)` of each image's positions (placeholder or vision tokens); never trained, never cut. */
  imageRuns: [number, number][];
}

/** A per-sample problem a template found (bad turn structure for it, an image it cannot size, ...). */
export class TemplateError extends VlcurateError {
  declare readonly code: FailureCode;
  constructor(code: FailureCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}

/** A chat template: renders a conversation and tokenizes it with its loss mask. */
export interface ChatTemplate {
  readonly name: string;
  /** Throws {@link TemplateError} for a conversation this template cannot express. */
  tokenize(input: TemplateInput): TokenizedConversation;
}
