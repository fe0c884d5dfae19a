/**
 * Image-text contrastive (ITC) models: dual encoders that embed images and texts into one space, scored
 * by the cosine of L2-normalised embeddings. Layouts (see README.md in this folder):
 *
 * - split: `onnx/vision_model.onnx` (`pixel_values` -> `image_embeds` or `pooler_output`) and
 *   `onnx/text_model.onnx` (`input_ids`, plus `attention_mask` etc. only where declared ->
 *   `text_embeds` or `pooler_output`);
 * - single: `onnx/model.onnx` with both `image_embeds` and `text_embeds` outputs;
 * - `_fp16` / `_quantized` name variants of either.
 * `model_type: siglip` in config.json pads texts to max_length (64) and gives a probability
 * `sigmoid(exp(logit_scale) * cos + logit_bias)`; image embeddings of rank 3 (`[B, Q, D]`, BLIP-2
 * Q-Former) score as the best cosine over the Q query vectors.
 */
import { existsSync } from 'node:fs';

import { OnnxSession } from '../backends/onnx-session.js';
import { toFloat32, type TensorData, type ValueInfo } from '../backends/onnx-tensor.js';
import { ConfigError } from '../core/errors.js';
import { cosineAt, cosineMatrix, embeddingShape, l2NormalizeRows, type Embeddings } from './embeddings.js';
import { checkVariant, listOnnxFiles, onnxPath, type ModelVariant } from './model-files.js';
import {
  configTextPositions,
  loadFolderBasics,
  pickOutput,
  preprocessOrThrow,
  sessionOptions,
  textFeeds,
  type FolderBasics,
  type ModelLoadOptions,
} from './model-folder.js';
import type { ImageInput, ImagePreprocessor } from './preprocess.js';
import type { Padding, TextTokenizer } from './tokenizer.js';

const IMAGE_OUTPUTS = ['image_embeds', 'pooler_output'] as const;
const TEXT_OUTPUTS = ['text_embeds', 'pooler_output'] as const;

/** SigLIP's text length when nothing else says (its training length). */
const SIGLIP_TEXT_LENGTH = 64;
/** CLIP's text length when nothing else says. */
const CLIP_TEXT_LENGTH = 77;

type Graphs =
  | { layout: 'split'; vision: OnnxSession; text: OnnxSession; imageOutput: string; textOutput: string }
  | { layout: 'single'; model: OnnxSession };

/** A loaded dual-encoder model folder. */
export class ItcModel {
  /** `siglip` when config.json says so (sigmoid probabilities, max_length padding), else `clip`. */
  readonly family: 'clip' | 'siglip';
  /** Which ONNX layout the folder has. */
  readonly layout: 'split' | 'single';
  /** The ONNX files in use. */
  readonly files: readonly string[];
  readonly preprocessor: ImagePreprocessor;
  readonly tokenizer: TextTokenizer;
  /** Tokens per text (special tokens included) and how texts are padded. */
  readonly maxTextLength: number;
  readonly padding: Padding;
  private readonly graphs: Graphs;
  private readonly logit: { scale: number; bias: number } | undefined;
  private readonly configPath: string;
  private readonly concurrency: number | undefined;

  private constructor(basics: FolderBasics, graphs: Graphs, options: ModelLoadOptions) {
    this.preprocessor = basics.preprocessor;
    this.tokenizer = basics.tokenizer;
    this.configPath = basics.configPath;
    this.graphs = graphs;
    this.layout = graphs.layout;
    this.files = graphs.layout === 'split' ? [graphs.vision.path, graphs.text.path] : [graphs.model.path];
    this.family = basics.config.model_type?.toLowerCase() === 'siglip' ? 'siglip' : 'clip';
    this.padding = this.family === 'siglip' ? 'max_length' : 'longest';
    this.concurrency = options.preprocessConcurrency;
    const { logit_scale: scale, logit_bias: bias } = basics.config;
    this.logit = scale !== undefined && bias !== undefined ? { scale, bias } : undefined;
    const fallback = this.family === 'siglip' ? SIGLIP_TEXT_LENGTH : CLIP_TEXT_LENGTH;
    const limits = [this.tokenizer.maxLength, configTextPositions(basics.config)].filter((n): n is number => n !== undefined);
    this.maxTextLength = options.maxTextLength ?? (limits.length > 0 ? Math.min(...limits) : fallback);
  }

