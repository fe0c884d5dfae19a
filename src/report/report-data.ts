/**
 * Everything the HTML report shows, read from a run database with SQL: counts and histograms are
 * aggregated in SQLite (no per-caption rows come into JavaScript), galleries are deterministic samples
 * by key hash, so the report of a 100k-sample run costs a few full scans and a few hundred row lookups.
 */
import type { Turn } from '../core/conversation.js';
import type { Db } from '../store/database.js';
import { runStats, type RunStats } from '../store/queries.js';
import { registerSampleHash, SAMPLE_HASH } from './sample-hash.js';
import type { ResolvedPolicy } from '../filter/policy.js';
import { policyInForce } from '../filter/policy-in-force.js';
import { describeFlags } from '../store/refilter-log.js';

export type ScoreName = 'itc' | 'itm';

export interface HistogramBin {
  /** Lower edge; the bin holds scores in [lo, lo + width). The last bin includes its upper edge. */
  lo: number;
  kept: number;
  dropped: number;
  /** Captions no filter has decided yet. */
  undecided: number;
}

export interface ScoreHistogram {
  score: ScoreName;
  lo: number;
  hi: number;
  width: number;
  bins: HistogramBin[];
  /** Captions with this score. */
  count: number;
  /** The cut the run's recipe used, when it set one. */
  threshold: number | null;
}

export interface SweepRow {
  threshold: number;
  captionsKept: number;
  imagesKept: number;
  /** The cut the run used. */
  current: boolean;
}

export interface ScoreSweep {
  score: ScoreName;
  /** Usable, non-empty captions with this score; the denominators. */
  captions: number;
  images: number;
  rows: SweepRow[];
}

export interface GalleryCaption {
  idx: number;
  origin: string;
  text: string;
  issue: string | null;
  usable: boolean;
  model: string | null;
  itc: number | null;
  itm: number | null;
  kept: boolean | null;
  reason: string | null;
}

export interface GalleryBox {
  label: string;
  box: [number, number, number, number];
}

export interface GalleryInstruction {
  task: string;
  variant: number;
  status: string;
  reason: string | null;
  turns: Turn[];
}

export interface GallerySample {
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
  captions: GalleryCaption[];
  boxes: GalleryBox[];
  instructions: GalleryInstruction[];
}

export interface Gallery {
  name: 'kept' | 'dropped' | 'recaptioned';
  title: string;
  /** Samples that qualify; the gallery shows a deterministic sample of them. */
  total: number;
  samples: GallerySample[];
}

export interface FailureGroup {
  code: string;
  stage: string | null;
  count: number;
  examples: { key: string; message: string | null }[];
}

export interface InstructionSummary {
  /** Rows per task and status. */
  counts: Record<string, Record<string, number>>;
  /** A deterministic sample of ok instruction samples, with their image. */
  examples: { sample: GallerySample; instruction: GalleryInstruction }[];
}

export interface RunInfo {
  id: number;
  status: string;
  startedAt: string;
  finishedAt: string | null;
  shard: string;
  sources: string[];
  exports: string[];
}

/** The caption decisions in force (`filter/policy-in-force.ts`) and where they came from. */
export interface Decisions {
  policy: ResolvedPolicy;
  source: 'recipe' | 'refilter';
  /** The recipe's run (source recipe), or the run whose recipe the refilter was laid over. */
  runId: number | null;
  /** The refilter that decided: when, with which flags, how many samples it changed. */
  refilter: { id: number; at: string; command: string; changed: number } | null;
  /** The latest run's recipe's own policy, shown beside a refilter's (null without a filter). */
  recipe: ResolvedPolicy | null;
}

export interface ReportData {
  stats: RunStats;
  run: RunInfo | null;
  /** Null when no run has a filter and nothing was refiltered. */
  decisions: Decisions | null;
  histograms: ScoreHistogram[];
  sweeps: ScoreSweep[];
  galleries: Gallery[];
  failures: FailureGroup[];
  instructions: InstructionSummary;
}

export interface ReportDataOptions {
  /** Samples per gallery (kept, dropped, recaptioned). Default 48. */
  maxGallery?: number;
  /** Instruction samples shown. Default 12. */
  maxInstructions?: number;
  /** Histogram bins. Default 40. */
  bins?: number;
}

function num(value: unknown): number | null {
  return typeof value === 'number' && Number.isFinite(value) ? value : null;
}

