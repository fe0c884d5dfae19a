/**
 * Small JPEG thumbnails as `data:` URLs, made with sharp from the original image bytes, read back
 * through each sample's `image_ref` (`tar:ABS#MEMBER` or `file:ABS`). References are read sorted, so each
 * tar is scanned once for all of its wanted members.
 */
import sharp from 'sharp';
import type { StorageSettings } from '../storage/storage-settings.js';
import { OPEN, type ImageFacts } from '../core/sample.js';
import { loadImages, type ImageRefSample } from '../images/image-ref.js';

export type Thumbnail =
  | { ok: true; dataUrl: string; width: number; height: number; bytes: number }
  | { ok: false; error: string };

export interface ThumbnailRequest {
  key: string;
  imageRef: string;
  /** Recorded facts: when the sha256 is known the bytes must still match it. */
  sha256?: string | null;
}

export interface ThumbnailOptions {
  /** Longest side in pixels (never enlarged). Default 256. */
  size?: number;
  /** JPEG quality. Default 70. */
  quality?: number;
  /** Most pixels an image may have before it is refused (as decode's guard). Default 89478485. */
  maxPixels?: number;
}

async function thumbnail(bytes: Buffer, options: Required<ThumbnailOptions>): Promise<Thumbnail> {
  try {
    const { data, info } = await sharp(bytes, { limitInputPixels: options.maxPixels, failOn: 'error' })
      .rotate()
      .resize({ width: options.size, height: options.size, fit: 'inside', withoutEnlargement: true })
      .flatten({ background: '#ffffff' })
      .jpeg({ quality: options.quality, mozjpeg: true })
      .toBuffer({ resolveWithObject: true });
    return { ok: true, dataUrl: `data:image/jpeg;base64,${data.toString('base64')}`, width: info.width, height: info.height, bytes: data.length };
  } catch (err) {
    return { ok: false, error: `cannot make a thumbnail: ${(err as Error).message}` };
  }
}

async function* sorted(requests: readonly ThumbnailRequest[]): AsyncGenerator<ImageRefSample> {
  const unique = new Map(requests.map((r) => [r.key, r]));
  const list = [...unique.values()].sort((a, b) => (a.imageRef < b.imageRef ? -1 : a.imageRef > b.imageRef ? 1 : 0));
  for (const r of list) {
    const image = r.sha256 ? ({ sha256: r.sha256 } as ImageFacts) : null;
    yield { key: r.key, imageRef: r.imageRef, imageBytes: null, fate: OPEN, image };
  }
}

/** Thumbnails by sample key; an image that cannot be read or decoded gets the reason instead. */
export async function makeThumbnails(requests: readonly ThumbnailRequest[], options: ThumbnailOptions = {}, storage?: StorageSettings): Promise<Map<string, Thumbnail>> {
  const resolved: Required<ThumbnailOptions> = { size: options.size ?? 256, quality: options.quality ?? 70, maxPixels: options.maxPixels ?? 89_478_485 };
  const out = new Map<string, Thumbnail>();
  for await (const sample of loadImages(sorted(requests), { concurrency: 4, ...(storage ? { storage } : {}) })) {
    if (sample.fate.kind === 'failed' || !sample.imageBytes) {
      out.set(sample.key, { ok: false, error: sample.fate.kind === 'failed' ? sample.fate.message : 'no image bytes' });
      continue;
    }
    out.set(sample.key, await thumbnail(sample.imageBytes, resolved));
  }
  return out;
}
