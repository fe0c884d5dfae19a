/**
 * Brace expansion for shard paths, as webdataset and img2dataset write them:
 *
 * - numeric ranges, zero-padded when either bound starts with a zero: `shard-{000000..000009}.tar`
 *   (optionally with a step, `{0..10..2}`, and descending, `{5..1}`)
 * - single-letter ranges: `{a..e}`
 * - lists: `{train,val}`, nested lists: `{a,{b,c}}`
 * - several braces in one pattern: the cartesian product, leftmost brace varying slowest
 * - several patterns separated by `::` (webdataset's multi-source syntax)
 * - `\{`, `\}`, `\,` and `\\` stand for the literal characters
 *
 * Anything else with a brace in it is an error (`ConfigError`) that names the pattern, rather than a
 * file name with braces in it that would then be reported missing.
 */
import { ConfigError } from '../core/errors.js';

/** More paths than this from one pattern is almost certainly a typo (e.g. a missing digit of padding). */
export const MAX_EXPANSION = 1_000_000;

type Node = { kind: 'text'; text: string } | { kind: 'choice'; options: Node[][] };

/** Expand one or more patterns; `::` separates patterns inside a string. Order is preserved. */
export function expandPatterns(patterns: string | readonly string[]): string[] {
  const list = typeof patterns === 'string' ? [patterns] : patterns;
  const out: string[] = [];
  for (const entry of list) {
    for (const part of splitPatterns(entry)) {
      for (const path of expandBraces(part)) out.push(path);
    }
  }
  return out;
}

/** Split at `::` outside braces. An empty part (`a.tar::`) is an error. */
export function splitPatterns(text: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (ch === '\\') {
      i++;
    } else if (ch === '{') {
      depth++;
    } else if (ch === '}') {
      depth = Math.max(0, depth - 1);
    } else if (ch === ':' && text[i + 1] === ':' && depth === 0) {
      parts.push(text.slice(start, i));
      start = i + 2;
      i++;
    }
  }
  parts.push(text.slice(start));
  for (const part of parts) {
    if (part.trim().length === 0) {
      throw new ConfigError(`path pattern "${text}": empty pattern between "::" separators`);
    }
  }
  return parts;
}

/** Expand the braces of a single pattern (no `::` handling). */
export function expandBraces(pattern: string): string[] {
  const parser = new Parser(pattern);
  const nodes = parser.parseSequence(false);
  if (parser.pos < pattern.length) {
    // At the top level parsing only stops early at a `}` that closes nothing.
    parser.fail(`unmatched "}" at position ${parser.pos + 1}`);
  }
  const countOf = (seq: Node[]): number => {
    let n = 1;
    for (const node of seq) {
      if (node.kind === 'choice') n *= node.options.reduce((sum, option) => sum + countOf(option), 0);
      if (n > MAX_EXPANSION) return n;
    }
    return n;
  };
  if (countOf(nodes) > MAX_EXPANSION) {
    throw new ConfigError(
      `path pattern "${pattern}": expands to more than ${MAX_EXPANSION.toLocaleString('en-US')} paths; check the range bounds`,
    );
  }
  return expandSequence(nodes);
}

function expandSequence(seq: Node[]): string[] {
  let results = [''];
  for (const node of seq) {
    if (node.kind === 'text') {
      results = results.map((prefix) => prefix + node.text);
    } else {
      const tails = node.options.flatMap((option) => expandSequence(option));
      const next: string[] = [];
      for (const prefix of results) for (const tail of tails) next.push(prefix + tail);
      results = next;
    }
  }
  return results;
}

class Parser {
  pos = 0;
  constructor(private readonly pattern: string) {}

  fail(what: string): never {
    throw new ConfigError(`path pattern "${this.pattern}": ${what}`);
  }

