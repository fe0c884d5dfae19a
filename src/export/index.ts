export { parseSize } from './size.js';
export type { ExportContext, ExportType } from './export-type.js';
export {
  SHARD_MTIME,
  WebDatasetWriter,
  assertValidKey,
  shardFileName,
  type SampleMember,
  type ShardInfo,
  type WebDatasetSample,
  type WebDatasetWriterOptions,
} from './webdataset-writer.js';
export { imageExtension, sampleJson, toWebDatasetSample, type ExportableSample, type SampleJson } from './webdataset-sample.js';
export {
  buildManifest,
  createWebDatasetExport,
  manifestName,
  recoverShards,
  shardPrefix,
  webdatasetExport,
  webdatasetExportSchema,
  type Manifest,
  type RecoveryReport,
  type WebDatasetExportHooks,
  type WebDatasetExportOptions,
} from './webdataset-export.js';
export { createExport, exportSchema, exportTypeNames, type ExportOptions } from './registry.js';
