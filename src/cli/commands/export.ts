/**
 * `vlcurate export RUN.db --format webdataset|llava|qwen2vl|qwen25vl --out DIR [...]`: write an export again
 * from a run database, without recomputing anything (`run/run-export.ts` does the work). This file turns the
 * flags into export options (or `--name` alone into "continue the recorded export"), prints the run's events
 * as lines on stderr and its report on stdout.
 *
 * Prints a summary (with `--json`, one JSON object: samples read/exported, image failures, records written,
 * verified, failed and dropped with reasons, token statistics). Exit 0 when everything was exported, 1 when
 * some samples or records failed, 2 for a usage or configuration error, 130 when interrupted.
 */
import { escapeControlChars } from '../../core/control-chars.js';
import { resolve } from 'node:path';
import { resolveOut } from '../../export/export-target.js';
import type { Command } from 'commander';
import { formatIssues } from '../../core/format-issues.js';
import { ConfigError } from '../../core/errors.js';
import { exportSchema, exportTypeNames } from '../../export/registry.js';
import { describeSettings } from '../../export/export-stats.js';
import { exportRun, reportedFailures, type ExportReport, type ExportRunEvent } from '../../run/run-export.js';
import { EXIT_INTERRUPTED, EXIT_OK, EXIT_SAMPLES_FAILED } from '../exit.js';
import { abortOnSignals } from '../interrupt.js';

export type { ExportReport } from '../../run/run-export.js';

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
  const raw: Record<string, unknown> = { type: opts.format, name: opts.name ?? opts.format, out: resolveOut(process.cwd(), opts.out) };
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

/** Image failures shown one by one; the rest only in the counts. */
const SHOWN_IMAGE_FAILURES = 10;
/** Least time between two progress lines. */
const PROGRESS_EVERY_MS = 2000;

/** Lines for an export run's events: its log, the first image failures, progress every two seconds. */
export function exportEventLines(log: (line: string) => void): (event: ExportRunEvent) => void {
  let shown = 0;
  let lastLine = performance.now();
  return (event) => {
    if (event.type === 'log') log(`${event.level === 'warn' ? 'warning: ' : ''}${event.message}`);
    else if (event.type === 'image_failed') {
      if (shown++ < SHOWN_IMAGE_FAILURES) log(`  ${event.key}: ${event.code}: ${event.message}`);
    } else if (performance.now() - lastLine > PROGRESS_EVERY_MS) {
      lastLine = performance.now();
      log(`export ${event.exportName}: ${event.read}/${event.total} samples`);
    }
  };
}

/** Run an export from a run database as the flags say; returns the exit code and the report. */
export async function runExport(dbPath: string, opts: ExportCliOptions, io: ExportIo): Promise<{ code: number; report: ExportReport }> {
  const recorded = opts.format === undefined && opts.out === undefined;
  if (recorded && opts.name === undefined) {
    throw new ConfigError('export: give --format and --out, or --name NAME alone to continue an export the run database records');
  }
  if (recorded) {
    const given = OPTION_FLAGS.filter((k) => opts[k] !== undefined).map((k) => FLAGS[k]);
    if (given.length > 0) {
      throw new ConfigError(`${given.join(', ')}: with --name alone export "${opts.name}" continues with its recorded settings; give --format and --out to set options`);
    }
  }
  const target = recorded ? { name: opts.name! } : { options: exportOptionsFromFlags(opts), baseDir: process.cwd() };
  const report = await exportRun({ dbPath, target, fresh: opts.fresh }, { signal: io.signal, onEvent: exportEventLines(io.log) });
  const code = report.aborted ? EXIT_INTERRUPTED : reportedFailures(report) > 0 || report.problems.length > 0 ? EXIT_SAMPLES_FAILED : EXIT_OK;
  return { code, report };
}

/** Flags that set an export's options: with `--name` alone the recorded ones are used instead. */
const OPTION_FLAGS = Object.keys(FLAGS).filter((k) => k !== 'name' && k !== 'out') as (keyof ExportCliOptions)[];

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
