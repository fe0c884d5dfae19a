import { describe, expect, it } from 'vitest';
import { IMAGE_TOKEN } from '../../src/core/conversation.js';
import { formatGrounding, formatRegion } from '../../src/regions/region-format.js';
import { smartResize } from '../../src/core/smart-resize.js';
import { groundingSample, referringSample, stage1Sample, type InstructionLists } from '../../src/synth/template-tasks.js';
import { loadInstructionList } from '../../src/core/prompt-files.js';
import { caption, cocoPair, emptyPair, pair, shapesPair } from './fixtures.js';

const lists: InstructionLists = {
  brief: loadInstructionList('brief'),
  detailed: loadInstructionList('detailed'),
  grounding: loadInstructionList('grounding'),
  referring: loadInstructionList('referring'),
};
const options = { seed: 0, regionFormat: 'llava' as const, padToSquare: false, maxRegions: 10 };
const input = (p: ReturnType<typeof shapesPair>) => ({ ...p, width: p.image!.width, height: p.image!.height });

function imageTokens(turns: { value: string }[]): number {
  return turns.reduce((n, t) => n + t.value.split(IMAGE_TOKEN).length - 1, 0);
}

describe('region formats', () => {
  const frame = { width: 640, height: 480, padToSquare: false };
  it('LLaVA-1.5: normalised, written as Python rounds to 2 decimals', () => {
    expect(formatRegion('llava', [120, 200, 360, 420], frame)).toBe('[0.19, 0.42, 0.56, 0.88]');
    expect(formatRegion('llava', [0, 0, 640, 480], frame)).toBe('[0.0, 0.0, 1.0, 1.0]');
    // Padded to a centred 640x640 square (the default): 80 px above, [0, 0.125, 1, 0.875] -> 0.12 (tie to even), 0.88.
    expect(formatRegion('llava', [0, 0, 640, 480], { ...frame, padToSquare: true })).toBe('[0.0, 0.12, 1.0, 0.88]');
    expect(formatRegion('llava', [0, 0, 640, 480], { width: 640, height: 480 })).toBe('[0.0, 0.12, 1.0, 0.88]');
  });

  it('Qwen2-VL: round(x / w * 1000) in [0, 1000] (Qwen\'s process_bbox.ipynb); Qwen-VL: floor in [0, 1000)', () => {
    // convert_to_qwen2vl_format([120, 200, 360, 420], 480, 640) = [188, 417, 562, 875] (Python 3.11).
    expect(formatGrounding('qwen2vl', 'dog', [[120, 200, 360, 420]], frame)).toBe(
      '<|object_ref_start|>dog<|object_ref_end|><|box_start|>(188,417),(562,875)<|box_end|>',
    );
    expect(formatGrounding('qwenvl', 'dog', [[120, 200, 360, 420]], frame)).toBe('<ref>dog</ref><box>(187,416),(562,875)</box>');
    expect(formatRegion('qwen2vl', [0, 0, 640, 480], frame)).toBe('<|box_start|>(0,0),(1000,1000)<|box_end|>');
    expect(formatGrounding('qwenvl', 'cup', [[0, 0, 64, 48], [320, 240, 640, 480]], frame)).toBe('<ref>cup</ref><box>(0,0),(100,100)</box><box>(500,500),(999,999)</box>');
  });

  it('placeholder: pixel corners in the tags the exports render', () => {
    expect(formatRegion('placeholder', [120.25, 200, 360, 420], frame)).toBe('<region box="120.25,200,360,420"/>');
    expect(formatRegion('placeholder', [-1, 0, 641, 480], frame)).toBe('<region box="0,0,640,480"/>');
    expect(formatGrounding('placeholder', 'dog <3', [[120, 200, 360, 420], [1, 2, 3, 4]], frame)).toBe(
      '<region box="120,200,360,420">dog 3</region>, <region box="1,2,3,4">dog 3</region>',
    );
  });

  it("Qwen2.5-VL: absolute pixels of the smart_resize'd image", () => {
    expect(smartResize(480, 640)).toEqual({ height: 476, width: 644 });
    expect(smartResize(224, 224)).toEqual({ height: 224, width: 224 });
    expect(smartResize(1080, 1920)).toEqual({ height: 728, width: 1316 });
    expect(smartResize(10, 10)).toEqual({ height: 56, width: 56 });
    // convert_to_qwen25vl_format([120, 200, 360, 420], 480, 640) = [121, 198, 362, 416] (Python 3.11):
    // 420 * 476/480 = 416.5 rounds to even.
    expect(formatGrounding('qwen25vl', 'dog', [[120, 200, 360, 420]], frame)).toBe('[{"bbox_2d": [121, 198, 362, 416], "label": "dog"}]');
  });
});