  /**
   * Load an ITC model folder. Throws a ConfigError naming the file for a missing config, tokenizer or
   * graph, a bad preprocessor field, or a graph without the expected outputs.
   */
  static async load(dir: string, options: ModelLoadOptions = {}): Promise<ItcModel> {
    const variant = checkVariant(options.variant ?? 'fp32');
    const basics = await loadFolderBasics(dir, options);
    const graphs = await openGraphs(dir, variant, options);
    try {
      return new ItcModel(basics, graphs, options);
    } catch (err) {
      await closeGraphs(graphs);
      throw err;
    }
  }

  /** Preprocess and embed images. A corrupt image throws a SampleError naming its index. */
  async encodeImages(images: readonly ImageInput[]): Promise<Embeddings> {
    const pixels = await preprocessOrThrow(this.preprocessor, images, this.concurrency);
    return this.runImages(pixels, images.length, true);
  }

  /**
   * Embed already preprocessed pixels (`[count, 3, H, W]`, e.g. from `preprocessor.preprocessBatch`).
   * The array is copied to the worker, so the caller may reuse it.
   */
  async encodePixels(pixels: Float32Array, count: number): Promise<Embeddings> {
    const expected = count * this.preprocessor.imageSize;
    if (pixels.length < expected) throw new RangeError(`Expected ${expected} pixel values for ${count} images, got ${pixels.length}`);
    return this.runImages(pixels.length === expected ? pixels : pixels.subarray(0, expected), count, false);
  }

  /** Tokenize and embed texts. */
  async encodeTexts(texts: readonly string[]): Promise<Embeddings> {
    if (texts.length === 0) return { data: new Float32Array(0), dims: [0, 0] };
    const batch = this.tokenizer.encodeBatch(texts, { maxLength: this.maxTextLength, padding: this.padding });
    const feeds = textFeeds(batch);
    if (this.graphs.layout === 'split') {
      const out = await this.graphs.text.run(feeds, { outputs: [this.graphs.textOutput] });
      return normalised(out[this.graphs.textOutput]!, `${this.graphs.textOutput} of ${this.graphs.text.path}`);
    }
    // One graph needs an image too: a single black one, whose embedding is not returned.
    const { height, width } = this.preprocessor;
    feeds.pixel_values = { type: 'float32', dims: [1, 3, height, width], data: new Float32Array(3 * height * width) };
    const out = await this.graphs.model.run(feeds, { outputs: ['text_embeds'] });
    return normalised(out.text_embeds!, `text_embeds of ${this.graphs.model.path}`);
  }

  /** Cosine of every image against every text, row-major `[images, texts]`. */
  score(images: Embeddings, texts: Embeddings): Float32Array {
    return cosineMatrix(images, texts);
  }

  /** Cosine of image `i` against text `j` (the best over query vectors for `[B, Q, D]` images). */
  cosine(images: Embeddings, i: number, texts: Embeddings, j: number): number {
    return cosineAt(images, i, texts, j);
  }

  /** Whether {@link probability} is available (SigLIP with logit_scale and logit_bias in config.json). */
  get hasProbability(): boolean {
    return this.family === 'siglip' && this.logit !== undefined;
  }

  /** SigLIP's match probability for a cosine: `sigmoid(exp(logit_scale) * cos + logit_bias)`. */
  probability(cosine: number): number {
    if (this.family !== 'siglip') {
      throw new ConfigError(`${this.configPath}: probabilities need model_type "siglip", got ${JSON.stringify(this.family)}`);
    }
    if (this.logit === undefined) {
      throw new ConfigError(
        `${this.configPath}: field \`logit_scale\` and \`logit_bias\` are needed for SigLIP probabilities ` +
          '(copy the values of the checkpoint parameters of the same names), got nothing',
      );
    }
    const z = Math.exp(this.logit.scale) * cosine + this.logit.bias;
    return 1 / (1 + Math.exp(-z));
  }

  /** Stop the sessions' workers. */
  async close(): Promise<void> {
    await closeGraphs(this.graphs);
  }

