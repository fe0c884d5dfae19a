import type { Db } from '../store/database.js';
import { decidedSamples, writeVerdicts, type CaptionVerdictChange, type SampleStatusChange } from '../store/caption-verdicts.js';
import type { RefilterEntry } from '../store/refilter-log.js';
import { decideCaptions, NO_CAPTION_PASSED, type ResolvedPolicy } from './policy.js';

export interface RefilterSummary {
  samples: number;
  kept: number;
  dropped: number;
  /** Samples whose status changed (ok <-> dropped). */
  changed: number;
  /** Of those, samples dropped before and kept now. */
  revived: number;
  captionsKept: number;
  captionsRejected: number;
}

/**
 * Re-decide a run from its stored scores: no model runs. Failed samples, and samples dropped for a reason
 * other than their captions (a duplicate image), are left alone; every other sample gets fresh verdicts
 * and becomes ok or dropped. Written in one transaction, so a crash changes nothing. Unless a dry run, the
 * refilter is recorded in that transaction (`store/refilter-log.ts`): its policy is then the one in force.
 * Exports written earlier are not rewritten here: the next `export` or `build` brings them to the kept samples.
 */
export function refilterRun(
  db: Db,
  policy: ResolvedPolicy,
  options: { dryRun?: boolean; flags?: RefilterEntry['flags'] } = {},
): RefilterSummary {
  const summary: RefilterSummary = { samples: 0, kept: 0, dropped: 0, changed: 0, revived: 0, captionsKept: 0, captionsRejected: 0 };
  // Only verdicts that change are written: a second refilter with a nearby threshold touches few rows.
  const changes = { captions: [] as CaptionVerdictChange[], samples: [] as SampleStatusChange[] };
  for (const sample of decidedSamples(db, NO_CAPTION_PASSED)) {
    const verdicts = decideCaptions(sample.captions, policy);
    let anyKept = false;
    verdicts.forEach((v, i) => {
      anyKept ||= v.kept;
      if (v.kept) summary.captionsKept++;
      else summary.captionsRejected++;
      const stored = sample.captions[i]!;
      if (stored.kept !== v.kept || stored.reason !== v.reason) changes.captions.push({ id: stored.id, kept: v.kept, reason: v.reason });
    });
    const next = anyKept ? 'ok' : 'dropped';
    summary.samples++;
    if (anyKept) summary.kept++;
    else summary.dropped++;
    if (next !== sample.status) {
      summary.changed++;
      if (anyKept) summary.revived++;
      changes.samples.push({ key: sample.key, status: next, dropReason: anyKept ? null : NO_CAPTION_PASSED });
    }
  }
  if (!options.dryRun) writeVerdicts(db, changes, { flags: options.flags ?? {}, policy, ...summary });
  return summary;
}
