import type { Command } from 'commander';
import { readFileSync } from 'node:fs';
import { captionIsCorrect } from '../../../datasets/shapes/judge.js';
import { ConfigError } from '../../core/errors.js';
import { calibrate, type LabelledScore } from '../../filter/calibrate.js';
import { openDatabase } from '../../store/database.js';
import { scoredCaptions } from '../../store/scored-captions.js';
import { renderTable } from '../table.js';

interface CalibrateFlags {
  labels: string;
  score: string;
  targetPrecision: string;
  steps: string;
  keyPrefix?: string;
  json?: boolean;
}

type Judge = (key: string, caption: string) => boolean | undefined;

/**
 * Labels from a file: the shapes `ground_truth.jsonl` (a caption matches when it names exactly the
 * scene's objects) or a JSONL of `{key, caption, match}`.
 */
export function loadJudge(path: string): Judge {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`--labels "${path}": cannot read (${(err as NodeJS.ErrnoException).code})`);
  }
  const truth = new Map<string, { objects: { shape: string; color: string; size: string }[] }>();
  const pairs = new Map<string, boolean>();
  text.split('\n').forEach((line, i) => {
    if (line.trim() === '') return;
    let row: Record<string, unknown>;
    try {
      row = JSON.parse(line);
    } catch {
      throw new ConfigError(`--labels "${path}" line ${i + 1}: not JSON`);
    }
    if (typeof row.key !== 'string') throw new ConfigError(`--labels "${path}" line ${i + 1}: expected a string "key", got ${JSON.stringify(row.key)}`);
    if (Array.isArray(row.objects)) truth.set(row.key, row as never);
    else if (typeof row.caption === 'string' && typeof row.match === 'boolean') pairs.set(`${row.key}\0${row.caption}`, row.match);
    else throw new ConfigError(`--labels "${path}" line ${i + 1}: expected shapes ground truth ("objects") or {key, caption, match}`);
  });
  return (key, caption) => {
    const gt = truth.get(key);
    if (gt) return captionIsCorrect(caption, gt);
    return pairs.get(`${key}\0${caption}`);
  };
}

export function registerCalibrate(program: Command): void {
  program
    .command('calibrate')
    .description('precision/recall per threshold against labels, and the threshold for a target precision')
    .argument('<db>', 'run database with scored captions')
    .requiredOption('--labels <file>', 'shapes ground_truth.jsonl, or JSONL of {key, caption, match}')
    .option('--score <name>', 'itc | itm', 'itm')
    .option('--target-precision <p>', 'precision the picked threshold must reach', '0.95')
    .option('--steps <n>', 'rows in the table', '20')
    .option('--key-prefix <p>', "the source's keyPrefix: run keys are the labels' keys with it in front")
    .option('--json', 'machine-readable output')
    .action((dbPath: string, flags: CalibrateFlags) => {
      if (flags.score !== 'itc' && flags.score !== 'itm') throw new ConfigError(`--score: expected itc | itm, got "${flags.score}"`);
      const target = Number(flags.targetPrecision);
      if (!(target > 0 && target <= 1)) throw new ConfigError(`--target-precision: expected a number in (0, 1], got "${flags.targetPrecision}"`);
      const steps = Number(flags.steps);
      if (!Number.isInteger(steps) || steps < 1) throw new ConfigError(`--steps: expected a whole number from 1 up, got "${flags.steps}"`);
      const judge = loadJudge(flags.labels);
      const db = openDatabase(dbPath, { readonly: true });
      const labelled: LabelledScore[] = [];
      let unlabelled = 0;
      try {
        const rows = scoredCaptions(db, flags.score);
        const prefix = flags.keyPrefix ?? '';
        for (const row of rows) {
          if (!row.key.startsWith(prefix)) {
            unlabelled++;
            continue;
          }
          const match = judge(row.key.slice(prefix.length), row.text);
          if (match === undefined) unlabelled++;
          else labelled.push({ score: row.score, match });
        }
      } finally {
        db.close();
      }
      if (labelled.length === 0) {
        throw new ConfigError(
          `--labels "${flags.labels}": no scored caption in ${dbPath} has a label (keys must match; if the source had a keyPrefix, pass it as --key-prefix)`,
        );
      }
      const result = calibrate(labelled, target, steps);
      if (flags.json) {
        process.stdout.write(`${JSON.stringify({ score: flags.score, unlabelled, ...result }, null, 2)}\n`);
        return;
      }
      process.stdout.write(`${result.pairs} labelled captions (${result.positives} correct), ${unlabelled} without a label; score ${flags.score}\n`);
      process.stdout.write(`${renderTable(result.rows as unknown as Record<string, unknown>[])}\n`);
      process.stdout.write(
        result.pick
          ? `threshold for precision >= ${target}: ${flags.score} >= ${result.pick.threshold.toFixed(4)} (precision ${result.pick.precision.toFixed(3)}, recall ${result.pick.recall.toFixed(3)})\n`
          : `no threshold reaches precision ${target}\n`,
      );
    });
}
