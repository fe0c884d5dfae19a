import { describe, expect, it } from 'vitest';
import { parseDelimited, type DelimitedRecord } from '../../src/sources/delimited.js';
import { readJsonRecords, type JsonRecord } from '../../src/sources/json-records.js';
import { readLines, stripBom } from '../../src/sources/text-input.js';
import { expectEvery } from '../expect-every.js';

/** The input in chunks of `size` bytes: every record boundary case lands on a chunk edge somewhere. */
async function* chunked(text: string | Buffer, size: number): AsyncGenerator<Buffer> {
  const bytes = Buffer.isBuffer(text) ? text : Buffer.from(text);
  for (let i = 0; i < bytes.length; i += size) yield Buffer.from(bytes.subarray(i, i + size));
}

async function parse(text: string, size = 1 << 16, delimiter = ',', quote: string | null = '"'): Promise<{ fields: string[]; line: number; problem: string | null }[]> {
  const out: DelimitedRecord[] = [];
  for await (const r of parseDelimited(stripBom(chunked(text, size)), { delimiter: delimiter.charCodeAt(0), quote: quote === null ? null : quote.charCodeAt(0) })) out.push(r);
  return out.map((r) => ({ fields: r.fields.map((f) => f.toString('utf8')), line: r.line, problem: r.problem }));
}

const TRICKY = [
  '\uFEFFid,text,n',
  '1,"a, b",x',
  '2,"he said ""hi""",y',
  '3,"two\nlines",z',
  '4,plain "inner" quote,w',
  '5,,',
  '',
  '6,"",last',
].join('\r\n');

describe('parseDelimited', () => {
  it('handles quotes, escaped quotes, embedded newlines, CRLF, a BOM, empty fields and blank lines', async () => {
    const records = await parse(TRICKY);
    expect(records.map((r) => r.fields)).toEqual([
      ['id', 'text', 'n'],
      ['1', 'a, b', 'x'],
      ['2', 'he said "hi"', 'y'],
      ['3', 'two\nlines', 'z'],
      ['4', 'plain "inner" quote', 'w'],
      ['5', '', ''],
      ['6', '', 'last'],
    ]);
    // Line numbers count the newline inside the quoted field and the blank line.
    expect(records.map((r) => r.line)).toEqual([1, 2, 3, 4, 6, 7, 9]);
    expectEvery(records, (r) => r.problem === null);
  });

  it('gives the same records whatever the chunk size (boundaries inside quotes, CRLF pairs, the BOM)', async () => {
    const whole = await parse(TRICKY);
    for (const size of [1, 2, 3, 5, 7, 13]) expect(await parse(TRICKY, size), `chunk ${size}`).toEqual(whole);
  });

  it('a last record without a newline, a lone CR as newline, a trailing delimiter', async () => {
    expect((await parse('a,b\rc,d\ne,')).map((r) => r.fields)).toEqual([
      ['a', 'b'],
      ['c', 'd'],
      ['e', ''],
    ]);
  });

  it('text after a closing quote and an unterminated quote are problems, the parse goes on', async () => {
    const records = await parse('"a"b,c\nok,1\n"open,2\nmore\n');
    expect(records[0]!.problem).toMatch(/field 1 has text after its closing quote/);
    expect(records[0]!.fields).toEqual(['ab', 'c']);
    expect(records[1]).toEqual({ fields: ['ok', '1'], line: 2, problem: null });
    expect(records[2]!.problem).toMatch(/opens a quote on line 3 that is never closed/);
  });

  it('a stray quote that swallows the next lines says which lines it took', async () => {
    const records = await parse('key,caption\nc1,ok\nc2,"oops\nc3,fine\nc4,"x\ny"\nc5,last\n');
    expect(records.map((r) => r.line)).toEqual([1, 2, 3, 6, 7]);
    expect(records[2]!.problem).toBe(
      'field 2 has text after its closing quote (a quote inside a quoted field must be doubled); this record runs from line 3 to line 5, so those lines are part of it',
    );
  });

  it('TSV with quoting off reads quotes as text', async () => {
    const records = await parse('"quoted\tstart\n', 4, '\t', null);
    expect(records.map((r) => r.fields)).toEqual([['"quoted', 'start']]);
  });

  it('keeps bytes as they are, so invalid UTF-8 survives to be flagged', async () => {
    const bytes = Buffer.concat([Buffer.from('a,'), Buffer.from([0xe9, 0xff]), Buffer.from('\n')]);
    const out: DelimitedRecord[] = [];
    for await (const r of parseDelimited(chunked(bytes, 1), { delimiter: 0x2c, quote: 0x22 })) out.push(r);
    expect([...out[0]!.fields[1]!]).toEqual([0xe9, 0xff]);
  });
});

