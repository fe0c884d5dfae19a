import { RESUMABLE_LLM_CODES, STOP_CODES } from '../core/failure-codes.js';
import type { CaptioningSummary, SynthesisSummary, RunSummary } from '../core/events.js';
import { recordedExportNames } from './export-catalog.js';
import type { Db } from './database.js';
import { heldBackCondition } from './done-rule.js';
import { exportProblems } from './export-problems.js';

/**
 * Counts per status, failure code and export: the `inspect stats --json` contract and the run summary.
 * `exportNames`: the exports the recipe has (each counted, 0 when it holds nothing); default: every export
 * the database knows of.
 */
export function runSummary(db: Db, exportNames: readonly string[] = recordedExportNames(db)): RunSummary {
  const samples = { total: 0, ok: 0, failed: 0, dropped: 0 };
  for (const row of db.prepare('SELECT status, COUNT(*) AS n FROM samples GROUP BY status').all() as { status: string; n: number }[]) {
    samples.total += row.n;
    if (row.status === 'ok' || row.status === 'failed' || row.status === 'dropped') samples[row.status] += row.n;
  }
  const failures: Record<string, number> = {};
  for (const row of db
    .prepare(`SELECT error_code AS code, COUNT(*) AS n FROM samples WHERE status = 'failed' GROUP BY error_code ORDER BY n DESC, code`)
    .all() as { code: string; n: number }[]) {
    failures[row.code] = row.n;
  }
  const exported: Record<string, number> = {};
  for (const row of db
    .prepare('SELECT export_name AS name, COUNT(*) AS n FROM exports GROUP BY export_name ORDER BY export_name')
    .all() as { name: string; n: number }[]) {
    exported[row.name] = row.n;
  }
  for (const name of exportNames) exported[name] ??= 0;
  const summary: RunSummary = { samples, failures, exported };
  const instructions = instructionSummary(db);
  if (instructions) summary.synthesis = instructions;
  const captioning = captioningSummary(db);
  if (captioning) summary.captioning = captioning;
  const problems = exportProblems(db, exportNames);
  if (problems.length > 0) summary.exportProblems = problems;
  return summary;
}

/** Samples the captioner held back for a later run, by code, and why it stopped; undefined when none. */
function captioningSummary(db: Db): CaptioningSummary | undefined {
  const held = heldBackCondition();
  const rows = db
    .prepare(`SELECT s.error_code AS code, COUNT(*) AS n FROM samples s WHERE ${held.sql} GROUP BY s.error_code ORDER BY n DESC, code`)
    .all(...held.params) as { code: string; n: number }[];
  if (rows.length === 0) return undefined;
  const summary: CaptioningSummary = { heldBack: 0, reasons: {} };
  for (const { code, n } of rows) {
    summary.heldBack += n;
    summary.reasons[code] = n;
  }
  const stop = db
    .prepare(
      `SELECT s.error_message AS message FROM samples s WHERE ${held.sql} AND s.error_code IN (${[...STOP_CODES].map(() => '?').join(',')})
       ORDER BY s.updated_at DESC LIMIT 1`,
    )
    .get(...held.params, ...STOP_CODES) as { message: string } | undefined;
  if (stop) summary.stopped = stop.message;
  return summary;
}

