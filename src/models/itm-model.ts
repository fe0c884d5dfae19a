/**
 * Image-text matching (ITM) models: fusion encoders that look at an image and a text together and give
 * two logits, [no match, match]. p(match) = softmax(logits)[1]. The layout is ours (no public ONNX export
 * of BLIP/ALBEF ITM heads exists); README.md in this folder documents it for people exporting their own:
 *
 * - single: `onnx/itm_model.onnx`: `pixel_values [B,3,H,W]`, `input_ids [B,T]`, `attention_mask [B,T]`
 *   -> `itm_logits [B,2]`, or `[B,Q,2]` (one pair of logits per query token, BLIP-2 style: averaged over
 *   Q before the softmax);
 * - split: `onnx/itm_vision.onnx` (`pixel_values` -> `image_embeds [B,N,C]`, or `last_hidden_state`)
 *   and `onnx/itm_fusion.onnx` (`image_embeds` (or `encoder_hidden_states`) `[B,N,C]`, `input_ids`,
 *   `attention_mask`, optionally `image_attention_mask`/`encoder_attention_mask [B,N]` -> `itm_logits`),
 *   so each image is encoded once however many captions it has.
 * `_fp16` / `_quantized` name variants work as for ITC folders.
 */
import { existsSync } from 'node:fs';

import { OnnxSession } from '../backends/onnx-session.js';
import { toFloat32, type TensorData } from '../backends/onnx-tensor.js';
import { gatherRows } from '../backends/tensor-rows.js';
import { ConfigError } from '../core/errors.js';
import { checkVariant, listOnnxFiles, onnxPath, type ModelVariant } from './model-files.js';
import {
  configTextPositions,
  loadFolderBasics,
  pickInput,
  pickOutput,
  preprocessOrThrow,
  sessionOptions,
  textFeeds,
  type FolderBasics,
  type ModelLoadOptions,
} from './model-folder.js';
import type { ImageInput, ImagePreprocessor } from './preprocess.js';
import type { TextTokenizer } from './tokenizer.js';

/** BERT's usual limit when neither the tokenizer nor config.json gives one. */
const DEFAULT_TEXT_LENGTH = 512;

/**
 * Images ready for matching: pixel values for the single-graph layout, vision-encoder outputs for the
 * split one. Make them with {@link ItmModel.encodeImages} or {@link ItmModel.encodePixels}.
 */
export interface ItmImages {
  readonly count: number;
  readonly tensor: TensorData;
}

/** Scores of some image-text pairs. */
export interface ItmScores {
  /** p(match) per pair. */
  pMatch: Float32Array;
  /** The raw `itm_logits`, dims in `logitDims` (`[pairs, 2]` or `[pairs, Q, 2]`). */
  logits: Float32Array;
  logitDims: number[];
}

type Graphs =
  | { layout: 'single'; model: OnnxSession }
  | {
      layout: 'split';
      vision: OnnxSession;
      fusion: OnnxSession;
      visionOutput: string;
      fusionImageInput: string;
      fusionImageMask: string | undefined;
    };

/** A loaded ITM model folder. */
export class ItmModel {
  readonly layout: 'single' | 'split';
  readonly files: readonly string[];
  readonly preprocessor: ImagePreprocessor;
  readonly tokenizer: TextTokenizer;
  /** Tokens per text, special tokens included. Texts are padded to the longest of each batch. */
  readonly maxTextLength: number;
  private readonly graphs: Graphs;
  private readonly concurrency: number | undefined;

  private constructor(basics: FolderBasics, graphs: Graphs, options: ModelLoadOptions) {
    this.preprocessor = basics.preprocessor;
    this.tokenizer = basics.tokenizer;
    this.graphs = graphs;
    this.layout = graphs.layout;
    this.files = graphs.layout === 'single' ? [graphs.model.path] : [graphs.vision.path, graphs.fusion.path];
    this.concurrency = options.preprocessConcurrency;
    const limits = [this.tokenizer.maxLength, configTextPositions(basics.config)].filter((n): n is number => n !== undefined);
    this.maxTextLength = options.maxTextLength ?? (limits.length > 0 ? Math.min(...limits) : DEFAULT_TEXT_LENGTH);
  }

