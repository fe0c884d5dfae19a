import { z } from 'zod';
import { onnxCaptionerOptionsSchema } from './onnx-captioner.js';
import { openaiCaptionerSchema } from './openai-captioner.js';

/**
 * The recipe's `captioner`: an ONNX encoder-decoder folder (`type: onnx`) or an OpenAI-compatible vision
 * chat model (`type: openai`).
 */
export const captionerOptionsSchema = z.discriminatedUnion('type', [onnxCaptionerOptionsSchema, openaiCaptionerSchema]);
export type CaptionerOptions = z.output<typeof captionerOptionsSchema>;

/**
 * Which images the captioner writes for: `always` (BLIP's CapFilt: every image), or `web-failed`
 * (cheaper: only images none of whose web or annotation captions passed the filter).
 */
export const RECAPTION_MODES = ['always', 'web-failed'] as const;
export type RecaptionMode = (typeof RECAPTION_MODES)[number];