  /** Parse until the end, or (inside a brace) until an unescaped `,` or `}`. */
  parseSequence(insideBrace: boolean): Node[] {
    const nodes: Node[] = [];
    let text = '';
    const flush = () => {
      if (text.length > 0) nodes.push({ kind: 'text', text });
      text = '';
    };
    while (this.pos < this.pattern.length) {
      const ch = this.pattern[this.pos]!;
      if (ch === '\\') {
        const next = this.pattern[this.pos + 1];
        if (next === undefined) this.fail('trailing "\\" escapes nothing');
        text += next;
        this.pos += 2;
      } else if (ch === '{') {
        flush();
        nodes.push(this.parseBrace());
      } else if (ch === '}' || (ch === ',' && insideBrace)) {
        break;
      } else {
        text += ch;
        this.pos++;
      }
    }
    flush();
    return nodes;
  }

  /** At `{`: parse a list or a range up to the matching `}`. */
  private parseBrace(): Node {
    const open = this.pos;
    this.pos++; // '{'
    const options: Node[][] = [];
    let sawComma = false;
    while (true) {
      options.push(this.parseSequence(true));
      const ch = this.pattern[this.pos];
      if (ch === undefined) this.fail(`"{" at position ${open + 1} is never closed`);
      this.pos++;
      if (ch === '}') break;
      sawComma = true; // ch === ','
    }
    if (sawComma) return { kind: 'choice', options };

    const body = this.pattern.slice(open + 1, this.pos - 1);
    if (body.length === 0) this.fail(`empty braces "{}" at position ${open + 1}`);
    const values = expandRange(body, (what) => this.fail(what));
    if (values === null) {
      this.fail(
        `"{${body}}" at position ${open + 1} is neither a list such as {a,b} nor a range such as {000..009}`,
      );
    }
    return { kind: 'choice', options: values.map((value) => [{ kind: 'text', text: value }]) };
  }
}

const NUMERIC_RANGE = /^(-?\d+)\.\.(-?\d+)(?:\.\.(-?\d+))?$/;
const LETTER_RANGE = /^([A-Za-z])\.\.([A-Za-z])(?:\.\.(-?\d+))?$/;

/** `000..009` -> ['000', ..., '009']; `a..c` -> ['a', 'b', 'c']; null when `body` is not a range. */
function expandRange(body: string, fail: (what: string) => never): string[] | null {
  const numeric = NUMERIC_RANGE.exec(body);
  if (numeric) {
    const [, startText, endText, stepText] = numeric;
    const start = Number(startText);
    const end = Number(endText);
    const step = rangeStep(stepText, body, fail);
    const padded = hasLeadingZero(startText!) || hasLeadingZero(endText!);
    const width = padded ? Math.max(startText!.replace('-', '').length, endText!.replace('-', '').length) : 0;
    const total = Math.floor(Math.abs(end - start) / step) + 1;
    if (total > MAX_EXPANSION) {
      fail(`range "{${body}}" has ${total.toLocaleString('en-US')} values, more than ${MAX_EXPANSION.toLocaleString('en-US')}`);
    }
    const values: string[] = [];
    const direction = end >= start ? 1 : -1;
    for (let i = 0, n = start; i < total; i++, n += direction * step) {
      const digits = String(Math.abs(n)).padStart(width, '0');
      values.push(n < 0 ? `-${digits}` : digits);
    }
    return values;
  }
  const letters = LETTER_RANGE.exec(body);
  if (letters) {
    const [, startText, endText, stepText] = letters;
    const start = startText!.charCodeAt(0);
    const end = endText!.charCodeAt(0);
    const step = rangeStep(stepText, body, fail);
    const direction = end >= start ? 1 : -1;
    const values: string[] = [];
    for (let c = start; direction > 0 ? c <= end : c >= end; c += direction * step) {
      values.push(String.fromCharCode(c));
    }
    return values;
  }
  return null;
}

function rangeStep(stepText: string | undefined, body: string, fail: (what: string) => never): number {
  if (stepText === undefined) return 1;
  const step = Math.abs(Number(stepText));
  if (step === 0) fail(`range "{${body}}": the step must not be 0`);
  return step;
}

function hasLeadingZero(text: string): boolean {
  const digits = text.startsWith('-') ? text.slice(1) : text;
  return digits.length > 1 && digits.startsWith('0');
}
