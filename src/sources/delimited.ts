/**
 * A streaming CSV/TSV parser (RFC 4180 plus what real files do), on bytes:
 *
 * - fields separated by the delimiter (`,` or tab), records by `\n`, `\r\n` or a lone `\r`
 * - a field that starts with `"` is quoted: it may hold delimiters, newlines and `""` for a quote
 * - a quote inside an unquoted field is an ordinary character (TSV files from the web are full of them)
 * - a character after a closing quote other than a delimiter or newline is kept, and the record carries
 *   a `problem` (the quoting is broken, so its fields may be wrong)
 * - a quoted field still open at the end of the input is a record with a `problem`
 * - blank lines are skipped; a UTF-8 byte order mark at the start is removed by the caller (`stripBom`)
 *
 * Fields are yielded as bytes: the delimiter, quote and newline are ASCII, which never occurs inside a
 * multi-byte UTF-8 sequence, so splitting bytes is exact and each field can be decoded strictly by its
 * user (a caption that is not UTF-8 is kept with `issue: invalid_utf8` rather than silently repaired).
 * The state machine keeps only the current record in memory, however the input is chunked.
 */

export interface DelimitedOptions {
  /** One ASCII byte, e.g. `,` (0x2c) or tab (0x09). */
  delimiter: number;
  /** The quote byte (`"`), or null when fields are never quoted. */
  quote: number | null;
}

export interface DelimitedRecord {
  fields: Buffer[];
  /** 1-based line on which the record starts. */
  line: number;
  /** What is wrong with the record's quoting, or null. */
  problem: string | null;
}

const LF = 0x0a;
const CR = 0x0d;

const enum State {
  FieldStart,
  Unquoted,
  Quoted,
  /** Just read a quote inside a quoted field: the next byte decides (quote, end of field, or broken). */
  QuoteSeen,
}

export async function* parseDelimited(chunks: AsyncIterable<Buffer>, options: DelimitedOptions): AsyncGenerator<DelimitedRecord> {
  const { delimiter, quote } = options;
  let state = State.FieldStart;
  let parts: Buffer[] = [];
  let fields: Buffer[] = [];
  let line = 1;
  let recordLine = 1;
  let quotedLine = 1;
  let problem: string | null = null;
  let sawQuote = false;
  let skipLf = false;
  let records: DelimitedRecord[] = [];
  const quoteBytes = quote === null ? EMPTY : Buffer.from([quote]);

  const endField = () => {
    fields.push(parts.length === 0 ? EMPTY : parts.length === 1 ? parts[0]! : Buffer.concat(parts));
    parts = [];
  };
  /** `lastLine`: the line the record ends on. */
  const endRecord = (lastLine: number) => {
    endField();
    const blank = fields.length === 1 && fields[0]!.length === 0 && !sawQuote;
    // A broken quote swallows the lines after it: say how far, so the rows that seem missing are found.
    if (problem !== null && lastLine > recordLine) problem += `; this record runs from line ${recordLine} to line ${lastLine}, so those lines are part of it`;
    if (!blank) records.push({ fields, line: recordLine, problem });
    fields = [];
    problem = null;
    sawQuote = false;
    state = State.FieldStart;
  };

  for await (const chunk of chunks) {
    let i = 0;
    const n = chunk.length;
    while (i < n) {
      if (skipLf) {
        skipLf = false;
        if (chunk[i] === LF) {
          i++;
          continue;
        }
      }
      switch (state) {
        case State.FieldStart: {
          if (fields.length === 0) recordLine = line;
          if (quote !== null && chunk[i] === quote) {
            state = State.Quoted;
            sawQuote = true;
            quotedLine = line;
            i++;
          } else {
            state = State.Unquoted;
          }
          break;
        }
        case State.Unquoted: {
          let j = i;
          let c = 0;
          while (j < n) {
            c = chunk[j]!;
            if (c === delimiter || c === LF || c === CR) break;
            j++;
          }
          if (j > i) parts.push(chunk.subarray(i, j));
          if (j === n) {
            i = n;
            break;
          }
          i = j + 1;
          if (c === delimiter) {
            endField();
            state = State.FieldStart;
          } else {
            line++;
            endRecord(line - 1);
            if (c === CR) skipLf = true;
          }
          break;
        }
        case State.Quoted: {
          const q = chunk.indexOf(quote!, i);
          const end = q < 0 ? n : q;
          if (end > i) {
            const piece = chunk.subarray(i, end);
            parts.push(piece);
            line += countLineBreaks(piece);
          }
          if (q < 0) {
            i = n;
          } else {
            i = q + 1;
            state = State.QuoteSeen;
          }
          break;
        }
        case State.QuoteSeen: {
          const c = chunk[i]!;
          if (c === quote) {
            parts.push(quoteBytes);
            state = State.Quoted;
            i++;
          } else if (c === delimiter) {
            endField();
            state = State.FieldStart;
            i++;
          } else if (c === LF || c === CR) {
            line++;
            endRecord(line - 1);
            if (c === CR) skipLf = true;
            i++;
          } else {
            problem ??= `field ${fields.length + 1} has text after its closing quote (a quote inside a quoted field must be doubled)`;
            state = State.Unquoted;
          }
          break;
        }
      }
      if (records.length > 0) {
        yield* records;
        records = [];
      }
    }
  }
  if (state === State.Quoted) {
    problem ??= `field ${fields.length + 1} opens a quote on line ${quotedLine} that is never closed before the end of the file`;
    endRecord(recordLine); // the message already says it runs to the end
  } else if (state !== State.FieldStart || fields.length > 0) {
    endRecord(line);
  }
  yield* records;
}

const EMPTY = Buffer.alloc(0);

/** Line breaks inside a quoted field: `\n`, `\r\n` (once) and a lone `\r`. */
function countLineBreaks(bytes: Buffer): number {
  let count = 0;
  for (let i = bytes.indexOf(LF); i >= 0; i = bytes.indexOf(LF, i + 1)) count++;
  for (let i = bytes.indexOf(CR); i >= 0; i = bytes.indexOf(CR, i + 1)) if (bytes[i + 1] !== LF) count++;
  return count;
}
