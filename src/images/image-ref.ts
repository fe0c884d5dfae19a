/**
 * Reading image bytes back from the references sources record (`samples.image_ref`), so exports can be
 * written again from a run database without the original source stage:
 *
 * - `tar:ABS_PATH#MEMBER`: a member of a WebDataset shard (plain or gzip-compressed tar),
 * - `file:ABS_PATH`: a file,
 * - `parquet:ABS_PATH#row=N&column=NAME`: image bytes embedded in a Parquet cell (binary, or the `bytes`
 *   of a `{bytes, path}` struct).
 *
 * ABS_PATH may be a remote input (`s3://bucket/key`, `https://...`), read through the AWS SDK's own settings.
 *
 * {@link loadImages} fills `imageBytes` for a stream of samples. Consecutive samples of the same tar or
 * Parquet file are read in one pass over it (sort the stream by reference, as the export reader does,
 * and each file is scanned once); samples of a tar come out in the tar's member order. A member or file that is missing, unreadable, or
 * whose sha256 no longer matches the recorded one becomes a failure on that sample, never an exception.
 */
import type { FailureCode } from '../core/failure-codes.js';
import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { extract } from 'tar-stream';
import { describeError } from '../core/errors.js';
import { DEFAULT_MAX_FILE_BYTES } from './local-file.js';
import type { StorageSettings } from '../storage/storage-settings.js';
import { inputFailureCode, openInputStream, readInputBytes } from './input-file.js';
import { readParquetCells } from './parquet-file.js';
import { failSample, isOpen, OPEN, type ImageFacts, type SampleFate } from '../core/sample.js';

export type ImageRef =
  | { kind: 'tar'; path: string; member: string }
  | { kind: 'file'; path: string }
  | { kind: 'parquet'; path: string; row: number; column: string };

/** The reference of an image embedded in row `row` (0-based) of a Parquet file's `column`. */
export function parquetImageRef(path: string, row: number, column: string): string {
  return `parquet:${path}#row=${row}&column=${encodeURIComponent(column)}`;
}

const PARQUET_CELL = /#row=(\d+)&column=([^#&]+)$/;

/** Parse a reference; null when it is not one this module reads (e.g. a shard-level `tar:PATH` with no member). */
export function parseImageRef(ref: string): ImageRef | null {
  if (ref.startsWith('parquet:')) {
    const rest = ref.slice('parquet:'.length);
    const cell = PARQUET_CELL.exec(rest);
    if (cell === null || cell.index === 0) return null;
    try {
      return { kind: 'parquet', path: rest.slice(0, cell.index), row: Number(cell[1]), column: decodeURIComponent(cell[2]!) };
    } catch {
      return null;
    }
  }
  if (ref.startsWith('file:')) {
    const path = ref.slice('file:'.length);
    return path.length > 0 ? { kind: 'file', path } : null;
  }
  if (ref.startsWith('tar:')) {
    const rest = ref.slice('tar:'.length);
    const hash = rest.lastIndexOf('#');
    if (hash <= 0 || hash === rest.length - 1) return null;
    return { kind: 'tar', path: rest.slice(0, hash), member: rest.slice(hash + 1) };
  }
  return null;
}

/** What {@link loadImages} needs of a sample. */
export interface ImageRefSample {
  key: string;
  imageRef: string;
  imageBytes: Buffer | null;
  /** A sample no longer open (failed, dropped, or held back from exports) needs no bytes now. */
  fate: SampleFate;
  /** When present, the bytes read must have this sha256. */
  image?: ImageFacts | null;
}

export interface LoadImagesOptions {
  /** Most samples of one tar gathered before it is scanned (their metadata only). Default 10000. */
  maxGroup?: number;
  /** Files read at once for `file:` references. Default 8. */
  concurrency?: number;
  /** Check bytes against the recorded sha256 (`image.sha256`). Default true. */
  verifySha256?: boolean;
  /**
   * Most bytes read for one image (a file or a tar member); an image recorded larger than this may still
   * be as large as it was recorded. Default 64 MiB (`decode.maxBytes`'s default).
   */
  maxBytes?: number;
  signal?: AbortSignal;
  /** How `s3://` references are reached (the run's recipe `storage`); default: the AWS SDK's own settings. */
  storage?: StorageSettings;
}

/** Stage name on failures recorded here. */
const STAGE = 'image-ref';

function failed<T extends ImageRefSample>(sample: T, code: FailureCode, message: string): T {
  return failSample({ ...sample, imageBytes: null }, STAGE, code, message);
}

