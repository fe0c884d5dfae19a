/**
 * The `decode` stage: checks that every pair's bytes are a whole, readable raster image and records
 * what it is (`ImageFacts`: size after EXIF orientation, format, sha256). Order of checks, cheapest
 * first:
 *
 * 1. empty bytes -> `image_empty`; more than `maxBytes` -> `image_too_large`
 * 2. header (sharp metadata, no pixels decoded): unknown format -> `image_unsupported`; a vector or
 *    document format (svg, pdf) -> `image_unsupported`; a header sharp cannot read whose size fields
 *    (`claimed-size.ts`) claim more than `maxPixels` -> `image_too_large`; other damaged headers ->
 *    `image_truncated` / `image_corrupt`
 * 3. claimed width x height over `maxPixels` -> `image_too_large`, before any pixel is decoded
 *    (decompression bombs); sharp's `limitInputPixels` guards the decode too
 * 4. a JPEG whose structure walk (`jpeg-structure.ts`, `validate: structure`) calls it whole is accepted
 *    without a pixel decode when no model needs its pixels; on 1,200 damaged web-size JPEGs this refused
 *    exactly what the decode refuses (bench/jpeg-check-equivalence.ts). The walk runs right after 1: when
 *    it also reads the EXIF orientation plainly, its size and orientation stand for sharp's header read
 *    (2 and 3 are done on the walk's size), so a whole JPEG costs no sharp call at all.
 * 5. otherwise a decode of the pixel data (`failOn: 'truncated'`) -> `image_truncated` / `image_corrupt`.
 *    Large images are decoded with a 1/8 shrink, which JPEG and WebP do while decoding (every
 *    entropy-coded byte is still read, so truncation is still caught) and which keeps memory flat.
 *    Not below 1 MP: the shrink saves no CPU on web-size JPEGs and made 128 px ingest 1.6x slower.
 *    When model stages follow (`preparers`), the decode is the models' own (`decodeRgb`, full size, any
 *    size) and each model's resize step runs on its result here: the sample carries the prepared pixels
 *    to the model stages, which then decode nothing (one decode per image for the check and every model).
 *
 * Pairs that already failed, or that a source dropped without image bytes, pass through with
 * `image: null`.
 *
 * Every pair's captions (failed pairs' too) are also held to `maxCaptionChars` here: a longer caption is
 * cut to that length and marked `too_long`, unusable (`sources/caption-text.ts`).
 */
import { createHash } from 'node:crypto';
import { availableParallelism } from 'node:os';
import sharp, { type Metadata } from 'sharp';
import { z } from 'zod';
import { formatIssues } from '../core/format-issues.js';
import { countField, decodeConcurrencyFor } from '../core/runtime-settings.js';
import { ConfigError, describeError } from '../core/errors.js';
import { failSample, type DecodedPair, type ImageFacts, type Pair } from '../core/sample.js';
import type { Stage } from '../core/stage.js';
import { mapConcurrent } from '../iter/map-concurrent.js';
import { DEFAULT_MAX_CAPTION_CHARS, limitCaptionLength } from '../sources/caption-text.js';
import { claimedSize } from './claimed-size.js';
import { jpegStructure } from './jpeg-structure.js';
import { decodeRgb, type PixelPreparer, type PreparedPixels, type RgbPixels } from '../core/decoded-pixels.js';
import { DEFAULT_MAX_FILE_BYTES } from '../images/local-file.js';

