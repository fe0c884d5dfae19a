/**
 * The graphs of a captioner model folder (vision encoder-decoder, the optimum / transformers.js layout):
 * which decoder layout a folder has, opening and checking its sessions, and running the encoder.
 *
 * `onnx/encoder_model.onnx` (`pixel_values` -> `last_hidden_state`) plus one of three decoder layouts,
 * tried in this order:
 * - `merged`: `onnx/decoder_model_merged.onnx` (`input_ids`, `encoder_hidden_states`,
 *   `past_key_values.{i}.key|value`, `use_cache_branch` -> `logits`, `present.{i}.key|value`).
 * - `pair`: `onnx/decoder_model.onnx` for step 0 (it must also return `present.*`), then
 *   `onnx/decoder_with_past_model.onnx` with the cache.
 * - `no-cache`: `onnx/decoder_model.onnx` alone; every step re-runs the whole sequence.
 * `_fp16` / `_quantized` variants are picked by name as for the other model folders. Layers, heads and
 * head size come from the declared `past_key_values.*` inputs, not from config.json (config.json is only
 * the fallback for heads and head size when the graph leaves them symbolic). How the decoders are stepped:
 * `decoder-stepper.ts`.
 */
import { existsSync } from 'node:fs';

import { OnnxSession } from '../backends/onnx-session.js';
import type { TensorData } from '../backends/onnx-tensor.js';
import { ConfigError } from '../core/errors.js';
import { listOnnxFiles, onnxPath, type ModelVariant } from '../models/model-files.js';
import { pickInput, pickOutput } from '../models/model-folder.js';
import type { OnnxSessionOptions, TensorTraffic } from '../backends/onnx-session.js';
import type { StepModel } from './decoding/step-model.js';
import { CACHE_INPUT, DecoderStepper, presentName, type CacheSpec, type DecoderGraphs } from './decoder-stepper.js';

export const CAPTIONER_LAYOUTS = ['merged', 'pair', 'no-cache'] as const;
export type CaptionerLayout = (typeof CAPTIONER_LAYOUTS)[number];

/** The encoder and decoder sessions of one captioner folder. */
export class CaptionerGraphs {
  private constructor(
    readonly layout: CaptionerLayout,
    readonly encoder: OnnxSession,
    private readonly decoders: DecoderGraphs,
    /** Name of the encoder output fed to the decoder. */
    readonly encoderOutput: string,
    /** The cache (undefined for the no-cache layout). */
    readonly cache: CacheSpec | undefined,
  ) {}

  /** The ONNX files in use. */
  get files(): string[] {
    return [this.encoder.path, ...this.decoderSessions().map((s) => s.path)];
  }

  /**
   * Which layout `dir` has for `variant` and the graph files it needs (file checks only, no loading).
   * `layout` forces one layout; by default the first whose files exist: merged, pair, no-cache. Throws a
   * ConfigError naming the missing files and listing what onnx/ holds.
   */
  static async detect(dir: string, variant: ModelVariant, layout?: CaptionerLayout): Promise<{ layout: CaptionerLayout; encoder: string; decoders: string[] }> {
    const encoderPath = onnxPath(dir, 'encoder_model', variant);
    const mergedPath = onnxPath(dir, 'decoder_model_merged', variant);
    const firstPath = onnxPath(dir, 'decoder_model', variant);
    const withPastPath = onnxPath(dir, 'decoder_with_past_model', variant);
    const holds = async (): Promise<string> => {
      const found = await listOnnxFiles(dir);
      return `onnx/ holds: ${found.length > 0 ? found.join(', ') : 'nothing'}`;
    };
    if (!existsSync(encoderPath)) {
      throw new ConfigError(`Captioner folder ${dir} has no ${variant} encoder: expected ${encoderPath} (${await holds()})`);
    }
    const chosen = layout ?? (existsSync(mergedPath) ? 'merged' : existsSync(firstPath) && existsSync(withPastPath) ? 'pair' : 'no-cache');
    const needed = chosen === 'merged' ? [mergedPath] : chosen === 'pair' ? [firstPath, withPastPath] : [firstPath];
    const missing = needed.filter((p) => !existsSync(p));
    if (missing.length > 0) {
      const what =
        layout === undefined
          ? `no ${variant} decoder: expected ${mergedPath}, or ${firstPath} (with or without ${withPastPath})`
          : `not the "${layout}" layout: ${missing.join(' and ')} ${missing.length > 1 ? 'are' : 'is'} missing`;
      throw new ConfigError(`Captioner folder ${dir} has ${what} (${await holds()})`);
    }
    return { layout: chosen, encoder: encoderPath, decoders: needed };
  }

  /**
   * Open the graphs {@link detect} found. Throws a ConfigError naming the file, input or output at fault.
   * `fallback` sizes an empty first-step cache when the graph leaves heads or head size symbolic.
   */
  static async open(
    files: { layout: CaptionerLayout; encoder: string; decoders: string[] },
    session: OnnxSessionOptions,
    fallback: { heads: number | undefined; hidden: number | undefined; configPath: string },
  ): Promise<CaptionerGraphs> {
    const chosen = files.layout;
    const settled = await Promise.allSettled([files.encoder, ...files.decoders].map((p) => OnnxSession.open(p, session)));
    const opened = settled.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
    const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
    if (failed !== undefined) {
      await Promise.all(opened.map((s) => s.close()));
      throw failed.reason;
    }
    try {
      const [encoder, ...decoderSessions] = opened;
      pickInput(encoder!, ['pixel_values'], 'image pixels');
      const encoderOutput = pickOutput(encoder!, ['last_hidden_state', 'encoder_hidden_states', 'image_embeds'], 'encoder states').name;
      for (const d of decoderSessions) checkDecoderIo(d);
      let decoders: DecoderGraphs;
      let cache: CacheSpec | undefined;
      if (chosen === 'merged') {
        const merged = decoderSessions[0]!;
        cache = cacheSpec(merged, fallback, true);
        checkPresents(merged, cache, merged);
        decoders = { layout: 'merged', merged };
      } else if (chosen === 'pair') {
        const [first, withPast] = decoderSessions as [OnnxSession, OnnxSession];
        cache = cacheSpec(withPast, fallback, false);
        checkPresents(first, cache, withPast);
        decoders = { layout: 'pair', first, withPast };
      } else {
        decoders = { layout: 'no-cache', first: decoderSessions[0]! };
      }
      return new CaptionerGraphs(chosen, encoder!, decoders, encoderOutput, cache);
    } catch (err) {
      await Promise.all(opened.map((s) => s.close()));
      throw err;
    }
  }

