/**
 * What `vlcurate report` reads from a run database (a read-only connection is enough). Counts and
 * histograms are aggregated in SQLite, so no per-caption rows come into JavaScript; keys are picked by a
 * deterministic hash (`sample-hash.ts`), so every report of the same run shows the same samples; the rows
 * of the few hundred samples a report shows come back decoded.
 */
import type { Turn } from '../core/conversation.js';
import type { Box } from '../core/sample.js';
import { CAPTION_COLUMNS, captionFromRow, type CaptionRow, type StoredCaption } from './caption-row.js';
import type { Db } from './database.js';
import type { ImageColumns } from './image-columns.js';
import { decodeInstructionRow, INSTRUCTION_COLUMNS, instructionReasonText, type StoredInstructionRow } from './instruction-store.js';
import { registerSampleHash, SAMPLE_HASH } from './sample-hash.js';

export type ScoreColumn = 'itc' | 'itm';

export interface LatestRun {
  id: number;
  status: string;
  startedAt: string;
  finishedAt: string | null;
  shard: string;
  /** The resolved recipe the run stored; `{}` when it does not parse (the run's own facts still hold). */
  recipe: Record<string, unknown>;
}

export interface ScoreRange {
  /** Captions with this score. */
  count: number;
  lo: number;
  hi: number;
}

export interface ScoreBinCounts {
  bin: number;
  kept: number;
  dropped: number;
  /** No filter has decided these captions yet. */
  undecided: number;
}

export interface AtLeastCounts {
  /** Rows counted: the denominator. */
  total: number;
  /** Per threshold given, the rows whose score is at least that threshold. */
  atLeast: number[];
}

export interface StoredSample {
  key: string;
  source: string;
  status: string;
  errorCode: string | null;
  errorMessage: string | null;
  dropReason: string | null;
  imageRef: string;
  width: number | null;
  height: number | null;
  format: string | null;
  byteLength: number | null;
  sha256: string | null;
  orientation: number | null;
}

/** A caption with its position among its sample's captions. */
export interface PlacedCaption extends StoredCaption {
  idx: number;
}

export interface StoredInstruction {
  task: string;
  variant: number;
  status: string;
  reason: string | null;
  /** The turns that are turns (an object with a string `value`); none when the JSON is missing or broken. */
  turns: Turn[];
}

export interface FailureCount {
  code: string | null;
  stage: string | null;
  count: number;
}

interface SampleRow extends ImageColumns {
  key: string;
  source: string;
  status: string;
  error_code: string | null;
  error_message: string | null;
  drop_reason: string | null;
}

/** Usable, non-empty captions with the score: those a filter can keep on it. */
const usableWith = (score: ScoreColumn) => `usable = 1 AND length(trim(text)) > 0 AND ${score} IS NOT NULL`;

export class ReportQueries {
  private readonly sampleRow;
  private readonly captionRows;
  private readonly boxRows;
  private readonly instructionRows;

  constructor(private readonly db: Db) {
    registerSampleHash(db);
    this.sampleRow = db.prepare(`SELECT key, source, status, error_code, error_message, drop_reason, image_ref, width, height, format,
      byte_length, sha256, orientation FROM samples WHERE key = ?`);
    this.captionRows = db.prepare(`SELECT idx, ${CAPTION_COLUMNS} FROM captions WHERE sample_key = ? ORDER BY idx`);
    this.boxRows = db.prepare('SELECT label, x1, y1, x2, y2 FROM boxes WHERE sample_key = ? ORDER BY idx');
    this.instructionRows = db.prepare(`SELECT ${INSTRUCTION_COLUMNS} FROM instructions WHERE sample_key = ? ORDER BY task, variant`);
  }