export const decodeOptionsSchema = z
  .object({
    /** Most pixels (width x height) an image may claim; default 89,478,485, PIL's MAX_IMAGE_PIXELS. */
    maxPixels: z.number().int().positive().default(89_478_485),
    /**
     * Most bytes one image file, tar member or sidecar may have; larger ones are refused from their size,
     * before any byte is read (`image_too_large`). Default 64 MiB. URL downloads have their own
     * `download.maxBytes`.
     */
    maxBytes: z.number().int().positive().default(DEFAULT_MAX_FILE_BYTES),
    /**
     * Most characters a caption may have. A longer one is kept on record cut to this length, marked
     * `too_long` and unusable: never scored, published or sent to an LLM. Default 16,384.
     */
    maxCaptionChars: z.number().int().positive().default(DEFAULT_MAX_CAPTION_CHARS),
    /**
     * Images decoded at once (sharp runs them on libuv's thread pool, 4 threads unless UV_THREADPOOL_SIZE
     * says otherwise), or `auto` (default): the decode share of the cores (`core/runtime-settings.ts`, rule 5).
     */
    concurrency: countField.default('auto'),
    /**
     * How a JPEG is checked when no model needs its pixels: `structure` (default) walks its markers,
     * tables and scans and their restart markers to the end-of-image marker without decoding a pixel
     * (`jpeg-structure.ts`) and decodes only what that walk cannot call whole, so cut and damaged files
     * get the full decode's verdict and code; `decode` decodes every JPEG. Other formats are always
     * decoded, and so is every image when a model follows (that decode serves the model too).
     */
    validate: z.enum(['structure', 'decode']).default('structure'),
    /**
     * `exact`: an image with the same bytes (sha256) as an earlier sample that was not dropped as a
     * duplicate itself is dropped (`duplicate_image`, its `duplicateOf` names the first, stored in its metadata), before any
     * model sees it. Its captions are not merged into the first. Default `off`.
     */
    dedup: z.enum(['off', 'exact']).default('off'),
  })
  .strict();

export type DecodeOptions = z.infer<typeof decodeOptionsSchema>;

export const DECODE_STAGE = 'decode';

/** Formats accepted as training images. sharp reports AVIF and HEIC as `heif`. */
const RASTER_FORMATS = new Set(['jpeg', 'png', 'webp', 'gif', 'tiff', 'heif', 'avif', 'jp2k', 'jxl']);

/** Above this many pixels the check decodes with a 1/8 shrink instead of to full-size raw pixels. */
const SHRINK_ABOVE_PIXELS = 1_000_000;

export type DecodeResult = { ok: true; image: ImageFacts; pixels?: PreparedPixels } | { ok: false; code: DecodeFailureCode; message: string };

export type DecodeFailureCode =
  | 'image_missing'
  | 'image_empty'
  | 'image_unsupported'
  | 'image_truncated'
  | 'image_too_large'
  | 'image_corrupt';

export interface DecodeStageModels {
  /**
   * The resize steps of the models that follow (filter, captioner): each image is decoded once and
   * prepared for each of them, and carried on the sample as `pixels`. None (ingest only): no pixels are kept.
   */
  preparers?: readonly PixelPreparer[];
}

/** How `decodeImage` checks pixels: the stage's `validate` option, and the models' resize steps. */
export interface DecodeImageOptions extends DecodeStageModels {
  validate?: DecodeOptions['validate'];
}

export function createDecodeStage(options: z.input<typeof decodeOptionsSchema> = {}, models: DecodeStageModels = {}): Stage<Pair, DecodedPair> {
  const parsed = decodeOptionsSchema.safeParse(options);
  if (!parsed.success) {
    throw new ConfigError(`decode: ${formatIssues(parsed.error, options).join('; ')}`);
  }
  const { maxPixels, maxBytes, maxCaptionChars } = parsed.data;
  // A build passes the concurrency its runtime resolved; elsewhere `auto` is resolved for this machine.
  const concurrency = parsed.data.concurrency === 'auto' ? decodeConcurrencyFor(availableParallelism()) : parsed.data.concurrency;
  const imageOptions: DecodeImageOptions = { preparers: models.preparers ?? [], validate: parsed.data.validate };
  return {
    name: DECODE_STAGE,
    run(input) {
      return mapConcurrent(
        input,
        async (input): Promise<DecodedPair> => {
          // Every caption is held to the length limit here, failed samples' too (they are recorded).
          const pair = withCaptionsLimited(input, maxCaptionChars);
          // Failed pairs, and pairs a source dropped before reading an image (text-only records), pass through.
          if (pair.fate.kind === 'failed' || (pair.fate.kind === 'dropped' && pair.imageBytes === null)) return { ...pair, image: null };
          const result = await decodeImage(pair.imageBytes, maxPixels, maxBytes, imageOptions);
          if (result.ok) return result.pixels ? { ...pair, image: result.image, pixels: result.pixels } : { ...pair, image: result.image };
          return { ...failSample(pair, DECODE_STAGE, result.code, result.message), image: null };
        },
        { concurrency },
      );
    },
  };
}

