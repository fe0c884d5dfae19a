export {
  IGNORE_INDEX,
  LLAVA_IMAGE_TOKEN_INDEX,
  TemplateError,
  type ChatTemplate,
  type ExpectedSpan,
  type TemplateInput,
  type TokenizedConversation,
} from './template.js';
export { tokenizeParts, withImages, type Part, type PartsOptions } from './parts.js';
export { placeholderImages, qwenVisionImages, type ImageEncoder, type ImageIds } from './images.js';
export {
  MAX_ASPECT_RATIO,
  QWEN2_VL_FACTOR,
  QWEN2_VL_MAX_PIXELS,
  QWEN2_VL_MIN_PIXELS,
  qwenImageProblem,
  qwenImageTokenCount,
  roundHalfEven,
  smartResize,
  type SmartResizeOptions,
} from '../../core/smart-resize.js';
export { PlainTemplate, PLAIN_SEPARATOR } from './plain.js';
export { VicunaV1Template, VICUNA_V1_SYSTEM } from './vicuna-v1.js';
export { Qwen2VlTemplate, QWEN2_VL_SYSTEM } from './qwen2-vl.js';
export { pythonStrip, QWEN_IMAGE_TEXT_STYLES, strippedUserText, type QwenImageText } from './qwen-user-text.js';
export { JinjaTemplate } from './jinja.js';
export { verifyMasks, type MaskVerdict } from './verify.js';
export { fitLength, type FitResult, type OverLength } from './fit-length.js';
export { createTemplate, isTemplateFile, TEMPLATE_NAMES, type TemplateSettings } from './registry.js';
