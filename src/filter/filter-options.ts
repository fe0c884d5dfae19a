import { z } from 'zod';
import { modelRuntimeSchema } from '../core/runtime-settings.js';

/**
 * One score's cut. Exactly one of `threshold` (absolute), `percentile` (keep captions at or above the
 * run's p-th percentile of this score) or `topFraction` (keep the best fraction of the run's captions)
 * may be set. Run-level cuts are computed over every caption the run scored, so they are decided after
 * scoring (see `resolveCuts`).
 */
function cutFields(scoreRange: { min: number; max: number; what: string }) {
  return {
    /** Model folder (see README "Model folder layouts"). */
    model: z.string().min(1),
    /** `fp32` (default), `fp16` or `quantized` weights. */
    variant: z.enum(['fp32', 'fp16', 'quantized']).default('fp32'),
    // A cut outside the score's range keeps everything or nothing: surely a mistake.
    threshold: z
      .number()
      .min(scoreRange.min, `expected a threshold from ${scoreRange.min} to ${scoreRange.max} (${scoreRange.what})`)
      .max(scoreRange.max, `expected a threshold from ${scoreRange.min} to ${scoreRange.max} (${scoreRange.what})`)
      .optional(),
    percentile: z.number().min(0).max(100).optional(),
    topFraction: z.number().gt(0).max(1).optional(),
    /** Device, threads, workers of this model; unset fields come from the recipe's top-level `runtime`. */
    runtime: modelRuntimeSchema.optional(),
  };
}

export const ITC_RANGE = { min: -1, max: 1, what: 'a cosine similarity' };
export const ITM_RANGE = { min: 0, max: 1, what: 'a probability' };

function oneCut(value: { threshold?: number | undefined; percentile?: number | undefined; topFraction?: number | undefined }): boolean {
  return [value.threshold, value.percentile, value.topFraction].filter((v) => v !== undefined).length <= 1;
}
const ONE_CUT = { message: 'set at most one of threshold, percentile, topFraction' };

/** ITC (cosine of a dual encoder). Default cut: threshold 0.28 (LAION's cut for CLIP ViT-B/32). */
export const itcFilterSchema = z.strictObject(cutFields(ITC_RANGE)).refine(oneCut, ONE_CUT);
/** ITM (p(match) of a fusion encoder). Default cut: threshold 0.5 (BLIP's CapFilt). */
export const itmFilterSchema = z.strictObject(cutFields(ITM_RANGE)).refine(oneCut, ONE_CUT);

export const DEFAULT_ITC_THRESHOLD = 0.28;
export const DEFAULT_ITM_THRESHOLD = 0.5;

export const FILTER_POLICIES = ['itc', 'itm', 'both', 'either'] as const;
export type FilterPolicy = (typeof FILTER_POLICIES)[number];

export const filterOptionsSchema = z
  .strictObject({
    itc: itcFilterSchema.optional(),
    itm: itmFilterSchema.optional(),
    /**
     * Which scores a caption must pass: `itc`, `itm`, `both`, `either`. Default: `both` when both models
     * are configured, otherwise the one that is.
     */
    policy: z.enum(FILTER_POLICIES).optional(),
    /** Keep at most this many passing captions per image, the best first (BLIP-2 kept 2). */
    topK: z.number().int().min(1).optional(),
    /** Score that ranks captions for `topK` (default: itm when configured, else itc). */
    topKBy: z.enum(['itc', 'itm']).optional(),
    /**
     * When the web caption passes, keep it alone and drop the synthetic ones (`web_caption_kept`):
     * recaptions only stand in for web captions that failed.
     */
    preferWeb: z.boolean().default(false),
    /**
     * Which images the captioner writes for: `always` (BLIP's CapFilt), or `web-failed` (only images
     * none of whose own captions passed; cheaper).
     */
    recaption: z.enum(['always', 'web-failed']).default('always'),
    /** Images per inference batch (captions of those images are scored together). */
    batchSize: z.number().int().min(1).default(32),
  })
  .superRefine((value, ctx) => {
    if (!value.itc && !value.itm) ctx.addIssue({ code: 'custom', message: 'configure `itc`, `itm` or both', path: [] });
    const policy = value.policy;
    if ((policy === 'itc' || policy === 'both' || policy === 'either') && !value.itc) {
      ctx.addIssue({ code: 'custom', message: `policy "${policy}" needs \`filter.itc\``, path: ['policy'] });
    }
    if ((policy === 'itm' || policy === 'both' || policy === 'either') && !value.itm) {
      ctx.addIssue({ code: 'custom', message: `policy "${policy}" needs \`filter.itm\``, path: ['policy'] });
    }
    if (value.topKBy && !value[value.topKBy]) {
      ctx.addIssue({ code: 'custom', message: `topKBy "${value.topKBy}" needs \`filter.${value.topKBy}\``, path: ['topKBy'] });
    }
  });

export type FilterOptions = z.output<typeof filterOptionsSchema>;
