/**
 * Image preprocessing driven by a Hugging Face `preprocessor_config.json`, filling one preallocated
 * float32 CHW batch `[B, 3, H, W]`.
 *
 * Steps, in the order transformers' CLIP / SigLIP / BLIP image processors apply them:
 *   decode -> EXIF orientation -> RGB -> resize (`size`, `resample`) -> center crop (`crop_size`, zero
 *   padding where the image is smaller) -> rescale (`rescale_factor`) -> normalize (`image_mean`,
 *   `image_std`).
 * sharp decodes, orients and resizes to raw 8-bit RGB; cropping, rescaling and normalising happen here
 * while the bytes are copied into the batch (through a per-channel lookup table that repeats
 * transformers' float32 arithmetic, so an image that needs no resampling comes out bit-identical).
 *
 * Known differences from the Python reference (PIL), all in the resize step only:
 * - sharp (libvips) and PIL implement the same kernels (bilinear = triangle, bicubic = Catmull-Rom with
 *   a = -0.5, lanczos = Lanczos-3; all widen their support when shrinking, i.e. antialias) but place and
 *   round samples slightly differently, so a resampled pixel can differ by a few 8-bit levels, mostly at
 *   hard edges. On the committed fixtures (48x40 -> 32x32 / 38x32) the mean absolute difference is below
 *   one 8-bit level; see tests/models/preprocess.test.ts for the measured bounds.
 * - Very large reductions: libvips may shrink by an integer factor with a box filter before the kernel
 *   pass, PIL convolves in one pass; the difference stays in the same range.
 * - `resample` 4 (box) and 5 (hamming) have no sharp kernel and are rejected; 0 (nearest) picks pixel
 *   centres the libvips way, which can shift the sampling grid by one pixel against PIL.
 * Images are always converted to 3-channel RGB (alpha is dropped, as PIL's `convert("RGB")` does, not
 * composited); `do_convert_rgb: false` is accepted but cannot be honoured for non-RGB images, because
 * the models take three channels.
 */
import sharp from 'sharp';
import { z } from 'zod';

import { decodeRgb, isPrepared, type PixelPreparer, type PreparedPixels, type RgbPixels } from '../core/decoded-pixels.js';
import { ConfigError, SampleError, describeError } from '../core/errors.js';
import { mapConcurrent } from '../iter/map-concurrent.js';
import { parseConfig, readJsonFile } from './model-files.js';

const positiveInt = (what: string) => z.number({ error: `expected ${what}` }).int({ error: `expected ${what}` }).positive({ error: `expected ${what}` });

const sizeSchema = z.union(
  [
    positiveInt('a positive integer'),
    z.strictObject({ shortest_edge: positiveInt('a positive integer'), longest_edge: positiveInt('a positive integer').optional() }),
    z.strictObject({ height: positiveInt('a positive integer'), width: positiveInt('a positive integer') }),
  ],
  { error: 'expected a positive integer, {"shortest_edge": n} or {"height": h, "width": w}' },
);

const channelValues = (what: string) =>
  z.union([z.number(), z.array(z.number(), { error: `expected ${what}: a number or 3 numbers` }).length(3, { error: `expected ${what}: a number or 3 numbers` })], {
    error: `expected ${what}: a number or 3 numbers`,
  });

/** The fields of `preprocessor_config.json` that preprocessing reads (others are ignored). */
export const preprocessorConfigSchema = z.object({
  image_processor_type: z.string().optional(),
  feature_extractor_type: z.string().optional(),
  do_resize: z.boolean({ error: 'expected true or false' }).optional(),
  size: sizeSchema.optional(),
  resample: z
    .number({ error: 'expected 0 (nearest), 1 (lanczos), 2 (bilinear) or 3 (bicubic)' })
    .refine((v) => v === 0 || v === 1 || v === 2 || v === 3, {
      error: 'expected 0 (nearest), 1 (lanczos), 2 (bilinear) or 3 (bicubic); 4 (box) and 5 (hamming) are not supported',
    })
    .optional(),
  do_center_crop: z.boolean({ error: 'expected true or false' }).optional(),
  crop_size: sizeSchema.optional(),
  do_rescale: z.boolean({ error: 'expected true or false' }).optional(),
  rescale_factor: z.number({ error: 'expected a positive number' }).positive({ error: 'expected a positive number' }).optional(),
  do_normalize: z.boolean({ error: 'expected true or false' }).optional(),
  image_mean: channelValues('the per-channel mean').optional(),
  image_std: channelValues('the per-channel standard deviation')
    .refine((v) => (Array.isArray(v) ? v.every((x) => x !== 0) : v !== 0), { error: 'expected non-zero standard deviations' })
    .optional(),
  do_convert_rgb: z.boolean({ error: 'expected true or false' }).optional(),
});

