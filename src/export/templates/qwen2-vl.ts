/**
 * `qwen2_vl`: ChatML as Qwen2-VL is finetuned with.
 *
 *     <|im_start|>system\nYou are a helpful assistant.<|im_end|>\n
 *     <|im_start|>user\n<|vision_start|><|image_pad|>...<|vision_end|>\nWhat is this?<|im_end|>\n
 *     <|im_start|>assistant\nA cat.<|im_end|>\n
 *
 * Trained: each assistant content + `<|im_end|>` + `\n` (the reference finetuning code masks the first three
 * tokens of an assistant message, `<|im_start|>assistant\n`, and trains the rest). `<image>` in a turn is
 * replaced by the vision tokens, N `<|image_pad|>` from `smart_resize`; the text around it stays as it is.
 */
import type { ChatTokenizer } from '../../tokenizers/chat-tokenizer.js';
import type { ImageEncoder } from './images.js';
import { tokenizeParts, withImages, type Part } from './parts.js';
import type { ChatTemplate, TemplateInput, TokenizedConversation } from './template.js';

export const QWEN2_VL_SYSTEM = 'You are a helpful assistant.';

export class Qwen2VlTemplate implements ChatTemplate {
  readonly name = 'qwen2_vl';

  constructor(
    private readonly tokenizer: ChatTokenizer,
    private readonly images: ImageEncoder,
    /** Null leaves the system message out. */
    private readonly system: string | null = QWEN2_VL_SYSTEM,
  ) {
    tokenizer.requireId('<|im_start|>', 'ChatML');
    tokenizer.requireId('<|im_end|>', 'ChatML');
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
        parts.push(...withImages(turn.value, i, image));
        parts.push({ kind: 'special', token: '<|im_end|>', train: false, turn: i });
        parts.push({ kind: 'text', text: '\n', train: false, turn: i });
      } else {
        header('assistant', i);
        parts.push({ kind: 'text', text: turn.value, train: true, turn: i });
        parts.push({ kind: 'special', token: '<|im_end|>', train: true, turn: i });
        parts.push({ kind: 'text', text: '\n', train: true, turn: i });
      }
    });
    return tokenizeParts(parts, this.tokenizer, { bos: false });
  }
}