function withCaptionsLimited(pair: Pair, maxChars: number): Pair {
  if (!pair.captions.some((caption) => caption.text.length > maxChars)) return pair;
  return { ...pair, captions: pair.captions.map((caption) => limitCaptionLength(caption, maxChars)) };
}

/** Check one image, and prepare its pixels for `preparers` (the models that follow) when there are any; never throws. */
export async function decodeImage(
  bytes: Buffer | null,
  maxPixels: number,
  maxBytes = DEFAULT_MAX_FILE_BYTES,
  options: DecodeImageOptions = {},
): Promise<DecodeResult> {
  const preparers = options.preparers ?? [];
  if (bytes === null) return { ok: false, code: 'image_missing', message: 'the source gave no image bytes' };
  if (bytes.length === 0) return { ok: false, code: 'image_empty', message: 'the image is empty (0 bytes)' };
  // Sources read no more than this; bytes from elsewhere (a Parquet cell, a download) are held to it too.
  if (bytes.length > maxBytes) {
    return { ok: false, code: 'image_too_large', message: `the image is ${bytes.length.toLocaleString('en-US')} bytes, more than decode.maxBytes ${maxBytes.toLocaleString('en-US')}` };
  }
  const sha256 = createHash('sha256').update(bytes).digest('hex');

  // A JPEG whose structure walks whole needs neither sharp's header read nor a pixel decode when nothing
  // needs its pixels: the walk knows its size and orientation (when it cannot read the EXIF, sharp does).
  const walk = preparers.length === 0 && (options.validate ?? 'structure') === 'structure' && sniffFormat(bytes) === 'jpeg' ? jpegStructure(bytes) : null;
  if (walk?.whole && walk.orientation !== null) {
    if (walk.width * walk.height > maxPixels) return tooLarge('jpeg', walk.width, walk.height, maxPixels);
    return { ok: true, image: imageFacts('jpeg', walk.width, walk.height, walk.orientation, bytes.length, sha256) };
  }

  let metadata: Metadata;
  try {
    // Header only: no pixel limit here, so an oversized image reports its claimed size for the check below.
    metadata = await sharp(bytes, { limitInputPixels: false }).metadata();
  } catch (err) {
    const sniffed = sniffFormat(bytes);
    // A bomb cut off after its size fields is reported by the size it claims: that, not the cut, is why it is refused.
    const claimed = claimedSize(bytes, sniffed);
    if (claimed !== null && claimed.width * claimed.height > maxPixels) {
      return tooLarge(`${sniffed} header`, claimed.width, claimed.height, maxPixels, ` (and the file cannot be read: ${firstLine(describeError(err))})`);
    }
    return classifyFailure(bytes, sniffed, err, 'its header cannot be read');
  }

  const format = metadata.format as string;
  if (!RASTER_FORMATS.has(format)) {
    return {
      ok: false,
      code: 'image_unsupported',
      message: `${format} is not a raster image format accepted for training (accepted: ${[...RASTER_FORMATS].join(', ')})`,
    };
  }
  const { width, height } = metadata;
  if (!(width > 0 && height > 0)) {
    return { ok: false, code: 'image_corrupt', message: `${format} header gives no usable size (${width}x${height})` };
  }
  if (width * height > maxPixels) return tooLarge(format, width, height, maxPixels);

  // A whole JPEG structure needs no pixel decode when nothing needs the pixels; anything else is decoded.
  const structureWhole = format === 'jpeg' && walk?.whole === true;
  let rgb: RgbPixels | null = null;
  if (!structureWhole) {
    try {
      rgb = await decodePixels(bytes, width, height, maxPixels, preparers.length > 0);
    } catch (err) {
      return classifyFailure(bytes, format, err, 'its pixel data cannot be decoded');
    }
  }
  // libjpeg quietly invents an end marker when only the last bytes are missing, so the decode can succeed
  // on a cut file (seen with shrink-on-load); check the container's own end too.
  const cut = missingEnd(bytes, format);
  if (cut !== null) {
    return { ok: false, code: 'image_truncated', message: `${format} data is cut off (${bytes.length} bytes, ${cut}) though its pixels decoded` };
  }

  let pixels: Map<string, RgbPixels> | undefined;
  if (rgb !== null) {
    pixels = new Map();
    try {
      for (const preparer of preparers) if (!pixels.has(preparer.key)) pixels.set(preparer.key, await preparer.prepare(rgb));
    } catch (err) {
      return { ok: false, code: 'image_corrupt', message: `${format} decoded but its pixels could not be prepared for the models: ${firstLine(describeError(err))}` };
    }
  }

  const image = imageFacts(format, width, height, metadata.orientation ?? 1, bytes.length, sha256);
  return pixels ? { ok: true, image, pixels } : { ok: true, image };
}

