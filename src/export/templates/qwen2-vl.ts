/**
 * `qwen2_vl`: ChatML as Qwen2-VL / Qwen2.5-VL are finetuned with Qwen's own code
 * (`qwen-vl-finetune/qwenvl/data/data_processor.py`: the processor's chat template, then its label rule).
 *
 *     <|im_start|>system\nYou are a helpful assistant.<|im_end|>\n
 *     <|im_start|>user\n<|vision_start|><|image_pad|>...<|vision_end|>What is this?<|im_end|>\n
 *     <|im_start|>assistant\nA cat.<|im_end|>\n
 *
 * User text: with `imageText: 'stripped'` (default) each segment around `<image>` is stripped and follows
 * `<|vision_end|>` directly, as the chat template renders a content list; `verbatim` keeps the text as it
 * is (`<|vision_end|>\nWhat is this?`), as the earlier string-replacing finetune code did
 * (`qwen-user-text.ts`). `<image>` becomes the vision tokens, N `<|image_pad|>` from `smart_resize`.
 *
 * Trained: each assistant message from the second token after `assistant` through `<|im_end|>` and the
 * `\n` after it (Qwen's rule: `ans_start = pos + 2`, labels up to `<|im_end|>` + 1). The token after
 * `assistant` is masked whatever it holds: for an answer starting with `\n`, `\n\n` (one token) is masked
 * and the answer's first newline with it.
 *
 * Qwen's rule finds answers by the `assistant` token alone, so an `assistant` token in a user or system
 * message (`<image>assistant, ...`, `(assistant`) would start a trained run there; such a conversation is
 * refused (`assistant_token_in_text`) in `stripped` mode, the mode that code reads.
 */
import type { ChatTokenizer } from '../../tokenizers/chat-tokenizer.js';
import type { ImageEncoder } from './images.js';
import { tokenizeParts, withImages, type Part } from './parts.js';
import { strippedUserText, type QwenImageText } from './qwen-user-text.js';
import { IGNORE_INDEX, TemplateError, type ChatTemplate, type TemplateInput, type TokenizedConversation } from './template.js';

export const QWEN2_VL_SYSTEM = 'You are a helpful assistant.';

export class Qwen2VlTemplate implements ChatTemplate {
  readonly name = 'qwen2_vl';
  private readonly imStart: number;
  /** Id of `assistant` when it is one token (Qwen2: 77091), the token Qwen's label rule looks for. */
  private readonly assistantId: number | null;

  constructor(
    private readonly tokenizer: ChatTokenizer,
    private readonly images: ImageEncoder,
    /** Null leaves the system message out. */
    private readonly system: string | null = QWEN2_VL_SYSTEM,
    readonly imageText: QwenImageText = 'stripped',
  ) {
    this.imStart = tokenizer.requireId('<|im_start|>', 'ChatML');
    tokenizer.requireId('<|im_end|>', 'ChatML');
    const assistant = tokenizer.encodeText('assistant', false);
    this.assistantId = assistant.length === 1 ? assistant[0]! : null;
  }

  tokenize(input: TemplateInput): TokenizedConversation {
    const image = input.image ? this.images(input.image) : null;
    const parts: Part[] = [];
    const header = (role: string, turn: number) => {
      parts.push({ kind: 'special', token: '<|im_start|>', train: false, turn });
      parts.push({ kind: 'text', text: `${role}\n`, train: false, turn });
    };
    if (this.system !== null) {
      header('system', -1);
      parts.push({ kind: 'text', text: this.system, train: false, turn: -1 });
      parts.push({ kind: 'special', token: '<|im_end|>', train: false, turn: -1 });
      parts.push({ kind: 'text', text: '\n', train: false, turn: -1 });
    }
    input.conversations.forEach((turn, i) => {
      if (turn.from === 'human') {
        header('user', i);
        parts.push(...withImages(this.imageText === 'stripped' ? strippedUserText(turn.value) : turn.value, i, image));
        parts.push({ kind: 'special', token: '<|im_end|>', train: false, turn: i });
        parts.push({ kind: 'text', text: '\n', train: false, turn: i });
      } else {
        header('assistant', i);
        parts.push({ kind: 'text', text: turn.value, train: true, turn: i });
        parts.push({ kind: 'special', token: '<|im_end|>', train: true, turn: i });
        parts.push({ kind: 'text', text: '\n', train: true, turn: i });
      }
    });
    const tokenized = tokenizeParts(parts, this.tokenizer, { bos: false, straddling: 'masked' });
    if (this.imageText === 'stripped') this.refuseStrayHeader(tokenized);
    return tokenized;
  }

  /** An untrained `assistant` token that does not follow `<|im_start|>` would be trained by Qwen's rule. */
  private refuseStrayHeader({ inputIds, labels }: TokenizedConversation): void {
    if (this.assistantId === null) return;
    for (let i = 0; i < inputIds.length; i++) {
      if (inputIds[i] !== this.assistantId || labels[i] !== IGNORE_INDEX || inputIds[i - 1] === this.imStart) continue;
      throw new TemplateError(
        'assistant_token_in_text',
        `token ${i} is "assistant" (id ${this.assistantId}) in a user or system message; Qwen's finetune code (data_processor.py) takes it for the start of an answer and would train the text after it`,
      );
    }
  }
}
