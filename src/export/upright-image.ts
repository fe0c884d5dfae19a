/**
 * Images with an EXIF orientation other than 1 store their pixels turned or mirrored; viewers turn them
 * upright, but training loaders (PIL's `Image.open`, WebDataset's decoders) read the stored pixels as they
 * are. Widths, heights and boxes in vlcurate are in the upright frame (decode applies the orientation),
 * so exports write such an image upright, with the tag gone: every loader then sees the frame the
 * coordinates describe. Images stored upright (orientation 1) are written byte for byte as they came.
 */
import { createHash } from 'node:crypto';
import sharp from 'sharp';
import type { DecodedPair } from '../core/sample.js';

/** Formats re-encoded as themselves; any other turned image is written as PNG. */
const KEEP_FORMAT = new Set(['jpeg', 'png', 'webp']);

/** The sample with upright image bytes (and facts to match), or the sample itself when already upright. */
export async function uprightImage<T extends DecodedPair>(sample: T): Promise<T> {
  const image = sample.image;
  if (!image || !sample.imageBytes || image.orientation <= 1) return sample;
  const format = KEEP_FORMAT.has(image.format) ? image.format : 'png';
  // `rotate()` without an angle applies the EXIF orientation; output carries no EXIF (sharp drops it).
  let pipeline = sharp(sample.imageBytes, { limitInputPixels: false }).rotate();
  if (format === 'jpeg') pipeline = pipeline.jpeg({ quality: 95, chromaSubsampling: '4:4:4' });
  else if (format === 'webp') pipeline = pipeline.webp({ quality: 95 });
  else pipeline = pipeline.png();
  const bytes = await pipeline.toBuffer();
  return {
    ...sample,
    imageBytes: bytes,
    image: { ...image, format, byteLength: bytes.length, sha256: createHash('sha256').update(bytes).digest('hex'), orientation: 1 },
  };
}
