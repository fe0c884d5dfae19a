import { describe, expect, it } from 'vitest';
import type { BoxXYXY } from '../../src/core/sample.js';
import { REGION_FORMATS as EXPORT_FORMATS, RegionError, regionPlaceholder, qwenGrid, renderRegions } from '../../src/export/regions.js';
import { formatGrounding, formatRegion } from '../../src/synth/region-format.js';

const IMAGE = { width: 640, height: 480 };
const A: BoxXYXY = [64, 48, 320, 240];
const B: BoxXYXY = [400, 0, 640, 480];
/** A grounding answer (two instances of one label) and a referring question, as synthesis stores them. */
const ANSWER = `${regionPlaceholder(A, 'red circle')}, ${regionPlaceholder(B, 'red circle')}`;
const QUESTION = `What is in ${regionPlaceholder(B)}?`;

describe('region placeholders', () => {
  it('writes the canonical form with pixel corners', () => {
    expect(regionPlaceholder([64, 48.25, 320, 240], 'red circle')).toBe('<region box="64,48.25,320,240">red circle</region>');
    expect(regionPlaceholder([1, 2, 3, 4])).toBe('<region box="1,2,3,4"/>');
    expect(() => regionPlaceholder([1, 2, 3, 4], 'a<b')).toThrow(RegionError);
  });

  it('LLaVA-1.5: fractions with two decimals, plain or padded to a square', () => {
    expect(renderRegions(ANSWER, 'llava', IMAGE)).toBe('[0.10, 0.10, 0.50, 0.50], [0.63, 0.00, 1.00, 1.00]');
    expect(renderRegions(QUESTION, 'llava', IMAGE)).toBe('What is in [0.63, 0.00, 1.00, 1.00]?');
    // 640x480 padded to 640x640: 80 px added above.
    expect(renderRegions(QUESTION, 'llava', IMAGE, { padToSquare: true })).toBe('What is in [0.63, 0.13, 1.00, 0.88]?');
  });

  it('Qwen2-VL: object_ref + box tokens, integers in [0, 1000)', () => {
    expect(renderRegions(ANSWER, 'qwen2vl', IMAGE)).toBe(
      '<|object_ref_start|>red circle<|object_ref_end|><|box_start|>(100,100),(500,500)<|box_end|><|box_start|>(625,0),(999,999)<|box_end|>',
    );
    expect(renderRegions(QUESTION, 'qwen2vl', IMAGE)).toBe('What is in <|box_start|>(625,0),(999,999)<|box_end|>?');
  });

  it('Qwen-VL: <ref>/<box>', () => {
    expect(renderRegions(ANSWER, 'qwenvl', IMAGE)).toBe('<ref>red circle</ref><box>(100,100),(500,500)</box><box>(625,0),(999,999)</box>');
  });

  it('Qwen2.5-VL: bbox_2d in pixels of the smart-resized image (640x480 -> 644x476)', () => {
    const rendered = renderRegions(ANSWER, 'qwen25vl', IMAGE);
    expect(rendered).toBe('[{"bbox_2d": [64, 48, 322, 238], "label": "red circle"}, {"bbox_2d": [403, 0, 644, 476], "label": "red circle"}]');
    expect(JSON.parse(rendered)).toEqual([
      { bbox_2d: [64, 48, 322, 238], label: 'red circle' },
      { bbox_2d: [403, 0, 644, 476], label: 'red circle' },
    ]);
    expect(renderRegions(QUESTION, 'qwen25vl', IMAGE)).toBe('What is in [403, 0, 644, 476]?');
  });

  it('renders exactly what synthesis writes when it renders a format itself', () => {
    for (const format of EXPORT_FORMATS) {
      for (const padToSquare of format === 'llava' ? [false, true] : [false]) {
        const frame = { ...IMAGE, padToSquare };
        expect(renderRegions(ANSWER, format, IMAGE, { padToSquare })).toBe(formatGrounding(format, 'red circle', [A, B], frame));
        expect(renderRegions(regionPlaceholder(A), format, IMAGE, { padToSquare })).toBe(formatRegion(format, A, frame));
      }
    }
  });

  it('keeps different labels apart, leaves text without placeholders alone, and refuses broken ones', () => {
    const two = `${regionPlaceholder(A, 'cat')}, ${regionPlaceholder(B, 'dog')}`;
    expect(renderRegions(two, 'qwenvl', IMAGE)).toBe('<ref>cat</ref><box>(100,100),(500,500)</box>, <ref>dog</ref><box>(625,0),(999,999)</box>');
    expect(renderRegions('no regions [0.1, 0.2]', 'qwen2vl', null)).toBe('no regions [0.1, 0.2]');
    expect(() => renderRegions('<region box="1,2,3">x</region>', 'llava', IMAGE)).toThrow(/four numbers/);
    expect(() => renderRegions('<region box="1,2,3,4">x', 'llava', IMAGE)).toThrow(/malformed/);
    expect(() => renderRegions(`<region box="1,2,3,4>x</region> ${QUESTION}`, 'llava', IMAGE)).toThrow(RegionError);
    expect(() => renderRegions('<region box="0,0,700,10"/>', 'llava', IMAGE)).toThrow(/inside the 640x480 image/);
    expect(() => renderRegions('<region box="0,0,7,10"/>', 'llava', null)).toThrow(/without an image/);
  });

  it('the Qwen grid keeps exact tenths exact (no floating-point 99 for 100)', () => {
    expect(qwenGrid(12.6, 126)).toBe(100);
    expect(qwenGrid(0.7, 7)).toBe(100);
    expect(qwenGrid(63, 126)).toBe(500);
    expect(qwenGrid(126, 126)).toBe(999);
    expect(qwenGrid(-3, 126)).toBe(0);
    expect(qwenGrid(12.59, 126)).toBe(99);
  });
});