/** Counts of the instructions table by status and reason code; undefined when it is empty. */
function instructionSummary(db: Db): SynthesisSummary | undefined {
  const rows = db
    .prepare(
      `SELECT status, code, COUNT(*) AS n FROM instructions GROUP BY status, code ORDER BY n DESC, code`,
    )
    .all() as { status: string; code: string | null; n: number }[];
  if (rows.length === 0) return undefined;
  const summary: SynthesisSummary = { ok: 0, rejected: 0, failed: 0, retriable: 0, reasons: {}, notApplicable: 0, notApplicableReasons: {} };
  for (const { status, code, n } of rows) {
    if (status === 'ok') summary.ok += n;
    else if (status === 'not_applicable') {
      summary.notApplicable += n;
      const key = code ?? status;
      summary.notApplicableReasons[key] = (summary.notApplicableReasons[key] ?? 0) + n;
    } else if (status === 'rejected' || status === 'failed') {
      summary[status] += n;
      if (status === 'failed' && code !== null && RESUMABLE_LLM_CODES.has(code)) summary.retriable += n;
      const key = code ?? status;
      summary.reasons[key] = (summary.reasons[key] ?? 0) + n;
    }
  }
  const stop = db
    .prepare(
      `SELECT message FROM instructions WHERE status = 'failed' AND code IN (${[...STOP_CODES].map(() => '?').join(',')})
       ORDER BY created_at DESC, id DESC LIMIT 1`,
    )
    .get(...STOP_CODES) as { message: string | null } | undefined;
  if (stop) summary.stopped = (stop.message ?? '').trim();
  return summary;
}

export interface RunStats extends RunSummary {
  dropReasons: Record<string, number>;
  /** Failed samples per stage that failed them, by failure code: `{decode: {image_truncated: 3}}`. */
  failuresByStage: Record<string, Record<string, number>>;
  captions: {
    total: number;
    byOrigin: Record<string, number>;
    /** Verdicts per origin: `{synthetic: {kept, rejected, undecided}}`. */
    verdictsByOrigin: Record<string, { kept: number; rejected: number; undecided: number }>;
    issues: Record<string, number>;
    kept: number;
    rejected: number;
    undecided: number;
  };
  /** Instruction samples per task and status: `{conversation: {ok: 10, rejected: 1}}`. */
  instructions: Record<string, Record<string, number>>;
  scores: { itc: Quantiles | null; itm: Quantiles | null };
  sources: Record<string, number>;
  runs: { id: number; status: string; startedAt: string; finishedAt: string | null; shard: string }[];
}

export interface Quantiles {
  count: number;
  min: number;
  p10: number;
  p50: number;
  p90: number;
  max: number;
  mean: number;
}

function countBy(db: Db, sql: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const row of db.prepare(sql).all() as { k: string | null; n: number }[]) out[row.k ?? '(none)'] = row.n;
  return out;
}

/** Quantiles by OFFSET on the score's index (migration 3): no sort, fast on large runs. */
function quantiles(db: Db, column: 'itc' | 'itm'): Quantiles | null {
  const agg = db
    .prepare(`SELECT COUNT(${column}) AS n, MIN(${column}) AS lo, MAX(${column}) AS hi, AVG(${column}) AS mean FROM captions`)
    .get() as { n: number; lo: number | null; hi: number | null; mean: number | null };
  if (agg.n === 0) return null;
  const at = db.prepare(`SELECT ${column} AS v FROM captions WHERE ${column} IS NOT NULL ORDER BY ${column} LIMIT 1 OFFSET ?`);
  const q = (p: number) => (at.get(Math.min(agg.n - 1, Math.floor(p * (agg.n - 1)))) as { v: number }).v;
  return { count: agg.n, min: agg.lo!, p10: q(0.1), p50: q(0.5), p90: q(0.9), max: agg.hi!, mean: agg.mean! };
}

/** Nested counts from `(a, b, n)` rows: `{a: {b: n}}`. */
function countBy2(db: Db, sql: string): Record<string, Record<string, number>> {
  const out: Record<string, Record<string, number>> = {};
  for (const row of db.prepare(sql).all() as { a: string | null; b: string | null; n: number }[]) {
    (out[row.a ?? '(none)'] ??= {})[row.b ?? '(none)'] = row.n;
  }
  return out;
}

