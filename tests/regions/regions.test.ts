import { describe, expect, it } from 'vitest';
import type { BoxXYXY } from '../../src/core/sample.js';
import { MODEL_REGION_FORMATS as EXPORT_FORMATS, RegionError, formatGrounding, formatRegion, llavaBox, regionPlaceholder, qwen25vlCorners, qwen2vlGrid, qwenGrid } from '../../src/regions/region-format.js';
import { renderRegions } from '../../src/regions/render-regions.js';

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

  // Expected values computed from the upstream definitions, not from this code: haotian-liu/LLaVA
  // llava/mm_utils.py lines 152-163 (commit c121f0432da27facab705978f83c4ada465e46fd) `expand2square`
  // pastes a wide image at (0, (w - h) // 2) and a tall one at ((h - w) // 2, 0) into a max(w, h) square;
  // each fraction is then written as Python's repr(round(v, 2)) (LLaVA issue #606 for the frame).
  it('LLaVA-1.5: fractions of the padded square by default, written as Python rounds them', () => {
    // 640x480 padded to 640x640: 80 px added above. B = [400, 0, 640, 480] -> [0.625, 0.125, 1.0, 0.875]:
    // the exact ties 0.625 and 0.125 go to even (0.62, 0.12), 0.875 to 0.88.
    expect(renderRegions(QUESTION, 'llava', IMAGE)).toBe('What is in [0.62, 0.12, 1.0, 0.88]?');
    expect(renderRegions(QUESTION, 'llava', IMAGE, { padToSquare: true })).toBe('What is in [0.62, 0.12, 1.0, 0.88]?');
    expect(renderRegions(ANSWER, 'llava', IMAGE)).toBe('[0.1, 0.2, 0.5, 0.5], [0.62, 0.12, 1.0, 0.88]');
    // The image's own frame, on request.
    expect(renderRegions(ANSWER, 'llava', IMAGE, { padToSquare: false })).toBe('[0.1, 0.1, 0.5, 0.5], [0.62, 0.0, 1.0, 1.0]');
  });

  it('LLaVA-1.5: expand2square offsets are whole pixels ((w - h) // 2), for wide and tall images', () => {
    // 101x50: pasted 25 px down (not 25.5): [0, 25/101, 1, 75/101] = [0, 0.2475, 1, 0.7426] -> 0.25, 0.74
    // (a 25.5 px offset would give 0.7475 -> 0.75).
    expect(renderRegions('<region box="0,0,101,50"/>', 'llava', { width: 101, height: 50 })).toBe('[0.0, 0.25, 1.0, 0.74]');
    expect(renderRegions('<region box="0,0,50,101"/>', 'llava', { width: 50, height: 101 })).toBe('[0.25, 0.0, 0.74, 1.0]');
    expect(llavaBox([0, 0, 101, 50], { width: 101, height: 50 }, false)).toBe('[0.0, 0.0, 1.0, 1.0]');
    // A square image is its own padded frame.
    expect(llavaBox([10, 20, 30, 40], { width: 80, height: 80 })).toBe(llavaBox([10, 20, 30, 40], { width: 80, height: 80 }, false));
  });

  it('Qwen2-VL: object_ref + box tokens, integers in [0, 1000] as the conversion notebook writes them', () => {
    expect(renderRegions(ANSWER, 'qwen2vl', IMAGE)).toBe(
      '<|object_ref_start|>red circle<|object_ref_end|><|box_start|>(100,100),(500,500)<|box_end|><|box_start|>(625,0),(1000,1000)<|box_end|>',
    );
    expect(renderRegions(QUESTION, 'qwen2vl', IMAGE)).toBe('What is in <|box_start|>(625,0),(1000,1000)<|box_end|>?');
  });

  it('Qwen-VL: <ref>/<box>', () => {
    expect(renderRegions(ANSWER, 'qwenvl', IMAGE)).toBe('<ref>red circle</ref><box>(100,100),(500,500)</box><box>(625,0),(999,999)</box>');
  });

  it('Qwen2.5-VL: bbox_2d in pixels of the smart-resized image (640x480 -> 644x476)', () => {
    const rendered = renderRegions(ANSWER, 'qwen25vl', IMAGE);
    expect(rendered).toBe('[{"bbox_2d": [64, 48, 322, 238], "label": "red circle"}, {"bbox_2d": [403, 0, 643, 475], "label": "red circle"}]');
    expect(JSON.parse(rendered)).toEqual([
      { bbox_2d: [64, 48, 322, 238], label: 'red circle' },
      { bbox_2d: [403, 0, 643, 475], label: 'red circle' },
    ]);
    expect(renderRegions(QUESTION, 'qwen25vl', IMAGE)).toBe('What is in [403, 0, 643, 475]?');
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

  /**
   * Expected values computed with Python 3.11 from Qwen's conversion notebook, QwenLM/Qwen3-VL
   * qwen-vl-finetune/tools/process_bbox.ipynb (commit 96588727e44c78b25ba03ea03b8e12f7e64fd0da), cell 3
   * `convert_to_qwen2vl_format`: `round(x1 / w * 1000)`, then `max(0, min(x, 1000))`.
   */
  it('Qwen2-VL grid: round(x / w * 1000) with Python ties to even on the binary value, clamped to [0, 1000]', () => {
    const notebook = (box: [number, number, number, number], h: number, w: number) => [qwen2vlGrid(box[0], w), qwen2vlGrid(box[1], h), qwen2vlGrid(box[2], w), qwen2vlGrid(box[3], h)];
    // The notebook's own example: convert_to_qwen2vl_format([146, 137, 615, 415], 428, 640).
    expect(notebook([146, 137, 615, 415], 428, 640)).toEqual([228, 320, 961, 970]);
    // 1/2000*1000 = 0.5 -> 0, 1.5 -> 2, 2.5 -> 2, 3.5 -> 4 (floor gave 0, 1, 2, 3).
    expect(notebook([1, 3, 5, 7], 2000, 2000)).toEqual([0, 2, 2, 4]);
    // 1/80*1000 is exactly 12.5 -> 12; the far edge is 1000, not 999.
    expect(notebook([1, 1, 80, 80], 80, 80)).toEqual([12, 12, 1000, 1000]);
    // The doubles Python sees: 33.3/100*1000 = 332.99999999999994 -> 333; 66.65 -> 666.5000000000001 -> 667;
    // 99.95 -> 999.5 -> 1000; 0.05 -> 0.5 -> 0; 0.7/7*1000 = 99.99999999999999 -> 100.
    expect(notebook([33.3, 66.65, 99.95, 0.05], 100, 100)).toEqual([333, 667, 1000, 0]);
    expect(notebook([0.7, 0.7, 7, 7], 7, 7)).toEqual([100, 100, 1000, 1000]);
    expect(notebook([120, 200, 360, 420], 480, 640)).toEqual([188, 417, 562, 875]);
    expect(qwen2vlGrid(-3, 126)).toBe(0);
    expect(qwen2vlGrid(130, 126)).toBe(1000);
  });

  /**
   * From the same notebook, cell 5 `convert_to_qwen25vl_format(bbox, orig_height, orig_width)`: the image's
   * `smart_resize` size, `round(x1 * (new_width / orig_width))`, then `max(0, min(x, new_width - 1))`.
   */
  it('Qwen2.5-VL corners: Python ties to even and the edge clamped to resized - 1', () => {
    // The notebook's own example (428x640 -> 420x644).
    expect(qwen25vlCorners([146, 137, 615, 415], { width: 640, height: 428 })).toEqual([147, 134, 619, 407]);
    // 128x128 -> 140x140, scale 1.09375: 48 -> 52.5 -> 52 (Math.round: 53); 128 -> 140 -> clamped to 139.
    expect(qwen25vlCorners([48, 48, 128, 128], { width: 128, height: 128 })).toEqual([52, 52, 139, 139]);
    expect(qwen25vlCorners([47.5, 3.2, 100.123, 127.9], { width: 128, height: 128 })).toEqual([52, 4, 110, 139]);
    expect(qwen25vlCorners([120, 200, 360, 420], { width: 640, height: 480 })).toEqual([121, 198, 362, 416]);
    expect(qwen25vlCorners([400, 0, 640, 480], { width: 640, height: 480 })).toEqual([403, 0, 643, 475]);
  });
});