  private async runImages(pixels: Float32Array, count: number, transfer: boolean): Promise<Embeddings> {
    if (count === 0) return { data: new Float32Array(0), dims: [0, 0] };
    const { height, width } = this.preprocessor;
    const feeds: Record<string, TensorData> = {
      pixel_values: { type: 'float32', dims: [count, 3, height, width], data: pixels },
    };
    if (this.graphs.layout === 'split') {
      const out = await this.graphs.vision.run(feeds, { outputs: [this.graphs.imageOutput], transferInputs: transfer });
      return normalised(out[this.graphs.imageOutput]!, `${this.graphs.imageOutput} of ${this.graphs.vision.path}`);
    }
    // One graph needs a text too: the empty text, whose embedding is not returned.
    Object.assign(feeds, textFeeds(this.tokenizer.encodeBatch([''], { maxLength: this.maxTextLength, padding: this.padding })));
    const out = await this.graphs.model.run(feeds, { outputs: ['image_embeds'], transferInputs: transfer });
    return normalised(out.image_embeds!, `image_embeds of ${this.graphs.model.path}`);
  }
}

/** Load an ITC (dual-encoder) model folder; see {@link ItcModel}. */
export function loadItcModel(dir: string, options: ModelLoadOptions = {}): Promise<ItcModel> {
  return ItcModel.load(dir, options);
}

function normalised(t: TensorData, what: string): Embeddings {
  if (t.dims.length !== 2 && t.dims.length !== 3) {
    throw new ConfigError(`Expected ${what} to have dims [B, D] or [B, Q, D], got [${t.dims.join(', ')}]`);
  }
  // A float32 output arrives in its own (transferred) buffer, float16 is converted into a new one:
  // either way the array is ours to normalise in place.
  const data = toFloat32(t, what);
  const e: Embeddings = { data, dims: [...t.dims] };
  l2NormalizeRows(data, embeddingShape(e).dim);
  return e;
}

function lastDim(meta: ValueInfo): number | undefined {
  const d = meta.shape[meta.shape.length - 1];
  return typeof d === 'number' ? d : undefined;
}

async function openGraphs(dir: string, variant: ModelVariant, options: ModelLoadOptions): Promise<Graphs> {
  const session = sessionOptions(options);
  const visionPath = onnxPath(dir, 'vision_model', variant);
  const textPath = onnxPath(dir, 'text_model', variant);
  const singlePath = onnxPath(dir, 'model', variant);
  if (existsSync(visionPath) || existsSync(textPath)) {
    for (const p of [visionPath, textPath]) {
      if (!existsSync(p)) {
        throw new ConfigError(`ITC model folder ${dir} has only one of the two encoders: ${p} is missing`);
      }
    }
    const [vision, text] = await Promise.all([OnnxSession.open(visionPath, session), OnnxSession.open(textPath, session)]);
    try {
      const image = pickOutput(vision, IMAGE_OUTPUTS, 'image embeddings');
      const txt = pickOutput(text, TEXT_OUTPUTS, 'text embeddings');
      const [di, dt] = [lastDim(image), lastDim(txt)];
      if (di !== undefined && dt !== undefined && di !== dt) {
        throw new ConfigError(
          `${visionPath} output ${image.name} has ${di} dimensions but ${textPath} output ${txt.name} has ${dt}; ` +
            'they must share one embedding space',
        );
      }
      return { layout: 'split', vision, text, imageOutput: image.name, textOutput: txt.name };
    } catch (err) {
      await Promise.all([vision.close(), text.close()]);
      throw err;
    }
  }
  if (existsSync(singlePath)) {
    const model = await OnnxSession.open(singlePath, session);
    const missing = ['image_embeds', 'text_embeds'].filter((n) => model.output(n) === undefined);
    if (missing.length > 0) {
      await model.close();
      throw new ConfigError(
        `ONNX model ${singlePath} has no output${missing.length > 1 ? 's' : ''} ${missing.join(', ')}; ` +
          `it declares outputs: ${model.outputNames.join(', ')}`,
      );
    }
    return { layout: 'single', model };
  }
  const found = await listOnnxFiles(dir);
  throw new ConfigError(
    `ITC model folder ${dir} has no ${variant} graphs: expected ${visionPath} and ${textPath}, or ${singlePath}` +
      ` (onnx/ holds: ${found.length > 0 ? found.join(', ') : 'nothing'})`,
  );
}

async function closeGraphs(graphs: Graphs): Promise<void> {
  if (graphs.layout === 'split') await Promise.all([graphs.vision.close(), graphs.text.close()]);
  else await graphs.model.close();
}
