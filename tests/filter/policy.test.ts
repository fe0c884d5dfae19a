import { describe, expect, it } from 'vitest';
import { decideCaptions, type ResolvedPolicy, type ScoredCaption } from '../../src/filter/policy.js';
import { filterOptionsSchema } from '../../src/filter/filter-options.js';
import { resolvePolicy } from '../../src/filter/resolve-policy.js';
import { expectEvery } from '../expect-every.js';

const base: ResolvedPolicy = { policy: 'both', itcThreshold: 0.28, itmThreshold: 0.5, topK: null, topKBy: 'itm', preferWeb: false };
let made = 0;
const cap = (origin: ScoredCaption['origin'], itc: number | null, itm: number | null, text = `caption ${made++}`): ScoredCaption => ({ origin, text, usable: true, itc, itm });

describe('decideCaptions', () => {
  it('both: must pass each cut; reasons carry the numbers', () => {
    const v = decideCaptions([cap('web', 0.3, 0.9), cap('web', 0.2, 0.9), cap('synthetic', 0.3, 0.1)], base);
    expect(v).toEqual([
      { kept: true, reason: 'itc 0.3 >= 0.28, itm 0.9 >= 0.5' },
      { kept: false, reason: 'itc 0.2 < 0.28, itm 0.9 >= 0.5' },
      { kept: false, reason: 'itc 0.3 >= 0.28, itm 0.1 < 0.5' },
    ]);
  });

  it('identical texts are kept once, the best-scored copy, so topK keeps K different captions', () => {
    const captions = [
      cap('synthetic', 0.5, 0.7, 'a large orange circle'),
      cap('synthetic', 0.5, 0.9, 'A large  orange circle '),
      cap('synthetic', 0.5, 0.8, 'a small blue star'),
      cap('web', 0.5, 0.6, 'an orange ball'),
    ];
    const verdicts = decideCaptions(captions, { ...base, topK: 2, topKBy: 'itm' });
    expect(verdicts.map((v) => v.kept)).toEqual([false, true, true, false]);
    expect(verdicts[0]!.reason).toBe('same text as caption 2');
    expect(verdicts[3]!.reason).toBe('rank 3 of 3 by itm, topK 2');
  });

  it('either, itc, itm', () => {
    const captions = [cap('web', 0.2, 0.9), cap('web', 0.3, 0.1), cap('web', 0.1, 0.1)];
    expect(decideCaptions(captions, { ...base, policy: 'either' }).map((v) => v.kept)).toEqual([true, true, false]);
    expect(decideCaptions(captions, { ...base, policy: 'itc' }).map((v) => v.kept)).toEqual([false, true, false]);
    expect(decideCaptions(captions, { ...base, policy: 'itm' })).toEqual([
      { kept: true, reason: 'itm 0.9 >= 0.5' },
      { kept: false, reason: 'itm 0.1 < 0.5' },
      { kept: false, reason: 'itm 0.1 < 0.5' },
    ]);
  });

  it('a score exactly at the threshold passes (ties keep)', () => {
    expect(decideCaptions([cap('web', 0.28, 0.5)], base)[0]!.kept).toBe(true);
  });

  it('all fail: every caption says why', () => {
    const v = decideCaptions([cap('web', 0.01, 0.01), cap('synthetic', 0.02, 0.02)], base);
    expectEvery(v, (x) => !x.kept && /</.test(x.reason));
  });

  it('empty, unusable and unscored captions never pass', () => {
    const v = decideCaptions(
      [cap('web', 0.9, 0.9, '  '), { ...cap('web', 0.9, 0.9), usable: false }, cap('synthetic', null, null)],
      base,
    );
    expect(v).toEqual([
      { kept: false, reason: 'empty' },
      { kept: false, reason: 'unusable text' },
      { kept: false, reason: 'no itc score, no itm score' },
    ]);
  });

  it('topK keeps the best K passing captions; ties go to the earlier caption (web first)', () => {
    const captions = [cap('web', 0.5, 0.8), cap('synthetic', 0.5, 0.9), cap('synthetic', 0.5, 0.8), cap('synthetic', 0.5, 0.2)];
    const v = decideCaptions(captions, { ...base, topK: 2 });
    expect(v.map((x) => x.kept)).toEqual([true, true, false, false]);
    expect(v[2]!.reason).toBe('rank 3 of 3 by itm, topK 2');
    expect(v[3]!.reason).toBe('itc 0.5 >= 0.28, itm 0.2 < 0.5');
    const byItc = decideCaptions([cap('web', 0.3, 0.9), cap('synthetic', 0.6, 0.6)], { ...base, topK: 1, topKBy: 'itc' });
    expect(byItc.map((x) => x.kept)).toEqual([false, true]);
  });

  it('preferWeb keeps a passing web caption alone, else the passing synthetic ones', () => {
    const passingWeb = decideCaptions([cap('web', 0.5, 0.9), cap('synthetic', 0.5, 0.95)], { ...base, preferWeb: true });
    expect(passingWeb).toEqual([
      { kept: true, reason: 'itc 0.5 >= 0.28, itm 0.9 >= 0.5' },
      { kept: false, reason: 'web caption kept (preferWeb)' },
    ]);
    const failingWeb = decideCaptions([cap('web', 0.5, 0.1), cap('synthetic', 0.5, 0.95)], { ...base, preferWeb: true });
    expect(failingWeb.map((x) => x.kept)).toEqual([false, true]);
  });
});

describe('filter options', () => {
  it('defaults the policy from the models configured and BLIP/LAION thresholds', () => {
    const both = resolvePolicy(filterOptionsSchema.parse({ itc: { model: 'a' }, itm: { model: 'b' } }), null);
    expect(both).toMatchObject({ policy: 'both', itcThreshold: 0.28, itmThreshold: 0.5, topKBy: 'itm' });
    expect(resolvePolicy(filterOptionsSchema.parse({ itc: { model: 'a', threshold: 0.3 } }), null)).toMatchObject({ policy: 'itc', itcThreshold: 0.3, itmThreshold: null, topKBy: 'itc' });
  });

  it('rejects a policy without its model, two cuts on one score, and no model at all', () => {
    expect(filterOptionsSchema.safeParse({ itc: { model: 'a' }, policy: 'both' }).error?.issues[0]).toMatchObject({ path: ['policy'], message: 'policy "both" needs `filter.itm`' });
    expect(filterOptionsSchema.safeParse({ itc: { model: 'a', threshold: 0.2, percentile: 50 } }).success).toBe(false);
    expect(filterOptionsSchema.safeParse({}).success).toBe(false);
  });
});
