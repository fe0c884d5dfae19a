/**
 * The ONNX captioner: a vision encoder-decoder model folder (see captioner-graphs.ts for the layouts)
 * that writes K captions per image with greedy decoding, beam search or nucleus sampling (decoding/).
 *
 * ```ts
 * const captioner = await OnnxCaptioner.load('models/shapes-captioner');
 * const captions = await captioner.caption([jpegBytes], { k: 3, strategy: 'nucleus', seed: 1, keys: ['sample-0001'] });
 * // captions[0] = [{ text, tokenIds, logProb }, ...3]
 * await captioner.close();
 * ```
 *
 * A call encodes its images once as one batch, then decodes all of their captions as one decoder batch
 * (images x samples rows; beams for beam search), so callers choose the batch size by how many images
 * they pass. Finished captions leave the decoder batch.
 */
import { createHash } from 'node:crypto';
import path from 'node:path';

import { z } from 'zod';

import { sessionOptionsFor, type TensorTraffic } from '../backends/onnx-session.js';
import type { TensorData } from '../backends/onnx-tensor.js';
import { ConfigError } from '../core/errors.js';
import { modelRuntimeSchema } from '../core/runtime-settings.js';
import { checkVariant, MODEL_VARIANTS, type ModelVariant } from '../models/model-files.js';
import { loadFolderBasics, preprocessOrThrow, sessionOptions, type ModelLoadOptions } from '../models/model-folder.js';
import type { ImageInput, ImagePreprocessor } from '../models/preprocess.js';
import { isPrepared } from '../core/decoded-pixels.js';
import type { TextTokenizer } from '../models/tokenizer.js';
import { readCaptionerConfig, type GenerationIds } from './captioner-config.js';
import { CAPTIONER_LAYOUTS, CaptionerGraphs, type CaptionerLayout } from './captioner-graphs.js';
import type { CacheSpec } from './decoder-stepper.js';
import { beamSearch } from './decoding/beam-search.js';
import { greedyDecode } from './decoding/greedy.js';
import { nucleusDecode } from './decoding/nucleus.js';
import { crossFieldProblems, decodingFields, resolveDecoding, type DecodingInput, type DecodingOptions } from './decoding/options.js';
import { createStream } from './decoding/rng.js';
import type { GeneratedSequence, GenerationSetup } from './decoding/step-model.js';
import type { CaptionerType } from './captioner-type.js';

/**
 * The recipe's `captioner: { type: onnx, ... }` section. Decoding defaults follow BLIP's CapFilt
 * captioner (nucleus sampling, top-p 0.9, repetition penalty 1.1, min/max length 10/30 tokens; see
 * decoding/options.ts for how lengths are counted).
 */
export const onnxCaptionerOptionsSchema = z
  .strictObject({
    type: z.literal('onnx'),
    /** Model folder (README "Model folder layouts": captioner). */
    model: z.string({ error: 'expected a model folder path' }).min(1, { error: 'expected a model folder path' }),
    /** `fp32` (default), `fp16` or `quantized` graphs. */
    variant: z.enum(MODEL_VARIANTS as [ModelVariant, ...ModelVariant[]], { error: `expected one of ${MODEL_VARIANTS.join(', ')}` }).default('fp32'),
    /** Captions per image (K). Default 1. */
    samples: z.number({ error: 'expected an integer from 1 and up' }).int({ error: 'expected an integer from 1 and up' }).min(1, { error: 'expected an integer from 1 and up' }).default(1),
    /** Images encoded and decoded together. Default 8. */
    batchSize: z.number({ error: 'expected an integer from 1 and up' }).int({ error: 'expected an integer from 1 and up' }).min(1, { error: 'expected an integer from 1 and up' }).default(8),
    /** Device, threads, workers of the captioner's graphs; unset fields come from the recipe's top-level `runtime`. */
    runtime: modelRuntimeSchema.optional(),
    ...decodingFields,
  })
  .superRefine((value, ctx) => {
    for (const [field, message] of crossFieldProblems(value, value.samples, 'samples')) {
      ctx.addIssue({ code: 'custom', path: [field], message });
    }
  });

export type OnnxCaptionerOptions = z.output<typeof onnxCaptionerOptionsSchema>;

