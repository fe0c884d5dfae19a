import { describe, expect, it } from 'vitest';
import type { Turn } from '../../src/core/conversation.js';
import { BRIEF_INSTRUCTIONS, checkConversation, collectRecords, type InstructionExportable } from '../../src/export/instruction-records.js';
import { caption, makePair } from './fixtures.js';

const h = (value: string): Turn => ({ from: 'human', value });
const g = (value: string): Turn => ({ from: 'gpt', value });

describe('conversation checks', () => {
  it('accepts image and text-only conversations', () => {
    expect(checkConversation([h('<image>\nWhat is it?'), g('A circle.')])).toEqual({ hasImage: true });
    expect(checkConversation([h('What is 2+2?'), g('4.'), h('And 3+3?'), g('6.')])).toEqual({ hasImage: false });
  });

  it('names what is wrong', () => {
    const code = (turns: unknown) => (checkConversation(turns) as { code: string }).code;
    expect(code([])).toBe('conversation_empty');
    expect(code('not a list')).toBe('conversation_invalid');
    expect(code([{ from: 'robot', value: 'x' }])).toBe('conversation_invalid');
    expect(code([g('I speak first.'), h('No.')])).toBe('conversation_alternation');
    expect(code([h('Q'), g('A'), h('Q2')])).toBe('conversation_alternation');
    expect(code([h('<image>\nQ'), g('   ')])).toBe('conversation_empty_turn');
    expect(code([h('<image>'), g('A')])).toBe('conversation_empty_turn');
    expect(code([h('Q'), g('A <image>')])).toBe('image_token_position');
    expect(code([h('<image>\n<image>\nQ'), g('A')])).toBe('image_token_count');
    expect(code([h('<image>\nQ'), g('A<|im_end|>')])).toBe('text_special_token');
    expect(checkConversation([h('<image>\nQ'), g('A </s> B')], (t) => (t.includes('</s>') ? '</s>' : null))).toMatchObject({ code: 'text_special_token' });
    // Qwen grounding tokens are the exception in grounding and referring samples: synthesis writes them
    // there (regionFormat qwen2vl). Anywhere else (a web caption, an LLM answer) they are refused.
    const grounded = [h('<image>\nWhere?'), g('<|object_ref_start|>cat<|object_ref_end|><|box_start|>(1,2),(3,4)<|box_end|>')];
    expect(checkConversation(grounded, undefined, true)).toEqual({ hasImage: true });
    expect(checkConversation(grounded)).toMatchObject({ code: 'text_special_token' });
    expect(checkConversation([h('<image>\nQ'), g('<|box_start|>(1,2),(3,4)<|box_end|><|vision_start|>')], undefined, true)).toMatchObject({ code: 'text_special_token' });
  });
});

describe('records of a sample', () => {
  it('takes instructions of the selected tasks in task order, then derives stage 1 from the kept caption', async () => {
    const base = await makePair('k1', 1, { captions: [caption('rejected one', { kept: false }), caption('  a kept caption ', { kept: true })] });
    const sample: InstructionExportable = {
      ...base,
      instructions: [
        { sampleKey: 'k1', task: 'detail', variant: 0, conversations: [h('<image>\nDescribe.'), g('Long.')] },
        { sampleKey: 'k1', task: 'conversation', variant: 1, conversations: [h('<image>\nQ1'), g('A1')] },
        { sampleKey: 'k1', task: 'conversation', variant: 0, conversations: [h('<image>\nQ0'), g('A0')] },
      ],
    };
    const all = collectRecords(sample, new Set(['conversation', 'detail', 'stage1']));
    expect(all.map((r) => r.id)).toEqual(['k1-conversation-0', 'k1-conversation-1', 'k1-detail-0', 'k1-stage1-0']);
    const stage1 = all[3]!;
    expect(stage1.conversations[1]).toEqual(g('a kept caption'));
    expect(BRIEF_INSTRUCTIONS.map((i) => `<image>\n${i}`)).toContain(stage1.conversations[0]!.value);
    // The same key always gets the same instruction.
    expect(collectRecords(sample, new Set(['stage1']))[0]).toEqual(stage1);
    expect(collectRecords(sample, new Set(['detail'])).map((r) => r.id)).toEqual(['k1-detail-0']);
  });

  it('makes no stage-1 record without a kept caption, and prefers a synthesized one', async () => {
    const rejected = await makePair('k2', 2, { captions: [caption('no', { kept: false })] });
    expect(collectRecords(rejected, new Set(['stage1']))).toEqual([]);
    const synthesized: InstructionExportable = {
      ...(await makePair('k3', 3)),
      instructions: [{ sampleKey: 'k3', task: 'stage1', variant: 0, conversations: [h('<image>\nBrief?'), g('Synth caption.')] }],
    };
    expect(collectRecords(synthesized, new Set(['stage1'])).map((r) => r.conversations[1]!.value)).toEqual(['Synth caption.']);
  });
});