  /** Run the encoder on `[count, 3, H, W]` pixels; returns its states `[count, S, C]`. */
  async encode(pixels: TensorData, transfer: boolean): Promise<TensorData> {
    const out = await this.encoder.run({ pixel_values: pixels }, { outputs: [this.encoderOutput], transferInputs: transfer });
    const states = out[this.encoderOutput]!;
    if (states.dims.length !== 3 || states.dims[0] !== pixels.dims[0]) {
      throw new ConfigError(
        `Expected ${this.encoderOutput} of ${this.encoder.path} to have dims [${pixels.dims[0]}, S, C], got [${states.dims.join(', ')}]`,
      );
    }
    return states;
  }

  /** A step model over these decoders, one row per image of `encoderStates` (`[B, S, C]`, kept as is). */
  stepper(encoderStates: TensorData): StepModel {
    return new DecoderStepper(this.decoders, this.cache, encoderStates);
  }

  /** Tensor bytes moved to and from the decoder graphs' workers so far, summed over the graphs. */
  get decoderTraffic(): TensorTraffic {
    const total: TensorTraffic = { runs: 0, sentBytes: 0, receivedBytes: 0, sentByInput: {} };
    for (const s of this.decoderSessions()) {
      const t = s.traffic;
      total.runs += t.runs;
      total.sentBytes += t.sentBytes;
      total.receivedBytes += t.receivedBytes;
      for (const [name, bytes] of Object.entries(t.sentByInput)) total.sentByInput[name] = (total.sentByInput[name] ?? 0) + bytes;
    }
    return total;
  }

  /** Resident tensor sets the decoder graphs' workers hold now (0 between batches). */
  async residentSets(): Promise<number> {
    const counts = await Promise.all(this.decoderSessions().map((s) => s.residentSets()));
    return counts.reduce((a, b) => a + b, 0);
  }

  async close(): Promise<void> {
    await Promise.all([this.encoder.close(), ...this.decoderSessions().map((s) => s.close())]);
  }

  private decoderSessions(): OnnxSession[] {
    const d = this.decoders;
    return d.layout === 'merged' ? [d.merged] : d.layout === 'pair' ? [d.first, d.withPast] : [d.first];
  }
}

function checkDecoderIo(s: OnnxSession): void {
  pickInput(s, ['input_ids'], 'token ids');
  pickInput(s, ['encoder_hidden_states'], 'encoder states');
  pickOutput(s, ['logits'], 'next-token logits');
}

function cacheSpec(
  s: OnnxSession,
  fallback: { heads: number | undefined; hidden: number | undefined; configPath: string },
  needSizes: boolean,
): CacheSpec {
  const past = s.inputMetadata.filter((m) => CACHE_INPUT.test(m.name));
  if (past.length === 0) {
    throw new ConfigError(
      `ONNX model ${s.path} declares no past_key_values.* inputs, so it cannot be a decoder with a cache; it declares inputs: ${s.inputNames.join(', ')}`,
    );
  }
  const layers = new Set(past.map((m) => CACHE_INPUT.exec(m.name)![1])).size;
  const first = past[0]!;
  if (first.shape.length !== 4) {
    throw new ConfigError(`Input "${first.name}" of ONNX model ${s.path} must be [batch, heads, sequence, head_dim], got [${first.shape.join(', ')}]`);
  }
  let heads = typeof first.shape[1] === 'number' ? first.shape[1] : fallback.heads;
  let headDim = typeof first.shape[3] === 'number' ? first.shape[3] : undefined;
  if (headDim === undefined && heads !== undefined && fallback.hidden !== undefined) headDim = fallback.hidden / heads;
  if (headDim !== undefined && !Number.isInteger(headDim)) headDim = undefined;
  if (needSizes && (heads === undefined || headDim === undefined)) {
    throw new ConfigError(
      `Input "${first.name}" of ONNX model ${s.path} has symbolic dims [${first.shape.join(', ')}], and ${fallback.configPath} ` +
        'gives no usable `decoder.n_head` / `num_attention_heads` and `n_embd` / `hidden_size` to size the empty first-step cache',
    );
  }
  if (heads === undefined || headDim === undefined) heads = headDim = undefined;
  return { pastNames: past.map((m) => m.name), layers, heads, headDim };
}

/** Every past input of `withPast` needs a present output in `first` (the graph that runs step 0). */
function checkPresents(first: OnnxSession, cache: CacheSpec, withPast: OnnxSession): void {
  const missing = cache.pastNames.map(presentName).filter((name) => first.output(name) === undefined);
  if (missing.length > 0) {
    throw new ConfigError(
      `ONNX model ${first.path} has no output${missing.length > 1 ? 's' : ''} ${missing.join(', ')} for the cache inputs of ${withPast.path}; ` +
        `it declares outputs: ${first.outputNames.join(', ')}`,
    );
  }
}