function withBytes<T extends ImageRefSample>(sample: T, bytes: Buffer, verify: boolean): T {
  const expected = sample.image?.sha256;
  if (verify && expected) {
    const actual = createHash('sha256').update(bytes).digest('hex');
    if (actual !== expected) {
      return failed(sample, 'image_changed', `image ${sample.imageRef} no longer matches its recorded sha256 (${expected.slice(0, 12)}…)`);
    }
  }
  return { ...sample, imageBytes: bytes };
}

/** Member names as the WebDataset reader records them (leading `./` removed). */
function memberName(name: string): string {
  return name.replace(/^(\.\/)+/, '');
}

async function readEntry(entry: AsyncIterable<Buffer>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of entry) chunks.push(chunk);
  return Buffer.concat(chunks);
}

async function drain(entry: AsyncIterable<unknown>): Promise<void> {
  for await (const _ of entry) {
    // discard
  }
}

/** Most bytes read for a sample: the limit, or its recorded size when that is larger. */
function limitFor(sample: ImageRefSample, maxBytes: number): number {
  return Math.max(maxBytes, sample.image?.byteLength ?? 0);
}

/** Scan one tar once, yielding the group's samples as their members come by, then the missing ones failed. */
async function* readTarGroup<T extends ImageRefSample>(
  path: string,
  group: readonly { sample: T; member: string }[],
  verify: boolean,
  maxBytes: number,
  storage?: StorageSettings,
): AsyncGenerator<T> {
  const wanted = new Map<string, T[]>();
  for (const { sample, member } of group) {
    const list = wanted.get(member);
    if (list) list.push(sample);
    else wanted.set(member, [sample]);
  }
  const opened = await openInputStream(path, 'shard', storage);
  if (!opened.ok) {
    const code = opened.problem === 'missing' ? 'shard_missing' : opened.problem === 'denied' || opened.problem === 'interrupted' ? inputFailureCode(opened.problem) : 'shard_unreadable';
    for (const { sample } of group) yield failed(sample, code, opened.message);
    return;
  }
  const file = opened.stream;
  const tar = extract();
  const input: Readable = opened.gzip ? file.pipe(createGunzip()) : file;
  file.on('error', (err) => tar.destroy(err));
  input.on('error', (err) => tar.destroy(err));
  input.pipe(tar);
  try {
    for await (const entry of tar) {
      const name = memberName(entry.header.name);
      const samples = wanted.get(name);
      if (!samples) {
        entry.resume();
        continue;
      }
      wanted.delete(name);
      // The size is in the header: a member over the limit is read past, never buffered.
      const size = entry.header.size ?? 0;
      const limit = Math.max(...samples.map((sample) => limitFor(sample, maxBytes)));
      if (size > limit) {
        await drain(entry as AsyncIterable<Buffer>);
        const message = `member ${name} of ${path} is ${size.toLocaleString('en-US')} bytes, more than decode.maxBytes ${limit.toLocaleString('en-US')}`;
        for (const sample of samples) yield failed(sample, 'image_too_large', message);
      } else {
        const bytes = await readEntry(entry as AsyncIterable<Buffer>);
        for (const sample of samples) yield withBytes(sample, bytes, verify);
      }
      if (wanted.size === 0) break;
    }
  } catch (err) {
    for (const samples of wanted.values()) {
      for (const sample of samples) yield failed(sample, 'shard_unreadable', `reading ${path}: ${describeError(err)}`);
    }
    return;
  } finally {
    file.destroy();
    input.destroy();
    tar.destroy();
  }
  for (const [member, samples] of wanted) {
    for (const sample of samples) yield failed(sample, 'image_missing', `member ${member} is not in ${path}`);
  }
}

async function readFileSample<T extends ImageRefSample>(sample: T, path: string, verify: boolean, maxBytes: number, storage?: StorageSettings): Promise<T> {
  const read = await readInputBytes(path, { maxBytes: limitFor(sample, maxBytes), what: 'image file', storage });
  return read.ok ? withBytes(sample, read.bytes, verify) : failed(sample, inputFailureCode(read.problem), read.message);
}

/**
 * Fill `imageBytes` from each sample's `imageRef`. Samples that already have bytes, or are no longer open
 * (`isOpen`: failed, dropped or deferred), pass through untouched. Order is kept except within a run of samples from one tar (tar member order).
 */