  /** Load an ITM model folder; ConfigErrors name the missing file, input or output. */
  static async load(dir: string, options: ModelLoadOptions = {}): Promise<ItmModel> {
    const variant = checkVariant(options.variant ?? 'fp32');
    const basics = await loadFolderBasics(dir, options);
    const graphs = await openGraphs(dir, variant, options);
    return new ItmModel(basics, graphs, options);
  }

  /** Preprocess images (and, for the split layout, run the vision encoder once for each). */
  async encodeImages(images: readonly ImageInput[]): Promise<ItmImages> {
    const pixels = await preprocessOrThrow(this.preprocessor, images, this.concurrency);
    return this.fromPixels(pixels, images.length, true);
  }

  /** As {@link encodeImages}, from already preprocessed `[count, 3, H, W]` pixels (copied, not moved). */
  async encodePixels(pixels: Float32Array, count: number): Promise<ItmImages> {
    const expected = count * this.preprocessor.imageSize;
    if (pixels.length < expected) throw new RangeError(`Expected ${expected} pixel values for ${count} images, got ${pixels.length}`);
    return this.fromPixels(pixels.length === expected ? pixels : pixels.subarray(0, expected), count, false);
  }

  /**
   * Score pairs: text `k` against image `imageIndex[k]` of `images`. All pairs go through the graph as
   * one batch; split them up beforehand for very large numbers of pairs.
   */
  async scoreIndexed(images: ItmImages, imageIndex: readonly number[], texts: readonly string[]): Promise<ItmScores> {
    if (imageIndex.length !== texts.length) {
      throw new RangeError(`Expected one image index per text, got ${imageIndex.length} indices for ${texts.length} texts`);
    }
    for (const i of imageIndex) {
      if (!Number.isInteger(i) || i < 0 || i >= images.count) throw new RangeError(`Image index ${i} is out of range for ${images.count} images`);
    }
    if (texts.length === 0) return { pMatch: new Float32Array(0), logits: new Float32Array(0), logitDims: [0, 2] };
    const batch = this.tokenizer.encodeBatch(texts, { maxLength: this.maxTextLength, padding: 'longest' });
    const feeds = textFeeds(batch);
    const imageRows = gatherRows(images.tensor, imageIndex);
    let out: Record<string, TensorData>;
    let source: string;
    if (this.graphs.layout === 'single') {
      feeds.pixel_values = imageRows;
      out = await this.graphs.model.run(feeds, { outputs: ['itm_logits'] });
      source = this.graphs.model.path;
    } else {
      const g = this.graphs;
      feeds[g.fusionImageInput] = imageRows;
      if (g.fusionImageMask !== undefined) {
        const tokens = imageRows.dims[1] ?? 1;
        feeds[g.fusionImageMask] = { type: 'int64', dims: [texts.length, tokens], data: new BigInt64Array(texts.length * tokens).fill(1n) };
      }
      out = await g.fusion.run(feeds, { outputs: ['itm_logits'] });
      source = g.fusion.path;
    }
    return matchProbabilities(out.itm_logits!, texts.length, source);
  }

  /** p(match) of one image against each of `texts`; the image is preprocessed and encoded once. */
  async scorePairs(image: Uint8Array, texts: readonly string[]): Promise<Float32Array> {
    const encoded = await this.encodeImages([image]);
    return (await this.scoreIndexed(encoded, new Array<number>(texts.length).fill(0), texts)).pMatch;
  }

  /** p(match) of `images[k]` against `texts[k]` for each k. */
  async scoreAligned(images: readonly Uint8Array[], texts: readonly string[]): Promise<Float32Array> {
    if (images.length !== texts.length) throw new RangeError(`Expected as many images as texts, got ${images.length} and ${texts.length}`);
    const encoded = await this.encodeImages(images);
    return (await this.scoreIndexed(encoded, images.map((_, k) => k), texts)).pMatch;
  }

  async close(): Promise<void> {
    if (this.graphs.layout === 'single') await this.graphs.model.close();
    else await Promise.all([this.graphs.vision.close(), this.graphs.fusion.close()]);
  }

