import type { Db } from '../store/database.js';
import { nowIso } from '../store/database.js';
import { decideCaptions, NO_CAPTION_PASSED, type ResolvedPolicy, type ScoredCaption } from './policy.js';
import { recordRefilter, type RefilterEntry } from './refilter-log.js';

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

type Row = [
  key: string,
  status: string,
  origin: ScoredCaption['origin'],
  usable: number,
  text: string,
  itc: number | null,
  itm: number | null,
  id: number,
  kept: number | null,
  reason: string | null,
];

/**
 * Re-decide a run from its stored scores: no model runs. Failed samples, and samples dropped for a reason
 * other than their captions (a duplicate image), are left alone; every other sample gets fresh verdicts
 * and becomes ok or dropped. One transaction, so a crash changes nothing. Unless a dry run, the refilter is
 * recorded in that transaction (`refilter-log.ts`): its policy is then the one in force.
 * Exports written earlier are not rewritten here: the next `export` or `build` brings them to the kept samples.
 */
export function refilterRun(
  db: Db,
  policy: ResolvedPolicy,
  options: { dryRun?: boolean; flags?: RefilterEntry['flags'] } = {},
): RefilterSummary {
  const rows = db
    .prepare(
      `SELECT c.sample_key, s.status, c.origin, c.usable, c.text, c.itc, c.itm, c.id, c.kept, c.reason
       FROM captions c JOIN samples s ON s.key = c.sample_key
       WHERE s.status = 'ok' OR s.drop_reason = ? ORDER BY c.sample_key, c.idx`,
    )
    .raw()
    .all(NO_CAPTION_PASSED) as Row[];
  // Only rows whose verdict changes are written: a second refilter with a nearby threshold touches few rows.
  const updateCaption = db.prepare('UPDATE captions SET kept = ?, reason = ? WHERE id = ?');
  const updateSample = db.prepare(`UPDATE samples SET status = ?, drop_reason = ?, updated_at = ? WHERE key = ?`);
  const summary: RefilterSummary = { samples: 0, kept: 0, dropped: 0, changed: 0, revived: 0, captionsKept: 0, captionsRejected: 0 };
  const now = nowIso();

  const apply = () => {
    for (let start = 0; start < rows.length; ) {
      let end = start;
      while (end < rows.length && rows[end]![0] === rows[start]![0]) end++;
      const group = rows.slice(start, end);
      const [key, status] = group[0]!;
      const verdicts = decideCaptions(
        group.map(([, , origin, usable, text, itc, itm]) => ({ origin, text, usable: usable === 1, itc, itm })),
        policy,
      );
      let anyKept = false;
      verdicts.forEach((v, i) => {
        anyKept ||= v.kept;
        if (v.kept) summary.captionsKept++;
        else summary.captionsRejected++;
        const [, , , , , , , id, kept, reason] = group[i]!;
        if (!options.dryRun && (kept !== (v.kept ? 1 : 0) || reason !== v.reason)) updateCaption.run(v.kept ? 1 : 0, v.reason, id);
      });
      const next = anyKept ? 'ok' : 'dropped';
      summary.samples++;
      if (anyKept) summary.kept++;
      else summary.dropped++;
      if (next !== status) {
        summary.changed++;
        if (anyKept) summary.revived++;
        if (!options.dryRun) updateSample.run(next, anyKept ? null : NO_CAPTION_PASSED, now, key);
      }
      start = end;
    }
    if (!options.dryRun) {
      const runId = (db.prepare('SELECT MAX(id) FROM runs').pluck().get() as number | null) ?? null;
      recordRefilter(db, { at: now, runId, flags: options.flags ?? {}, policy, ...summary });
    }
  };
  db.transaction(apply)();
  return summary;
}
