/**
 * `vlcurate export RUN.db --format webdataset|llava|qwen2vl|qwen25vl --out DIR [...]`: write an export again
 * from a run database, without recomputing anything. Samples, captions (with scores and verdicts), boxes and
 * accepted instruction samples come from the database; image bytes are read back from the references the
 * sources recorded (each tar scanned once) and checked against their recorded sha256.
 *
 * The export is recorded in the database under `--name` (default: the format) like a build's exports, so
 * running the same command again resumes it: samples already exported are skipped, and JSON files are
 * rewritten from the stored records. `--fresh` forgets the export first. Different settings under the same
 * name are refused (use another `--name`, or `--fresh`). `--name` alone continues an export with the
 * settings the database recorded (`export/recorded-export.ts`); after a refilter that brings it to exactly
 * the kept samples (see the export stages).
 *
 * Prints a summary (with `--json`, one JSON object: samples read/exported, image failures, records written,
 * verified, failed and dropped with reasons, token statistics). Exit 0 when everything was exported, 1 when
 * some samples or records failed, 2 for a usage or configuration error, 130 when interrupted.
 */
import { escapeControlChars } from '../../core/control-chars.js';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import type { Command } from 'commander';
import { formatIssues } from '../../config/format-issues.js';
import { ConfigError, describeError } from '../../core/errors.js';
import type { StageEvent } from '../../core/events.js';
import { WHOLE } from '../../core/shard.js';
import type { StageContext } from '../../core/stage.js';
import { createExport, exportSchema, exportTypeNames, type ExportOptions } from '../../export/registry.js';
import { knownExports, recordedExport } from '../../export/recorded-export.js';
import { assertOwnFolder, ownExportFiles } from '../../export/export-folder.js';
import { describeSettings, type ExportStats } from '../../export/export-stats.js';
import type { InstructionExportable } from '../../export/instruction-records.js';
import { takeUntilAborted } from '../../iter/take.js';
import { wantedInstructionsOfStored } from '../../synth/wanted-instructions.js';
import { loadImages } from '../../images/image-ref.js';
import { openDatabase, type Db } from '../../store/database.js';
import { lockRunDatabase } from '../../store/run-lock.js';
import { countExportSamples, readExportSamples } from '../../store/export-reader.js';
import { ExportRecords } from '../../store/export-records.js';
import { RunStore } from '../../store/run-store.js';
import { exportProblems } from '../../store/export-problems.js';
import { EXIT_INTERRUPTED, EXIT_OK, EXIT_SAMPLES_FAILED } from '../exit.js';
import { abortOnSignals } from '../interrupt.js';

export interface ExportCliOptions {
  /** With `out`; both left out, `name` picks an export whose settings the run database records. */
  format?: string;
  out?: string;
  name?: string;
  tokenizer?: string;
  template?: string;
  stage1Template?: string;
  tasks?: string;
  split?: string;
  regionFormat?: string;
  padToSquare?: string;
  legacy?: string;
  minPixels?: string;
  maxPixels?: string;
  qwenImageText?: string;
  maxLength?: string;
  overLength?: string;
  system?: string;
  imagePlaceholderId?: string;
  maxCount?: string;
  maxSize?: string;
  fresh?: boolean;
  json?: boolean;
}

/** The `--json` report. */
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
  /** The export holds no sample, or left most out for one reason (`store/export-problems.ts`): exit 1. */
  problems: string[];
  aborted: boolean;
}

/** Option field -> flag, for error messages. */
const FLAGS: Readonly<Record<string, string>> = {
  name: '--name',
  out: '--out',
  tokenizer: '--tokenizer',
  template: '--template',
  stage1Template: '--stage1-template',
  tasks: '--tasks',
  split: '--split',
  regionFormat: '--region-format',
  padToSquare: '--pad-to-square',
  legacy: '--legacy',
  minPixels: '--min-pixels',
  maxPixels: '--max-pixels',
  qwenImageText: '--qwen-image-text',
  maxLength: '--max-length',
  overLength: '--over-length',
  system: '--system',
  imagePlaceholderId: '--image-placeholder-id',
  maxCount: '--max-count',
  maxSize: '--max-size',
};

function boolean(flag: string, value: string): boolean {
  if (value === 'true') return true;
  if (value === 'false') return false;
  throw new ConfigError(`${flag}: expected true or false, got "${value}"`);
}

function integer(flag: string, value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isInteger(n)) throw new ConfigError(`${flag}: expected an integer, got "${value}"`);
  return n;
}