/** What the latest run's recipe said (resolved recipes are stored in `runs.recipe_json`). */
function latestRun(db: Db): RunInfo | null {
  const row = db.prepare('SELECT id, status, started_at, finished_at, shard, recipe_json FROM runs ORDER BY id DESC LIMIT 1').get() as
    | { id: number; status: string; started_at: string; finished_at: string | null; shard: string; recipe_json: string }
    | undefined;
  if (!row) return null;
  let recipe: Record<string, unknown> = {};
  try {
    recipe = JSON.parse(row.recipe_json) as Record<string, unknown>;
  } catch {
    // A run row without a readable recipe still has its facts.
  }
  const list = (value: unknown, field: string) =>
    Array.isArray(value) ? value.map((v) => String((v as Record<string, unknown>)?.[field] ?? (v as Record<string, unknown>)?.type ?? '?')) : [];
  return {
    id: row.id,
    status: row.status,
    startedAt: row.started_at,
    finishedAt: row.finished_at,
    shard: row.shard,
    sources: list(recipe.sources, 'name'),
    exports: list(recipe.export, 'name'),
  };
}

function decisionsInForce(db: Db): Decisions | null {
  const inForce = policyInForce(db);
  if (!inForce) return null;
  const { source } = inForce;
  return {
    policy: inForce.policy,
    source: source.kind,
    runId: source.kind === 'recipe' ? source.runId : source.refilter.runId,
    refilter:
      source.kind === 'refilter'
        ? { id: source.refilter.id, at: source.refilter.at, command: `vlcurate refilter ${describeFlags(source.refilter.flags)}`.trim(), changed: source.refilter.changed }
        : null,
    recipe: inForce.recipe,
  };
}

/** The cut a score has under a policy: none when the policy does not look at that score. */
export function cutOf(policy: ResolvedPolicy, score: ScoreName): number | null {
  const cut = score === 'itc' ? (policy.policy === 'itm' ? null : policy.itcThreshold) : policy.policy === 'itc' ? null : policy.itmThreshold;
  // An infinite cut (a percentile over a run without scores) keeps nothing and has no place on an axis.
  return cut !== null && Number.isFinite(cut) ? cut : null;
}

/** A round number of width `step` below `x` / above `x`. */
const floorTo = (x: number, step: number) => Math.floor(x / step + 1e-9) * step;
const ceilTo = (x: number, step: number) => Math.ceil(x / step - 1e-9) * step;

function histogram(db: Db, score: ScoreName, bins: number, threshold: number | null): ScoreHistogram | null {
  const range = db.prepare(`SELECT COUNT(${score}) AS n, MIN(${score}) AS lo, MAX(${score}) AS hi FROM captions`).get() as {
    n: number;
    lo: number | null;
    hi: number | null;
  };
  if (range.n === 0 || range.lo === null || range.hi === null) return null;
  // ITM is a probability: always [0, 1]. ITC (a cosine) spans whatever the model gives: round the range out.
  let lo = score === 'itm' ? Math.min(0, range.lo) : floorTo(range.lo, 0.05);
  let hi = score === 'itm' ? Math.max(1, range.hi) : ceilTo(range.hi, 0.05);
  if (threshold !== null) {
    lo = Math.min(lo, threshold);
    hi = Math.max(hi, threshold);
  }
  if (hi <= lo) hi = lo + 1;
  const width = (hi - lo) / bins;
  const rows = db
    .prepare(
      `SELECT MIN(MAX(CAST((${score} - ?) / ? AS INTEGER), 0), ?) AS bin,
              SUM(kept = 1) AS kept, SUM(kept = 0) AS dropped, SUM(kept IS NULL) AS undecided
       FROM captions WHERE ${score} IS NOT NULL GROUP BY bin`,
    )
    .all(lo, width, bins - 1) as { bin: number; kept: number; dropped: number; undecided: number }[];
  const out: HistogramBin[] = Array.from({ length: bins }, (_, i) => ({ lo: lo + i * width, kept: 0, dropped: 0, undecided: 0 }));
  for (const row of rows) {
    const bin = out[row.bin];
    if (!bin) continue;
    bin.kept = row.kept;
    bin.dropped = row.dropped;
    bin.undecided = row.undecided;
  }
  return { score, lo, hi, width, bins: out, count: range.n, threshold };
}

/** Thresholds to sweep: round steps over the score's range, plus the run's own cut. */
function sweepThresholds(h: ScoreHistogram): number[] {
  const steps = h.score === 'itm' ? [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9] : [];
  if (h.score === 'itc') {
    const step = (h.hi - h.lo) / 8;
    for (let i = 1; i < 8; i++) steps.push(Math.round((h.lo + i * step) * 100) / 100);
  }
  if (h.threshold !== null) steps.push(h.threshold);
  return [...new Set(steps)].sort((a, b) => a - b);
}

