/**
 * Streaming a large JSON file record by record: a top-level array (`[{...}, {...}]`, LLaVA's format)
 * or JSON Lines. Only one record's bytes are in memory at a time; each is then handed to `JSON.parse`,
 * so the file's size does not matter (LLaVA-1.5's 665k-record mix is over 1 GB).
 *
 * The array scanner tracks strings (with escapes) and nesting depth on bytes; it does not validate JSON
 * itself. A record `JSON.parse` rejects is yielded with its `error` and scanning goes on with the next
 * one; input that ends inside a record, or text after the closing `]`, is yielded as an error too. (A
 * record with unbalanced brackets swallows what follows it up to where the brackets balance: the bytes
 * cannot tell where it was meant to end.)
 */
import { readLines } from './text-input.js';

export type JsonRecord =
  | { index: number; line: number; value: unknown; error: null; invalidUtf8: boolean }
  | { index: number; line: number; value: undefined; error: string; invalidUtf8: boolean };

const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const LF = 0x0a;

function isSpace(c: number): boolean {
  return c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });
const lossyUtf8 = new TextDecoder('utf-8');

/** Decode and parse one record's bytes. */
export function parseJsonBytes(bytes: Buffer): { value: unknown; error: string | null; invalidUtf8: boolean } {
  let text: string;
  let invalidUtf8 = false;
  try {
    text = strictUtf8.decode(bytes);
  } catch {
    text = lossyUtf8.decode(bytes);
    invalidUtf8 = true;
  }
  try {
    return { value: JSON.parse(text), error: null, invalidUtf8 };
  } catch (err) {
    return { value: undefined, error: (err as Error).message, invalidUtf8 };
  }
}

/** How the records are laid out: one JSON array, or JSON Lines. */
export type JsonLayout = 'array' | 'lines';

/**
 * Records of a JSON array, or of JSON Lines when the input does not start with `[` (one value per line,
 * so a broken line costs only itself). `index` counts records from 0; `line` is the 1-based line where
 * the record starts. `onLayout` hears which layout was found before the first record is yielded.
 */
export async function* readJsonRecords(chunks: AsyncIterable<Buffer>, onLayout?: (layout: JsonLayout) => void): AsyncGenerator<JsonRecord> {
  const iterator = chunks[Symbol.asyncIterator]();
  const head: Buffer[] = [];
  let first: number | undefined;
  while (first === undefined) {
    const next = await iterator.next();
    if (next.done) break;
    head.push(next.value);
    first = firstNonSpace(next.value);
  }
  async function* replay(): AsyncGenerator<Buffer> {
    yield* head;
    for (let next = await iterator.next(); !next.done; next = await iterator.next()) yield next.value;
  }
  onLayout?.(first === OPEN_BRACKET ? 'array' : 'lines');
  if (first === OPEN_BRACKET) {
    yield* readArrayRecords(replay());
    return;
  }
  let index = 0;
  for await (const { bytes, line } of readLines(replay())) {
    if (firstNonSpace(bytes) === undefined) continue;
    const parsed = parseJsonBytes(bytes);
    yield parsed.error === null
      ? { index: index++, line, value: parsed.value, error: null, invalidUtf8: parsed.invalidUtf8 }
      : { index: index++, line, value: undefined, error: `not valid JSON: ${parsed.error}`, invalidUtf8: parsed.invalidUtf8 };
  }
}

function firstNonSpace(bytes: Buffer): number | undefined {
  for (const c of bytes) if (!isSpace(c)) return c;
  return undefined;
}

/** The records of a top-level JSON array, scanned on bytes. */
async function* readArrayRecords(chunks: AsyncIterable<Buffer>): AsyncGenerator<JsonRecord> {
  // null until the first non-space byte tells array or sequence.
  let arrayMode: boolean | null = null;
  let closed = false;
  let trailingLine: number | null = null;
  let inRecord = false;
  let container = false;
  let depth = 0;
  let inString = false;
  let escape = false;
  let parts: Buffer[] = [];
  let recordLine = 1;
  let line = 1;
  let index = 0;
  const out: JsonRecord[] = [];

  const emit = (bytes: Buffer) => {
    const parsed = parseJsonBytes(bytes);
    out.push(
      parsed.error === null
        ? { index, line: recordLine, value: parsed.value, error: null, invalidUtf8: parsed.invalidUtf8 }
        : { index, line: recordLine, value: undefined, error: `not valid JSON: ${parsed.error}`, invalidUtf8: parsed.invalidUtf8 },
    );
    index++;
  };
  const finishRecord = (tail: Buffer) => {
    parts.push(tail);
    const bytes = parts.length === 1 ? parts[0]! : Buffer.concat(parts);
    parts = [];
    inRecord = false;
    emit(bytes);
  };

  for await (const chunk of chunks) {
    const n = chunk.length;
    let recordStart = 0;
    for (let i = 0; i < n; i++) {
      const c = chunk[i]!;
      if (c === LF) line++;
      if (!inRecord) {
        if (isSpace(c)) continue;
        if (arrayMode === null) {
          arrayMode = c === OPEN_BRACKET;
          if (arrayMode) continue;
        } else if (arrayMode) {
          if (closed) {
            trailingLine ??= line;
            continue;
          }
          if (c === COMMA) continue;
          if (c === CLOSE_BRACKET) {
            closed = true;
            continue;
          }
        }
        inRecord = true;
        container = c === OPEN_BRACE || c === OPEN_BRACKET;
        recordStart = i;
        recordLine = line;
        depth = 0;
      }
      if (inString) {
        if (escape) escape = false;
        else if (c === BACKSLASH) escape = true;
        else if (c === QUOTE) inString = false;
        continue;
      }
      if (c === QUOTE) {
        inString = true;
      } else if (container) {
        if (c === OPEN_BRACE || c === OPEN_BRACKET) {
          depth++;
        } else if ((c === CLOSE_BRACE || c === CLOSE_BRACKET) && --depth === 0) {
          finishRecord(chunk.subarray(recordStart, i + 1));
        }
      } else if (c === COMMA || isSpace(c) || (arrayMode && c === CLOSE_BRACKET)) {
        // The end of a scalar record (a number, true, false, null or a string).
        finishRecord(chunk.subarray(recordStart, i));
        if (arrayMode && c === CLOSE_BRACKET) closed = true;
      }
    }
    if (inRecord) parts.push(chunk.subarray(recordStart));
    if (out.length > 0) {
      yield* out;
      out.length = 0;
    }
  }
  if (inRecord) {
    if (!container && !inString) {
      finishRecord(Buffer.alloc(0));
      if (arrayMode === true && !closed) {
        out.push({ index, line, value: undefined, error: 'the file ends before the closing "]" of the array', invalidUtf8: false });
      }
    } else {
      const length = parts.reduce((sum, part) => sum + part.length, 0);
      out.push({ index, line: recordLine, value: undefined, error: `the file ends inside this record (${length} bytes read)`, invalidUtf8: false });
    }
  } else if (arrayMode === true && !closed) {
    out.push({ index, line, value: undefined, error: 'the file ends before the closing "]" of the array', invalidUtf8: false });
  } else if (arrayMode === null) {
    // An empty file: no records.
  }
  if (trailingLine !== null) {
    out.push({ index: index + 1, line: trailingLine, value: undefined, error: 'unexpected text after the closing "]" of the array', invalidUtf8: false });
  }
  yield* out;
}