/** What the decode stage records of an image; an orientation outside 1-8 counts as 1 (none). */
function imageFacts(format: string, width: number, height: number, tag: number, byteLength: number, sha256: string): ImageFacts {
  const orientation = tag >= 1 && tag <= 8 ? tag : 1;
  const swap = orientation >= 5;
  return { width: swap ? height : width, height: swap ? width : height, format, byteLength, sha256, orientation };
}

/**
 * The check's pixel decode (`failOn: 'truncated'`): for the models, their own decode at full size, kept;
 * otherwise to raw pixels that are dropped, with a 1/8 shrink above 1 MP.
 */
async function decodePixels(bytes: Buffer, width: number, height: number, maxPixels: number, forModels: boolean): Promise<RgbPixels | null> {
  if (forModels) return decodeRgb(bytes, { limitInputPixels: maxPixels, failOn: 'truncated' });
  let pipeline = sharp(bytes, { failOn: 'truncated', limitInputPixels: maxPixels, sequentialRead: true });
  if (width * height > SHRINK_ABOVE_PIXELS) pipeline = pipeline.resize(Math.ceil(width / 8), Math.ceil(height / 8), { fit: 'fill', kernel: 'nearest' });
  await pipeline.raw().toBuffer();
  return null;
}

function tooLarge(what: string, width: number, height: number, maxPixels: number, more = ''): { ok: false; code: 'image_too_large'; message: string } {
  const pixels = (width * height).toLocaleString('en-US');
  return { ok: false, code: 'image_too_large', message: `${what} claims ${width}x${height} = ${pixels} pixels, more than maxPixels ${maxPixels.toLocaleString('en-US')}${more}` };
}

function classifyFailure(
  bytes: Buffer,
  format: string | null,
  err: unknown,
  what: string,
): { ok: false; code: DecodeFailureCode; message: string } {
  const detail = firstLine(describeError(err));
  if (/exceeds pixel limit/i.test(detail)) {
    return { ok: false, code: 'image_too_large', message: `image is larger than maxPixels: ${detail}` };
  }
  if (format === null && /unsupported image format/i.test(detail)) {
    return {
      ok: false,
      code: 'image_unsupported',
      message: `not an image in any format sharp reads (${bytes.length} bytes, starting ${describeStart(bytes)})`,
    };
  }
  const name = format ?? 'image';
  const ending = truncationEvidence(bytes, format);
  if (ending !== null || /premature end|truncated|unexpected end/i.test(detail)) {
    return {
      ok: false,
      code: 'image_truncated',
      message: `${name} data is cut off (${bytes.length} bytes${ending ? `, ${ending}` : ''}): ${detail}`,
    };
  }
  return { ok: false, code: 'image_corrupt', message: `${name} is damaged, ${what}: ${detail}` };
}

