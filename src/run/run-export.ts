/**
 * Writing an export again from a run database, without recomputing anything (`vlcurate export`). Samples,
 * captions (with scores and verdicts), boxes and accepted instruction samples come from the database; image
 * bytes are read back from the references the sources recorded (each tar scanned once) and checked against
 * their recorded sha256.
 *
 * The export is recorded in the database under its name like a build's exports, so running it again
 * resumes it: samples already exported are skipped, and JSON files are rewritten from the stored records.
 * `fresh` forgets the export first. Different settings under the same name are refused. Giving only a name
 * continues an export with the settings the database recorded (`export/recorded-export.ts`); after a
 * refilter that brings it to exactly the kept samples (see the export stages).
 *
 * What happens along the way is said as `ExportRunEvent`s to `onEvent` (the CLI turns them into lines);
 * what came of it is the returned `ExportReport`.
 */
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { ConfigError, describeError } from '../core/errors.js';
import { WHOLE } from '../core/shard.js';
import type { StageContext } from '../core/stage.js';
import { createExport, type ExportOptions } from '../export/registry.js';
import { knownExports, recordedExport } from '../export/recorded-export.js';
import { assertNoPartFiles, assertOwnFolder, ownExportFiles, ownFilePatterns } from '../export/export-folder.js';
import { exportTarget, remoteKey, remoteNames, type RemoteTarget } from '../export/export-target.js';
import { DEFAULT_STORAGE } from '../storage/storage-settings.js';
import type { ExportStats } from '../export/export-stats.js';
import type { InstructionExportable } from '../export/instruction-records.js';
import { loadImages } from '../images/image-ref.js';
import { takeUntilAborted } from '../iter/take.js';
import { wantedInstructionsOfStored } from '../synth/wanted-instructions.js';
import { storageOfStored } from '../storage/storage-settings.js';
import { openDatabase, type Db } from '../store/database.js';
import { countExportSamples, readExportSamples } from '../store/export-reader.js';
import { ExportRecords } from '../store/export-records.js';
import { exportProblems } from '../store/export-problems.js';
import { exportedSampleCount } from '../store/queries.js';
import { latestRun } from '../store/run-history.js';
import { lockRunDatabase } from '../store/run-lock.js';
import { RunStore } from '../store/run-store.js';

/** Which export to write: one with these settings, or the one the database recorded under `name`. */
export type ExportRunTarget =
  | { options: ExportOptions; /** Relative paths in `options` resolve against this folder. */ baseDir: string }
  | { name: string };

export interface ExportRunRequest {
  dbPath: string;
  target: ExportRunTarget;
  /** Forget the export in the database first (and remove the files it recorded) and write it from scratch. */
  fresh?: boolean;
}

/** What an export run says along the way. */
export type ExportRunEvent =
  | { type: 'log'; level: 'info' | 'warn'; message: string }
  /** A sample whose image could not be read back. */
  | { type: 'image_failed'; key: string; code: string; message: string }
  /** After each sample read. */
  | { type: 'progress'; exportName: string; read: number; total: number };

/** What an export run came to (`vlcurate export --json`). */
export interface ExportReport {
  export: string;
  format: string;
  out: string;
  /** Samples read from the database (status ok). */
  samplesRead: number;
  /** Samples the export holds (this run and earlier ones). */
  samplesExported: number;
  /** Samples whose image could not be read back, by code. */
  imageFailures: Record<string, number>;
  /** Samples held back because their synthesis is unfinished (a later build resumes it). */
  deferred: number;
  /** Conversation exports: records, verification, token statistics (null for a plain WebDataset export). */
  stats: ExportStats | null;
  /** The export holds no sample, or left most out for one reason (`store/export-problems.ts`). */
  problems: string[];
  aborted: boolean;
}

/** Samples or records that failed: images not read back, and records the export could not write. */
export function reportedFailures(report: ExportReport): number {
  return Object.values(report.imageFailures).reduce((a, b) => a + b, 0) + (report.stats?.failed ?? 0);
}

