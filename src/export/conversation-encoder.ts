/**
 * One record, from stored turns to what an export writes: checked, regions rendered for the format, and —
 * when a tokenizer is configured — tokenized with the template's loss mask, verified, and fitted to
 * `maxLength`. Every problem is a result with a code, never an exception: the export records it on that
 * record and goes on.
 */
import type { FailureCode } from '../core/failure-codes.js';
import type { InstructionTask, Turn } from '../core/conversation.js';
import type { ChatTokenizer } from '../tokenizers/chat-tokenizer.js';
import { checkConversation, isProblem, type SourceRecord } from './instruction-records.js';
import { RegionError, type ModelRegionFormat } from '../regions/region-format.js';
import { renderRegions } from '../regions/render-regions.js';
import { fitLength, type OverLength } from './templates/fit-length.js';
import { llavaImageFirst, llavaV1RoundsProblem } from './templates/llava-preprocess.js';
import { strippedUserText, VIDEO_TOKEN, type QwenImageText } from './templates/qwen-user-text.js';
import { qwenImageProblem, type SmartResizeOptions } from '../core/smart-resize.js';
import { TemplateError, type ChatTemplate } from './templates/template.js';
import { verifyMasks } from './templates/verify.js';

export interface Tokenization {
  tokenizer: ChatTokenizer;
  /** Template for every task but stage 1. */
  template: ChatTemplate;
  /** Template for stage-1 records (LLaVA: `plain`). */
  stage1Template: ChatTemplate;
}

/** A LLaVA-family export: records as LLaVA's data code prepares them (`templates/llava-preprocess.ts`). */
export interface LlavaFamily {
  /**
   * System message of `vicuna_v1`, to check records against `preprocess_v1`'s splits when no tokenizer is
   * set (with one, the template checks); null: no check (records are trained with another template).
   */
  v1System: string | null;
}

/** Qwen-family exports (images become Qwen2-VL vision tokens): what their trainers require of a record. */
export interface QwenRules {
  /** How user text sits around the image; `stripped` writes it as Qwen's finetune code reads it. */
  imageText: QwenImageText;
}

export interface EncoderOptions {
  regionFormat: ModelRegionFormat;
  /** Set for LLaVA-family exports: `<image>` moved to the start of its turn, `preprocess_v1`'s splits checked. */
  llava?: LlavaFamily | null;
  /** Set for Qwen-family exports: images Qwen processors size alike, text as Qwen's finetune code reads it. */
  qwen?: QwenRules | null;
  /** `llava` regions relative to the image padded to a square. */
  padToSquare?: boolean;
  resize?: SmartResizeOptions;
  tokenization?: Tokenization | null;
  /** Longest sequence, visual tokens included; unset: no limit. */
  maxLength?: number;
  overLength: OverLength;
}

export interface EncodedTokens {
  inputIds: Int32Array;
  labels: Int32Array;
  /** Length before truncation, visual tokens included. */
  length: number;
  truncated: boolean;
}

export type EncodedRecord =
  | { status: 'ok'; conversations: Turn[]; hasImage: boolean; tokens: EncodedTokens | null }
  /** `dropped`: over `maxLength` with `overLength: drop`; `failed`: anything else. `length` when it was tokenized. */
  | { status: 'failed' | 'dropped'; code: FailureCode; message: string; length: number | null };

export class ConversationEncoder {
  constructor(private readonly options: EncoderOptions) {}

  get tokenizer(): ChatTokenizer | null {
    return this.options.tokenization?.tokenizer ?? null;
  }