export async function* loadImages<T extends ImageRefSample>(samples: AsyncIterable<T>, options: LoadImagesOptions = {}): AsyncGenerator<T> {
  const maxGroup = options.maxGroup ?? 10_000;
  const concurrency = options.concurrency ?? 8;
  const verify = options.verifySha256 ?? true;
  const maxBytes = options.maxBytes ?? DEFAULT_MAX_FILE_BYTES;
  // Samples of one tar or Parquet file, waiting for one pass over it.
  let group: { kind: 'tar' | 'parquet'; path: string; items: { sample: T; ref: ImageRef }[] } | null = null;
  let files: Promise<T>[] = [];

  async function* flushFiles(): AsyncGenerator<T> {
    const pending = files;
    files = [];
    for (const p of pending) yield await p;
  }
  async function* flushGroup(): AsyncGenerator<T> {
    if (group === null) return;
    const { kind, path, items } = group;
    group = null;
    if (kind === 'tar') yield* readTarGroup(path, items.map(({ sample, ref }) => ({ sample, member: (ref as { member: string }).member })), verify, maxBytes, options.storage);
    else yield* readParquetGroup(path, items.map(({ sample, ref }) => ({ sample, cell: ref as { row: number; column: string } })), verify, options.storage);
  }

  for await (const sample of samples) {
    if (options.signal?.aborted) break;
    if (sample.imageBytes || !isOpen(sample)) {
      yield* flushGroup();
      yield* flushFiles();
      yield sample;
      continue;
    }
    const ref = parseImageRef(sample.imageRef);
    if (ref === null) {
      yield* flushGroup();
      yield* flushFiles();
      yield failed(sample, 'image_ref_invalid', `cannot read the image back from reference ${JSON.stringify(sample.imageRef)}`);
      continue;
    }
    if (ref.kind === 'file') {
      yield* flushGroup();
      files.push(readFileSample(sample, ref.path, verify, maxBytes, options.storage));
      if (files.length >= concurrency) yield* flushFiles();
      continue;
    }
    yield* flushFiles();
    if (group !== null && (group.kind !== ref.kind || group.path !== ref.path || group.items.length >= maxGroup)) yield* flushGroup();
    group ??= { kind: ref.kind, path: ref.path, items: [] };
    group.items.push({ sample, ref });
  }
  yield* flushGroup();
  yield* flushFiles();
}

/** Read the cells of one Parquet file the group needs, one row group at a time; samples keep their order. */
async function* readParquetGroup<T extends ImageRefSample>(
  path: string,
  group: readonly { sample: T; cell: { row: number; column: string } }[],
  verify: boolean,
  storage?: StorageSettings,
): AsyncGenerator<T> {
  let cells: Map<string, unknown>;
  try {
    cells = await readParquetCells(path, group.map((g) => g.cell), storage);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code === 'ENOENT' || /does not exist/.test(describeError(err)) ? 'image_missing' : 'image_unreadable';
    for (const { sample } of group) yield failed(sample, code, `cannot read ${path}: ${describeError(err)}`);
    return;
  }
  for (const { sample, cell } of group) {
    const value = cells.get(`${cell.row}\0${cell.column}`);
    const bytes = value instanceof Uint8Array ? value : (value as { bytes?: unknown } | null | undefined)?.bytes;
    if (bytes instanceof Uint8Array && bytes.length > 0) yield withBytes(sample, Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length), verify);
    else yield failed(sample, 'image_missing', `row ${cell.row} of ${path} has no image bytes in column "${cell.column}"`);
  }
}

/** Read one image reference (a tar is scanned up to its member), at most `maxBytes` bytes. */
export async function readImageRef(ref: string, maxBytes = DEFAULT_MAX_FILE_BYTES): Promise<Buffer> {
  const parsed = parseImageRef(ref);
  if (!parsed) throw new Error(`cannot read the image back from reference ${JSON.stringify(ref)}`);
  if (parsed.kind === 'file') {
    const read = await readInputBytes(parsed.path, { maxBytes, what: 'image file' });
    if (!read.ok) throw new Error(read.message);
    return read.bytes;
  }
  if (parsed.kind === 'parquet') {
    const probe: ImageRefSample = { key: 'probe', imageRef: ref, imageBytes: null, fate: OPEN };
    for await (const result of readParquetGroup(parsed.path, [{ sample: probe, cell: parsed }], false)) {
      if (result.fate.kind === 'failed') throw new Error(result.fate.message);
      return result.imageBytes!;
    }
    throw new Error(`row ${parsed.row} of ${parsed.path} could not be read`);
  }
  const probe: ImageRefSample = { key: 'probe', imageRef: ref, imageBytes: null, fate: OPEN };
  for await (const result of readTarGroup(parsed.path, [{ sample: probe, member: parsed.member }], false, maxBytes)) {
    if (result.fate.kind === 'failed') throw new Error(result.fate.message);
    return result.imageBytes!;
  }
  throw new Error(`member ${parsed.member} is not in ${parsed.path}`);
}
