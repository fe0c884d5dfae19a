/**
 * The image bytes an export writes. Whatever vlcurate writes, its own WebDataset source reads (jpg, jpeg,
 * png, webp members) and a trainer decodes with webdataset's default decoders (PIL's extensions: gif, tiff,
 * jp2 and webp, but not heif, avif or jxl; before webdataset 0.2.31, jpg, jpeg, png, ppm, pgm, pbm and pnm
 * only) or `PIL.Image.open` (LLaVA, Qwen). So:
 *
 * - JPEG, PNG and WebP stored upright are written byte for byte as they came.
 * - Any other format (GIF, TIFF, AVIF/HEIF, JPEG 2000, JPEG XL) is written as PNG: lossless, so the pixels
 *   the filter and captioner saw are the pixels trained on; an animation or a multi-page file gives its
 *   first frame or page (the one decode measured and the models saw).
 * - An EXIF orientation other than 1 stores the pixels turned or mirrored, and loaders read them as stored,
 *   while widths, heights and boxes in vlcurate are in the upright frame (decode applies the orientation).
 *   Such an image is written upright, without the tag: JPEG and WebP re-encoded as themselves at quality
 *   95, everything else as PNG.
 *
 * A converted sample says so: `image_converted: {from: {format, sha256, frames}, to}` in the WebDataset
 * `key.json`; its `format`, `sha256` and byte length describe the bytes written.
 */
import { createHash } from 'node:crypto';
import sharp from 'sharp';
import type { DecodedPair } from '../core/sample.js';

/** Formats written as they came (when upright). */
const KEPT_FORMATS = new Set(['jpeg', 'png', 'webp']);

/** What an export did to a sample's image bytes. */
export interface ImageConversion {
  from: { format: string; sha256: string; frames: number };
  to: string;
  /** Why: `format` (not one every reader decodes), `orientation` (turned upright), or both. */
  reason: ('format' | 'orientation')[];
}

export type ExportedImage<T extends DecodedPair> = T & { imageConversion?: ImageConversion };

/** The sample with the bytes to write (and facts to match), or the sample itself when written as it came. */
export async function exportImage<T extends DecodedPair>(sample: T): Promise<ExportedImage<T>> {
  const image = sample.image;
  if (!image || !sample.imageBytes) return sample;
  const turned = image.orientation > 1;
  const kept = KEPT_FORMATS.has(image.format);
  if (kept && !turned) return sample;
  const format = kept && image.format !== 'png' ? image.format : 'png';
  // The first frame or page only (sharp's default); `rotate()` without an angle applies the EXIF
  // orientation, and the output carries no EXIF (sharp drops it).
  let pipeline = sharp(sample.imageBytes, { limitInputPixels: false });
  if (turned) pipeline = pipeline.rotate();
  if (format === 'jpeg') pipeline = pipeline.jpeg({ quality: 95, chromaSubsampling: '4:4:4' });
  else if (format === 'webp') pipeline = pipeline.webp({ quality: 95 });
  else pipeline = pipeline.png();
  const bytes = await pipeline.toBuffer();
  const frames = (await sharp(sample.imageBytes, { limitInputPixels: false }).metadata()).pages ?? 1;
  const reason: ImageConversion['reason'] = [...(kept ? [] : ['format' as const]), ...(turned ? ['orientation' as const] : [])];
  return {
    ...sample,
    imageBytes: bytes,
    image: { ...image, format, byteLength: bytes.length, sha256: createHash('sha256').update(bytes).digest('hex'), orientation: 1 },
    imageConversion: { from: { format: image.format, sha256: image.sha256, frames }, to: format, reason },
  };
}
