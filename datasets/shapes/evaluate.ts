import { readFileSync } from 'node:fs';
import type Database from 'better-sqlite3';
import { CAPTION_COLUMNS_OF_C, captionFromRow, type CaptionRow, type StoredCaption } from '../../src/store/caption-row.js';
import { captionIsCorrect } from './judge.js';
import { relationsAreCorrect } from './relation-judge.js';
import type { GroundTruthRecord } from './generate.js';

type Db = Database.Database;

/** One row of the demo's quality table. */
export interface SelectionQuality {
  name: string;
  /** Images with at least one kept caption. */
  imagesWithCaption: number;
  /** Kept captions, and how many of them describe their image correctly. */
  keptCaptions: number;
  keptCorrect: number;
  /** Share of kept (image, caption) pairs that are correct. */
  precision: number;
  /** Share of all images left with at least one correct kept caption. */
  coverage: number;
  /** Kept captions that state a spatial relation, and how many state every relation correctly (relation-judge.ts). */
  keptWithRelation: number;
  keptRelationCorrect: number;
  /** keptRelationCorrect / keptWithRelation (0 when none state a relation). */
  relationPrecision: number;
  /** Per web-noise kind: share of those noisy web captions that were removed. */
  noiseRemoved: Record<string, number>;
  /** Share of clean web captions that were (wrongly) removed. */
  cleanRemoved: number;
}

/** A stored caption of an image. */
export interface ImageCaption extends StoredCaption {
  key: string;
}

export function readGroundTruth(path: string): Map<string, GroundTruthRecord> {
  const out = new Map<string, GroundTruthRecord>();
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    if (line.trim() === '') continue;
    const record = JSON.parse(line) as GroundTruthRecord;
    out.set(record.key, record);
  }
  return out;
}

/**
 * Measure caption selections of one run against the shapes ground truth. `selections` maps a name to a
 * rule deciding whether a stored caption is kept; the rows come from the run database, the truth from
 * `ground_truth.jsonl` (which the pipeline itself never reads).
 */
export function evaluateSelections(
  db: Db,
  truth: Map<string, GroundTruthRecord>,
  selections: Record<string, (c: ImageCaption) => boolean>,
): SelectionQuality[] {
  const rows = (
    db
      .prepare(
        `SELECT c.sample_key AS key, ${CAPTION_COLUMNS_OF_C} FROM captions c
         JOIN samples s ON s.key = c.sample_key WHERE s.status != 'failed'`,
      )
      .all() as (CaptionRow & { key: string })[]
  ).map((row): ImageCaption => ({ key: row.key, ...captionFromRow(row) }));
  const images = [...truth.keys()];
  return Object.entries(selections).map(([name, keep]) => {
    const kept = new Map<string, number>();
    const correct = new Map<string, number>();
    const noiseSeen: Record<string, number> = {};
    const noiseRemoved: Record<string, number> = {};
    let clean = 0;
    let cleanRemoved = 0;
    let keptCaptions = 0;
    let keptCorrect = 0;
    let keptWithRelation = 0;
    let keptRelationCorrect = 0;
    for (const row of rows) {
      const gt = truth.get(row.key);
      if (!gt) continue;
      const isKept = keep(row);
      if (row.origin === 'web') {
        if (gt.noise) {
          noiseSeen[gt.noise] = (noiseSeen[gt.noise] ?? 0) + 1;
          if (!isKept) noiseRemoved[gt.noise] = (noiseRemoved[gt.noise] ?? 0) + 1;
        } else {
          clean++;
          if (!isKept) cleanRemoved++;
        }
      }
      if (!isKept) continue;
      const ok = captionIsCorrect(row.text, gt);
      keptCaptions++;
      const relations = relationsAreCorrect(row.text, gt);
      if (relations !== null) {
        keptWithRelation++;
        if (relations) keptRelationCorrect++;
      }
      kept.set(row.key, (kept.get(row.key) ?? 0) + 1);
      if (ok) {
        keptCorrect++;
        correct.set(row.key, (correct.get(row.key) ?? 0) + 1);
      }
    }
    return {
      name,
      imagesWithCaption: kept.size,
      keptCaptions,
      keptCorrect,
      precision: keptCaptions ? keptCorrect / keptCaptions : 0,
      coverage: images.length ? images.filter((k) => correct.has(k)).length / images.length : 0,
      keptWithRelation,
      keptRelationCorrect,
      relationPrecision: keptWithRelation ? keptRelationCorrect / keptWithRelation : 0,
      noiseRemoved: Object.fromEntries(Object.entries(noiseSeen).map(([kind, n]) => [kind, (noiseRemoved[kind] ?? 0) / n])),
      cleanRemoved: clean ? cleanRemoved / clean : 0,
    };
  });
}