/** The decoding part of the recipe section, as `caption()` options (`samples` becomes `k`). */
export function decodingFromRecipe(options: OnnxCaptionerOptions): DecodingInput {
  const { type: _type, model: _model, variant: _variant, samples, batchSize: _batch, runtime: _runtime, ...decoding } = options;
  return { ...decoding, k: samples };
}

/** Options of one {@link OnnxCaptioner.caption} call: decoding options plus the images' keys. */
export type CaptionOptions = DecodingInput & {
  /**
   * One key per image (e.g. the sample key): sampling draws from streams derived from (seed, key,
   * sample index). Default: the sha256 of the image's bytes, so the same image gets the same captions
   * wherever it is in a batch.
   */
  keys?: readonly string[];
};

/** One caption the model wrote. */
export interface GeneratedCaption {
  /** The caption, prompt removed, special tokens skipped, trimmed. */
  text: string;
  /** Its token ids: the generated tokens after the prompt, without the end-of-sequence token. */
  tokenIds: number[];
  /**
   * Sum of the log-probabilities of the generated tokens (end-of-sequence included) under the model
   * after the repetition penalty and minimum length (not temperature, top-k or top-p).
   */
  logProb: number;
  /** True when the caption ended with an end-of-sequence token, false when it was cut at `maxLength`. */
  finished: boolean;
}

/** Options for {@link OnnxCaptioner.load}. */
export interface OnnxCaptionerLoadOptions extends ModelLoadOptions {
  /** Use this decoder layout (its files must exist). Default: merged, else pair, else no-cache, by which files exist. */
  layout?: CaptionerLayout;
}

/** A loaded captioner model folder. */
export class OnnxCaptioner {
  readonly preprocessor: ImagePreprocessor;
  readonly tokenizer: TextTokenizer;
  /** Start, end-of-sequence and pad ids, with the config field each came from. */
  readonly ids: GenerationIds;
  /**
   * Longest decoder sequence (start token + prompt + generated), when config.json gives one: `maxLength`
   * is capped so that captions fit.
   */
  readonly maxPositions: number | undefined;
  private readonly concurrency: number | undefined;

  private constructor(
    readonly dir: string,
    private readonly graphs: CaptionerGraphs,
    basics: { preprocessor: ImagePreprocessor; tokenizer: TextTokenizer },
    config: { ids: GenerationIds; maxPositions: number | undefined },
    options: ModelLoadOptions,
  ) {
    this.preprocessor = basics.preprocessor;
    this.tokenizer = basics.tokenizer;
    this.ids = config.ids;
    this.maxPositions = config.maxPositions;
    this.concurrency = options.preprocessConcurrency;
  }

  /** Which decoder layout is in use. */
  get layout(): CaptionerLayout {
    return this.graphs.layout;
  }

  /** The decoder's key/value cache as its graph declares it (undefined for the no-cache layout). */
  get cache(): CacheSpec | undefined {
    return this.graphs.cache;
  }

  /** The ONNX files in use: the encoder, then the decoder graph(s). */
  get files(): string[] {
    return this.graphs.files;
  }

  /**
   * Load a captioner folder: config.json (+ generation_config.json), preprocessor_config.json,
   * tokenizer.json and the graphs. ConfigErrors name the missing file, field, input or output.
   */
  static async load(dir: string, options: OnnxCaptionerLoadOptions = {}): Promise<OnnxCaptioner> {
    const variant = checkVariant(options.variant ?? 'fp32');
    if (options.layout !== undefined && !CAPTIONER_LAYOUTS.includes(options.layout)) {
      throw new ConfigError(`Expected \`layout\` to be one of ${CAPTIONER_LAYOUTS.join(', ')}, got ${JSON.stringify(options.layout)}`);
    }
    const files = await CaptionerGraphs.detect(dir, variant, options.layout);
    const basics = await loadFolderBasics(dir, options);
    const config = await readCaptionerConfig(dir);
    const graphs = await CaptionerGraphs.open(files, sessionOptions(options), {
      heads: config.heads,
      hidden: config.hidden,
      configPath: path.join(dir, 'config.json'),
    });
    return new OnnxCaptioner(dir, graphs, basics, config, options);
  }

