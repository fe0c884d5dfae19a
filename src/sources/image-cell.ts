/**
 * What a manifest's image cell holds, by the value's kind:
 *
 * - a string (or CSV bytes): a path, `file:` URL or `http(s)://` URL (`images/image-location.ts`)
 * - binary data (a Parquet BYTE_ARRAY without a string annotation): the image itself, embedded, unless
 *   the bytes are plain UTF-8 text, which older writers use for paths (an image is never valid UTF-8)
 * - an object `{bytes, path}` (the Hugging Face `datasets` Image feature in Parquet): the embedded bytes
 *   when present, else the path
 */
import { locateImage, type ImageLocation, type LocalImages } from '../images/image-location.js';

export type ImageCell =
  | { kind: 'location'; location: ImageLocation }
  | { kind: 'embedded'; bytes: Buffer; path: string | null }
  | { kind: 'problem'; problem: string };

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/** The UTF-8 text of `bytes` when it is text (valid UTF-8 without control characters); else null. */
export function bytesAsText(bytes: Uint8Array): string | null {
  try {
    const text = strictUtf8.decode(bytes);
    return /[\u0000-\u0008\u000e-\u001f\u007f]/.test(text) ? null : text;
  } catch {
    return null;
  }
}

export function readImageCell(value: unknown, column: string, images: LocalImages): ImageCell {
  if (value === null) return { kind: 'problem', problem: `column "${column}" (image) is empty` };
  if (typeof value === 'string' || Buffer.isBuffer(value)) return fromText(String(value), column, images);
  if (value instanceof Uint8Array) {
    if (value.length === 0) return { kind: 'problem', problem: `column "${column}" (image) is empty` };
    const text = bytesAsText(value);
    return text === null ? { kind: 'embedded', bytes: Buffer.from(value.buffer, value.byteOffset, value.length), path: null } : fromText(text, column, images);
  }
  if (typeof value === 'object' && !Array.isArray(value) && ('bytes' in value || 'path' in value)) {
    const { bytes, path } = value as { bytes?: unknown; path?: unknown };
    const name = typeof path === 'string' && path.length > 0 ? path : null;
    if (bytes instanceof Uint8Array && bytes.length > 0) {
      return { kind: 'embedded', bytes: Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length), path: name };
    }
    if (typeof bytes === 'string' && bytes.length > 0) {
      return { kind: 'problem', problem: `column "${column}" (image).bytes holds text, expected binary image data` };
    }
    if (name !== null) return fromText(name, `${column}.path`, images);
    return { kind: 'problem', problem: `column "${column}" (image) has neither bytes nor a path` };
  }
  const kind = Array.isArray(value) ? 'a list' : typeof value === 'object' ? 'an object' : `a ${typeof value}`;
  return { kind: 'problem', problem: `column "${column}" (image) holds ${kind}, expected a path or URL string, image bytes, or {bytes, path}` };
}

function fromText(text: string, column: string, images: LocalImages): ImageCell {
  if (text.trim().length === 0) return { kind: 'problem', problem: `column "${column}" (image) is empty` };
  return { kind: 'location', location: locateImage(text, images) };
}
