/** `vlcurate report`: read a run database, make the thumbnails, write one self-contained HTML file. */
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { openDatabase } from '../store/database.js';
import { latestRun } from '../store/run-history.js';
import { storageOfStored } from '../storage/storage-settings.js';
import { collectReportData, type ReportDataOptions } from './report-data.js';
import { renderReport } from './render-report.js';
import { makeThumbnails, type ThumbnailOptions, type ThumbnailRequest } from './thumbnails.js';

export interface ReportOptions extends ReportDataOptions {
  /** Thumbnail size and quality. */
  thumbnails?: ThumbnailOptions;
  /** Fixed "generated at" text (tests, reproducible reports). Default: now. */
  generatedAt?: string;
}

export interface ReportResult {
  path: string;
  bytes: number;
  samples: number;
  thumbnails: { made: number; failed: number; bytes: number };
  seconds: { data: number; thumbnails: number; total: number };
}

/** Write the report of `dbPath` to `outPath` (written whole: a temporary file renamed into place). */
export async function buildReport(dbPath: string, outPath: string, options: ReportOptions = {}): Promise<ReportResult> {
  const started = performance.now();
  const db = openDatabase(dbPath, { readonly: true });
  let data;
  let storage;
  try {
    data = collectReportData(db, options);
    // Thumbnails read s3:// images the way the build did (the recipe's `storage` section).
    storage = storageOfStored(latestRun(db)?.recipeJson);
  } finally {
    db.close();
  }
  const dataDone = performance.now();
  const requests: ThumbnailRequest[] = [
    ...data.galleries.flatMap((g) => g.samples),
    ...data.instructions.examples.map((e) => e.sample),
  ].map((s) => ({ key: s.key, imageRef: s.imageRef, sha256: s.sha256 }));
  const thumbnails = await makeThumbnails(requests, options.thumbnails, storage);
  const thumbsDone = performance.now();
  const text = renderReport({
    data,
    thumbnails,
    dbPath: resolve(dbPath),
    generatedAt: options.generatedAt ?? new Date().toISOString(),
  });
  const out = resolve(outPath);
  mkdirSync(dirname(out), { recursive: true });
  const tmp = `${out}.tmp`;
  writeFileSync(tmp, text);
  renameSync(tmp, out);
  const thumbs = [...thumbnails.values()];
  return {
    path: out,
    bytes: Buffer.byteLength(text),
    samples: data.stats.samples.total,
    thumbnails: {
      made: thumbs.filter((t) => t.ok).length,
      failed: thumbs.filter((t) => !t.ok).length,
      bytes: thumbs.reduce((sum, t) => sum + (t.ok ? t.bytes : 0), 0),
    },
    seconds: {
      data: (dataDone - started) / 1000,
      thumbnails: (thumbsDone - dataDone) / 1000,
      total: (performance.now() - started) / 1000,
    },
  };
}