async function records(text: string, size = 1 << 16): Promise<JsonRecord[]> {
  const out: JsonRecord[] = [];
  for await (const r of readJsonRecords(chunked(text, size))) out.push(r);
  return out;
}

const LLAVA_LIKE = `[
  {"id": "1", "image": "a.jpg", "conversations": [{"from": "human", "value": "<image>\\nWhat is [this] {thing}?"}, {"from": "gpt", "value": "a \\"quoted\\" ] answer"}]},
  {"id": 2, "nested": [[1, 2], {"a": []}]},
  {"id": "3", "broken": tru},
  "a string",
  42
]`;

describe('readJsonRecords', () => {
  it('splits a JSON array into records, brackets and escaped quotes inside strings included', async () => {
    const out = await records(LLAVA_LIKE);
    expect(out.map((r) => r.error === null)).toEqual([true, true, false, true, true]);
    expect((out[0]!.value as { conversations: { value: string }[] }).conversations[1]!.value).toBe('a "quoted" ] answer');
    expect(out[1]!.value).toEqual({ id: 2, nested: [[1, 2], { a: [] }] });
    expect(out[2]!.error).toMatch(/not valid JSON/);
    expect(out[3]!.value).toBe('a string');
    expect(out[4]!.value).toBe(42);
    expect(out.map((r) => r.index)).toEqual([0, 1, 2, 3, 4]);
    expect(out.map((r) => r.line)).toEqual([2, 3, 4, 5, 6]);
  });

  it('gives the same records whatever the chunk size', async () => {
    const whole = await records(LLAVA_LIKE);
    for (const size of [1, 2, 3, 7, 16]) expect(await records(LLAVA_LIKE, size), `chunk ${size}`).toEqual(whole);
  });

  it('reads JSON Lines (a sequence of objects) too', async () => {
    const out = await records('{"a":1}\n{"a":2}\n\n{"a":3}');
    expect(out.map((r) => r.value)).toEqual([{ a: 1 }, { a: 2 }, { a: 3 }]);
  });

  it('reports a file that ends inside a record, or before "]", and text after "]"', async () => {
    const cut = await records('[{"a":1}, {"a": [2');
    expect(cut.map((r) => r.error)).toEqual([null, expect.stringMatching(/ends inside this record/)]);
    const open = await records('[{"a":1}');
    expect(open.at(-1)!.error).toMatch(/before the closing "\]"/);
    const trailing = await records('[{"a":1}] junk');
    expect(trailing.at(-1)!.error).toMatch(/after the closing "\]"/);
    expect(await records('[]')).toEqual([]);
    expect(await records('')).toEqual([]);
  });
});

describe('readLines', () => {
  it('splits on LF, strips CR, keeps a last line without newline', async () => {
    const out: string[] = [];
    for await (const l of readLines(chunked('a\r\nbb\n\nccc', 2))) out.push(`${l.line}:${l.bytes.toString()}`);
    expect(out).toEqual(['1:a', '2:bb', '3:', '4:ccc']);
  });
});