/** Turn flags into the export's recipe options and validate them with its schema. */
export function exportOptionsFromFlags(opts: ExportCliOptions): ReturnType<typeof exportSchema.parse> {
  if (opts.format === undefined) throw new ConfigError(`--format: expected one of ${exportTypeNames.join(' | ')} with --out (or --name alone), got none`);
  if (opts.out === undefined) throw new ConfigError('--out: expected the output folder with --format (or --name alone), got none');
  if (!exportTypeNames.includes(opts.format)) {
    throw new ConfigError(`--format: expected one of ${exportTypeNames.join(' | ')}, got "${opts.format}"`);
  }
  // The name defaults to the format (not the recipe default `wds`, which a build's export may hold).
  const raw: Record<string, unknown> = { type: opts.format, name: opts.name ?? opts.format, out: resolve(opts.out) };
  if (opts.tokenizer !== undefined) raw.tokenizer = resolve(opts.tokenizer);
  if (opts.template !== undefined) raw.template = opts.template;
  if (opts.stage1Template !== undefined) raw.stage1Template = opts.stage1Template;
  if (opts.tasks !== undefined) raw.tasks = opts.tasks.split(',').map((t) => t.trim()).filter((t) => t.length > 0);
  if (opts.split !== undefined) raw.split = opts.split;
  if (opts.regionFormat !== undefined) raw.regionFormat = opts.regionFormat;
  if (opts.padToSquare !== undefined) raw.padToSquare = boolean('--pad-to-square', opts.padToSquare);
  if (opts.legacy !== undefined) raw.legacy = boolean('--legacy', opts.legacy);
  if (opts.minPixels !== undefined) raw.minPixels = integer('--min-pixels', opts.minPixels);
  if (opts.maxPixels !== undefined) raw.maxPixels = integer('--max-pixels', opts.maxPixels);
  if (opts.qwenImageText !== undefined) raw.qwenImageText = opts.qwenImageText;
  if (opts.maxLength !== undefined) raw.maxLength = integer('--max-length', opts.maxLength);
  if (opts.overLength !== undefined) raw.overLength = opts.overLength;
  if (opts.system !== undefined) raw.system = opts.system;
  if (opts.imagePlaceholderId !== undefined) raw.imagePlaceholderId = integer('--image-placeholder-id', opts.imagePlaceholderId);
  if (opts.maxCount !== undefined) raw.maxCount = integer('--max-count', opts.maxCount);
  if (opts.maxSize !== undefined) raw.maxSize = opts.maxSize;
  const parsed = exportSchema.safeParse(raw);
  if (!parsed.success) {
    const lines = formatIssues(parsed.error, raw).map((line) => {
      const field = /^([A-Za-z0-9]+)/.exec(line)?.[1];
      const flag = field ? FLAGS[field] : undefined;
      return flag ? line.replace(field!, flag) : line;
    });
    throw new ConfigError(`export ${opts.format}: ${lines.join('; ')}`);
  }
  return parsed.data;
}

export interface ExportIo {
  /** Progress and problems (stderr). */
  log: (line: string) => void;
  signal?: AbortSignal;
}