export async function exportRun(
  request: ExportRunRequest,
  io: { signal?: AbortSignal; onEvent?: (event: ExportRunEvent) => void } = {},
): Promise<ExportReport> {
  const { dbPath } = request;
  const emit = io.onEvent ?? (() => undefined);
  if (!existsSync(dbPath)) throw new ConfigError(`run database "${dbPath}" does not exist`);
  // One writer per run database: a build or another export writing it at the same time would interleave
  // shards (see `store/run-lock.ts`).
  const lock = lockRunDatabase(dbPath);
  let db: Db;
  try {
    db = openDatabase(dbPath);
  } catch (err) {
    lock.release();
    throw err;
  }
  try {
    const store = new RunStore(db);
    const { options, baseDir } = 'options' in request.target ? request.target : recorded(db, dbPath, request.target.name, emit);
    // Before anything is changed (fresh included): this folder must not hold another export's files.
    const target = exportTarget(options.out, baseDir, DEFAULT_STORAGE, '--out');
    const claim = { dir: options.out, exportName: options.name, prefix: options.prefix ?? options.name };
    if (target.kind === 'local') {
      assertOwnFolder({ ...claim, store }, { flags: true });
      // `vlcurate export` writes as a whole run (a merged database, say): never beside the parts' own files.
      assertNoPartFiles(claim);
    } else {
      assertNoPartFiles(claim, [...(await remoteNames(target))]);
    }
    if (request.fresh) emit({ type: 'log', level: 'info', message: target.kind === 'local' ? startOver(db, store, options) : await startOverRemote(db, store, options, target) });
    // Samples an export holds are skipped: continuing one into another folder would write nothing there.
    const elsewhere = store.shards(options.name).find((s) => dirname(s.path) !== options.out);
    if (elsewhere) {
      throw new ConfigError(
        `export "${options.name}" in ${dbPath} was written to ${dirname(elsewhere.path)}, not ${options.out}; ` +
          'give another --name, or --fresh to start it over',
      );
    }
    const signal = io.signal ?? new AbortController().signal;
    const total = countExportSamples(dbPath);
    const stage = createExport<InstructionExportable>(options, { store, baseDir, shard: WHOLE });
    const ctx: StageContext = {
      signal,
      emit: (event) => {
        if (event.type === 'log') emit({ type: 'log', level: event.level === 'warn' ? 'warn' : 'info', message: event.message });
      },
    };
    const imageFailures: Record<string, number> = {};
    let deferred = 0;
    let read = 0;
    // Samples still lacking instruction samples the run's recipe asks for are held back, as the build does.
    const wanted = wantedInstructionsOfStored(latestRun(db)?.recipeJson);
    // Images are read back as the run read them: `s3://` through the recipe's `storage` section.
    const storage = storageOfStored(latestRun(db)?.recipeJson);
    const source = loadImages(takeUntilAborted(readExportSamples(dbPath, { wanted }), signal), { signal, storage });
    for await (const sample of stage.run(source, ctx)) {
      read++;
      const { fate } = sample;
      if (fate.kind === 'deferred') deferred++;
      if (fate.kind === 'failed') {
        imageFailures[fate.code] = (imageFailures[fate.code] ?? 0) + 1;
        emit({ type: 'image_failed', key: sample.key, code: fate.code, message: fate.message });
      }
      emit({ type: 'progress', exportName: options.name, read, total });
    }
    return {
      export: options.name,
      format: options.type,
      out: options.out,
      samplesRead: read,
      samplesExported: exportedSampleCount(db, options.name),
      imageFailures,
      deferred,
      stats: target.kind === 'local' ? readStats(options, emit) : await readRemoteStats(options, target),
      problems: exportProblems(db, [options.name]).map((p) => p.message),
      aborted: signal.aborted,
    };
  } finally {
    db.close();
    lock.release();
  }
}