  latestRun(): LatestRun | null {
    const row = this.db.prepare('SELECT id, status, started_at, finished_at, shard, recipe_json FROM runs ORDER BY id DESC LIMIT 1').get() as
      | { id: number; status: string; started_at: string; finished_at: string | null; shard: string; recipe_json: string }
      | undefined;
    if (!row) return null;
    let recipe: Record<string, unknown> = {};
    try {
      recipe = JSON.parse(row.recipe_json) as Record<string, unknown>;
    } catch {
      // A run row without a readable recipe still has its facts.
    }
    return { id: row.id, status: row.status, startedAt: row.started_at, finishedAt: row.finished_at, shard: row.shard, recipe };
  }

  /** How many captions have the score, and its range; null when none has it. */
  scoreRange(score: ScoreColumn): ScoreRange | null {
    const range = this.db.prepare(`SELECT COUNT(${score}) AS n, MIN(${score}) AS lo, MAX(${score}) AS hi FROM captions`).get() as {
      n: number;
      lo: number | null;
      hi: number | null;
    };
    if (range.n === 0 || range.lo === null || range.hi === null) return null;
    return { count: range.n, lo: range.lo, hi: range.hi };
  }

  /**
   * Captions with the score per bin of `width` from `lo`, by verdict; scores outside `bins` bins count in the
   * first or last. Only bins that hold a caption come back.
   */
  scoreBins(score: ScoreColumn, lo: number, width: number, bins: number): ScoreBinCounts[] {
    // `kept IS 1`, not `kept = 1` (NULL for an undecided caption): a bin of undecided captions has 0 kept, not NULL.
    return this.db
      .prepare(
        `SELECT MIN(MAX(CAST((${score} - ?) / ? AS INTEGER), 0), ?) AS bin,
                SUM(kept IS 1) AS kept, SUM(kept IS 0) AS dropped, SUM(kept IS NULL) AS undecided
         FROM captions WHERE ${score} IS NOT NULL GROUP BY bin`,
      )
      .all(lo, width, bins - 1) as ScoreBinCounts[];
  }

  /** Usable, non-empty captions with the score, and those at or above each threshold. */
  captionsAtLeast(score: ScoreColumn, thresholds: readonly number[]): AtLeastCounts {
    return this.atLeast(`SELECT ${score} AS v FROM captions WHERE ${usableWith(score)}`, thresholds);
  }

  /** Samples with a usable, non-empty caption with the score, and those whose best such caption is at or above each threshold. */
  imagesAtLeast(score: ScoreColumn, thresholds: readonly number[]): AtLeastCounts {
    return this.atLeast(`SELECT MAX(${score}) AS v FROM captions WHERE ${usableWith(score)} GROUP BY sample_key`, thresholds);
  }

  private atLeast(values: string, thresholds: readonly number[]): AtLeastCounts {
    const sums = thresholds.map((_, i) => `, SUM(v >= ?) AS t${i}`).join('');
    const row = this.db.prepare(`SELECT COUNT(*) AS n${sums} FROM (${values})`).get(...thresholds) as Record<string, number | null>;
    return { total: row.n ?? 0, atLeast: thresholds.map((_, i) => row[`t${i}`] ?? 0) };
  }

  countWithStatus(status: string): number {
    return (this.db.prepare('SELECT COUNT(*) AS n FROM samples WHERE status = ?').get(status) as { n: number }).n;
  }

  /** Up to `limit` keys of samples with the status, a deterministic sample spread over the whole run. */
  keysWithStatus(status: string, limit: number): string[] {
    return (this.db.prepare(`SELECT key FROM samples WHERE status = ? ORDER BY ${SAMPLE_HASH}(key) LIMIT ?`).all(status, limit) as { key: string }[]).map(
      (r) => r.key,
    );
  }

