import type { Command } from 'commander';
import { ConfigError } from '../../core/errors.js';
import { buildReport } from '../../report/build-report.js';
import { fmtBytes } from '../../report/html.js';

export interface ReportCliOptions {
  out: string;
  maxGallery: string;
  thumbSize: string;
  json?: boolean;
}

function wholeNumber(flag: string, value: string, min: number, max: number): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < min || n > max) throw new ConfigError(`${flag}: expected a whole number from ${min} to ${max}, got "${value}"`);
  return n;
}

export async function reportCommand(dbPath: string, opts: ReportCliOptions): Promise<void> {
  const maxGallery = wholeNumber('--max-gallery', opts.maxGallery, 0, 10_000);
  const size = wholeNumber('--thumb-size', opts.thumbSize, 16, 2048);
  const result = await buildReport(dbPath, opts.out, { maxGallery, thumbnails: { size } });
  if (opts.json) {
    process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
    return;
  }
  const failed = result.thumbnails.failed ? `, ${result.thumbnails.failed} images unavailable` : '';
  process.stderr.write(
    `report: ${result.path} (${fmtBytes(result.bytes)}; ${result.samples.toLocaleString('en-US')} samples, ${result.thumbnails.made} thumbnails${failed}; ${result.seconds.total.toFixed(1)}s)\n`,
  );
}

/** `vlcurate report RUN.db -o report.html`: one self-contained HTML file (no network). */
export function registerReport(program: Command): void {
  program
    .command('report')
    .description('write a self-contained HTML report: summary, score histograms, threshold sweep, galleries with thumbnails and boxes')
    .argument('<db>', 'run database')
    .option('-o, --out <file>', 'HTML file to write', 'report.html')
    .option('--max-gallery <n>', 'samples per gallery (kept, dropped, recaptioned), sampled by key hash', '48')
    .option('--thumb-size <px>', 'longest side of the thumbnails', '256')
    .option('--json', 'print what was written as JSON')
    .action((db: string, opts: ReportCliOptions) => reportCommand(db, opts));
}