  /**
   * K captions for each image (`options.k`, default 1): result[i] holds image i's captions, in sample
   * order for nucleus sampling and best first for beam search. A corrupt image throws a SampleError
   * naming its index; bad options throw a ConfigError naming the option.
   */
  async caption(images: readonly ImageInput[], options: CaptionOptions = {}): Promise<GeneratedCaption[][]> {
    const { keys, ...decoding } = options;
    const resolved = resolveDecoding(decoding);
    checkKeys(keys, images.length);
    if (images.length === 0) return [];
    const { setup, options: o } = this.setup(resolved);
    const pixels = await preprocessOrThrow(this.preprocessor, images, this.concurrency);
    const imageKeys = keys ?? images.map((img) => createHash('sha256').update(isPrepared(img) ? this.preprocessedSource(img) : img).digest('hex'));
    return this.run(pixels, images.length, o, setup, imageKeys);
  }

  /** Prepared pixels' bytes for this captioner, keying an image without a key given. */
  private preprocessedSource(image: ReadonlyMap<string, { data: Buffer }>): Buffer {
    const pixels = image.get(this.preprocessor.key);
    if (pixels === undefined) throw new Error(`the decode stage prepared no pixels for the captioner (resize ${this.preprocessor.key})`);
    return pixels.data;
  }

  /**
   * As {@link caption}, from already preprocessed `[count, 3, H, W]` pixels (copied, so the caller may
   * reuse the array). Default keys are the sha256 of each image's pixel values.
   */
  async captionPixels(pixels: Float32Array, count: number, options: CaptionOptions = {}): Promise<GeneratedCaption[][]> {
    const { keys, ...decoding } = options;
    const resolved = resolveDecoding(decoding);
    checkKeys(keys, count);
    const size = this.preprocessor.imageSize;
    if (pixels.length < count * size) throw new RangeError(`Expected ${count * size} pixel values for ${count} images, got ${pixels.length}`);
    if (count === 0) return [];
    const { setup, options: o } = this.setup(resolved);
    const view = pixels.subarray(0, count * size);
    const imageKeys =
      keys ?? Array.from({ length: count }, (_, i) => createHash('sha256').update(view.subarray(i * size, (i + 1) * size)).digest('hex'));
    return this.run(view.slice(), count, o, setup, imageKeys);
  }

  /** Tensor bytes moved to and from the decoder graphs' workers so far (the encoder's are not counted). */
  get decoderTraffic(): TensorTraffic {
    return this.graphs.decoderTraffic;
  }

  /** Resident tensor sets the decoder workers hold now: 0 whenever no caption() call is running. */
  residentSets(): Promise<number> {
    return this.graphs.residentSets();
  }

  /** Stop the sessions' workers. */
  async close(): Promise<void> {
    await this.graphs.close();
  }

  /**
   * The prompt's token ids, without the special tokens the tokenizer adds around a text. Trailing
   * whitespace is dropped first: word-piece tokenizers ignore it, and byte-level BPE would make it a
   * token of its own that the next word's token (which carries its leading space) never follows.
   */
  promptIds(prompt: string | undefined): number[] {
    const text = prompt?.trimEnd() ?? '';
    if (text === '') return [];
    const t = this.tokenizer;
    const all = t.encode(text);
    return all.slice(t.prefixIds.length, all.length - t.suffixIds.length);
  }

  /**
   * The prefix, and the options with `maxLength` capped at what the decoder's positions allow (config.json's
   * `n_positions` / `max_position_embeddings`): a caption stops there unfinished. A `minLength` beyond
   * that cap is a ConfigError.
   */
  private setup(options: DecodingOptions): { setup: GenerationSetup; options: DecodingOptions } {
    const prefix = [this.ids.startId, ...this.promptIds(options.prompt)];
    let o = options;
    if (this.maxPositions !== undefined) {
      // The last token generated is never fed back, so prefix + maxLength - 1 positions are used.
      const room = this.maxPositions - prefix.length + 1;
      if (options.minLength > room) {
        throw new ConfigError(
          `Expected \`minLength\` to be at most ${room} for ${this.dir}: its decoder has ${this.maxPositions} positions ` +
            `(config.json) and every sequence starts with ${prefix.length} token${prefix.length > 1 ? 's' : ''} ` +
            `(start${prefix.length > 1 ? ' + prompt' : ''}), got ${options.minLength}`,
        );
      }
      if (options.maxLength > room) o = { ...options, maxLength: room };
    }
    return { setup: { prefix, eosIds: this.ids.eosIds }, options: o };
  }