  /**
   * Samples (not failed) with synthetic captions, how many, and up to `limit` of their keys: those whose
   * synthetic caption was kept first (the ones recaptioning rescued). One pass over the captions grouped by
   * sample (the `(sample_key, idx)` index gives that order).
   */
  recaptioned(limit: number): { keys: string[]; total: number } {
    const candidates = `
      SELECT c.sample_key AS key, MAX(c.kept IS 1) AS rescued FROM captions c
      WHERE +c.origin = 'synthetic' GROUP BY c.sample_key`;
    const rows = this.db
      .prepare(
        `SELECT r.key, COUNT(*) OVER () AS total FROM (${candidates}) r JOIN samples s ON s.key = r.key WHERE s.status != 'failed'
         ORDER BY r.rescued DESC, ${SAMPLE_HASH}(r.key) LIMIT ?`,
      )
      .all(Math.max(1, limit)) as { key: string; total: number }[];
    return { keys: rows.slice(0, limit).map((r) => r.key), total: rows[0]?.total ?? 0 };
  }

  /** Failed samples per failure code and stage, most first (at most `limit` groups). */
  failureCounts(limit = 50): FailureCount[] {
    const rows = this.db
      .prepare(
        `SELECT error_code AS code, error_stage AS stage, COUNT(*) AS n FROM samples WHERE status = 'failed'
         GROUP BY error_code, error_stage ORDER BY n DESC, code LIMIT ?`,
      )
      .all(limit) as { code: string | null; stage: string | null; n: number }[];
    return rows.map((r) => ({ code: r.code, stage: r.stage, count: r.n }));
  }

  /** A deterministic sample of the failed samples with a code and stage (either may be null), with their messages. */
  failureExamples(code: string | null, stage: string | null, limit: number): { key: string; message: string | null }[] {
    return this.db
      .prepare(
        `SELECT key, error_message AS message FROM samples WHERE status = 'failed' AND error_code IS ? AND error_stage IS ?
         ORDER BY ${SAMPLE_HASH}(key) LIMIT ?`,
      )
      .all(code, stage, limit) as { key: string; message: string | null }[];
  }

  /** A deterministic sample of ok instruction rows that have a conversation. */
  instructionPicks(limit: number): { key: string; task: string; variant: number }[] {
    return this.db
      .prepare(
        `SELECT sample_key AS key, task, variant FROM instructions
         WHERE status = 'ok' AND conversations_json IS NOT NULL
         ORDER BY ${SAMPLE_HASH}(sample_key || '/' || task || '/' || variant) LIMIT ?`,
      )
      .all(limit) as { key: string; task: string; variant: number }[];
  }

  sample(key: string): StoredSample | null {
    const row = this.sampleRow.get(key) as SampleRow | undefined;
    if (!row) return null;
    return {
      key: row.key,
      source: row.source,
      status: row.status,
      errorCode: row.error_code,
      errorMessage: row.error_message,
      dropReason: row.drop_reason,
      imageRef: row.image_ref,
      width: row.width,
      height: row.height,
      format: row.format,
      byteLength: row.byte_length,
      sha256: row.sha256,
      orientation: row.orientation,
    };
  }

  captions(key: string): PlacedCaption[] {
    return (this.captionRows.all(key) as (CaptionRow & { idx: number })[]).map((row) => ({ idx: row.idx, ...captionFromRow(row) }));
  }

  boxes(key: string): Box[] {
    return (this.boxRows.all(key) as { label: string; x1: number; y1: number; x2: number; y2: number }[]).map((b) => ({
      label: b.label,
      box: [b.x1, b.y1, b.x2, b.y2],
    }));
  }

  instructions(key: string): StoredInstruction[] {
    return (this.instructionRows.all(key) as StoredInstructionRow[]).map(decodeInstructionRow).map((r) => ({
      task: r.task,
      variant: r.variant,
      status: r.status,
      reason: instructionReasonText(r),
      turns: turnsOf(r.conversations),
    }));
  }
}

/** The turns of a stored conversation that are turns; none when it did not parse. */
function turnsOf(conversations: unknown): Turn[] {
  return Array.isArray(conversations) ? (conversations.filter((t) => t && typeof t === 'object' && typeof t.value === 'string') as Turn[]) : [];
}
