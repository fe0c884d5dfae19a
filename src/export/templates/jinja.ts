/**
 * A custom template: the `chat_template` (Jinja) of a `tokenizer_config.json`, rendered with
 * @huggingface/jinja. The mask is found by rendering turn by turn: for each assistant message k,
 *
 *     before = render(messages[:k], add_generation_prompt=True)
 *     after  = render(messages[:k+1])
 *
 * and the characters `after[len(before):]` of the full rendering are trained. They must hold the assistant
 * content verbatim, after at most a whitespace separator; what follows it (`<|im_end|>\n`, `</s>`, ...) is the template's terminator and
 * is trained too. A template whose renderings are not prefixes of each other, or that rewrites the content,
 * fails the sample with a reason instead of guessing. Messages are `{role: user|assistant|system, content}`
 * with `<image>` left in the text; each `<image>` of the rendering becomes the image's ids.
 */
import { Template } from '@huggingface/jinja';
import { ConfigError } from '../../core/errors.js';
import type { ChatTokenizer } from '../../tokenizers/chat-tokenizer.js';
import type { ImageEncoder } from './images.js';
import { tokenizeParts, withImages, type Part } from './parts.js';
import { TemplateError, type ChatTemplate, type TemplateInput, type TokenizedConversation } from './template.js';

interface Message {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

export class JinjaTemplate implements ChatTemplate {
  private readonly template: Template;

  constructor(
    readonly name: string,
    source: string,
    private readonly tokenizer: ChatTokenizer,
    private readonly images: ImageEncoder,
    /** A system message put first; undefined or null lets the template decide (most add a default). */
    private readonly system: string | null = null,
  ) {
    try {
      this.template = new Template(source);
    } catch (err) {
      throw new ConfigError(`chat template ${name}: cannot parse it (${(err as Error).message})`, { cause: err });
    }
  }

  private render(messages: readonly Message[], addGenerationPrompt: boolean): string {
    try {
      return this.template.render({
        messages,
        add_generation_prompt: addGenerationPrompt,
        bos_token: this.tokenizer.bosToken ?? '',
        eos_token: this.tokenizer.eosToken ?? '',
      });
    } catch (err) {
      throw new TemplateError('template_error', `chat template ${this.name} failed to render: ${(err as Error).message}`);
    }
  }

  tokenize(input: TemplateInput): TokenizedConversation {
    const messages: Message[] = [];
    if (this.system !== null) messages.push({ role: 'system', content: this.system });
    const offset = messages.length;
    for (const turn of input.conversations) messages.push({ role: turn.from === 'human' ? 'user' : 'assistant', content: turn.value });
    const full = this.render(messages, false);

    const regions: { start: number; end: number; turn: number }[] = [];
    for (let k = offset; k < messages.length; k++) {
      const message = messages[k]!;
      if (message.role !== 'assistant') continue;
      const turn = k - offset;
      const before = this.render(messages.slice(0, k), true);
      const after = this.render(messages.slice(0, k + 1), false);
      if (!after.startsWith(before) || !full.startsWith(after)) {
        throw new TemplateError('template_not_incremental', `chat template ${this.name}: the rendering up to turn ${turn} is not a prefix of the next one, so its mask cannot be found`);
      }
      const trained = after.slice(before.length);
      // The content, verbatim, after at most a separator of whitespace (Llama-2-chat renders ' ' + content).
      const at = trained.indexOf(message.content);
      if (at < 0 || trained.slice(0, at).trim().length > 0) {
        throw new TemplateError('template_rewrites_turn', `chat template ${this.name}: turn ${turn} is not rendered verbatim after the generation prompt`);
      }
      regions.push({ start: before.length, end: after.length, turn });
    }

    const image = input.image ? this.images(input.image) : null;
    const parts: Part[] = [];
    let at = 0;
    for (const region of regions) {
      if (region.start > at) parts.push(...withImages(full.slice(at, region.start), -1, image));
      parts.push({ kind: 'text', text: full.slice(region.start, region.end), train: true, turn: region.turn });
      at = region.end;
    }
    if (at < full.length) parts.push(...withImages(full.slice(at), -1, image));
    return tokenizeParts(parts, this.tokenizer, { bos: false });
  }
}
