/**
 * `vicuna_v1`: LLaVA-1.5's finetuning template (`conv_vicuna_v1`, separator style TWO):
 *
 *     SYSTEM + " " + "USER: " + q1 + " " + "ASSISTANT: " + a1 + "</s>" + "USER: " + q2 + " " + ...
 *
 * Everything up to and including `ASSISTANT:` is masked; ` a1</s>` is trained (the space after the colon
 * merges into the answer's first token, exactly as LLaVA's `instruction_len - 2` arithmetic leaves it). The
 * end-of-turn token is the tokenizer's EOS (`</s>` for Llama/Vicuna). `<image>` becomes the placeholder id,
 * and the text after it is encoded as a new text (LLaVA's `tokenizer_image_token`). Text after `</s>` gets
 * the sentencepiece dummy prefix only in legacy mode; LLaVA compensates for non-legacy tokenizers with its
 * `round_len - 1` rule, which this construction matches by tokenizing what the model actually sees.
 *
 * LLaVA finds those boundaries by splitting the prompt text at `</s>` and `" ASSISTANT: "`; a conversation
 * whose text moves a split is refused (`separator_in_text`, see `llava-preprocess.ts`), since LLaVA would
 * mask all of it or train the wrong tokens.
 */
import { ConfigError } from '../../core/errors.js';
import type { ChatTokenizer } from '../../tokenizers/chat-tokenizer.js';
import type { ImageEncoder } from './images.js';
import { llavaV1RoundsProblem } from './llava-preprocess.js';
import { tokenizeParts, withImages, type Part } from './parts.js';
import { TemplateError, type ChatTemplate, type TemplateInput, type TokenizedConversation } from './template.js';

export const VICUNA_V1_SYSTEM =
  "A chat between a curious user and an artificial intelligence assistant. The assistant gives helpful, detailed, and polite answers to the user's questions.";

export class VicunaV1Template implements ChatTemplate {
  readonly name = 'vicuna_v1';
  private readonly eos: string;

  constructor(
    private readonly tokenizer: ChatTokenizer,
    private readonly images: ImageEncoder,
    private readonly system: string = VICUNA_V1_SYSTEM,
  ) {
    if (tokenizer.eosToken === null) throw new ConfigError(`template vicuna_v1 needs an EOS token; tokenizer ${tokenizer.source} names none (\`eos_token\` in tokenizer_config.json)`);
    tokenizer.requireId(tokenizer.eosToken, 'vicuna_v1 ends every answer with EOS');
    this.eos = tokenizer.eosToken;
    const problem = llavaV1RoundsProblem(system, [{ from: 'human', value: 'Hi.' }, { from: 'gpt', value: 'Hello.' }], this.eos);
    if (problem) throw new ConfigError(`template vicuna_v1: the system message ${JSON.stringify(system)} holds a separator LLaVA splits at (${JSON.stringify(this.eos)} or " ASSISTANT: "); every sample would be masked`);
  }

  tokenize(input: TemplateInput): TokenizedConversation {
    const problem = llavaV1RoundsProblem(this.system, input.conversations, this.eos);
    if (problem) throw new TemplateError('separator_in_text', problem.message);
    const image = input.image ? this.images(input.image) : null;
    const parts: Part[] = [{ kind: 'text', text: `${this.system} `, train: false, turn: -1 }];
    const turns = input.conversations;
    for (let i = 0; i + 1 < turns.length; i += 2) {
      parts.push({ kind: 'text', text: 'USER: ', train: false, turn: i });
      parts.push(...withImages(turns[i]!.value, i, image));
      parts.push({ kind: 'text', text: ' ASSISTANT:', train: false, turn: i });
      parts.push({ kind: 'text', text: ` ${turns[i + 1]!.value}`, train: true, turn: i + 1 });
      parts.push({ kind: 'special', token: this.eos, train: true, turn: i + 1 });
    }
    return tokenizeParts(parts, this.tokenizer, { bos: this.tokenizer.addBos });
  }
}
