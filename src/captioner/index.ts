export { CAPTIONER_LAYOUTS, CaptionerGraphs, readCaptionerConfig } from './captioner-folder.js';
export type { CacheSpec, CaptionerConfig, CaptionerLayout, GenerationIds } from './captioner-folder.js';
export { decodingFromRecipe, loadOnnxCaptioner, OnnxCaptioner, onnxCaptionerOptionsSchema } from './onnx-captioner.js';
export type { Caption, CaptionOptions, OnnxCaptionerLoadOptions, OnnxCaptionerOptions } from './onnx-captioner.js';
export * from './decoding/index.js';
