/** Options of the `synth` stage (recipe key `synth`), each with its default. */
import { z } from 'zod';
import { llmOptionsSchema } from '../backends/llm-options.js';
import { REGION_FORMATS } from '../regions/region-format.js';

export const SYNTH_TASKS = ['conversation', 'detail', 'reasoning', 'stage1', 'grounding', 'referring'] as const;
export type SynthTask = (typeof SYNTH_TASKS)[number];

export const synthBatchSchema = z
  .object({
    /** Send LLM requests through the OpenAI Batch API instead of one by one. Default false. */
    enabled: z.boolean().default(false),
    /** Samples gathered into one batch request file. Default 500. */
    size: z.number().int().min(1).default(500),
    /** How often a submitted batch is polled, in milliseconds. Default 30,000. */
    pollIntervalMs: z.number().int().min(1).default(30_000),
    /**
     * Longest wait for one batch, in milliseconds (default 25 h, past the 24 h completion window). Requests
     * still unanswered are recorded as failed (`batch_incomplete`); a later run collects the batch.
     */
    maxWaitMs: z.number().int().min(1).default(25 * 3_600_000),
    /** Folder for request files and the batch ledger; default `batches/` beside the run database. */
    dir: z.string().min(1).optional(),
  })
  .strict();

export const synthOptionsSchema = z
  .object({
    /** The LLM endpoint; required when `tasks` lists conversation, detail or reasoning. */
    llm: llmOptionsSchema.optional(),
    /** Which instruction samples to make. Default: the two that need no LLM. */
    tasks: z
      .array(z.enum(SYNTH_TASKS))
      .min(1)
      .refine((tasks) => new Set(tasks).size === tasks.length, 'expected each task once')
      .default(['stage1', 'grounding']),
    /** LLM-written samples per task and image (variants 0, 1, ...). Default 1. */
    samplesPerTask: z.number().int().min(1).default(1),
    /** Answers tried per LLM sample: the first, then fresh samples after rejected answers. Default 3. */
    maxAttempts: z.number().int().min(1).default(3),
    /**
     * Region format of grounding and referring samples: `llava`, `qwen2vl`, `qwenvl`, `qwen25vl`, or
     * `placeholder` (pixel-corner `<region>` tags that each export renders in its own format). Default `placeholder`, so one run serves every export format.
     */
    regionFormat: z.enum(REGION_FORMATS).default('placeholder'),
    /**
     * `llava` regions relative to the image padded to a centred square, as LLaVA-1.5 trains
     * (`image_aspect_ratio: pad`). Default true; false: fractions of the image itself.
     */
    padToSquare: z.boolean().default(true),
    /** Most question and answer turns in one grounding or referring sample. Default 10. */
    maxRegions: z.number().int().min(1).default(10),
    /** Seed of every random choice (instructions, region order, request seeds). Default 0. */
    seed: z.number().int().default(0),
    /** Samples in the stage at once (their LLM requests queue in the client). Default 64. */
    concurrency: z.number().int().min(1).default(64),
    /** Samples per database transaction (a partial group is committed after 500 ms). Default 32. */
    commitEvery: z.number().int().min(1).default(32),
    /** Folder with custom prompts in the layout of the bundled `prompts/`; relative to the recipe. */
    promptsDir: z.string().min(1).optional(),
    /** OpenAI Batch API mode. */
    batch: synthBatchSchema.default(() => synthBatchSchema.parse({})),
  })
  .strict();

export type SynthOptions = z.infer<typeof synthOptionsSchema>;
