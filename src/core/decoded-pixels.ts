/**
 * An image's pixels as the models start from them, so one decode per image can serve both the decode
 * stage's check and every model's preprocessing (issue 15): the decode stage decodes with
 * {@link decodeRgb}, hands the result to each model's {@link PixelPreparer} (its resize step), and the
 * sample carries the prepared forms ({@link PreparedPixels}) to the model stages, which skip their own
 * decode. The last model stage releases them.
 */
import sharp, { type FailOnOptions } from 'sharp';

/** 8-bit sRGB, 3 channels interleaved, row-major, EXIF orientation applied, alpha dropped (not composited). */
export interface RgbPixels {
  readonly data: Buffer;
  readonly width: number;
  readonly height: number;
}

/**
 * One model's first step after the decode (its resize). Preparers with the same `key` give the same
 * result for the same pixels, so models that share a resize share one prepared copy.
 */
export interface PixelPreparer {
  readonly key: string;
  prepare(pixels: RgbPixels): Promise<RgbPixels>;
}

/** A sample's pixels prepared for its models, by {@link PixelPreparer.key}. */
export type PreparedPixels = ReadonlyMap<string, RgbPixels>;

export interface DecodeRgbOptions {
  /** Refuse images with more pixels than this before decoding (sharp's `limitInputPixels`). */
  limitInputPixels: number;
  /** sharp's `failOn`; default `warning` (sharp's default). The decode stage passes `truncated`. */
  failOn?: FailOnOptions;
}

/**
 * Decode encoded bytes to {@link RgbPixels}: orient by EXIF, drop alpha, convert to sRGB, 8 bits per
 * channel; grey images are spread to three channels. Throws sharp's error for images it cannot decode.
 */
export async function decodeRgb(bytes: Uint8Array, options: DecodeRgbOptions): Promise<RgbPixels> {
  const decoded = await sharp(bytes, { limitInputPixels: options.limitInputPixels, failOn: options.failOn ?? 'warning' })
    .autoOrient()
    .removeAlpha()
    .toColourspace('srgb')
    .raw({ depth: 'uchar' })
    .toBuffer({ resolveWithObject: true });
  const { width, height, channels } = decoded.info;
  return { data: toThreeChannels(decoded.data, channels, width * height), width, height };
}

function toThreeChannels(data: Buffer, channels: number, pixels: number): Buffer {
  if (channels === 3) return data;
  const out = Buffer.allocUnsafe(pixels * 3);
  const grey = channels < 3;
  for (let p = 0; p < pixels; p++) {
    const s = p * channels;
    out[p * 3] = data[s]!;
    out[p * 3 + 1] = data[grey ? s : s + 1]!;
    out[p * 3 + 2] = data[grey ? s : s + 2]!;
  }
  return out;
}

/** Whether a model input is pixels the decode stage prepared rather than encoded bytes. */
export function isPrepared(image: Uint8Array | PreparedPixels): image is PreparedPixels {
  return image instanceof Map;
}