/** `--fresh` on object storage: forget the export, then delete its objects (shards, JSON parts, images/, manifest, stats). */
async function startOverRemote(db: Db, store: RunStore, options: ExportOptions, target: RemoteTarget): Promise<string> {
  const exported = exportedSampleCount(db, options.name);
  new ExportRecords(db).reset(options.name);
  const { summary, files } = ownFilePatterns(options.prefix ?? options.name, '');
  let removed = 0;
  for await (const object of target.store.list(target.prefix)) {
    const name = object.key.slice(target.prefix.length);
    if (files.test(name) || summary.test(name) || (options.type !== 'webdataset' && name.startsWith('images/'))) {
      await target.store.delete(object.key);
      removed++;
    }
  }
  return `export ${options.name}: --fresh: forgot its ${exported} exported sample(s) and removed ${removed} object(s) from ${target.url}`;
}

/** The export's stats.json on object storage, when it wrote one for this export name. */
async function readRemoteStats(options: ExportOptions, target: RemoteTarget): Promise<ExportStats | null> {
  try {
    const parsed = JSON.parse((await target.store.readBytes(remoteKey(target, 'stats.json'))).toString('utf8')) as ExportStats;
    return parsed.export === options.name ? parsed : null;
  } catch {
    return null;
  }
}

/** The export's stats.json, when it wrote one for this export name. */
function readStats(options: ExportOptions, emit: (event: ExportRunEvent) => void): ExportStats | null {
  const statsPath = join(options.out, 'stats.json');
  if (!existsSync(statsPath)) return null;
  try {
    const parsed = JSON.parse(readFileSync(statsPath, 'utf8')) as ExportStats;
    return parsed.export === options.name ? parsed : null;
  } catch (err) {
    emit({ type: 'log', level: 'warn', message: `cannot read ${statsPath}: ${describeError(err)}` });
    return null;
  }
}

/** A name alone: the export's recorded settings (`export/recorded-export.ts`). */
function recorded(db: Db, dbPath: string, name: string, emit: (event: ExportRunEvent) => void): { options: ExportOptions; baseDir: string } {
  const found = recordedExport(db, name);
  if (!found) {
    const known = knownExports(db);
    throw new ConfigError(
      `--name: run database "${dbPath}" records no settings of an export "${name}" (it knows ${known.length > 0 ? known.map((k) => `"${k}"`).join(', ') : 'none'}); give --format and --out`,
    );
  }
  emit({ type: 'log', level: 'info', message: `export ${name}: continuing with the settings from ${found.from} (${found.options.type} -> ${found.options.out})` });
  return found;
}

/**
 * `fresh`: forget the export in the database, then remove the files it recorded in its folder (its shards;
 * a JSON export's images/), and say so. (Left to recovery, the shards would be reported as "unrecorded
 * files of an interrupted run".) Killed in between, recovery removes the then unrecorded shards.
 */
function startOver(db: Db, store: RunStore, options: { name: string; type: string; out: string; prefix?: string }): string {
  const shards = store.shards(options.name);
  const exported = exportedSampleCount(db, options.name);
  new ExportRecords(db).reset(options.name);
  let removed = 0;
  for (const shard of shards) {
    if (dirname(shard.path) === options.out && existsSync(shard.path)) {
      rmSync(shard.path, { force: true });
      removed++;
    }
  }
  const elsewhere = shards.filter((s) => dirname(s.path) !== options.out).length;
  // The images, parts and manifest a JSON export wrote belong to it: starting over must not leave samples
  // it now leaves out, and the files are written anew from the database at the end.
  if (options.type !== 'webdataset') {
    rmSync(join(options.out, 'images'), { recursive: true, force: true });
    for (const file of ownExportFiles({ dir: options.out, exportName: options.name, prefix: options.prefix ?? options.name }, '')) {
      if (!file.endsWith('.tar')) rmSync(join(options.out, file), { force: true });
    }
  }
  const files = options.type === 'webdataset' ? `${removed} shard file(s)` : 'its images/ folder and JSON files';
  return (
    `export ${options.name}: --fresh: forgot its ${exported} exported sample(s) and removed ${files} from ${options.out}` +
    (elsewhere > 0 ? `; ${elsewhere} shard(s) it wrote to another folder are no longer recorded (remove them by hand)` : '')
  );
}
