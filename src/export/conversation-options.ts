/**
 * Options shared by every export that writes conversations (LLaVA/Qwen JSON, WebDataset with
 * conversations), and loading the tokenizer and templates they name.
 */
import { isAbsolute, resolve } from 'node:path';
import { z } from 'zod';
import type { InstructionTask } from '../core/conversation.js';
import { ConfigError } from '../core/errors.js';
import { ChatTokenizer } from '../tokenizers/chat-tokenizer.js';
import type { EncoderOptions, QwenRules, Tokenization } from './conversation-encoder.js';
import type { ExportStats } from './export-stats.js';
import { ALL_TASKS } from './instruction-records.js';
import { MODEL_REGION_FORMATS, type ModelRegionFormat } from '../regions/region-format.js';
import { checkTokenizerFiles } from './tokenizer-files.js';
import { QWEN_IMAGE_TEXT_STYLES } from './templates/qwen-user-text.js';
import { createTemplate, isTemplateFile, type TemplateSettings } from './templates/registry.js';
import { VICUNA_V1_SYSTEM } from './templates/vicuna-v1.js';
import { resolveVisionPixels, type VisionPixels } from './templates/vision-pixels.js';

export const taskSchema = z.enum(ALL_TASKS as [InstructionTask, ...InstructionTask[]]);

/** Fields every conversation export accepts; each export type sets its own defaults around them. */
export const conversationFields = {
  /** Tasks whose records are written (`stage1` records come from captions when synthesis made none). */
  tasks: z.array(taskSchema).min(1).optional(),
  /** How regions in conversation text are written: llava | qwen2vl | qwenvl | qwen25vl. */
  regionFormat: z.enum(MODEL_REGION_FORMATS).optional(),
  /**
   * `llava` regions relative to the image padded to a centred square, as LLaVA-1.5 trains
   * (`image_aspect_ratio: pad`). Default true; false: fractions of the image itself.
   */
  padToSquare: z.boolean().optional(),
  /** Tokenizer folder (tokenizer.json, or vocab.json + merges.txt) or a tokenizer_config file in one. */
  tokenizer: z.string().min(1).optional(),
  /** plain | vicuna_v1 | qwen2_vl | chat_template | a .jinja file. Used with `tokenizer`. */
  template: z.string().min(1).optional(),
  /** Template for stage-1 records (LLaVA: plain). */
  stage1Template: z.string().min(1).optional(),
  /** Sentencepiece tokenizers: transformers' `legacy` flag; default from tokenizer_config.json, else true. */
  legacy: z.boolean().optional(),
  /** System message for vicuna_v1 / qwen2_vl / custom templates (null: none, where the template allows). */
  system: z.string().nullable().optional(),
  /** Id of the `<image>` placeholder in LLaVA templates. Default -200. */
  imagePlaceholderId: z.number().int().optional(),
  /** Longest sequence in tokens, visual tokens included. Default: no limit. */
  maxLength: z.number().int().positive().optional(),
  /** What happens to longer sequences: drop (default) or truncate. */
  overLength: z.enum(['drop', 'truncate']).optional(),
  /**
   * Qwen2-VL image sizing (vision token counts, Qwen2.5-VL coordinates): must match the trainer's image
   * processor. Default: the tokenizer folder's `preprocessor_config.json`, else 3136 and 1003520.
   */
  minPixels: z.number().int().positive().optional(),
  maxPixels: z.number().int().positive().optional(),
  /**
   * Qwen exports: how user text sits around the image. `stripped` (default): each segment around `<image>`
   * stripped, nothing between `<|vision_end|>` and the text, as Qwen's finetune code and chat template build
   * it (the JSON is written that way too); `verbatim`: the text as it is (`<|vision_end|>\nWhat...`), as the
   * earlier string-replacing finetune code built it.
   */
  qwenImageText: z.enum(QWEN_IMAGE_TEXT_STYLES).optional(),
} as const;

export type ConversationOptions = { [K in keyof typeof conversationFields]?: z.output<(typeof conversationFields)[K]> };

/** Defaults that depend on the export type. */
export interface ConversationDefaults {
  tasks: readonly InstructionTask[];
  regionFormat: ModelRegionFormat;
  /** Template when a tokenizer is set; null: chosen from the tokenizer (qwen2_vl for ChatML vocabularies, else vicuna_v1). */
  template: string | null;
  /** Stage-1 template; null: `plain` for LLaVA-style templates, else the template itself. */
  stage1Template: string | null;
  /**
   * The trainer family whatever the template: `llava` (records prepared as LLaVA's data code does), `qwen`
   * (images become Qwen2-VL vision tokens, text as Qwen's finetune code reads it).
   */
  family?: 'llava' | 'qwen';
}

/** Templates of LLaVA's own trainer. */
const LLAVA_TEMPLATES: readonly string[] = ['vicuna_v1', 'plain'];

const tokenizerCache = new Map<string, Promise<ChatTokenizer>>();

/** Load a tokenizer once per process and path (several exports of one build may name the same one). */
export function loadTokenizerCached(path: string, legacy: boolean | undefined): Promise<ChatTokenizer> {
  const key = `${path}\0${legacy ?? ''}`;
  let loading = tokenizerCache.get(key);
  if (!loading) {
    loading = ChatTokenizer.load(path, legacy === undefined ? {} : { legacy });
    tokenizerCache.set(key, loading);
    loading.catch(() => tokenizerCache.delete(key));
  }
  return loading;
}