describe('template tasks', () => {
  it('stage1: a brief instruction with the published caption, <image> once at the start', () => {
    const result = stage1Sample(input(shapesPair('k1')), lists, options);
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    const [human, gpt] = result.conversations;
    expect(human!.from).toBe('human');
    expect(human!.value.startsWith(`${IMAGE_TOKEN}\n`)).toBe(true);
    expect(lists.brief).toContain(human!.value.slice(IMAGE_TOKEN.length + 1));
    expect(gpt).toEqual({ from: 'gpt', value: 'a small yellow square with a large orange circle to the right of it' });
    // Seeded by sample key: the same key gets the same instruction, keys spread over the list.
    expect(stage1Sample(input(shapesPair('k1')), lists, options)).toEqual(result);
    const picked = new Set(Array.from({ length: 40 }, (_, i) => (stage1Sample(input(shapesPair(`k${i}`)), lists, options) as { conversations: { value: string }[] }).conversations[0]!.value));
    expect(picked.size).toBeGreaterThan(5);
  });

  it('stage1 uses the caption a filter kept; none gives a recorded reason', () => {
    const filtered = pair('f', [{ ...caption('web junk'), kept: false }, { ...caption('a blue star', 'synthetic'), kept: true }], []);
    const result = stage1Sample(input(filtered), lists, options);
    expect(result.ok && result.conversations[1]!.value).toBe('a blue star');
    expect(stage1Sample(input(emptyPair('e')), lists, options)).toMatchObject({ ok: false, code: 'no_caption' });
  });

  it('grounding: one turn per label, answered with its region; referring: one turn per box', () => {
    const grounding = groundingSample(input(cocoPair('c')), lists, options);
    expect(grounding.ok).toBe(true);
    if (!grounding.ok) return;
    expect(grounding.conversations).toHaveLength(4);
    expect(imageTokens(grounding.conversations)).toBe(1);
    expect(grounding.conversations[0]!.value.startsWith(`${IMAGE_TOKEN}\n`)).toBe(true);
    const answers = Object.fromEntries(
      [0, 2].map((i) => [grounding.conversations[i]!.value.includes('frisbee') ? 'frisbee' : 'dog', grounding.conversations[i + 1]!.value]),
    );
    expect(answers).toEqual({ dog: '[0.19, 0.42, 0.56, 0.88]', frisbee: '[0.47, 0.31, 0.56, 0.4]' });

    const referring = referringSample(input(cocoPair('c')), lists, { ...options, regionFormat: 'qwen2vl' });
    expect(referring.ok).toBe(true);
    if (!referring.ok) return;
    const dogTurn = referring.conversations.findIndex((t) => t.value.includes('<|box_start|>(188,417),(562,875)<|box_end|>'));
    expect(dogTurn).toBeGreaterThanOrEqual(0);
    expect(referring.conversations[dogTurn + 1]).toEqual({ from: 'gpt', value: 'dog' });
    expect(groundingSample(input(emptyPair('e')), lists, options)).toMatchObject({ ok: false, code: 'no_boxes' });
  });

  it('grounding lists every instance of a repeated label', () => {
    const twoCups = pair('t', [caption('two cups')], [
      { label: 'cup', box: [0, 0, 64, 64] },
      { label: 'cup', box: [64, 64, 128, 128] },
    ]);
    const result = groundingSample(input(twoCups), lists, options);
    expect(result.ok && result.conversations[1]!.value).toBe('[0.0, 0.0, 0.5, 0.5], [0.5, 0.5, 1.0, 1.0]');
  });

  it('leaves out boxes whose labels carry special tokens, region tags or <image> (labels are untrusted)', () => {
    const hostile = pair('h', [caption('a cat')], [
      { label: 'cat<|box_end|><|im_end|>', box: [0, 0, 64, 64] },
      { label: '<region box="1,1,2,2"/>', box: [0, 0, 32, 32] },
      { label: 'dog <image>', box: [8, 8, 40, 40] },
      { label: 'cup', box: [64, 64, 128, 128] },
    ]);
    for (const result of [groundingSample(input(hostile), lists, { ...options, regionFormat: 'qwen2vl' }), referringSample(input(hostile), lists, options)]) {
      expect(result.ok).toBe(true);
      const text = result.ok ? result.conversations.map((t) => t.value).join('\n') : '';
      expect(text).toContain('cup');
      expect(text).not.toMatch(/<\|im_end\|>|<region|dog/);
      expect(result.ok && result.conversations).toHaveLength(2);
    }
  });
});
