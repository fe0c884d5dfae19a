import { publishedCaption, type DecodedPair } from '../core/sample.js';
import type { ImageConversion } from './export-image.js';
import type { SampleMember, WebDatasetSample } from './webdataset-writer.js';

/**
 * How a `DecodedPair` becomes WebDataset members:
 * - `key.<ext>`: the image bytes as given (the exports write JPEG, PNG and WebP as they came and any other
 *   format as PNG, EXIF-rotated images upright: `export-image.ts`); `<ext>` from the format
 *   ({@link imageExtension}): jpg, png or webp,
 * - `key.txt`: the published caption (the first kept one) when its text is not blank ({@link trainingCaption});
 *   a caption export leaves samples without one out (`webdataset-conversations.ts`),
 * - `key.json`: everything known about the sample ({@link SampleJson}), keys in a fixed order.
 */

/** A sample as the export sees it: decoded, perhaps dropped, perhaps carrying synthesized conversations. */
export type ExportableSample = DecodedPair & {
  /** Synthesized conversations, when a synthesis stage has run; written to `key.json` as they are. */
  conversations?: unknown;
  /** Set when the export wrote other bytes than the source's (`export-image.ts`); `key.json` says so. */
  imageConversion?: ImageConversion;
};

/** The JSON member. Scores not computed yet are null, never missing. */
export interface SampleJson {
  key: string;
  width: number;
  height: number;
  format: string;
  sha256: string;
  source: string;
  captions: {
    text: string;
    origin: string;
    itc: number | null;
    itm: number | null;
    kept: boolean | null;
    reason: string | null;
    issue: string | null;
  }[];
  boxes: { label: string; box: [number, number, number, number] }[];
  meta: unknown;
  /** The image was written in another format or turned upright: what it was. */
  image_converted?: ImageConversion;
  conversations?: unknown;
}

/** sharp format names whose usual file extension differs from the name. */
const EXTENSIONS: Readonly<Record<string, string>> = {
  jpeg: 'jpg',
  jp2k: 'jp2',
};

/** File extension for a sharp format name: jpeg → jpg, jp2k → jp2; png, webp, gif, tiff, avif, heif… as is. */
export function imageExtension(format: string): string {
  const lower = format.toLowerCase();
  return EXTENSIONS[lower] ?? (lower.replace(/[^a-z0-9]/g, '') || 'bin');
}

/** Recursively sort object keys so that the same data always serializes to the same text. */
function canonical(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(canonical);
  if (value !== null && typeof value === 'object' && !(value instanceof Date)) {
    const out: Record<string, unknown> = {};
    for (const key of Object.keys(value).sort()) out[key] = canonical((value as Record<string, unknown>)[key]);
    return out;
  }
  return value;
}

/**
 * @param extra fields appended to the JSON (conversations merged from instruction records, token counts);
 *   they replace `sample.conversations` when they carry `conversations`.
 */
export function sampleJson(sample: ExportableSample, extra?: Readonly<Record<string, unknown>>): SampleJson {
  const image = sample.image;
  if (!image) throw new Error(`sample ${sample.key}: has no decoded image to export`);
  const json: SampleJson = {
    key: sample.key,
    width: image.width,
    height: image.height,
    format: image.format,
    sha256: image.sha256,
    source: sample.source,
    captions: sample.captions.map((c) => ({
      text: c.text,
      origin: c.origin,
      itc: c.itc ?? null,
      itm: c.itm ?? null,
      kept: c.kept ?? null,
      reason: c.reason ?? null,
      issue: c.issue,
    })),
    boxes: sample.boxes.map((b) => ({ label: b.label, box: [b.box[0], b.box[1], b.box[2], b.box[3]] })),
    meta: canonical(sample.meta),
  };
  if (sample.imageConversion) json.image_converted = canonical(sample.imageConversion) as ImageConversion;
  if (sample.conversations !== undefined) json.conversations = canonical(sample.conversations);
  if (extra) for (const [field, value] of Object.entries(extra)) (json as unknown as Record<string, unknown>)[field] = canonical(value);
  return json;
}

/** Additions to a sample's members: JSON fields and extra members (`input_ids.npy`, `labels.npy`). */
export interface WebDatasetSampleExtras {
  json?: Readonly<Record<string, unknown>>;
  members?: readonly SampleMember[];
}

/** The caption `key.txt` holds: the published caption, unless its text is blank (nothing to train on). */
export function trainingCaption(captions: DecodedPair['captions']): string | null {
  const caption = publishedCaption(captions);
  return caption && caption.text.trim().length > 0 ? caption.text : null;
}

/** The members of one sample. Throws when the sample has no image (failed samples are never exported). */
export function toWebDatasetSample(sample: ExportableSample, extras: WebDatasetSampleExtras = {}): WebDatasetSample {
  if (!sample.image || !sample.imageBytes) {
    throw new Error(`sample ${sample.key}: has no image bytes to export`);
  }
  const members: SampleMember[] = [
    { ext: imageExtension(sample.image.format), data: sample.imageBytes },
    { ext: 'json', data: Buffer.from(JSON.stringify(sampleJson(sample, extras.json)), 'utf8') },
    ...(extras.members ?? []),
  ];
  const caption = trainingCaption(sample.captions);
  if (caption !== null) members.push({ ext: 'txt', data: Buffer.from(caption, 'utf8') });
  return { key: sample.key, members };
}
