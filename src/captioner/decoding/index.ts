export { beamSearch } from './beam-search.js';
export type { BeamOptions } from './beam-search.js';
export { greedyDecode } from './greedy.js';
export { decodeIndependent } from './independent-rows.js';
export type { LoopOptions, TokenChooser } from './independent-rows.js';
export { applyRepetitionPenalty, argmax, blockTokens, logitsRow, logSoftmax, processLogits } from './logits.js';
export { nucleus, nucleusDecode, sampleToken, softmax, warpLogits } from './nucleus.js';
export type { SamplingOptions } from './nucleus.js';
export {
  crossFieldProblems,
  decodingFields,
  decodingOptionsSchema,
  defaultRepetitionPenalty,
  resolveDecoding,
  STRATEGIES,
} from './options.js';
export type { DecodingInput, DecodingOptions, Strategy } from './options.js';
export { createStream } from './rng.js';
export type { RandomStream } from './rng.js';
export type { GeneratedSequence, GenerationSetup, StepModel } from './step-model.js';