  /** Encode `pixels` (moved to the encoder's worker) and decode their captions. */
  private async run(
    pixels: Float32Array,
    count: number,
    o: DecodingOptions,
    setup: GenerationSetup,
    keys: readonly string[],
  ): Promise<GeneratedCaption[][]> {
    const { height, width } = this.preprocessor;
    const input: TensorData = { type: 'float32', dims: [count, 3, height, width], data: pixels };
    const states = await this.graphs.encode(input, true);
    const model = this.graphs.stepper(states);
    let perImage: GeneratedSequence[][];
    try {
      if (o.strategy === 'beam') {
        perImage = await beamSearch(model, setup, o, count);
      } else {
        const flat =
          o.strategy === 'greedy'
            ? await greedyDecode(model, setup, o, count)
            : await nucleusDecode(model, setup, o, keys.map((key) => Array.from({ length: o.k }, (_, s) => createStream(o.seed, key, s))));
        const k = o.strategy === 'greedy' ? 1 : o.k;
        perImage = Array.from({ length: count }, (_, i) => flat.slice(i * k, (i + 1) * k));
      }
    } finally {
      model.release?.();
    }
    const prompt = setup.prefix.slice(1);
    return perImage.map((seqs) =>
      seqs.map((seq) => ({ text: this.text(prompt, seq.tokens), tokenIds: seq.tokens, logProb: seq.logProb, finished: seq.finished })),
    );
  }

  /**
   * Decode the caption with its prompt in front and cut the prompt's text off (so word pieces that join
   * the prompt's last word come out as they would after it); when the text does not start with the
   * prompt's text, decode the caption's tokens alone.
   */
  private text(prompt: readonly number[], tokens: readonly number[]): string {
    const t = this.tokenizer;
    if (prompt.length > 0) {
      const full = t.decode([...prompt, ...tokens], { skipSpecialTokens: true });
      const promptText = t.decode(prompt, { skipSpecialTokens: true });
      if (full.startsWith(promptText)) return full.slice(promptText.length).trim();
    }
    return t.decode(tokens, { skipSpecialTokens: true }).trim();
  }
}

function checkKeys(keys: readonly string[] | undefined, count: number): void {
  if (keys !== undefined && keys.length !== count) {
    throw new ConfigError(`Expected \`keys\` to hold one key per image (${count}), got ${keys.length}`);
  }
}

/** Load a captioner folder; see {@link OnnxCaptioner}. */
export function loadOnnxCaptioner(dir: string, options: OnnxCaptionerLoadOptions = {}): Promise<OnnxCaptioner> {
  return OnnxCaptioner.load(dir, options);
}

/** The recipe's `captioner: { type: onnx }`: a model folder, `batchSize` images per call, captions seeded by sample key. */
export const onnxCaptionerType: CaptionerType<typeof onnxCaptionerOptionsSchema> = {
  type: 'onnx',
  schema: onnxCaptionerOptionsSchema,
  async load(options, ctx) {
    const dir = path.resolve(ctx.baseDir, options.model);
    const runtime = ctx.onnxRuntime ? sessionOptionsFor(ctx.onnxRuntime) : {};
    const captioner = await OnnxCaptioner.load(dir, { variant: options.variant, ...runtime });
    const decoding = decodingFromRecipe(options);
    return {
      model: path.basename(dir),
      batchSize: options.batchSize,
      // One batch more than workers: each worker busy while the next batch is prepared.
      inFlight: Math.max(2, (runtime.workers ?? 1) + 1),
      preparer: captioner.preprocessor,
      captionBatch: async (images) =>
        (await captioner.caption(images.map((i) => i.pixels ?? i.bytes), { ...decoding, keys: images.map((i) => i.key) })).map((list) => ({ captions: list.map((c) => c.text) })),
      close: () => captioner.close(),
    };
  },
  modelFolder: (options) => options.model,
};