function sweep(db: Db, h: ScoreHistogram): ScoreSweep {
  const thresholds = sweepThresholds(h);
  const s = h.score;
  const usable = `usable = 1 AND length(trim(text)) > 0 AND ${s} IS NOT NULL`;
  const sums = thresholds.map((_, i) => `SUM(v >= ?) AS t${i}`).join(', ');
  const captions = db.prepare(`SELECT COUNT(*) AS n, ${sums} FROM (SELECT ${s} AS v FROM captions WHERE ${usable})`).get(...thresholds) as Record<
    string,
    number | null
  >;
  const images = db
    .prepare(`SELECT COUNT(*) AS n, ${sums} FROM (SELECT MAX(${s}) AS v FROM captions WHERE ${usable} GROUP BY sample_key)`)
    .get(...thresholds) as Record<string, number | null>;
  return {
    score: s,
    captions: captions.n ?? 0,
    images: images.n ?? 0,
    rows: thresholds.map((threshold, i) => ({
      threshold,
      captionsKept: captions[`t${i}`] ?? 0,
      imagesKept: images[`t${i}`] ?? 0,
      current: threshold === h.threshold,
    })),
  };
}

const SAMPLE_COLUMNS = `key, source, status, error_code, error_message, drop_reason, image_ref, width, height, format,
  byte_length, sha256, orientation`;

interface SampleRowDb {
  key: string;
  source: string;
  status: string;
  error_code: string | null;
  error_message: string | null;
  drop_reason: string | null;
  image_ref: string;
  width: number | null;
  height: number | null;
  format: string | null;
  byte_length: number | null;
  sha256: string | null;
  orientation: number | null;
}

class SampleLoader {
  private readonly captions;
  private readonly boxes;
  private readonly instructions;
  private readonly sample;
  private readonly cache = new Map<string, GallerySample>();

  constructor(db: Db) {
    this.sample = db.prepare(`SELECT ${SAMPLE_COLUMNS} FROM samples WHERE key = ?`);
    this.captions = db.prepare('SELECT idx, origin, text, issue, usable, model, itc, itm, kept, reason FROM captions WHERE sample_key = ? ORDER BY idx');
    this.boxes = db.prepare('SELECT label, x1, y1, x2, y2 FROM boxes WHERE sample_key = ? ORDER BY idx');
    this.instructions = db.prepare('SELECT task, variant, status, reason, conversations_json FROM instructions WHERE sample_key = ? ORDER BY task, variant');
  }

  load(key: string): GallerySample | null {
    const cached = this.cache.get(key);
    if (cached) return cached;
    const row = this.sample.get(key) as SampleRowDb | undefined;
    if (!row) return null;
    const sample: GallerySample = {
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
      captions: (this.captions.all(key) as Record<string, unknown>[]).map((c) => ({
        idx: Number(c.idx),
        origin: String(c.origin),
        text: String(c.text),
        issue: (c.issue as string | null) ?? null,
        usable: c.usable === 1,
        model: (c.model as string | null) ?? null,
        itc: num(c.itc),
        itm: num(c.itm),
        kept: c.kept === null || c.kept === undefined ? null : c.kept === 1,
        reason: (c.reason as string | null) ?? null,
      })),
      boxes: (this.boxes.all(key) as { label: string; x1: number; y1: number; x2: number; y2: number }[]).map((b) => ({
        label: b.label,
        box: [b.x1, b.y1, b.x2, b.y2],
      })),
      instructions: (this.instructions.all(key) as { task: string; variant: number; status: string; reason: string | null; conversations_json: string | null }[]).map(
        (r) => ({ task: r.task, variant: r.variant, status: r.status, reason: r.reason, turns: parseTurns(r.conversations_json) }),
      ),
    };
    this.cache.set(key, sample);
    return sample;
  }
}

function parseTurns(json: string | null): Turn[] {
  if (!json) return [];
  try {
    const value = JSON.parse(json) as unknown;
    return Array.isArray(value) ? (value.filter((t) => t && typeof t === 'object' && typeof t.value === 'string') as Turn[]) : [];
  } catch {
    return [];
  }
}

function pick(db: Db, loader: SampleLoader, keys: string[]): GallerySample[] {
  // Shown in key order, so the page reads like the run.
  keys.sort();
  return keys.map((k) => loader.load(k)).filter((s): s is GallerySample => s !== null);
}

