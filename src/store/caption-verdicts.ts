/**
 * Captions' scores and verdicts as `refilter` reads and rewrites them: the samples whose captions decide
 * them, a run-level score percentile, and new verdicts written with the refilter's record in one
 * transaction. No model runs; the decisions themselves are the filter's (`filter/refilter.ts`).
 */
import { CAPTION_COLUMNS_OF_C, captionFromValues, type StoredCaption } from './caption-row.js';
import type { Db } from './database.js';
import { nowIso } from './database.js';
import { recordRefilter, type RefilterEntry } from './refilter-log.js';
import { latestRun } from './run-history.js';

/** A stored caption (what decides it: scores, origin, usable; and its verdict now) with its row id, to write its new verdict. */
export interface StoredVerdict extends StoredCaption {
  id: number;
}

export interface DecidedSample {
  key: string;
  /** `ok`, or `dropped` (for the drop reason asked for). */
  status: 'ok' | 'dropped';
  /** In the sample's caption order. */
  captions: StoredVerdict[];
}

/** `sample_key, status, id`, then the caption's `CAPTION_COLUMNS` (a raw row: this scans every caption of the run). */
type Row = [key: string, status: 'ok' | 'dropped', id: number, ...caption: unknown[]];

/**
 * Samples whose captions decide whether they are kept: ok ones, and those dropped for `dropReason` (none
 * of their captions passed), with their captions. Failed samples and samples dropped for another reason (a
 * duplicate image) are not among them. Read whole before the caller writes anything.
 */
export function decidedSamples(db: Db, dropReason: string): DecidedSample[] {
  const rows = db
    .prepare(
      `SELECT c.sample_key, s.status, c.id, ${CAPTION_COLUMNS_OF_C}
       FROM captions c JOIN samples s ON s.key = c.sample_key
       WHERE s.status = 'ok' OR s.drop_reason = ? ORDER BY c.sample_key, c.idx`,
    )
    .raw()
    .all(dropReason) as Row[];
  const samples: DecidedSample[] = [];
  let current: DecidedSample | undefined;
  for (const row of rows) {
    const [key, status, id] = row;
    if (current?.key !== key) samples.push((current = { key, status, captions: [] }));
    current.captions.push({ id, ...captionFromValues(row, 3) });
  }
  return samples;
}

export interface CaptionVerdictChange {
  id: number;
  kept: boolean;
  reason: string;
}

/** A sample's new status: ok (kept), or dropped with the reason. */
export interface SampleStatusChange {
  key: string;
  status: 'ok' | 'dropped';
  dropReason: string | null;
}

export interface VerdictChanges {
  /** Captions whose verdict changed. */
  captions: readonly CaptionVerdictChange[];
  samples: readonly SampleStatusChange[];
}

/**
 * Write new verdicts and sample statuses, and the refilter that decided them (`refilter-log.ts`, under the
 * latest run), in one transaction: a crash changes nothing.
 */
export function writeVerdicts(db: Db, changes: VerdictChanges, refilter: Omit<RefilterEntry, 'id' | 'runId' | 'at'>): RefilterEntry {
  const updateCaption = db.prepare('UPDATE captions SET kept = ?, reason = ? WHERE id = ?');
  const updateSample = db.prepare('UPDATE samples SET status = ?, drop_reason = ?, updated_at = ? WHERE key = ?');
  const at = nowIso();
  return db.transaction(() => {
    for (const c of changes.captions) updateCaption.run(c.kept ? 1 : 0, c.reason, c.id);
    for (const s of changes.samples) updateSample.run(s.status, s.dropReason, at, s.key);
    const entry = { ...refilter, at, runId: latestRun(db)?.id ?? null };
    return { ...entry, id: recordRefilter(db, entry) };
  })();
}

/**
 * The score at the p-th percentile (0-100) of every scored, usable caption of samples that did not fail, read with an
 * indexed ORDER BY ... OFFSET (no scores are loaded into memory). Null when the run has no scores.
 */
export function scorePercentile(db: Db, score: 'itc' | 'itm', percentile: number): number | null {
  const from = `FROM captions c JOIN samples s ON s.key = c.sample_key WHERE c.usable = 1 AND s.status != 'failed' AND c.${score} IS NOT NULL`;
  const { n } = db.prepare(`SELECT COUNT(*) AS n ${from}`).get() as { n: number };
  if (n === 0) return null;
  const offset = Math.min(n - 1, Math.max(0, Math.ceil((percentile / 100) * n) - 1));
  const row = db.prepare(`SELECT c.${score} AS v ${from} ORDER BY c.${score} LIMIT 1 OFFSET ?`).get(offset) as {
    v: number;
  };
  return row.v;
}