export type PreprocessorConfig = z.output<typeof preprocessorConfigSchema>;

type Kernel = 'nearest' | 'lanczos3' | 'linear' | 'cubic';
const KERNELS: Record<number, Kernel> = { 0: 'nearest', 1: 'lanczos3', 2: 'linear', 3: 'cubic' };

type ResizeRule =
  | { kind: 'none' }
  | { kind: 'shortest-edge'; shortestEdge: number; longestEdge: number | undefined }
  | { kind: 'exact'; height: number; width: number };

/** Options for {@link ImagePreprocessor.preprocessBatch}. */
export interface PreprocessBatchOptions {
  /**
   * Array to fill, at least `B * 3 * H * W` long; a new one is allocated when absent. Reusing one array
   * for every batch avoids allocation; see OnnxRunOptions.transferInputs before feeding it to a session.
   */
  out?: Float32Array;
  /** Images decoded at once (sharp runs them on libuv's thread pool). Default 4. */
  concurrency?: number;
}

/** One preprocessed batch. */
export interface PixelBatch {
  /** `[B, 3, H, W]` float32, row-major. */
  data: Float32Array;
  dims: [number, number, number, number];
  /** Per image: undefined when it was preprocessed, otherwise why not (its slot is left as zeros). */
  errors: Array<SampleError | undefined>;
}

/** Options for building a preprocessor. */
export interface ImagePreprocessorOptions {
  /** Refuse images with more pixels than this (decompression bombs). Default 100 000 000. */
  limitInputPixels?: number;
}

/**
 * What a model takes as an image: its encoded bytes, or the pixels the decode stage already decoded and
 * prepared (`core/decoded-pixels.ts`), which skips the decode here.
 */
export type ImageInput = Uint8Array | PreparedPixels;

/**
 * Turns encoded images into normalised float32 CHW pixels, as one model folder's config says. As a
 * {@link PixelPreparer} it does its resize step for the decode stage, which decodes each image once for
 * the check and every model.
 */
export class ImagePreprocessor implements PixelPreparer {
  /** Output height and width (every image comes out this size). */
  readonly height: number;
  readonly width: number;
  private readonly resize: ResizeRule;
  private readonly kernel: Kernel;
  private readonly crop: { height: number; width: number } | undefined;
  /** Per channel: 8-bit value -> float32 after rescale and normalize. */
  private readonly lut: [Float32Array, Float32Array, Float32Array];
  private readonly limitInputPixels: number;
  /** Preprocessors with the same resize rule and kernel prepare the same pixels (`PixelPreparer.key`). */
  readonly key: string;

  constructor(
    readonly config: PreprocessorConfig,
    /** Where the config came from, for messages. */
    readonly source: string,
    options: ImagePreprocessorOptions = {},
  ) {
    this.limitInputPixels = options.limitInputPixels ?? 100_000_000;
    this.kernel = KERNELS[config.resample ?? 3]!;
    const processorType = config.image_processor_type ?? config.feature_extractor_type ?? '';

    const doResize = config.do_resize ?? true;
    if (!doResize) {
      this.resize = { kind: 'none' };
    } else if (config.size === undefined) {
      throw new ConfigError(`${source}: field \`size\` is required when do_resize is true, got nothing`);
    } else if (typeof config.size === 'number') {
      // transformers reads a bare number as the shortest edge for CLIP-family processors (which crop
      // afterwards) and as a square size for the others (ViT, SigLIP, BLIP).
      const shortest = /clip/i.test(processorType) || config.do_center_crop === true;
      this.resize = shortest
        ? { kind: 'shortest-edge', shortestEdge: config.size, longestEdge: undefined }
        : { kind: 'exact', height: config.size, width: config.size };
    } else if ('shortest_edge' in config.size) {
      this.resize = { kind: 'shortest-edge', shortestEdge: config.size.shortest_edge, longestEdge: config.size.longest_edge };
    } else {
      this.resize = { kind: 'exact', height: config.size.height, width: config.size.width };
    }

    if (config.do_center_crop ?? false) {
      const crop = config.crop_size;
      if (crop === undefined) throw new ConfigError(`${source}: field \`crop_size\` is required when do_center_crop is true, got nothing`);
      if (typeof crop === 'number') this.crop = { height: crop, width: crop };
      else if ('height' in crop) this.crop = { height: crop.height, width: crop.width };
      else throw new ConfigError(`${source}: field \`crop_size\` expected a number or {"height": h, "width": w}, got ${JSON.stringify(crop)}`);
    }

    if (this.crop) {
      this.height = this.crop.height;
      this.width = this.crop.width;
    } else if (this.resize.kind === 'exact') {
      this.height = this.resize.height;
      this.width = this.resize.width;
    } else {
      throw new ConfigError(
        `${source}: images would come out in different sizes (field \`size\` is ${JSON.stringify(config.size ?? null)} ` +
          `and do_center_crop is not true); a batch needs {"height", "width"} sizes or a center crop`,
      );
    }
    this.lut = buildLookupTables(config, source);
    this.key = JSON.stringify({ resize: this.resize, kernel: this.kernel });
  }

