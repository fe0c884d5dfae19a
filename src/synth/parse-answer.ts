/**
 * Strict parsers for LLM answers. Conversation and reasoning answers are `Question:` / `Answer:` blocks
 * separated by lines of `===`; a detail answer is one paragraph. A parse either gives turns or a
 * rejection with a stable code and a short explanation.
 */
import { z } from 'zod';

export type Rejection = { code: string; detail: string };
export type ParseResult<T> = { ok: true; value: T } | ({ ok: false } & Rejection);

export interface QaPair {
  question: string;
  answer: string;
}

const qaPairsSchema = z
  .array(
    z.object({
      question: z.string().trim().min(1, 'empty question'),
      answer: z.string().trim().min(1, 'empty answer'),
    }),
  )
  .min(1, 'no question and answer');

const SEPARATOR = /^[ \t]*={3,}[ \t]*$/m;
const LABEL = /^(Question|Answer)[ \t]*:[ \t]*/;

function reject(code: string, detail: string): { ok: false } & Rejection {
  return { ok: false, code, detail };
}

function quote(text: string, max = 40): string {
  const line = text.replace(/\s+/g, ' ').trim();
  return JSON.stringify(line.length > max ? `${line.slice(0, max)}...` : line);
}

function normalise(text: string): string {
  return text.replace(/\r\n?/g, '\n').trim();
}

/** Parse `Question:` / `Answer:` blocks separated by `===` lines into alternating pairs. */
export function parseQaBlocks(text: string): ParseResult<QaPair[]> {
  const body = normalise(text);
  if (body === '') return reject('empty_answer', 'the answer is empty');
  const blocks = body.split(new RegExp(SEPARATOR.source, 'gm')).map((block) => block.trim());
  // A separator before the first block or after the last one is harmless; one between two others is not.
  while (blocks.length > 0 && blocks[0] === '') blocks.shift();
  while (blocks.length > 0 && blocks[blocks.length - 1] === '') blocks.pop();
  const turns: { label: 'Question' | 'Answer'; text: string }[] = [];
  for (const [i, block] of blocks.entries()) {
    if (block === '') return reject('empty_turn', `block ${i + 1} is empty (two === lines in a row)`);
    const match = LABEL.exec(block);
    if (!match) return reject('bad_format', `block ${i + 1} starts with ${quote(block)} instead of "Question:" or "Answer:"`);
    const content = block.slice(match[0].length).trim();
    if (/^(Question|Answer)[ \t]*:/m.test(content)) {
      return reject('missing_separator', `block ${i + 1} holds a second "Question:" or "Answer:" without a === line between them`);
    }
    if (content === '') return reject('empty_turn', `block ${i + 1} has an empty ${match[1]!.toLowerCase()}`);
    turns.push({ label: match[1] as 'Question' | 'Answer', text: content });
  }
  const pairs: QaPair[] = [];
  for (let i = 0; i < turns.length; i += 2) {
    const q = turns[i]!;
    const a = turns[i + 1];
    if (q.label !== 'Question') return reject('broken_alternation', `block ${i + 1} is an answer where a question should be`);
    if (!a) return reject('broken_alternation', `question ${pairs.length + 1} has no answer`);
    if (a.label !== 'Answer') return reject('broken_alternation', `block ${i + 2} is a question where an answer should be`);
    pairs.push({ question: q.text, answer: a.text });
  }
  const checked = qaPairsSchema.safeParse(pairs);
  if (!checked.success) return reject('empty_turn', checked.error.issues[0]?.message ?? 'invalid turns');
  return { ok: true, value: checked.data };
}

/** Parse a one-paragraph answer: lines of one paragraph are joined; lists, several paragraphs or Q/A blocks are rejected. */
export function parseParagraph(text: string): ParseResult<string> {
  const body = normalise(text);
  if (body === '') return reject('empty_answer', 'the answer is empty');
  if (/^(Question|Answer)[ \t]*:/m.test(body) || SEPARATOR.test(body)) {
    return reject('bad_format', 'expected one paragraph, got Question/Answer blocks');
  }
  if (/\n[ \t]*\n/.test(body)) return reject('multiple_paragraphs', 'expected one paragraph, got several');
  if (/^[ \t]*([-*\u2022]|\d+[.)])[ \t]+/m.test(body)) return reject('bad_format', 'expected a paragraph of prose, got a list');
  if (/^#{1,6}[ \t]/m.test(body)) return reject('bad_format', 'expected a paragraph of prose, got a heading');
  const paragraph = body.replace(/\s*\n\s*/g, ' ');
  return { ok: true, value: paragraph };
}
