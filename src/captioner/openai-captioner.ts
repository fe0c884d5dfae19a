/**
 * A captioner backed by an OpenAI-compatible vision chat model (a VLM served by vLLM, SGLang, Ollama or
 * an API): each image goes as a data URL with the captioning prompt, and K captions come back from K
 * requests with different seeds. Requests share the LLM client's limits, retries, budget and cache
 * (an image already captioned with the same prompt and seed is never sent again).
 *
 * An image whose captions are missing for a reason a later run can fix (the client stopped on a rejected
 * key or a server it cannot reach, a timeout or dropped connection after the retries, the budget) is held
 * back (`heldBack`): deciding it on fewer captions than asked for would drop or publish it for good.
 */
import { createHash } from 'node:crypto';
import { z } from 'zod';
import { LlmClient, type ChatRequest, type LlmResponseStore } from '../backends/llm-client.js';
import { LlmError } from '../backends/llm-errors.js';
import { isResumableLlmCode, STOP_CODES, type FailureCode } from '../core/failure-codes.js';
import { llmOptionsSchema } from '../backends/llm-options.js';
import type { CaptionerType } from './captioner-type.js';

export const openaiCaptionerSchema = llmOptionsSchema
  .extend({
    type: z.literal('openai'),
    /** Captions per image (K). Default 3. */
    samples: z.number().int().min(1).default(3),
    /** What the model is asked for each image. */
    prompt: z.string().min(1).default('Write one short sentence that captions this image, naming the main objects, their colours and where they are. Reply with the caption only.'),
    /** Most tokens per caption. Default 60. */
    maxTokens: z.number().int().min(1).default(60),
    /** Image detail level sent with the image (`low` is cheapest on OpenAI). Default `low`. */
    detail: z.enum(['auto', 'low', 'high']).default('low'),
  })
  .strict();

export type OpenAiCaptionerOptions = z.infer<typeof openaiCaptionerSchema>;

export interface CaptionImage {
  key: string;
  bytes: Buffer;
  /** e.g. `image/jpeg`, `image/png`. */
  mime: string;
}

export interface ImageCaptions {
  key: string;
  captions: string[];
  /** Requests that failed for good (their captions are missing from `captions`). */
  errors: { seed: number; code: FailureCode | 'empty_caption'; message: string }[];
  /**
   * Set when a request failed for a reason a later run can fix: the stop of the client (`key_rejected`,
   * `server_unreachable`) when there is one, else the first such failure. Null when every caption came
   * back or failed for good.
   */
  heldBack: { code: FailureCode; message: string } | null;
}

export interface OpenAiCaptionerDeps {
  /** The response cache (the run database's `llm_cache`); none: every request is sent. */
  llmCache?: LlmResponseStore;
  client?: LlmClient;
  env?: Record<string, string | undefined>;
  maxCostUsd?: number | null;
  minuteMs?: number;
}

/** A caption as a model writes it, made one plain line: quotes and a "Caption:" prefix removed. */
export function cleanCaption(text: string): string {
  let line = text.trim().split('\n').find((l) => l.trim() !== '') ?? '';
  line = line.trim().replace(/^caption\s*:\s*/i, '');
  line = line.replace(/^["'\u201c\u2018](.*)["'\u201d\u2019]$/, '$1');
  return line.replace(/\s+/g, ' ').trim();
}

export class OpenAiCaptioner {
  static readonly type = 'openai';
  readonly client: LlmClient;
  private readonly promptHash: string;

  constructor(
    readonly options: OpenAiCaptionerOptions,
    deps: OpenAiCaptionerDeps = {},
  ) {
    const { type: _type, samples: _samples, prompt: _prompt, detail: _detail, ...llm } = options;
    this.client =
      deps.client ??
      new LlmClient(llm, {
        cache: deps.llmCache ?? null,
        env: deps.env,
        maxCostUsd: deps.maxCostUsd ?? null,
        minuteMs: deps.minuteMs,
        optionPath: 'captioner',
      });
    this.promptHash = createHash('sha256').update(`captioner\0${options.prompt}`).digest('hex');
  }

  private request(image: CaptionImage, seed: number): ChatRequest {
    return {
      messages: [
        {
          role: 'user',
          content: [
            { type: 'text', text: this.options.prompt },
            { type: 'image_url', image_url: { url: `data:${image.mime};base64,${image.bytes.toString('base64')}`, detail: this.options.detail } },
          ],
        },
      ],
      parameters: { seed, max_tokens: this.options.maxTokens },
      promptHash: this.promptHash,
    };
  }

  /** K captions per image with the failures of each, all images and seeds concurrently within the client's limits. */
  async captionDetailed(images: readonly CaptionImage[], k: number = this.options.samples, signal?: AbortSignal): Promise<ImageCaptions[]> {
    return Promise.all(
      images.map(async (image) => {
        const results = await Promise.all(
          Array.from({ length: k }, async (_, seed) => {
            try {
              const result = await this.client.complete(this.request(image, seed), { signal });
              const caption = cleanCaption(result.text);
              return caption === '' ? { seed, error: { code: 'empty_caption' as const, message: 'the model answered with no text' } } : { seed, caption };
            } catch (err) {
              if (err instanceof LlmError) return { seed, error: { code: err.code, message: err.message } };
              throw err;
            }
          }),
        );
        const errors = results.flatMap((r) => ('error' in r && r.error ? [{ seed: r.seed, ...r.error }] : []));
        const resumable = errors.flatMap((e) => (isResumableLlmCode(e.code) ? [{ ...e, code: e.code }] : []));
        const cause = resumable.find((e) => STOP_CODES.has(e.code)) ?? resumable[0];
        return {
          key: image.key,
          captions: results.flatMap((r) => ('caption' in r && r.caption !== undefined ? [r.caption] : [])),
          errors,
          heldBack: cause ? { code: cause.code, message: cause.message } : null,
        };
      }),
    );
  }

  /** K captions per image (fewer where requests failed for good). */
  async caption(images: readonly CaptionImage[], k: number = this.options.samples, signal?: AbortSignal): Promise<string[][]> {
    return (await this.captionDetailed(images, k, signal)).map((r) => r.captions);
  }
}

/** The recipe's `captioner: { type: openai }`: 8 images per call, each image's K requests concurrent within the client's limits. */
export const openaiCaptionerType: CaptionerType<typeof openaiCaptionerSchema> = {
  type: 'openai',
  schema: openaiCaptionerSchema,
  async load(options, ctx) {
    const captioner = new OpenAiCaptioner(options, { llmCache: ctx.llmCache, maxCostUsd: ctx.maxCostUsd });
    return {
      model: options.model,
      batchSize: 8,
      captionBatch: (images) => captioner.captionDetailed(images.map((i) => ({ key: i.key, bytes: i.bytes, mime: `image/${i.format}` }))),
      close: async () => {},
    };
  },
};