export interface ResolvedConversationOptions {
  tasks: ReadonlySet<InstructionTask>;
  encoder: EncoderOptions;
  /** Names of the templates in use, for the stats file. */
  templateName: string | null;
  stage1TemplateName: string | null;
  tokenizerPath: string | null;
  /** Qwen2-VL image sizing in use, and where it came from. */
  visionPixels: VisionPixels;
  /** Region format and frame, and the tokenizer's `legacy` mode, for the stats file. */
  regions: ExportStats['regions'];
  legacy: ExportStats['legacy'];
  /** The Qwen rules in force; null for a LLaVA-family export. */
  qwen: QwenRules | null;
}

function resolvePath(baseDir: string, path: string): string {
  return isAbsolute(path) ? path : resolve(baseDir, path);
}

/** Load the tokenizer and templates the options name, and settle every default. */
export async function resolveConversationOptions(
  options: ConversationOptions,
  defaults: ConversationDefaults,
  baseDir: string,
): Promise<ResolvedConversationOptions> {
  const tokenizerPath = options.tokenizer ? resolvePath(baseDir, options.tokenizer) : null;
  const visionPixels = resolveVisionPixels(options, tokenizerPath);
  const resize = { minPixels: visionPixels.minPixels, maxPixels: visionPixels.maxPixels };
  const tasks = new Set(options.tasks ?? defaults.tasks);
  let tokenization: Tokenization | null = null;
  let templateName: string | null = null;
  let stage1TemplateName: string | null = null;
  if (tokenizerPath !== null) {
    checkTokenizerFiles(tokenizerPath, options.template ?? defaults.template);
    const tokenizer = await loadTokenizerCached(tokenizerPath, options.legacy);
    const templateOf = (name: string) => (isTemplateFile(name) ? resolvePath(baseDir, name) : name);
    templateName = templateOf(options.template ?? defaults.template ?? (tokenizer.tokenId('<|im_start|>') !== undefined ? 'qwen2_vl' : 'vicuna_v1'));
    stage1TemplateName = templateOf(
      options.stage1Template ??
        defaults.stage1Template ??
        (templateName === 'vicuna_v1' || templateName === 'plain' ? 'plain' : templateName),
    );
    const settings: TemplateSettings = { resize, qwenImageText: options.qwenImageText ?? 'stripped' };
    if (options.system !== undefined) settings.system = options.system;
    if (options.imagePlaceholderId !== undefined) settings.imagePlaceholderId = options.imagePlaceholderId;
    const template = createTemplate(templateName, tokenizer, settings);
    const stage1Template = stage1TemplateName === templateName ? template : createTemplate(stage1TemplateName, tokenizer, settings);
    tokenization = { tokenizer, template, stage1Template };
  } else if (options.template !== undefined) {
    // A template without a tokenizer would silently do nothing.
    throw new ConfigError('Expected `tokenizer` to be set when `template` is, got a template without a tokenizer');
  }
  // A LLaVA export, or LLaVA's templates: records as preprocess_multimodal prepares them; without a
  // tokenizer, a LLaVA export's records are checked against vicuna_v1's splits (its trainer's default).
  const llavaFamily = defaults.family === 'llava' || LLAVA_TEMPLATES.includes(templateName ?? '');
  const isQwen = defaults.family === 'qwen' || templateName === 'qwen2_vl' || stage1TemplateName === 'qwen2_vl';
  if (options.qwenImageText !== undefined && !isQwen) {
    throw new ConfigError(
      `Expected \`qwenImageText\` only on a Qwen export (type qwen2vl or qwen25vl, or template qwen2_vl), got ${JSON.stringify(options.qwenImageText)} with template ${JSON.stringify(templateName)}`,
    );
  }
  const qwen: QwenRules | null = isQwen ? { imageText: options.qwenImageText ?? 'stripped' } : null;
  const encoder: EncoderOptions = {
    regionFormat: options.regionFormat ?? defaults.regionFormat,
    llava: llavaFamily ? { v1System: tokenization === null && defaults.family === 'llava' ? (options.system ?? VICUNA_V1_SYSTEM) : null } : null,
    qwen,
    padToSquare: options.padToSquare ?? true,
    resize,
    tokenization,
    overLength: options.overLength ?? 'drop',
  };
  if (options.maxLength !== undefined) encoder.maxLength = options.maxLength;
  const tokenizer = tokenization?.tokenizer ?? null;
  return {
    tasks,
    encoder,
    templateName,
    stage1TemplateName,
    tokenizerPath,
    visionPixels,
    qwen,
    regions: regionSettings(encoder),
    legacy: tokenizer?.legacyFrom ? { value: tokenizer.legacy, from: tokenizer.legacyFrom } : null,
  };
}

/** The region format and, for `llava`, its frame (an export may change its format after resolving, so call again then). */
export function regionSettings(encoder: EncoderOptions): ExportStats['regions'] {
  return { format: encoder.regionFormat, padToSquare: encoder.regionFormat === 'llava' ? (encoder.padToSquare ?? true) : null };
}
