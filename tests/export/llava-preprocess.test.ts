/**
 * LLaVA's data preparation as the LLaVA-family exports apply it (haotian-liu/LLaVA llava/train/train.py at
 * c121f0432da27facab705978f83c4ada465e46fd: preprocess_multimodal lines 316-327, preprocess_v1 lines 413-487).
 * The token-level agreement with preprocess_v1 is pinned in templates.test.ts; this file pins the text rules.
 */
import { describe, expect, it } from 'vitest';
import type { Turn } from '../../src/core/conversation.js';
import { llavaImageFirst, llavaV1RoundsProblem } from '../../src/export/templates/llava-preprocess.js';
import { pythonStrip } from '../../src/export/templates/qwen-user-text.js';
import { VICUNA_V1_SYSTEM } from '../../src/export/templates/vicuna-v1.js';

const h = (value: string): Turn => ({ from: 'human', value });
const g = (value: string): Turn => ({ from: 'gpt', value });

describe('LLaVA preprocessing rules', () => {
  it("pythonStrip removes what Python's str.strip() removes", () => {
    // [hex(c) for c in range(0x110000) if chr(c).isspace()] in CPython 3.12, and '\ufeff a \x1c'.strip() == '\ufeff a'
    expect(pythonStrip('\ufeff a \x1c')).toBe('\ufeff a');
    expect(pythonStrip('\x85\u3000x\u2029\t')).toBe('x');
    expect(pythonStrip('\u200bx')).toBe('\u200bx'); // zero-width space is not whitespace to Python
  });

  it('preprocess_multimodal: <image> first, rest stripped; turns without <image> untouched', () => {
    expect(llavaImageFirst([h('What shape is shown?\n<image>'), g('A square. ')])).toEqual([h('<image>\nWhat shape is shown?'), g('A square. ')]);
    expect(llavaImageFirst([h(' <image> ')])).toEqual([h('<image>')]);
  });

  it('finds the turn that moves a preprocess_v1 split, and says why', () => {
    expect(llavaV1RoundsProblem(VICUNA_V1_SYSTEM, [h('<image>\nHi'), g('Hello.'), h('And?'), g('Bye.')])).toBeNull();
    const inQuestion = llavaV1RoundsProblem(VICUNA_V1_SYSTEM, [h('<image>\nHi'), g('Hello.'), h('Say " ASSISTANT: " please'), g('Done.')]);
    expect(inQuestion).toMatchObject({ turn: 2 });
    expect(inQuestion!.message).toMatch(/^turn 2 contains " ASSISTANT: "; LLaVA's preprocess_v1 splits rounds at "<\/s>"/);
    expect(llavaV1RoundsProblem(VICUNA_V1_SYSTEM, [h('Hi'), g('a</s>b')])).toMatchObject({ turn: 1, message: expect.stringMatching(/^turn 1 contains "<\/s>"/) });
    // The EOS text of the tokenizer in use is the round separator.
    expect(llavaV1RoundsProblem(VICUNA_V1_SYSTEM, [h('Hi'), g('a<|eot|>b')], '<|eot|>')).toMatchObject({ turn: 1 });
    expect(llavaV1RoundsProblem(VICUNA_V1_SYSTEM, [h('Hi'), g('a</s>b')], '<|eot|>')).toBeNull();
    // A question ending in " ASSISTANT:" joins the template's " ASSISTANT: ": the split lands one word early.
    expect(llavaV1RoundsProblem(VICUNA_V1_SYSTEM, [h('Who is next? ASSISTANT:'), g('Me.')])).toMatchObject({
      turn: 0,
      message: expect.stringMatching(/^turn 0 runs into the template's " ASSISTANT: "/),
    });
  });
});
