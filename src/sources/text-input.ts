/**
 * Reading text inputs (JSONL, CSV, TSV, LLaVA JSON) as byte streams: plain or gzip-compressed (told by
 * the file's first bytes, so `.gz` or not does not matter), never loaded whole.
 */
import type { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { ConfigError } from '../core/errors.js';
import { openInputStream } from '../images/input-file.js';
import type { StorageSettings } from '../storage/storage-settings.js';
import { isRemote } from '../storage/location.js';

/**
 * Open `absPath` (a local path, or an `s3://` / `https://` input, streamed) as a stream of bytes, gunzipped
 * when it is gzip. A file that does not exist or cannot be opened is a configuration error naming `option`
 * (e.g. `csv path`).
 */
export async function openInput(absPath: string, option: string, storage?: StorageSettings): Promise<Readable> {
  const opened = await openInputStream(absPath, 'file', storage);
  if (!opened.ok) {
    const why =
      opened.problem === 'missing'
        ? `file "${absPath}" does not exist${isRemote(absPath) ? ` (${opened.message})` : ''}`
        : opened.problem === 'folder' || opened.problem === 'not_a_file'
          ? `expected a file, got "${absPath}", which is not a regular file`
          : opened.message;
    throw new ConfigError(`${option}: ${why}`);
  }
  const file = opened.stream;
  if (!opened.gzip) return file;
  const gunzip = createGunzip();
  file.on('error', (err) => gunzip.destroy(err));
  gunzip.on('close', () => file.destroy());
  return file.pipe(gunzip);
}

export interface Line {
  /** The line's bytes without its `\n` (and without a `\r` before it). */
  bytes: Buffer;
  /** 1-based line number. */
  line: number;
}

/** Split a byte stream into lines at `\n`; a final line without `\n` is yielded too. Blank lines are yielded. */
export async function* readLines(chunks: AsyncIterable<Buffer>): AsyncGenerator<Line> {
  let pending: Buffer[] = [];
  let line = 0;
  const take = (tail: Buffer): Buffer => {
    const bytes = pending.length === 0 ? tail : Buffer.concat([...pending, tail]);
    pending = [];
    return bytes.length > 0 && bytes[bytes.length - 1] === 0x0d ? bytes.subarray(0, bytes.length - 1) : bytes;
  };
  for await (const chunk of chunks) {
    let start = 0;
    for (let end = chunk.indexOf(0x0a, start); end >= 0; end = chunk.indexOf(0x0a, start)) {
      line++;
      yield { bytes: take(chunk.subarray(start, end)), line };
      start = end + 1;
    }
    if (start < chunk.length) pending.push(chunk.subarray(start));
  }
  if (pending.length > 0) {
    line++;
    yield { bytes: take(Buffer.alloc(0)), line };
  }
}

/** Strip a UTF-8 byte order mark from the start of a stream. */
export async function* stripBom(chunks: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
  let head: Buffer | null = Buffer.alloc(0);
  for await (const chunk of chunks) {
    if (head === null) {
      yield chunk;
      continue;
    }
    head = Buffer.concat([head, chunk]);
    if (head.length < 3) continue;
    yield head[0] === 0xef && head[1] === 0xbb && head[2] === 0xbf ? head.subarray(3) : head;
    head = null;
  }
  if (head !== null && head.length > 0) {
    const bom = Buffer.from([0xef, 0xbb, 0xbf]);
    if (!bom.subarray(0, head.length).equals(head)) yield head;
  }
}