  private async fromPixels(pixels: Float32Array, count: number, transfer: boolean): Promise<ItmImages> {
    const { height, width } = this.preprocessor;
    const tensor: TensorData = { type: 'float32', dims: [count, 3, height, width], data: pixels };
    if (this.graphs.layout === 'single' || count === 0) {
      // Keep our own copy: scoreIndexed gathers rows from it for every call.
      return { count, tensor: transfer ? tensor : { ...tensor, data: pixels.slice() } };
    }
    const g = this.graphs;
    const out = await g.vision.run({ pixel_values: tensor }, { outputs: [g.visionOutput], transferInputs: transfer });
    return { count, tensor: out[g.visionOutput]! };
  }
}

/** Load an ITM (fusion encoder) model folder; see {@link ItmModel}. */
export function loadItmModel(dir: string, options: ModelLoadOptions = {}): Promise<ItmModel> {
  return ItmModel.load(dir, options);
}

/** Average logits over query tokens when there are several, then p(match) = softmax(logits)[1]. */
function matchProbabilities(t: TensorData, pairs: number, source: string): ItmScores {
  const dims = t.dims;
  const last = dims[dims.length - 1];
  if ((dims.length !== 2 && dims.length !== 3) || last !== 2 || dims[0] !== pairs) {
    throw new ConfigError(`Expected itm_logits of ${source} to have dims [${pairs}, 2] or [${pairs}, Q, 2], got [${dims.join(', ')}]`);
  }
  const logits = toFloat32(t, `itm_logits of ${source}`);
  const queries = dims.length === 3 ? dims[1]! : 1;
  const pMatch = new Float32Array(pairs);
  for (let b = 0; b < pairs; b++) {
    let no = 0;
    let yes = 0;
    for (let q = 0; q < queries; q++) {
      no += logits[(b * queries + q) * 2]!;
      yes += logits[(b * queries + q) * 2 + 1]!;
    }
    // softmax([no, yes])[1] = sigmoid(yes - no), on the logits averaged over the queries.
    pMatch[b] = 1 / (1 + Math.exp((no - yes) / queries));
  }
  return { pMatch, logits, logitDims: [...dims] };
}

async function openGraphs(dir: string, variant: ModelVariant, options: ModelLoadOptions): Promise<Graphs> {
  const session = sessionOptions(options);
  const singlePath = onnxPath(dir, 'itm_model', variant);
  const visionPath = onnxPath(dir, 'itm_vision', variant);
  const fusionPath = onnxPath(dir, 'itm_fusion', variant);
  if (existsSync(singlePath)) {
    const model = await OnnxSession.open(singlePath, session);
    try {
      pickOutput(model, ['itm_logits'], 'match logits');
      pickInput(model, ['pixel_values'], 'image pixels');
      pickInput(model, ['input_ids'], 'token ids');
    } catch (err) {
      await model.close();
      throw err;
    }
    return { layout: 'single', model };
  }
  if (existsSync(visionPath) || existsSync(fusionPath)) {
    for (const p of [visionPath, fusionPath]) {
      if (!existsSync(p)) throw new ConfigError(`ITM model folder ${dir} has only one half of the split layout: ${p} is missing`);
    }
    const [vision, fusion] = await Promise.all([OnnxSession.open(visionPath, session), OnnxSession.open(fusionPath, session)]);
    try {
      const visionOutput = pickOutput(vision, ['image_embeds', 'last_hidden_state'], 'image embeddings').name;
      pickOutput(fusion, ['itm_logits'], 'match logits');
      pickInput(fusion, ['input_ids'], 'token ids');
      const fusionImageInput = pickInput(fusion, ['image_embeds', 'encoder_hidden_states'], 'image embeddings').name;
      const fusionImageMask = ['image_attention_mask', 'encoder_attention_mask'].find((n) => fusion.input(n) !== undefined);
      return { layout: 'split', vision, fusion, visionOutput, fusionImageInput, fusionImageMask };
    } catch (err) {
      await Promise.all([vision.close(), fusion.close()]);
      throw err;
    }
  }
  const found = await listOnnxFiles(dir);
  throw new ConfigError(
    `ITM model folder ${dir} has no ${variant} graphs: expected ${singlePath}, or ${visionPath} and ${fusionPath}` +
      ` (onnx/ holds: ${found.length > 0 ? found.join(', ') : 'nothing'})`,
  );
}