export function runStats(db: Db): RunStats {
  // One pass over the (origin, kept) index gives every caption count.
  const origins = db
    .prepare(
      `SELECT origin, COUNT(*) AS n, SUM(kept = 1) AS kept, SUM(kept = 0) AS rejected, SUM(kept IS NULL) AS undecided
       FROM captions GROUP BY origin ORDER BY origin`,
    )
    .all() as { origin: string; n: number; kept: number | null; rejected: number | null; undecided: number | null }[];
  const byOrigin: Record<string, number> = {};
  const verdictsByOrigin: RunStats['captions']['verdictsByOrigin'] = {};
  const totals = { total: 0, kept: 0, rejected: 0, undecided: 0 };
  for (const o of origins) {
    byOrigin[o.origin] = o.n;
    verdictsByOrigin[o.origin] = { kept: o.kept ?? 0, rejected: o.rejected ?? 0, undecided: o.undecided ?? 0 };
    totals.total += o.n;
    totals.kept += o.kept ?? 0;
    totals.rejected += o.rejected ?? 0;
    totals.undecided += o.undecided ?? 0;
  }
  return {
    ...runSummary(db),
    dropReasons: countBy(db, `SELECT drop_reason AS k, COUNT(*) AS n FROM samples WHERE status = 'dropped' GROUP BY drop_reason ORDER BY n DESC`),
    failuresByStage: countBy2(
      db,
      `SELECT error_stage AS a, error_code AS b, COUNT(*) AS n FROM samples WHERE status = 'failed' GROUP BY a, b ORDER BY a, n DESC`,
    ),
    captions: {
      total: totals.total,
      byOrigin,
      verdictsByOrigin,
      issues: countBy(db, 'SELECT issue AS k, COUNT(*) AS n FROM captions WHERE issue IS NOT NULL GROUP BY issue ORDER BY n DESC'),
      kept: totals.kept,
      rejected: totals.rejected,
      undecided: totals.undecided,
    },
    instructions: countBy2(db, 'SELECT task AS a, status AS b, COUNT(*) AS n FROM instructions GROUP BY task, status ORDER BY task, status'),
    scores: { itc: quantiles(db, 'itc'), itm: quantiles(db, 'itm') },
    sources: countBy(db, 'SELECT source AS k, COUNT(*) AS n FROM samples GROUP BY source ORDER BY source'),
    runs: db
      .prepare('SELECT id, status, started_at AS startedAt, finished_at AS finishedAt, shard FROM runs ORDER BY id')
      .all() as RunStats['runs'],
  };
}

export interface SampleFilter {
  status?: string;
  /** Matches a failure code or a drop reason. */
  reason?: string;
  origin?: string;
  minItm?: number;
  maxItc?: number;
  source?: string;
  limit?: number;
  order?: 'key' | 'itm' | '-itm' | 'itc' | '-itc' | 'updated';
}

export interface SampleRow {
  key: string;
  status: string;
  error_code: string | null;
  error_message: string | null;
  drop_reason: string | null;
  source: string;
  width: number | null;
  height: number | null;
  best_itc: number | null;
  best_itm: number | null;
}

const ORDERS: Record<NonNullable<SampleFilter['order']>, string> = {
  key: 's.key',
  itm: 'b.best_itm IS NULL, b.best_itm',
  '-itm': 'b.best_itm IS NULL, b.best_itm DESC',
  itc: 'b.best_itc IS NULL, b.best_itc',
  '-itc': 'b.best_itc IS NULL, b.best_itc DESC',
  updated: 's.updated_at DESC',
};

/**
 * Samples matching a filter, with each one's best ITC and ITM. Filters and orders on the best scores read
 * them from one grouped pass over the captions (in `(sample_key, idx)` index order, joined by key);
 * otherwise the best scores are looked up only for the rows returned.
 */
