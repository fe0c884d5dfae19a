import type { ChatTokenizer, ChunkPosition } from '../../tokenizers/chat-tokenizer.js';
import { qwenImageProblem, qwenImageTokenCount, type SmartResizeOptions } from '../../core/smart-resize.js';
import { TemplateError } from './template.js';

/** How one image becomes ids, and how the text after it is positioned for the tokenizer. */
export interface ImageIds {
  ids: readonly number[];
  after: ChunkPosition;
}

export type ImageEncoder = (image: { width: number; height: number }) => ImageIds;

/**
 * LLaVA style: one placeholder id (LLaVA's `IMAGE_TOKEN_INDEX` = -200) the model replaces with the projected
 * features. LLaVA tokenizes the text after `<image>` as a new text, so a sentencepiece tokenizer gives it
 * the dummy prefix (`<image>\n` becomes -200, `▁`, `<0x0A>`).
 */
export function placeholderImages(id: number): ImageEncoder {
  const ids = [id];
  return () => ({ ids, after: 'after-image' });
}

/** Qwen2-VL style: `<|vision_start|>` + N x `<|image_pad|>` + `<|vision_end|>`, N from `smart_resize`. */
export function qwenVisionImages(tokenizer: ChatTokenizer, resize: SmartResizeOptions = {}): ImageEncoder {
  const start = tokenizer.requireId('<|vision_start|>', 'qwen2_vl images');
  const pad = tokenizer.requireId('<|image_pad|>', 'qwen2_vl images');
  const end = tokenizer.requireId('<|vision_end|>', 'qwen2_vl images');
  return (image) => {
    const problem = qwenImageProblem(image.width, image.height, resize.factor);
    if (problem) throw new TemplateError(problem.code, problem.message);
    let count: number;
    try {
      count = qwenImageTokenCount(image.height, image.width, resize);
    } catch (err) {
      throw new TemplateError('image_size_unsupported', `qwen2_vl cannot size the image: ${(err as Error).message}`);
    }
    const ids = new Array<number>(count + 2).fill(pad);
    ids[0] = start;
    ids[count + 1] = end;
    return { ids, after: 'after-special' };
  };
}
