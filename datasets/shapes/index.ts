export { generateShapes, groundTruthRecord, SHARD_PREFIX, type GroundTruthRecord, type ShapesSummary } from './generate.js';
export {
  DEFAULT_IMAGE_SIZE,
  DEFAULT_SHARD_SIZE,
  resolveShapesOptions,
  SPLIT_SEEDS,
  type ShapesOptions,
  type ShapesSplit,
} from './options.js';
export { planDataset, shapesKey, noisyCount, type PlannedImage } from './plan.js';
export { BOILERPLATE, NOISE_KINDS, NOISE_SHARES, apportionNoise, type NoiseKind } from './noise.js';
export { COLORS, COLOR_RGB, RELATIONS, SHAPES, SIZES, type ColorName, type ShapeName, type SizeName } from './vocabulary.js';
export { CATEGORIES } from './coco.js';
export { sceneSvg, renderScene, JPEG_QUALITY } from './render.js';
export { Rng } from './rng.js';
export { captionIsCorrect, namedObjects, type NamedObject } from './judge.js';
export { relationsAreCorrect, statedRelations } from './relation-judge.js';
export { evaluateSelections, readGroundTruth, type SelectionQuality } from './evaluate.js';