  /** Check, render and (with a tokenizer) tokenize one record's turns for an image of this size. */
  encode(task: InstructionTask, turns: readonly Turn[], image: { width: number; height: number } | null): EncodedRecord {
    const tokenization = this.options.tokenization ?? null;
    const grounding = task === 'grounding' || task === 'referring';
    const checked = checkConversation(turns, (text) => tokenization?.tokenizer.findAddedToken(text) ?? null, grounding);
    if (isProblem(checked)) return { status: 'failed', ...checked, length: null };
    if (checked.hasImage && !image) {
      return { status: 'failed', code: 'image_missing', message: 'the record has <image> but the sample has no image', length: null };
    }
    const llava = this.options.llava ?? null;
    // LLaVA's preprocess_multimodal, for records with an image (it leaves text-only ones alone).
    const prepared = llava && checked.hasImage ? llavaImageFirst(turns) : turns;
    const qwen = this.options.qwen ?? null;
    if (qwen) {
      const problem = qwenProblem(turns, checked.hasImage ? image : null, qwen, this.options.resize);
      if (problem) return { status: 'failed', ...problem, length: null };
    }
    let conversations: Turn[];
    try {
      conversations = prepared.map((t) => ({ from: t.from, value: renderRegions(t.value, this.options.regionFormat, image, { resize: this.options.resize, padToSquare: this.options.padToSquare }) }));
    } catch (err) {
      if (err instanceof RegionError) return { status: 'failed', code: err.code, message: err.message, length: null };
      throw err;
    }
    // The text the JSON carries is the text the tokens were made from, and every Qwen loader reads it alike.
    if (qwen?.imageText === 'stripped') conversations = conversations.map((t) => (t.from === 'human' ? { from: t.from, value: strippedUserText(t.value) } : t));
    if (!tokenization) {
      if (llava?.v1System != null && task !== 'stage1') {
        const problem = llavaV1RoundsProblem(llava.v1System, conversations);
        if (problem) return { status: 'failed', code: 'separator_in_text', message: `vicuna_v1: ${problem.message}`, length: null };
      }
      return { status: 'ok', conversations, hasImage: checked.hasImage, tokens: null };
    }

    const template = task === 'stage1' ? tokenization.stage1Template : tokenization.template;
    let tokenized;
    try {
      tokenized = template.tokenize({ conversations, image: checked.hasImage ? image : null });
    } catch (err) {
      if (err instanceof TemplateError) return { status: 'failed', code: err.code, message: `${template.name}: ${err.message}`, length: null };
      throw err;
    }
    const length = tokenized.inputIds.length;
    const verdict = verifyMasks(tokenized, tokenization.tokenizer);
    if (!verdict.ok) return { status: 'failed', code: verdict.code, message: `${template.name}: ${verdict.message}`, length };
    const fitted = fitLength(tokenized, this.options.maxLength, this.options.overLength);
    if (!fitted.ok) return { status: fitted.code === 'over_length' ? 'dropped' : 'failed', code: fitted.code, message: fitted.message, length };
    return {
      status: 'ok',
      // A truncated record keeps, in its text too, only the whole rounds its tokens keep.
      conversations: fitted.truncated ? conversations.slice(0, 2 * fitted.answers) : conversations,
      hasImage: checked.hasImage,
      tokens: { inputIds: fitted.tokenized.inputIds, labels: fitted.tokenized.labels, length, truncated: fitted.truncated },
    };
  }

  encodeRecord(record: SourceRecord, image: { width: number; height: number } | null): EncodedRecord {
    return this.encode(record.task, record.conversations, image);
  }
}

/** A record a Qwen trainer would refuse or read differently: an image it cannot size, a `<video>` in user text. */
function qwenProblem(
  turns: readonly Turn[],
  image: { width: number; height: number } | null,
  qwen: QwenRules,
  resize: SmartResizeOptions | undefined,
): { code: FailureCode; message: string } | null {
  if (image) {
    const problem = qwenImageProblem(image.width, image.height, resize?.factor);
    if (problem) return problem;
  }
  if (qwen.imageText === 'stripped') {
    const turn = turns.findIndex((t) => t.from === 'human' && t.value.includes(VIDEO_TOKEN));
    if (turn >= 0) {
      return { code: 'text_video_token', message: `turn ${turn} contains ${VIDEO_TOKEN}, which Qwen's finetune code (data_processor.py) reads as a video placeholder` };
    }
  }
  return null;
}