  /** Read and validate `preprocessor_config.json` (a ConfigError names the file, the field and the value). */
  static async fromFile(file: string, options: ImagePreprocessorOptions = {}): Promise<ImagePreprocessor> {
    const raw = await readJsonFile(file, 'preprocessor config');
    return new ImagePreprocessor(parseConfig(preprocessorConfigSchema, raw, file), file, options);
  }

  /** Validate an already parsed config object. `source` names it in errors. */
  static fromConfig(raw: unknown, source: string, options: ImagePreprocessorOptions = {}): ImagePreprocessor {
    return new ImagePreprocessor(parseConfig(preprocessorConfigSchema, raw, source), source, options);
  }

  /** Values per image in the batch: 3 * H * W. */
  get imageSize(): number {
    return 3 * this.height * this.width;
  }

  /**
   * Preprocess one image into `out` at `offset` (in floats): encoded bytes are decoded here; pixels the
   * decode stage prepared start after the decode. A corrupt, unsupported or oversized image throws a
   * {@link SampleError} with code `image_decode`.
   */
  async preprocessInto(image: ImageInput, out: Float32Array, offset = 0): Promise<void> {
    if (out.length < offset + this.imageSize) {
      throw new RangeError(`Expected room for ${this.imageSize} values at offset ${offset}, the array holds ${out.length}`);
    }
    let rgb: RgbPixels;
    if (isPrepared(image)) {
      const prepared = image.get(this.key);
      if (prepared === undefined) throw new Error(`the decode stage prepared no pixels for ${this.source} (resize ${this.key})`);
      rgb = prepared;
    } else {
      try {
        rgb = await this.prepare(await decodeRgb(image, { limitInputPixels: this.limitInputPixels }));
      } catch (err) {
        throw new SampleError('image_decode', `Could not decode image: ${describeError(err)}`, { cause: err });
      }
    }
    this.writeChw(rgb.data, rgb.width, rgb.height, out, offset);
  }

  /** The resize step on decoded pixels (`PixelPreparer`): the pixels themselves when no resize is needed. */
  async prepare(pixels: RgbPixels): Promise<RgbPixels> {
    const { width, height } = pixels;
    const target = this.resizeTarget(width, height);
    if (target.width === width && target.height === height) return pixels;
    const data = await sharp(pixels.data, { raw: { width, height, channels: 3 } })
      .resize(target.width, target.height, { kernel: this.kernel, fit: 'fill', fastShrinkOnLoad: false })
      .raw({ depth: 'uchar' })
      .toBuffer();
    return { data, width: target.width, height: target.height };
  }

  /** Preprocess one image into a new `[1, 3, H, W]` array. */
  async preprocess(image: ImageInput): Promise<Float32Array> {
    const out = new Float32Array(this.imageSize);
    await this.preprocessInto(image, out, 0);
    return out;
  }

  /**
   * Preprocess a batch into one float32 `[B, 3, H, W]` array, at most `concurrency` images at a time.
   * An image that fails is recorded in `errors` (its slot is zeros) and the others go on.
   */
  async preprocessBatch(images: readonly ImageInput[], options: PreprocessBatchOptions = {}): Promise<PixelBatch> {
    const size = this.imageSize;
    const needed = images.length * size;
    const out = options.out ?? new Float32Array(needed);
    if (out.length < needed) {
      throw new RangeError(`Expected \`out\` to hold at least ${needed} values for ${images.length} images, got ${out.length}`);
    }
    const errors: Array<SampleError | undefined> = new Array<SampleError | undefined>(images.length).fill(undefined);
    async function* indices(): AsyncGenerator<number> {
      for (let i = 0; i < images.length; i++) yield i;
    }
    const work = mapConcurrent(
      indices(),
      async (i) => {
        try {
          await this.preprocessInto(images[i]!, out, i * size);
        } catch (err) {
          out.fill(0, i * size, (i + 1) * size);
          errors[i] = err instanceof SampleError ? err : new SampleError('image_decode', describeError(err), { cause: err });
        }
      },
      { concurrency: options.concurrency ?? 4, ordered: false },
    );
    for await (const _ of work) {
      // drain
    }
    return { data: out, dims: [images.length, 3, this.height, this.width], errors };
  }

