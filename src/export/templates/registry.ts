import { readFileSync } from 'node:fs';
import { ConfigError } from '../../core/errors.js';
import type { ChatTokenizer } from '../../tokenizers/chat-tokenizer.js';
import { placeholderImages, qwenVisionImages, type ImageEncoder } from './images.js';
import { JinjaTemplate } from './jinja.js';
import { PlainTemplate } from './plain.js';
import { Qwen2VlTemplate } from './qwen2-vl.js';
import type { QwenImageText } from './qwen-user-text.js';
import type { SmartResizeOptions } from '../../core/smart-resize.js';
import { LLAVA_IMAGE_TOKEN_INDEX, type ChatTemplate } from './template.js';
import { VicunaV1Template } from './vicuna-v1.js';

export interface TemplateSettings {
  /** System message. Undefined: the template's default; null: none (qwen2_vl, custom templates). */
  system?: string | null;
  /** Id of the `<image>` placeholder in LLaVA-style templates (`plain`, `vicuna_v1`). Default -200. */
  imagePlaceholderId?: number;
  /** Image sizing for Qwen2-VL vision tokens. */
  resize?: SmartResizeOptions;
  /** `qwen2_vl`: how user text sits around the image (`stripped`, default, or `verbatim`). */
  qwenImageText?: QwenImageText;
  /**
   * How a custom template's `<image>` becomes ids: `placeholder` (one id) or `qwen2_vl` (vision tokens).
   * Default: `qwen2_vl` when the tokenizer has `<|image_pad|>`, else `placeholder`.
   */
  imageTokens?: 'placeholder' | 'qwen2_vl';
}

type Factory = (tokenizer: ChatTokenizer, settings: TemplateSettings) => ChatTemplate;

function placeholder(settings: TemplateSettings): ImageEncoder {
  return placeholderImages(settings.imagePlaceholderId ?? LLAVA_IMAGE_TOKEN_INDEX);
}

function customImages(tokenizer: ChatTokenizer, settings: TemplateSettings): ImageEncoder {
  const mode = settings.imageTokens ?? (tokenizer.tokenId('<|image_pad|>') !== undefined ? 'qwen2_vl' : 'placeholder');
  return mode === 'qwen2_vl' ? qwenVisionImages(tokenizer, settings.resize) : placeholder(settings);
}

/** Built-in templates by name, plus `chat_template` (the tokenizer's own Jinja template). */
const TEMPLATES: ReadonlyMap<string, Factory> = new Map<string, Factory>([
  ['plain', (tokenizer, settings) => new PlainTemplate(tokenizer, placeholder(settings))],
  [
    'vicuna_v1',
    (tokenizer, settings) => new VicunaV1Template(tokenizer, placeholder(settings), settings.system ?? undefined),
  ],
  [
    'qwen2_vl',
    (tokenizer, settings) =>
      new Qwen2VlTemplate(tokenizer, qwenVisionImages(tokenizer, settings.resize), settings.system === undefined ? undefined : settings.system, settings.qwenImageText),
  ],
  [
    'chat_template',
    (tokenizer, settings) => {
      if (tokenizer.chatTemplate === null) {
        throw new ConfigError(`template chat_template: tokenizer ${tokenizer.source} has no \`chat_template\` string in its tokenizer_config.json`);
      }
      return new JinjaTemplate('chat_template', tokenizer.chatTemplate, tokenizer, customImages(tokenizer, settings), settings.system ?? null);
    },
  ],
]);

export const TEMPLATE_NAMES: readonly string[] = [...TEMPLATES.keys()];

/** A template file (`.jinja` or `.j2`), by path. */
export function isTemplateFile(name: string): boolean {
  return /\.(jinja|j2)$/i.test(name);
}

/**
 * The template `name`: a built-in (`plain`, `vicuna_v1`, `qwen2_vl`), `chat_template`, or the path of a
 * `.jinja`/`.j2` file (already resolved by the caller).
 */
export function createTemplate(name: string, tokenizer: ChatTokenizer, settings: TemplateSettings = {}): ChatTemplate {
  const factory = TEMPLATES.get(name);
  if (factory) return factory(tokenizer, settings);
  if (isTemplateFile(name)) {
    let source: string;
    try {
      source = readFileSync(name, 'utf8');
    } catch (err) {
      throw new ConfigError(`template: cannot read ${name} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`, { cause: err });
    }
    return new JinjaTemplate(name, source, tokenizer, customImages(tokenizer, settings), settings.system ?? null);
  }
  throw new ConfigError(`Expected \`template\` to be one of ${TEMPLATE_NAMES.join(', ')} or a .jinja file, got ${JSON.stringify(name)}`);
}