/** Run an export from a run database; returns the exit code and the report. */
export async function runExport(dbPath: string, opts: ExportCliOptions, io: ExportIo): Promise<{ code: number; report: ExportReport }> {
  const recorded = opts.format === undefined && opts.out === undefined;
  if (recorded && opts.name === undefined) {
    throw new ConfigError('export: give --format and --out, or --name NAME alone to continue an export the run database records');
  }
  const flagged = recorded ? null : exportOptionsFromFlags(opts);
  if (!existsSync(dbPath)) throw new ConfigError(`run database "${dbPath}" does not exist`);
  // One writer per run database: a build or another export writing it at the same time would interleave
  // shards (see `store/run-lock.ts`).
  const lock = lockRunDatabase(dbPath);
  let db: ReturnType<typeof openDatabase>;
  try {
    db = openDatabase(dbPath);
  } catch (err) {
    lock.release();
    throw err;
  }
  try {
    const store = new RunStore(db);
    const { options, baseDir } = flagged ? { options: flagged, baseDir: process.cwd() } : continued(db, dbPath, opts, io);
    // Before anything is changed (--fresh included): this folder must not hold another export's files.
    assertOwnFolder({ dir: options.out, exportName: options.name, prefix: options.prefix ?? options.name, store }, { flags: true });
    if (opts.fresh) io.log(startOver(db, store, options));
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
      emit: (event: StageEvent) => {
        if (event.type === 'log') io.log(`${event.level === 'warn' ? 'warning: ' : ''}${event.message}`);
      },
    };
    const imageFailures: Record<string, number> = {};
    let deferred = 0;
    let read = 0;
    let shown = 0;
    let lastLine = performance.now();
    // Samples still lacking instruction samples the run's recipe asks for are held back, as the build does.
    const recipeJson = db.prepare('SELECT recipe_json FROM runs ORDER BY id DESC LIMIT 1').pluck().get() as string | undefined;
    const wanted = wantedInstructionsOfStored(recipeJson);
    const source = loadImages(takeUntilAborted(readExportSamples(dbPath, { wanted }), signal), { signal });
    for await (const sample of stage.run(source, ctx)) {
      read++;
      if (sample.deferred) deferred++;
      if (sample.failure) {
        imageFailures[sample.failure.code] = (imageFailures[sample.failure.code] ?? 0) + 1;
        if (shown++ < 10) io.log(`  ${sample.key}: ${sample.failure.code}: ${sample.failure.message}`);
      }
      if (performance.now() - lastLine > 2000) {
        lastLine = performance.now();
        io.log(`export ${options.name}: ${read}/${total} samples`);
      }
    }
    const exported = (db.prepare('SELECT COUNT(*) AS n FROM exports WHERE export_name = ?').get(options.name) as { n: number }).n;
    const statsPath = join(options.out, 'stats.json');
    let stats: ExportStats | null = null;
    if (existsSync(statsPath)) {
      try {
        const parsed = JSON.parse(readFileSync(statsPath, 'utf8')) as ExportStats;
        if (parsed.export === options.name) stats = parsed;
      } catch (err) {
        io.log(`warning: cannot read ${statsPath}: ${describeError(err)}`);
      }
    }
    const report: ExportReport = {
      export: options.name,
      format: options.type,
      out: options.out,
      samplesRead: read,
      samplesExported: exported,
      imageFailures,
      deferred,
      stats,
      problems: exportProblems(db, [options.name]).map((p) => p.message),
      aborted: signal.aborted,
    };
    const failures = Object.values(imageFailures).reduce((a, b) => a + b, 0) + (stats?.failed ?? 0);
    const code = signal.aborted ? EXIT_INTERRUPTED : failures > 0 || report.problems.length > 0 ? EXIT_SAMPLES_FAILED : EXIT_OK;
    return { code, report };
  } finally {
    db.close();
    lock.release();
  }
}

/** Flags that set an export's options: with `--name` alone the recorded ones are used instead. */
const OPTION_FLAGS = Object.keys(FLAGS).filter((k) => k !== 'name' && k !== 'out') as (keyof ExportCliOptions)[];

/** `--name NAME` alone: the export's recorded settings (`export/recorded-export.ts`). */
function continued(db: Db, dbPath: string, opts: ExportCliOptions, io: ExportIo): { options: ExportOptions; baseDir: string } {
  const name = opts.name!;
  const given = OPTION_FLAGS.filter((k) => opts[k] !== undefined).map((k) => FLAGS[k]);
  if (given.length > 0) {
    throw new ConfigError(`${given.join(', ')}: with --name alone export "${name}" continues with its recorded settings; give --format and --out to set options`);
  }
  const found = recordedExport(db, name);
  if (!found) {
    const known = knownExports(db);
    throw new ConfigError(
      `--name: run database "${dbPath}" records no settings of an export "${name}" (it knows ${known.length > 0 ? known.map((k) => `"${k}"`).join(', ') : 'none'}); give --format and --out`,
    );
  }
  io.log(`export ${name}: continuing with the settings from ${found.from} (${found.options.type} -> ${found.options.out})`);
  return found;
}

/**
 * `--fresh`: forget the export in the database, then remove the files it recorded in its folder (its shards;
 * a JSON export's images/), and say so. (Left to recovery, the shards would be reported as "unrecorded
 * files of an interrupted run".) Killed in between, recovery removes the then unrecorded shards.
 */