  /** Width and height the image is resized to before cropping (transformers' rounding rules). */
  resizeTarget(width: number, height: number): { width: number; height: number } {
    const rule = this.resize;
    if (rule.kind === 'none') return { width, height };
    if (rule.kind === 'exact') return { width: rule.width, height: rule.height };
    const short = Math.min(width, height);
    const long = Math.max(width, height);
    let newShort = rule.shortestEdge;
    // Python's int(): truncation toward zero.
    let newLong = Math.trunc((newShort * long) / short);
    if (rule.longestEdge !== undefined && newLong > rule.longestEdge) {
      newShort = Math.trunc((rule.longestEdge * newShort) / newLong);
      newLong = rule.longestEdge;
    }
    return width <= height ? { width: newShort, height: newLong } : { width: newLong, height: newShort };
  }

  /** Center-crop (or zero-pad) `rgb` to the output size and write it as normalised CHW. */
  private writeChw(rgb: Buffer, width: number, height: number, out: Float32Array, offset: number): void {
    const outH = this.height;
    const outW = this.width;
    const plane = outH * outW;
    const [lut0, lut1, lut2] = this.lut;
    // transformers' center_crop: top = (h - crop_h) // 2 with floor division. When the image is smaller it
    // is first zero-padded by ceil((crop_h - h) / 2) rows on top, which lands on the same formula.
    const top = Math.floor((height - outH) / 2);
    const left = Math.floor((width - outW) / 2);
    for (let y = 0; y < outH; y++) {
      const sy = y + top;
      const rowOut = offset + y * outW;
      for (let x = 0; x < outW; x++) {
        const sx = x + left;
        const o = rowOut + x;
        if (sy < 0 || sy >= height || sx < 0 || sx >= width) {
          out[o] = lut0[0]!;
          out[o + plane] = lut1[0]!;
          out[o + 2 * plane] = lut2[0]!;
        } else {
          const s = (sy * width + sx) * 3;
          out[o] = lut0[rgb[s]!]!;
          out[o + plane] = lut1[rgb[s + 1]!]!;
          out[o + 2 * plane] = lut2[rgb[s + 2]!]!;
        }
      }
    }
  }
}

/** Read a folder's `preprocessor_config.json` (or the file itself when given a `.json` path). */
export async function loadPreprocessor(dirOrFile: string, options: ImagePreprocessorOptions = {}): Promise<ImagePreprocessor> {
  const file = dirOrFile.endsWith('.json') ? dirOrFile : `${dirOrFile.replace(/\/+$/, '')}/preprocessor_config.json`;
  return ImagePreprocessor.fromFile(file, options);
}

function triple(value: number | number[], field: string, source: string): [number, number, number] {
  if (typeof value === 'number') return [value, value, value];
  const [a, b, c] = value;
  if (a === undefined || b === undefined || c === undefined) {
    throw new ConfigError(`${source}: field \`${field}\` expected 3 numbers, got ${JSON.stringify(value)}`);
  }
  return [a, b, c];
}

/**
 * For each channel, the float32 value of every 8-bit level after rescale and normalize, computed the way
 * transformers does: `float32(float64(v) * rescale_factor)`, then `(x - mean) / std` in float32.
 */
function buildLookupTables(config: PreprocessorConfig, source: string): [Float32Array, Float32Array, Float32Array] {
  const doRescale = config.do_rescale ?? true;
  const factor = config.rescale_factor ?? 1 / 255;
  const doNormalize = config.do_normalize ?? true;
  let mean: [number, number, number] = [0, 0, 0];
  let std: [number, number, number] = [1, 1, 1];
  if (doNormalize) {
    if (config.image_mean === undefined) throw new ConfigError(`${source}: field \`image_mean\` is required when do_normalize is true, got nothing`);
    if (config.image_std === undefined) throw new ConfigError(`${source}: field \`image_std\` is required when do_normalize is true, got nothing`);
    mean = triple(config.image_mean, 'image_mean', source);
    std = triple(config.image_std, 'image_std', source);
  }
  const tables = [0, 1, 2].map((c) => {
    const table = new Float32Array(256);
    const m = Math.fround(mean[c]!);
    const s = Math.fround(std[c]!);
    for (let v = 0; v < 256; v++) {
      let x = doRescale ? Math.fround(v * factor) : v;
      if (doNormalize) x = Math.fround(Math.fround(x - m) / s);
      table[v] = x;
    }
    return table;
  });
  return tables as [Float32Array, Float32Array, Float32Array];
}
