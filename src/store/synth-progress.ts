/**
 * What synthesis already has for a recipe's run, across the database of a single process and those of
 * `--shard I/N` processes: answered requests per task and what they cost. `vlcurate estimate` subtracts
 * them, since a resumed run takes their answers from the cache instead of paying again.
 */
import { existsSync, readdirSync } from 'node:fs';
import { basename, dirname, extname, join } from 'node:path';
import { openDatabase } from './database.js';
import { escapeRegExp } from '../core/escape-regexp.js';

export interface SynthProgress {
  /** Run databases read (the recipe's, and `-sIofN` ones beside it). */
  databases: string[];
  /** Per task: instruction samples (sample x variant) that have their final answer recorded. */
  answered: Record<string, number>;
  /** Dollars the cached answers cost. */
  spentUsd: number;
  /** Samples that will never be synthesized: failed or dropped (a duplicate, no caption kept, ...). */
  settledSamples: number;
}

/** The run database at `path` and the sharded ones beside it (`run-s0of4.db`, ...) that exist. */
export function runDatabases(path: string): string[] {
  const folder = dirname(path);
  if (!existsSync(folder)) return [];
  const ext = extname(path);
  const sharded = new RegExp(`^${escapeRegExp(basename(path, ext))}-s\\d+of\\d+${escapeRegExp(ext)}$`);
  const found = readdirSync(folder).filter((name) => name === basename(path) || sharded.test(name));
  return found.sort().map((name) => join(folder, name));
}

export function synthProgress(path: string): SynthProgress {
  const progress: SynthProgress = { databases: runDatabases(path), answered: {}, spentUsd: 0, settledSamples: 0 };
  for (const file of progress.databases) {
    const db = openDatabase(file, { readonly: true });
    try {
      // `ok`, `rejected` (every attempt rejected) and `not_applicable` are final; `failed` ones are asked again on resume.
      const rows = db.prepare(`SELECT task, COUNT(*) AS n FROM instructions WHERE status IN ('ok', 'rejected', 'not_applicable') GROUP BY task`).all() as { task: string; n: number }[];
      for (const { task, n } of rows) progress.answered[task] = (progress.answered[task] ?? 0) + n;
      progress.spentUsd += (db.prepare('SELECT COALESCE(SUM(cost_usd), 0) FROM llm_cache').pluck().get() as number) ?? 0;
      progress.settledSamples += db.prepare(`SELECT COUNT(*) FROM samples WHERE status != 'ok'`).pluck().get() as number;
    } finally {
      db.close();
    }
  }
  return progress;
}

