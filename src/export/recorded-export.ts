/**
 * An export's settings as the run database recorded them, so `vlcurate export RUN.db --name NAME` (no
 * `--format`, no `--out`) continues that export exactly as it was written, for instance to apply a
 * refilter. Looked up in this order:
 *
 * 1. the latest run whose recipe has an export of that name: its entry as the build used it, with relative
 *    paths resolved against the recipe's folder (stored with the run; for runs from before that, found
 *    from the folder the export's shards or settings were recorded in);
 * 2. the settings a `vlcurate export` of that name recorded (`export_configs`: JSON exports, and WebDataset
 *    exports with conversations), paths absolute;
 * 3. a plain WebDataset export's recorded shards: their folder and file prefix.
 */
import { basename, dirname, isAbsolute, normalize, resolve, sep } from 'node:path';
import type { Db } from '../store/database.js';
import { firstShardPath, lastShardPath, recordedExportNames, recordedSettings } from '../store/export-catalog.js';
import { latestRun, recordedRuns } from '../store/run-history.js';
import { exportSchema, type ExportOptions } from './registry.js';
import { resolveOut } from './export-target.js';

export interface RecordedExport {
  options: ExportOptions;
  /** Folder the options' relative paths resolve against. */
  baseDir: string;
  /** Where the settings came from, for messages. */
  from: string;
}

/** The folder a recorded export wrote to: of its shards, or of its recorded settings. */
function recordedFolder(db: Db, name: string): string | null {
  const shard = lastShardPath(db, name);
  if (shard) return dirname(shard);
  const settings = recordedSettings(db, name);
  const out = settings ? (JSON.parse(settings.settingsJson) as { out?: unknown }).out : undefined;
  return typeof out === 'string' ? out : null;
}

/** The recipe folder that makes `out` resolve to `folder`, when there is one. */
function baseDirFor(out: string, folder: string): string | null {
  if (isAbsolute(out)) return dirname(out);
  const tail = normalize(out).replace(/[/\\]+$/, '');
  const full = normalize(folder);
  if (!full.endsWith(`${sep}${tail}`)) return null;
  const base = full.slice(0, full.length - tail.length - 1) || sep;
  return resolve(base, out) === resolve(folder) ? base : null;
}

function fromRecipes(db: Db, name: string): RecordedExport | null {
  for (const run of recordedRuns(db).reverse()) {
    let stored: { export?: unknown; recipeDir?: unknown };
    try {
      stored = JSON.parse(run.recipeJson) as typeof stored;
    } catch {
      continue;
    }
    const entry = Array.isArray(stored.export) ? (stored.export as { name?: unknown; out?: unknown }[]).find((e) => e?.name === name) : undefined;
    if (!entry || typeof entry.out !== 'string') continue;
    const folder = recordedFolder(db, name);
    const baseDir = typeof stored.recipeDir === 'string' ? stored.recipeDir : folder ? baseDirFor(entry.out, folder) : null;
    if (baseDir === null) return null;
    const parsed = exportSchema.safeParse(entry);
    if (!parsed.success) return null;
    return { options: { ...parsed.data, out: resolveOut(baseDir, parsed.data.out) }, baseDir, from: `the recipe of run ${run.id}` };
  }
  return null;
}

function fromSettings(db: Db, name: string): RecordedExport | null {
  const row = recordedSettings(db, name);
  if (!row) return null;
  const settings = JSON.parse(row.settingsJson) as Record<string, unknown>;
  const out = typeof settings.out === 'string' ? settings.out : recordedFolder(db, name);
  if (!out) return null;
  // Settings keep resolved values (null for an unset tokenizer or template): unset is what the schema wants.
  const raw: Record<string, unknown> = { type: row.type, name, out };
  for (const [key, value] of Object.entries(settings)) if (value !== null && value !== undefined && key !== 'out') raw[key] = value;
  if (row.type === 'webdataset') {
    const prefix = shardPrefixOf(db, name);
    if (prefix && prefix !== name) raw.prefix = prefix;
  }
  const parsed = exportSchema.safeParse(raw);
  return parsed.success ? { options: parsed.data, baseDir: out, from: 'what vlcurate export recorded' } : null;
}

/** The file prefix of a WebDataset export's recorded shards (`PREFIX-000000.tar`). */
function shardPrefixOf(db: Db, name: string): string | null {
  const path = firstShardPath(db, name);
  const match = path ? /^(.+?)-\d{6,}\.tar$/.exec(basename(path)) : null;
  return match ? match[1]! : null;
}

function fromShards(db: Db, name: string): RecordedExport | null {
  const folder = recordedFolder(db, name);
  const prefix = shardPrefixOf(db, name);
  if (!folder || !prefix) return null;
  const parsed = exportSchema.safeParse({ type: 'webdataset', name, out: folder, ...(prefix !== name ? { prefix } : {}) });
  return parsed.success ? { options: parsed.data, baseDir: folder, from: 'its recorded shards' } : null;
}

/** The recorded settings of export `name`, or null when the database knows none. */
export function recordedExport(db: Db, name: string): RecordedExport | null {
  return fromRecipes(db, name) ?? fromSettings(db, name) ?? fromShards(db, name);
}

/** Every export the run database knows of: its recipes' and the ones recorded by `vlcurate export`. */
export function knownExports(db: Db): string[] {
  const names = new Set<string>();
  const latest = latestRun(db);
  if (latest) {
    try {
      const exports = (JSON.parse(latest.recipeJson) as { export?: { name?: unknown }[] }).export;
      for (const e of Array.isArray(exports) ? exports : []) if (typeof e?.name === 'string') names.add(e.name);
    } catch {
      // An unreadable recipe names no export.
    }
  }
  for (const name of recordedExportNames(db)) names.add(name);
  return [...names].sort();
}
