import { dropSample, isOpen, type DecodedPair } from '../core/sample.js';
import type { Stage } from '../core/stage.js';
import { asScored, decideCaptions, NO_CAPTION_PASSED, type ResolvedPolicy } from './policy.js';

/**
 * Applies the filter policy to each sample's scored captions: every caption gets `kept` and a reason;
 * a sample with no kept caption is dropped (`no_caption_passed`), its scores still recorded. `note`, when
 * given, is said once at the start (the build says whose decisions these are after a refilter).
 */
export function createSelectStage(policy: ResolvedPolicy, name = 'select', note?: string): Stage<DecodedPair, DecodedPair> {
  return {
    name,
    async *run(input, ctx) {
      // Where the policy comes from, when not from the recipe (a refilter in force).
      if (note) ctx.emit({ type: 'log', level: 'info', message: note });
      for await (const sample of input) {
        if (!isOpen(sample)) {
          yield sample;
          continue;
        }
        const verdicts = decideCaptions(sample.captions.map(asScored), policy);
        const captions = sample.captions.map((c, i) => ({ ...c, kept: verdicts[i]!.kept, reason: verdicts[i]!.reason }));
        const anyKept = verdicts.some((v) => v.kept);
        const selected = { ...sample, captions };
        yield anyKept ? selected : dropSample(selected, name, NO_CAPTION_PASSED);
      }
    },
  };
}
