import { describe, expect, it } from 'vitest';
import { parseParagraph, parseQaBlocks } from '../../src/synth/parse-answer.js';

const conversation = `Question:
What color is the circle in the image?
===
Answer:
The circle is a bright orange.
===
Question:
Where is the square relative to the circle?
===
Answer:
The small yellow square sits to the left of the large orange circle.`;

describe('Question/Answer parser', () => {
  it('parses alternating blocks', () => {
    const parsed = parseQaBlocks(conversation);
    expect(parsed).toEqual({
      ok: true,
      value: [
        { question: 'What color is the circle in the image?', answer: 'The circle is a bright orange.' },
        { question: 'Where is the square relative to the circle?', answer: 'The small yellow square sits to the left of the large orange circle.' },
      ],
    });
  });

  it('accepts text on the label line, CRLF line ends, and stray separators at the ends', () => {
    const parsed = parseQaBlocks('===\r\nQuestion: Is it sunny?\r\n===\r\nAnswer: Yes, the sky is clear.\r\n===\r\n');
    expect(parsed).toEqual({ ok: true, value: [{ question: 'Is it sunny?', answer: 'Yes, the sky is clear.' }] });
  });

  it('keeps multi-line answers', () => {
    const parsed = parseQaBlocks('Question:\nWhy?\n===\nAnswer:\nFirst, the road is wet.\nSecond, people carry umbrellas.');
    expect(parsed.ok && parsed.value[0]!.answer).toBe('First, the road is wet.\nSecond, people carry umbrellas.');
  });

  it('rejects empty turns, broken alternation, missing separators and other formats, with reasons', () => {
    expect(parseQaBlocks('')).toMatchObject({ ok: false, code: 'empty_answer' });
    expect(parseQaBlocks('Question:\n\n===\nAnswer:\nYes.')).toMatchObject({ ok: false, code: 'empty_turn' });
    expect(parseQaBlocks('Question:\nWhat?\n===\nAnswer:\n   ')).toMatchObject({ ok: false, code: 'empty_turn' });
    expect(parseQaBlocks('Question:\nWhat?\n===\n===\nAnswer:\nThat.')).toMatchObject({ ok: false, code: 'empty_turn' });
    expect(parseQaBlocks('Answer:\nYes.\n===\nQuestion:\nReally?')).toMatchObject({ ok: false, code: 'broken_alternation' });
    expect(parseQaBlocks('Question:\nA?\n===\nQuestion:\nB?')).toMatchObject({ ok: false, code: 'broken_alternation' });
    expect(parseQaBlocks('Question:\nA?\n===\nAnswer:\nYes.\n===\nQuestion:\nAnd B?')).toMatchObject({ ok: false, code: 'broken_alternation' });
    expect(parseQaBlocks('Question:\nA?\nAnswer:\nYes.')).toMatchObject({ ok: false, code: 'missing_separator' });
    expect(parseQaBlocks('Sure! Here is a conversation:\n===\nQuestion:\nA?\n===\nAnswer:\nB.')).toMatchObject({ ok: false, code: 'bad_format' });
    expect(parseQaBlocks('Q: what?\n===\nA: that.')).toMatchObject({ ok: false, code: 'bad_format' });
  });
});

describe('paragraph parser', () => {
  it('accepts one paragraph and joins its lines', () => {
    expect(parseParagraph('  A red circle sits on the left.\nA blue square is on the right.  ')).toEqual({
      ok: true,
      value: 'A red circle sits on the left. A blue square is on the right.',
    });
  });

  it('rejects empty text, several paragraphs, lists, headings and Q/A blocks', () => {
    expect(parseParagraph(' \n ')).toMatchObject({ ok: false, code: 'empty_answer' });
    expect(parseParagraph('One.\n\nTwo.')).toMatchObject({ ok: false, code: 'multiple_paragraphs' });
    expect(parseParagraph('- a circle\n- a square')).toMatchObject({ ok: false, code: 'bad_format' });
    expect(parseParagraph('1. a circle\n2. a square')).toMatchObject({ ok: false, code: 'bad_format' });
    expect(parseParagraph('## Scene\nA circle.')).toMatchObject({ ok: false, code: 'bad_format' });
    expect(parseParagraph('Question:\nWhat?\n===\nAnswer:\nThat.')).toMatchObject({ ok: false, code: 'bad_format' });
  });
});