function statusGallery(db: Db, loader: SampleLoader, name: 'kept' | 'dropped', title: string, status: string, limit: number): Gallery {
  const total = (db.prepare('SELECT COUNT(*) AS n FROM samples WHERE status = ?').get(status) as { n: number }).n;
  const keys = (db.prepare(`SELECT key FROM samples WHERE status = ? ORDER BY ${SAMPLE_HASH}(key) LIMIT ?`).all(status, limit) as { key: string }[]).map(
    (r) => r.key,
  );
  return { name, title, total, samples: pick(db, loader, keys) };
}

/**
 * Samples with synthetic captions, those whose synthetic caption was kept first (the ones recaptioning
 * rescued). One pass over the captions grouped by sample (the `(sample_key, idx)` index gives that order).
 */
function recaptionedGallery(db: Db, loader: SampleLoader, limit: number): Gallery {
  const candidates = `
    SELECT c.sample_key AS key, MAX(c.kept IS 1) AS rescued FROM captions c
    WHERE +c.origin = 'synthetic' GROUP BY c.sample_key`;
  const rows = db
    .prepare(
      `SELECT r.key, COUNT(*) OVER () AS total FROM (${candidates}) r JOIN samples s ON s.key = r.key WHERE s.status != 'failed'
       ORDER BY r.rescued DESC, ${SAMPLE_HASH}(r.key) LIMIT ?`,
    )
    .all(Math.max(1, limit)) as { key: string; total: number }[];
  const keys = rows.slice(0, limit).map((r) => r.key);
  return { name: 'recaptioned', title: 'Recaptioned', total: rows[0]?.total ?? 0, samples: pick(db, loader, keys) };
}

function failures(db: Db, examplesPerCode = 3): FailureGroup[] {
  const groups = db
    .prepare(
      `SELECT error_code AS code, error_stage AS stage, COUNT(*) AS n FROM samples WHERE status = 'failed'
       GROUP BY error_code, error_stage ORDER BY n DESC, code LIMIT 50`,
    )
    .all() as { code: string | null; stage: string | null; n: number }[];
  const examples = db.prepare(
    `SELECT key, error_message AS message FROM samples WHERE status = 'failed' AND error_code IS ? AND error_stage IS ?
     ORDER BY ${SAMPLE_HASH}(key) LIMIT ?`,
  );
  return groups.map((g) => ({
    code: g.code ?? '(none)',
    stage: g.stage,
    count: g.n,
    examples: examples.all(g.code, g.stage, examplesPerCode) as { key: string; message: string | null }[],
  }));
}

function instructions(db: Db, loader: SampleLoader, limit: number): InstructionSummary {
  const counts: Record<string, Record<string, number>> = {};
  for (const row of db.prepare('SELECT task, status, COUNT(*) AS n FROM instructions GROUP BY task, status ORDER BY task, status').all() as {
    task: string;
    status: string;
    n: number;
  }[]) {
    (counts[row.task] ??= {})[row.status] = row.n;
  }
  const picked = db
    .prepare(
      `SELECT sample_key AS key, task, variant FROM instructions
       WHERE status = 'ok' AND conversations_json IS NOT NULL
       ORDER BY ${SAMPLE_HASH}(sample_key || '/' || task || '/' || variant) LIMIT ?`,
    )
    .all(limit) as { key: string; task: string; variant: number }[];
  const examples: InstructionSummary['examples'] = [];
  for (const p of picked) {
    const sample = loader.load(p.key);
    const instruction = sample?.instructions.find((i) => i.task === p.task && i.variant === p.variant);
    if (sample && instruction) examples.push({ sample, instruction });
  }
  return { counts, examples };
}

/** Read the report's data from an open run database (read-only is enough). */
export function collectReportData(db: Db, options: ReportDataOptions = {}): ReportData {
  registerSampleHash(db);
  const maxGallery = options.maxGallery ?? 48;
  const bins = options.bins ?? 40;
  const run = latestRun(db);
  const decisions = decisionsInForce(db);
  const histograms = (['itc', 'itm'] as const)
    .map((s) => histogram(db, s, bins, decisions ? cutOf(decisions.policy, s) : null))
    .filter((h): h is ScoreHistogram => h !== null);
  const loader = new SampleLoader(db);
  return {
    stats: runStats(db),
    run,
    decisions,
    histograms,
    sweeps: histograms.map((h) => sweep(db, h)),
    galleries: [
      statusGallery(db, loader, 'kept', 'Kept', 'ok', maxGallery),
      statusGallery(db, loader, 'dropped', 'Dropped', 'dropped', maxGallery),
      recaptionedGallery(db, loader, maxGallery),
    ],
    failures: failures(db),
    instructions: instructions(db, loader, options.maxInstructions ?? 12),
  };
}
