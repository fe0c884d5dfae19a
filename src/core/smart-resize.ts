/**
 * Qwen2-VL's `smart_resize`: the size an image is resized to before patching. Both sides become multiples
 * of `factor` (patch 14 x merge 2 = 28), the area is kept within [minPixels, maxPixels], the aspect ratio
 * about the same. One visual token stands for one `factor x factor` block (2x2 patches merged), so an
 * image costs `(h / 28) * (w / 28)` tokens: 480x640 -> 476x644 -> 391, 224x224 -> 64, 1080x1920 -> 728x1316 -> 1222.
 *
 * Rounding is Python's `round` (half to even), as in the reference. Sides are at least `factor`, as in
 * Qwen2.5-VL's version (Qwen2-VL's raised an error for images smaller than 28 px).
 */

export interface SmartResizeOptions {
  /** Side multiple: patch size x merge size. Default 28. */
  factor?: number;
  /** Least area in pixels. Default 56*56 = 3136. */
  minPixels?: number;
  /** Most area in pixels. Default 28*28*1280 = 1003520. */
  maxPixels?: number;
}

export const QWEN2_VL_FACTOR = 28;
export const QWEN2_VL_MIN_PIXELS = 56 * 56;
export const QWEN2_VL_MAX_PIXELS = 28 * 28 * 1280;
/** The reference refuses images whose long side is over 200 times the short one. */
export const MAX_ASPECT_RATIO = 200;

/** Python 3 `round(x)`: to the nearest integer, ties to the even one. */
export function roundHalfEven(x: number): number {
  const floor = Math.floor(x);
  const diff = x - floor;
  if (diff > 0.5) return floor + 1;
  if (diff < 0.5) return floor;
  return floor % 2 === 0 ? floor : floor + 1;
}

/** Resized `{height, width}`; throws a RangeError for a non-positive size or an aspect ratio over 200. */
export function smartResize(height: number, width: number, options: SmartResizeOptions = {}): { height: number; width: number } {
  const factor = options.factor ?? QWEN2_VL_FACTOR;
  const minPixels = options.minPixels ?? QWEN2_VL_MIN_PIXELS;
  const maxPixels = options.maxPixels ?? QWEN2_VL_MAX_PIXELS;
  if (!(height > 0 && width > 0)) throw new RangeError(`image size must be positive, got ${width}x${height}`);
  if (Math.max(height, width) / Math.min(height, width) > MAX_ASPECT_RATIO) {
    throw new RangeError(`aspect ratio of ${width}x${height} is over ${MAX_ASPECT_RATIO}`);
  }
  let h = Math.max(factor, roundHalfEven(height / factor) * factor);
  let w = Math.max(factor, roundHalfEven(width / factor) * factor);
  if (h * w > maxPixels) {
    const beta = Math.sqrt((height * width) / maxPixels);
    h = Math.max(factor, Math.floor(height / beta / factor) * factor);
    w = Math.max(factor, Math.floor(width / beta / factor) * factor);
  } else if (h * w < minPixels) {
    const beta = Math.sqrt(minPixels / (height * width));
    h = Math.ceil((height * beta) / factor) * factor;
    w = Math.ceil((width * beta) / factor) * factor;
  }
  return { height: h, width: w };
}

/**
 * Why Qwen2-VL's trainers would not turn this image into the vision tokens an export counts, or null.
 *
 * - A side under `factor` (28 px): transformers' Qwen2-VL image processor raised for these up to 4.52
 *   ("height:12 or width:1000 must be larger than factor:28"); later versions (4.57, 5.x) and qwen-vl-utils
 *   upscale them, but not alike (`round(12 / 28)` is 0 in transformers, 28 px in qwen-vl-utils: a 1000x12
 *   image gets 19 tokens from one and 36 from the other). Refused: `image_too_small`.
 * - Long side over 200 times the short one: every version raises. Refused: `image_aspect_ratio`.
 */
export function qwenImageProblem(width: number, height: number, factor: number = QWEN2_VL_FACTOR): { code: 'image_too_small' | 'image_aspect_ratio'; message: string } | null {
  if (Math.min(width, height) < factor) {
    return {
      code: 'image_too_small',
      message: `${width}x${height} has a side under ${factor} px: Qwen2-VL image processors refuse it (transformers up to 4.52) or upscale it to sizes that differ between libraries`,
    };
  }
  if (Math.max(width, height) / Math.min(width, height) > MAX_ASPECT_RATIO) {
    return { code: 'image_aspect_ratio', message: `${width}x${height} has an aspect ratio over ${MAX_ASPECT_RATIO}, which Qwen2-VL image processors refuse` };
  }
  return null;
}

/** Visual tokens for an image of this size (after the 2x2 merge). */
export function qwenImageTokenCount(height: number, width: number, options: SmartResizeOptions = {}): number {
  const factor = options.factor ?? QWEN2_VL_FACTOR;
  const size = smartResize(height, width, options);
  return (size.height / factor) * (size.width / factor);
}
