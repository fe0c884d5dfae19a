import type { z } from 'zod';
import type { LlmResponseStore } from '../backends/llm-client.js';
import type { ResolvedModelRuntime } from '../core/runtime-settings.js';
import type { CaptionBatch } from './captioner-stage.js';
import type { PixelPreparer } from '../core/decoded-pixels.js';

/** What loading a captioner needs from the build. */
export interface CaptionerContext {
  /** Relative model paths resolve against this folder (the recipe's folder). */
  readonly baseDir: string;
  /** The run database's response cache (`store/llm-cache.ts`), for captioners that send requests. */
  readonly llmCache: LlmResponseStore;
  /** `--max-cost`: US dollars this run may spend on LLM requests (none when null). */
  readonly maxCostUsd: number | null;
  /** Device, threads and workers for a captioner that runs ONNX graphs (the recipe's resolved `runtime`). */
  readonly onnxRuntime?: ResolvedModelRuntime | undefined;
}

/** A captioner ready for the captioner stage. */
export interface LoadedCaptioner {
  /** Recorded as each synthetic caption's `model`. */
  readonly model: string;
  /** Images per call of `captionBatch`. */
  readonly batchSize: number;
  /** Batches the captioner stage keeps in flight (default 2). */
  readonly inFlight?: number;
  readonly captionBatch: CaptionBatch;
  /** The captioner's resize step, when it preprocesses pixels itself: the decode stage then prepares them once per image. */
  readonly preparer?: PixelPreparer;
  close(): Promise<void>;
}

/**
 * A registered captioner type: its recipe options schema (an object with `type: z.literal(...)`), a loader,
 * and the local model folder it reads, if any (fingerprinted with the run, so a retrained model in its place
 * does not count as the same settings).
 */
export interface CaptionerType<Schema extends z.core.$ZodTypeDiscriminable & z.ZodType<{ type: string }>> {
  readonly type: z.output<Schema>['type'];
  readonly schema: Schema;
  load(options: z.output<Schema>, ctx: CaptionerContext): Promise<LoadedCaptioner>;
  modelFolder?(options: z.output<Schema>): string;
}
