/**
 * The pipeline's stages are a typed chain (issue 14: no `Stage<any, any>`): each stage's input must be
 * what the chain yields so far, and the record type grows as stages add to it.
 */
import { describe, expect, expectTypeOf, it } from 'vitest';
import type { SynthesizedPair } from '../../src/synth/synth-stage.js';
import { createDecodeStage } from '../../src/decode/decode-stage.js';
import { createDedupStage } from '../../src/decode/dedup-stage.js';
import { createRecordStage } from '../../src/run/record-stage.js';
import { StageChain } from '../../src/core/stage-chain.js';
import type { Stage } from '../../src/core/stage.js';
import type { DecodedPair, DedupedPair, Pair } from '../../src/core/sample.js';
import type { ContentIndex, SampleRecorder } from '../../src/store/stage-ports.js';

const index = {} as ContentIndex;
const recorder = {} as SampleRecorder;
const synth = { name: 'synth', run: (input) => input } as Stage<DecodedPair, SynthesizedPair>;

describe('StageChain', () => {
  it('keeps the stages in order for the runner', () => {
    const chain = StageChain.from<Pair>().then(createDecodeStage()).then(createDedupStage(index)).thenAll([]).then(createRecordStage<DedupedPair>(recorder, 1, 8));
    expect(chain.stages.map((s) => s.name)).toEqual(['decode', 'dedup', 'record']);
  });

  it('grows the record type stage by stage', () => {
    const decoded = StageChain.from<Pair>().then(createDecodeStage());
    expectTypeOf(decoded).toEqualTypeOf<StageChain<Pair, DecodedPair>>();
    const deduped = decoded.then(createDedupStage(index));
    expectTypeOf(deduped).toEqualTypeOf<StageChain<Pair, DedupedPair>>();
    expectTypeOf(deduped.then(synth)).toEqualTypeOf<StageChain<Pair, SynthesizedPair>>();
  });

  it('refuses a stage whose input the chain does not make yet', () => {
    // @ts-expect-error dedup needs decoded samples (image facts); a source yields pairs
    StageChain.from<Pair>().then(createDedupStage(index));
    // @ts-expect-error synthesis needs decoded samples
    StageChain.from<Pair>().then(synth);
  });
});
