export { expandBraces, expandPatterns, splitPatterns } from './brace.js';
export { captionFromBytes, captionFromString, cleanCaptionText, type CaptionTextIssue } from './caption-text.js';
export { cocoOptionsSchema, cocoSource, loadCocoIndex, type CocoOptions } from './coco.js';
export { createDecodeStage, decodeOptionsSchema, decodeImage, type DecodeOptions } from './decode.js';
export { createSource, SOURCE_TYPES, sourceSchema, type SourceOptions } from './registry.js';
export type { Source, SourceContext, SourceType } from './source.js';
export { readShard, shardPaths, webdatasetOptionsSchema, webdatasetSource, type WebdatasetOptions } from './webdataset.js';
