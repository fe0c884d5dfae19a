/**
 * The decode stage's prepared pixels (`DecodedPair.pixels`) are held only until the last model stage has
 * used them: wrapping that stage drops them from every sample it passes on, so the record stage, exports
 * and the channels between them hold encoded bytes only.
 */
import type { DecodedPair } from '../core/sample.js';
import type { Stage } from '../core/stage.js';

export function releasingPixels<T extends DecodedPair>(stage: Stage<T, T>): Stage<T, T> {
  return {
    name: stage.name,
    async *run(input, ctx) {
      for await (const sample of stage.run(input, ctx)) {
        if (sample.pixels === undefined) {
          yield sample;
        } else {
          const { pixels: _released, ...rest } = sample;
          yield rest as T;
        }
      }
    },
  };
}