/** Format from magic bytes, for messages when sharp cannot even read the header. */
function sniffFormat(bytes: Buffer): string | null {
  if (bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) return 'jpeg';
  if (bytes.length >= 8 && bytes.subarray(0, 8).equals(PNG_SIGNATURE)) return 'png';
  if (bytes.length >= 12 && bytes.toString('latin1', 0, 4) === 'RIFF' && bytes.toString('latin1', 8, 12) === 'WEBP') {
    return 'webp';
  }
  if (bytes.length >= 6 && /^GIF8[79]a$/.test(bytes.toString('latin1', 0, 6))) return 'gif';
  if (bytes.length >= 4 && (bytes.toString('latin1', 0, 4) === 'II*\0' || bytes.toString('latin1', 0, 4) === 'MM\0*')) return 'tiff';
  return null;
}

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
const PNG_IEND = Buffer.from([0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82]);

/**
 * Why the container looks cut off, or null if its end looks whole: JPEG without an end-of-image
 * marker, PNG without IEND, WebP shorter than its RIFF size, GIF without its trailer byte, TIFF whose
 * first directory (TIFF writers often put it after the pixel data) lies past the end.
 */
function truncationEvidence(bytes: Buffer, format: string | null): string | null {
  switch (format) {
    case 'jpeg': {
      // Some writers pad after EOI; look for the marker near the end.
      const tail = bytes.subarray(Math.max(0, bytes.length - 64));
      return tail.includes(Buffer.from([0xff, 0xd9])) ? null : 'no end-of-image marker';
    }
    case 'png': {
      const tail = bytes.subarray(Math.max(0, bytes.length - 64));
      return tail.includes(PNG_IEND) ? null : 'no IEND chunk';
    }
    case 'webp': {
      if (bytes.length < 12) return 'shorter than a RIFF header';
      const declared = bytes.readUInt32LE(4) + 8;
      return declared > bytes.length ? `RIFF header declares ${declared} bytes` : null;
    }
    case 'gif':
      return bytes.at(-1) === 0x3b ? null : 'no trailer byte';
    case 'tiff': {
      if (bytes.length < 8) return 'shorter than a TIFF header';
      const directory = bytes[0] === 0x49 ? bytes.readUInt32LE(4) : bytes.readUInt32BE(4);
      return directory + 2 > bytes.length ? `its first directory starts at byte ${directory}, past the end` : null;
    }
    default:
      return null;
  }
}

const JPEG_SOS = Buffer.from([0xff, 0xda]);
const JPEG_EOI = Buffer.from([0xff, 0xd9]);

/**
 * After a successful decode: does the file lack its end? Stricter than `truncationEvidence` about where
 * the end may be, so trailers after the image (camera metadata, MPF) are not mistaken for damage. A JPEG
 * needs an end-of-image marker after its last scan (scan data cannot contain one); a PNG needs IEND.
 */
function missingEnd(bytes: Buffer, format: string): string | null {
  if (format === 'jpeg') {
    const lastScan = bytes.lastIndexOf(JPEG_SOS);
    return lastScan >= 0 && bytes.lastIndexOf(JPEG_EOI) < lastScan ? 'no end-of-image marker after the last scan' : null;
  }
  if (format === 'png') return bytes.lastIndexOf(PNG_IEND) >= 0 ? null : 'no IEND chunk';
  if (format === 'webp') return truncationEvidence(bytes, format);
  return null;
}

function firstLine(text: string): string {
  const line = text.split('\n', 1)[0] ?? '';
  return line.length > 200 ? `${line.slice(0, 197)}...` : line;
}

function describeStart(bytes: Buffer): string {
  const head = bytes.subarray(0, 8);
  const hex = [...head].map((b) => b.toString(16).padStart(2, '0')).join(' ');
  const text = head.toString('latin1').replace(/[^\x20-\x7e]/g, '.');
  return `${hex} "${text}"`;
}
