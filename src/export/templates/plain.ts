/**
 * `plain`: LLaVA's pretraining (stage 1) template. The human turn is replaced by the image alone; the
 * sequence is `<image>` + answer + `\n`, and only the answer and the newline are trained
 * (LLaVA's `preprocess_plain` with `conv_llava_plain`, whose separator is `\n`).
 */
import type { ChatTokenizer } from '../../tokenizers/chat-tokenizer.js';
import type { ImageEncoder } from './images.js';
import { tokenizeParts } from './parts.js';
import { TemplateError, type ChatTemplate, type TemplateInput, type TokenizedConversation } from './template.js';

export const PLAIN_SEPARATOR = '\n';

export class PlainTemplate implements ChatTemplate {
  readonly name = 'plain';

  constructor(
    private readonly tokenizer: ChatTokenizer,
    private readonly images: ImageEncoder,
  ) {}

  tokenize(input: TemplateInput): TokenizedConversation {
    const turns = input.conversations;
    if (turns.length !== 2) {
      throw new TemplateError('template_turns', `plain takes one human and one gpt turn, got ${turns.length} turns`);
    }
    if (!input.image) throw new TemplateError('template_needs_image', 'plain trains a caption for an image; the sample has none');
    const image = this.images(input.image);
    return tokenizeParts(
      [
        { kind: 'image', ids: image.ids, after: image.after },
        { kind: 'text', text: turns[1]!.value, train: true, turn: 1 },
        { kind: 'text', text: PLAIN_SEPARATOR, train: true, turn: 1 },
      ],
      this.tokenizer,
      { bos: this.tokenizer.addBos },
    );
  }
}
