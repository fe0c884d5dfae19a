import type { Caption } from '../core/sample.js';
import type { FilterPolicy } from './filter-options.js';

/** A caption as the policy sees it. */
export interface ScoredCaption {
  origin: 'web' | 'annotation' | 'synthetic';
  text: string;
  usable: boolean;
  itc: number | null;
  itm: number | null;
}

/** A sample's caption as the policy sees it: a score not computed yet is null. */
export function asScored(c: Caption): ScoredCaption {
  return { origin: c.origin, text: c.text, usable: c.usable, itc: c.itc ?? null, itm: c.itm ?? null };
}

export interface Verdict {
  kept: boolean;
  /** Why, with the numbers: `itm 0.91 >= 0.5`, `itc 0.12 < 0.28`, `rank 3 of 4 by itm, topK 2`. */
  reason: string;
}

/** Absolute cuts, after run-level percentiles have been turned into numbers. */
export interface ResolvedPolicy {
  policy: FilterPolicy;
  itcThreshold: number | null;
  itmThreshold: number | null;
  topK: number | null;
  topKBy: 'itc' | 'itm';
  preferWeb: boolean;
}

const fmt = (x: number) => (Math.round(x * 1000) / 1000).toString();

function check(name: 'itc' | 'itm', score: number | null, threshold: number | null): { pass: boolean; why: string } {
  if (threshold === null) return { pass: true, why: '' };
  if (score === null) return { pass: false, why: `no ${name} score` };
  return score >= threshold
    ? { pass: true, why: `${name} ${fmt(score)} >= ${fmt(threshold)}` }
    : { pass: false, why: `${name} ${fmt(score)} < ${fmt(threshold)}` };
}

/** Does one caption pass the score cuts? */
function passes(c: ScoredCaption, p: ResolvedPolicy): Verdict {
  if (!c.usable) return { kept: false, reason: 'unusable text' };
  if (c.text.trim() === '') return { kept: false, reason: 'empty' };
  const itc = check('itc', c.itc, p.policy === 'itm' ? null : p.itcThreshold);
  const itm = check('itm', c.itm, p.policy === 'itc' ? null : p.itmThreshold);
  const parts = [itc.why, itm.why].filter(Boolean);
  switch (p.policy) {
    case 'itc':
      return { kept: itc.pass, reason: itc.why };
    case 'itm':
      return { kept: itm.pass, reason: itm.why };
    case 'both':
      return { kept: itc.pass && itm.pass, reason: parts.join(', ') };
    case 'either':
      return { kept: itc.pass || itm.pass, reason: parts.join(itc.pass || itm.pass ? ' or ' : ', ') };
  }
}

/**
 * Decide every caption of one image. Pure: the same scores and policy always give the same verdicts,
 * which is what lets `refilter` re-decide a run from stored scores alone.
 *
 * Order of rules: unusable/empty text never passes; the score cuts; `preferWeb` keeps a passing web
 * caption alone; `topK` keeps the best K of the rest (ties broken by caption order, so web first).
 */
export function decideCaptions(captions: readonly ScoredCaption[], p: ResolvedPolicy): Verdict[] {
  const verdicts = captions.map((c) => passes(c, p));
  if (p.preferWeb) {
    const webPassed = captions.some((c, i) => c.origin === 'web' && verdicts[i]!.kept);
    if (webPassed) {
      captions.forEach((c, i) => {
        if (c.origin === 'synthetic' && verdicts[i]!.kept) verdicts[i] = { kept: false, reason: 'web caption kept (preferWeb)' };
      });
    }
  }
  // One text once: a captioner often repeats itself, and the repeats would take the places of other
  // captions (topK) and train the same words twice. The best-scored copy stays.
  const seen = new Map<string, number>();
  captions
    .map((c, i) => ({ i, score: c[p.topKBy] ?? Number.NEGATIVE_INFINITY }))
    .filter(({ i }) => verdicts[i]!.kept)
    .sort((a, b) => b.score - a.score || a.i - b.i)
    .forEach(({ i }) => {
      const text = captions[i]!.text.trim().replace(/\s+/g, ' ').toLowerCase();
      const first = seen.get(text);
      if (first === undefined) seen.set(text, i);
      else verdicts[i] = { kept: false, reason: `same text as caption ${first + 1}` };
    });
  if (p.topK !== null) {
    const key = p.topKBy;
    const ranked = captions
      .map((c, i) => ({ i, score: c[key] ?? Number.NEGATIVE_INFINITY }))
      .filter(({ i }) => verdicts[i]!.kept)
      .sort((a, b) => b.score - a.score || a.i - b.i);
    ranked.forEach(({ i }, rank) => {
      if (rank >= p.topK!) verdicts[i] = { kept: false, reason: `rank ${rank + 1} of ${ranked.length} by ${key}, topK ${p.topK}` };
    });
  }
  return verdicts;
}

/** Why an image with no kept caption is dropped. */
export const NO_CAPTION_PASSED = 'no_caption_passed';