export function listSamples(db: Db, filter: SampleFilter): SampleRow[] {
  const where: string[] = [];
  const params: unknown[] = [];
  if (filter.status) {
    where.push('s.status = ?');
    params.push(filter.status);
  }
  if (filter.reason) {
    where.push('(s.error_code = ? OR s.drop_reason = ?)');
    params.push(filter.reason, filter.reason);
  }
  if (filter.source) {
    where.push('s.source = ?');
    params.push(filter.source);
  }
  if (filter.origin) {
    where.push('EXISTS (SELECT 1 FROM captions c WHERE c.sample_key = s.key AND +c.origin = ?)');
    params.push(filter.origin);
  }
  const order = filter.order ?? 'key';
  const byScore = filter.minItm !== undefined || filter.maxItc !== undefined || !['key', 'updated'].includes(order);
  const columns = 's.key, s.status, s.error_code, s.error_message, s.drop_reason, s.source, s.width, s.height';
  let sql: string;
  if (byScore) {
    if (filter.minItm !== undefined) {
      where.push('b.best_itm >= ?');
      params.push(filter.minItm);
    }
    if (filter.maxItc !== undefined) {
      where.push('b.best_itc <= ?');
      params.push(filter.maxItc);
    }
    sql = `
      SELECT ${columns}, b.best_itc, b.best_itm
      FROM samples s
      LEFT JOIN (SELECT sample_key, MAX(itc) AS best_itc, MAX(itm) AS best_itm FROM captions GROUP BY sample_key) b ON b.sample_key = s.key
      ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
      ORDER BY ${ORDERS[order]}, s.key
      LIMIT ?`;
  } else {
    sql = `
      SELECT ${columns},
             (SELECT MAX(itc) FROM captions c WHERE c.sample_key = s.key) AS best_itc,
             (SELECT MAX(itm) FROM captions c WHERE c.sample_key = s.key) AS best_itm
      FROM samples s ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
      ORDER BY ${ORDERS[order]}
      LIMIT ?`;
  }
  params.push(filter.limit ?? 50);
  return db.prepare(sql).all(...params) as SampleRow[];
}

export interface SampleDetail {
  sample: Record<string, unknown>;
  captions: Record<string, unknown>[];
  boxes: Record<string, unknown>[];
  instructions: Record<string, unknown>[];
  exports: { export_name: string; shard_index: number; position: number; path: string | null }[];
}

export function showSample(db: Db, key: string): SampleDetail | null {
  const sample = db.prepare('SELECT * FROM samples WHERE key = ?').get(key) as Record<string, unknown> | undefined;
  if (!sample) return null;
  sample.meta = JSON.parse(String(sample.meta_json ?? '{}'));
  delete sample.meta_json;
  return {
    sample,
    captions: db
      .prepare('SELECT idx, origin, text, issue, usable, model, itc, itm, kept, reason FROM captions WHERE sample_key = ? ORDER BY idx')
      .all(key) as Record<string, unknown>[],
    boxes: (db.prepare('SELECT idx, label, x1, y1, x2, y2, original_json FROM boxes WHERE sample_key = ? ORDER BY idx').all(key) as Record<string, unknown>[]).map(
      ({ original_json, ...box }) => ({ ...box, original: original_json ? JSON.parse(String(original_json)) : null }),
    ),
    instructions: db
      .prepare('SELECT task, variant, status, reason, conversations_json FROM instructions WHERE sample_key = ? ORDER BY task, variant')
      .all(key) as Record<string, unknown>[],
    exports: db
      .prepare(
        `SELECT e.export_name, e.shard_index, e.position, sh.path FROM exports e
         LEFT JOIN export_shards sh ON sh.export_name = e.export_name AND sh.shard_index = e.shard_index
         WHERE e.sample_key = ? ORDER BY e.export_name`,
      )
      .all(key) as SampleDetail['exports'],
  };
}

/** Samples export `exportName` holds (written by any run or `vlcurate export`). */
export function exportedSampleCount(db: Db, exportName: string): number {
  return db.prepare('SELECT COUNT(*) FROM exports WHERE export_name = ?').pluck().get(exportName) as number;
}