function startOver(db: Db, store: RunStore, options: { name: string; type: string; out: string; prefix?: string }): string {
  const shards = store.shards(options.name);
  const exported = db.prepare('SELECT COUNT(*) FROM exports WHERE export_name = ?').pluck().get(options.name) as number;
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

function describeReport(report: ExportReport): string[] {
  const lines = [`export ${report.export} (${report.format}) -> ${report.out}: ${report.samplesRead} samples read, ${report.samplesExported} exported`];
  const failures = Object.entries(report.imageFailures);
  if (failures.length > 0) lines.push(`  images not read back: ${failures.map(([c, n]) => `${c} ${n}`).join(', ')}`);
  if (report.deferred > 0) lines.push(`  ${report.deferred} samples held back: their synthesis is unfinished (resume the build first)`);
  const s = report.stats;
  if (s) {
    lines.push(`  records: ${s.records} written${s.verified !== null ? `, ${s.verified} verified` : ''}, ${s.failed} failed, ${s.dropped} dropped, ${s.truncated} truncated`);
    const reasons = Object.entries(s.reasons);
    if (reasons.length > 0) lines.push(`  reasons: ${reasons.map(([c, n]) => `${c} ${n}`).join(', ')}`);
    if (s.tokens) {
      const t = s.tokens;
      lines.push(`  tokens: min ${t.min}, p50 ${t.p50}, p90 ${t.p90}, p99 ${t.p99}, max ${t.max}${t.maxLength !== null ? `, ${t.overMaxLength} over ${t.maxLength}` : ''}`);
    }
    const settings = describeSettings(s);
    if (settings.length > 0) lines.push(`  trainer must match: ${settings.join(', ')}`);
  }
  for (const problem of report.problems) lines.push(problem);
  if (report.aborted) lines.push('  interrupted: run the same command again to finish');
  return lines;
}

export function registerExport(program: Command, setExit: (code: number) => void): void {
  program
    .command('export')
    .description('write an export again from a run database (WebDataset, LLaVA or Qwen JSON), without recomputing anything')
    .argument('<db>', 'run database')
    .option('--format <format>', `${exportTypeNames.join(' | ')} (with --out; leave both out to continue --name NAME with its recorded settings)`)
    .option('--out <dir>', 'output folder')
    .option('--name <name>', 'export name in the run database (default: the format); running again resumes it, and --name alone continues it with its recorded settings (e.g. after refilter)')
    .option('--tokenizer <dir>', 'tokenizer folder (tokenizer.json, or vocab.json + merges.txt), or a tokenizer_config file in one')
    .option('--template <name>', 'plain | vicuna_v1 | qwen2_vl | chat_template | a .jinja file')
    .option('--stage1-template <name>', 'template for stage-1 (caption) records')
    .option('--tasks <list>', 'comma-separated: imported,conversation,detail,reasoning,grounding,referring,stage1')
    .option('--split <mode>', 'JSON: mixed (one file + stage1) | task (one file per task)')
    .option('--region-format <format>', 'llava | qwen2vl | qwenvl | qwen25vl')
    .option('--pad-to-square <bool>', 'llava boxes: true (default) fractions of the image padded to a square, as LLaVA-1.5 trains (image_aspect_ratio pad); false: of the image itself')
    .option('--legacy <bool>', "Llama tokenizers: transformers' legacy flag; must equal the trainer's (default: tokenizer_config.json, else true)")
    .option('--min-pixels <n>', "Qwen: smart_resize's min_pixels; must equal the trainer's (default: preprocessor_config.json, else 3136)")
    .option('--max-pixels <n>', "Qwen: smart_resize's max_pixels; must equal the trainer's (default: preprocessor_config.json, else 1003520)")
    .option('--qwen-image-text <style>', "Qwen: stripped (default; user text right after <|vision_end|>, as Qwen's finetune code) | verbatim (older string style)")
    .option('--max-length <n>', 'longest sequence in tokens, visual tokens included')
    .option('--over-length <mode>', 'drop | truncate')
    .option('--system <text>', 'system message for the template')
    .option('--image-placeholder-id <id>', 'id of <image> in LLaVA templates (default -200)')
    .option('--max-count <n>', 'WebDataset: samples per shard')
    .option('--max-size <size>', 'WebDataset: bytes per shard (e.g. 1GB)')
    .option('--fresh', 'forget this export in the database first and write it from scratch')
    .option('--json', 'print the report as JSON')
    .action(async (dbPath: string, opts: ExportCliOptions) => {
      const controller = new AbortController();
      const release = abortOnSignals(controller);
      try {
        const { code, report } = await runExport(dbPath, opts, { log: (line) => process.stderr.write(`${escapeControlChars(line)}\n`), signal: controller.signal });
        if (opts.json) process.stdout.write(`${escapeControlChars(JSON.stringify(report))}\n`);
        else for (const line of describeReport(report)) process.stdout.write(`${escapeControlChars(line)}\n`);
        setExit(code);
      } finally {
        release();
      }
    });
}
