/**
 * Everything the HTML report shows, built from what `store/report-queries.ts` reads: counts and histograms
 * are aggregated in SQLite (no per-caption rows come into JavaScript), galleries are deterministic samples
 * by key hash, so the report of a 100k-sample run costs a few full scans and a few hundred row lookups.
 */
import type { Db } from '../store/database.js';
import { runStats, type RunStats } from '../store/queries.js';
import { ReportQueries, type PlacedCaption, type ScoreColumn, type StoredInstruction, type StoredSample } from '../store/report-queries.js';
import type { ResolvedPolicy } from '../filter/policy.js';
import { policyInForce } from '../filter/policy-in-force.js';
import { describeFlags } from '../store/refilter-log.js';


export interface HistogramBin {
  /** Lower edge; the bin holds scores in [lo, lo + width). The last bin includes its upper edge. */
  lo: number;
  kept: number;
  dropped: number;
  /** Captions no filter has decided yet. */
  undecided: number;
}

export interface ScoreHistogram {
  score: ScoreColumn;
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
  score: ScoreColumn;
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

export type GalleryInstruction = StoredInstruction;

export interface GallerySample extends StoredSample {
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

/** A finite score, or null (an infinite score has no place on an axis). */
function num(value: number | null): number | null {
  return typeof value === 'number' && Number.isFinite(value) ? value : null;
}

/** What the latest run's recipe said (resolved recipes are stored with the run). */
function latestRun(q: ReportQueries): RunInfo | null {
  const run = q.latestRun();
  if (!run) return null;
  const list = (value: unknown, field: string) =>
    Array.isArray(value) ? value.map((v) => String((v as Record<string, unknown>)?.[field] ?? (v as Record<string, unknown>)?.type ?? '?')) : [];
  return {
    id: run.id,
    status: run.status,
    startedAt: run.startedAt,
    finishedAt: run.finishedAt,
    shard: run.shard,
    sources: list(run.recipe.sources, 'name'),
    exports: list(run.recipe.export, 'name'),
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
export function cutOf(policy: ResolvedPolicy, score: ScoreColumn): number | null {
  const cut = score === 'itc' ? (policy.policy === 'itm' ? null : policy.itcThreshold) : policy.policy === 'itc' ? null : policy.itmThreshold;
  // An infinite cut (a percentile over a run without scores) keeps nothing and has no place on an axis.
  return cut !== null && Number.isFinite(cut) ? cut : null;
}

/** A round number of width `step` below `x` / above `x`. */
const floorTo = (x: number, step: number) => Math.floor(x / step + 1e-9) * step;
const ceilTo = (x: number, step: number) => Math.ceil(x / step - 1e-9) * step;

function histogram(q: ReportQueries, score: ScoreColumn, bins: number, threshold: number | null): ScoreHistogram | null {
  const range = q.scoreRange(score);
  if (!range) return null;
  // ITM is a probability: always [0, 1]. ITC (a cosine) spans whatever the model gives: round the range out.
  let lo = score === 'itm' ? Math.min(0, range.lo) : floorTo(range.lo, 0.05);
  let hi = score === 'itm' ? Math.max(1, range.hi) : ceilTo(range.hi, 0.05);
  if (threshold !== null) {
    lo = Math.min(lo, threshold);
    hi = Math.max(hi, threshold);
  }
  if (hi <= lo) hi = lo + 1;
  const width = (hi - lo) / bins;
  const out: HistogramBin[] = Array.from({ length: bins }, (_, i) => ({ lo: lo + i * width, kept: 0, dropped: 0, undecided: 0 }));
  for (const row of q.scoreBins(score, lo, width, bins)) {
    const bin = out[row.bin];
    if (!bin) continue;
    bin.kept = row.kept;
    bin.dropped = row.dropped;
    bin.undecided = row.undecided;
  }
  return { score, lo, hi, width, bins: out, count: range.count, threshold };
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

function sweep(q: ReportQueries, h: ScoreHistogram): ScoreSweep {
  const thresholds = sweepThresholds(h);
  const captions = q.captionsAtLeast(h.score, thresholds);
  const images = q.imagesAtLeast(h.score, thresholds);
  return {
    score: h.score,
    captions: captions.total,
    images: images.total,
    rows: thresholds.map((threshold, i) => ({
      threshold,
      captionsKept: captions.atLeast[i]!,
      imagesKept: images.atLeast[i]!,
      current: threshold === h.threshold,
    })),
  };
}

function galleryCaption(c: PlacedCaption): GalleryCaption {
  return {
    idx: c.idx,
    origin: c.origin,
    text: c.text,
    issue: c.issue,
    usable: c.usable,
    model: c.model,
    itc: num(c.itc),
    itm: num(c.itm),
    kept: c.kept,
    reason: c.reason,
  };
}

/** Gallery samples by key, each read once however many galleries show it. */
class SampleLoader {
  private readonly cache = new Map<string, GallerySample>();

  constructor(private readonly q: ReportQueries) {}

  load(key: string): GallerySample | null {
    const cached = this.cache.get(key);
    if (cached) return cached;
    const stored = this.q.sample(key);
    if (!stored) return null;
    const sample: GallerySample = {
      ...stored,
      captions: this.q.captions(key).map(galleryCaption),
      boxes: this.q.boxes(key).map((b) => ({ label: b.label, box: b.box })),
      instructions: this.q.instructions(key),
    };
    this.cache.set(key, sample);
    return sample;
  }
}

function pick(loader: SampleLoader, keys: string[]): GallerySample[] {
  // Shown in key order, so the page reads like the run.
  keys.sort();
  return keys.map((k) => loader.load(k)).filter((s): s is GallerySample => s !== null);
}

function statusGallery(q: ReportQueries, loader: SampleLoader, name: 'kept' | 'dropped', title: string, status: string, limit: number): Gallery {
  return { name, title, total: q.countWithStatus(status), samples: pick(loader, q.keysWithStatus(status, limit)) };
}

/** Samples with synthetic captions, those whose synthetic caption was kept first (the ones recaptioning rescued). */
function recaptionedGallery(q: ReportQueries, loader: SampleLoader, limit: number): Gallery {
  const { keys, total } = q.recaptioned(limit);
  return { name: 'recaptioned', title: 'Recaptioned', total, samples: pick(loader, keys) };
}

function failures(q: ReportQueries, examplesPerCode = 3): FailureGroup[] {
  return q.failureCounts(50).map((g) => ({
    code: g.code ?? '(none)',
    stage: g.stage,
    count: g.count,
    examples: q.failureExamples(g.code, g.stage, examplesPerCode),
  }));
}

function instructions(q: ReportQueries, loader: SampleLoader, counts: Record<string, Record<string, number>>, limit: number): InstructionSummary {
  const examples: InstructionSummary['examples'] = [];
  for (const p of q.instructionPicks(limit)) {
    const sample = loader.load(p.key);
    const instruction = sample?.instructions.find((i) => i.task === p.task && i.variant === p.variant);
    if (sample && instruction) examples.push({ sample, instruction });
  }
  return { counts, examples };
}

/** Read the report's data from an open run database (read-only is enough). */
export function collectReportData(db: Db, options: ReportDataOptions = {}): ReportData {
  const q = new ReportQueries(db);
  const maxGallery = options.maxGallery ?? 48;
  const bins = options.bins ?? 40;
  const run = latestRun(q);
  const decisions = decisionsInForce(db);
  const histograms = (['itc', 'itm'] as const)
    .map((s) => histogram(q, s, bins, decisions ? cutOf(decisions.policy, s) : null))
    .filter((h): h is ScoreHistogram => h !== null);
  const loader = new SampleLoader(q);
  const stats = runStats(db);
  return {
    stats,
    run,
    decisions,
    histograms,
    sweeps: histograms.map((h) => sweep(q, h)),
    galleries: [
      statusGallery(q, loader, 'kept', 'Kept', 'ok', maxGallery),
      statusGallery(q, loader, 'dropped', 'Dropped', 'dropped', maxGallery),
      recaptionedGallery(q, loader, maxGallery),
    ],
    failures: failures(q),
    // The same counts as the run's statistics (per task and status).
    instructions: instructions(q, loader, stats.instructions, options.maxInstructions ?? 12),
  };
}
