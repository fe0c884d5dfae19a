import type { Command } from 'commander';
import { escapeControlChars } from '../../core/control-chars.js';
import { MergeRefusedError, mergeParts, type MergeResult, type PartResult } from '../../run/merge-parts.js';
import { EXIT_OK, EXIT_SAMPLES_FAILED } from '../exit.js';

interface MergeFlags {
  out: string;
  force?: boolean;
  allowUnfinished?: boolean;
  json?: boolean;
}

function describePart(part: PartResult): string {
  const what =
    part.counts === null
      ? part.action === 'repeated'
        ? 'given twice'
        : 'unchanged since merged'
      : `${part.action}: ${part.counts.samples} samples, ${part.counts.instructions} instruction samples, ${part.counts.llmAnswers} LLM answers` +
        (part.counts.sameSamples > 0 ? ` (${part.counts.sameSamples} samples the merged database held already, the same)` : '');
  return [`part ${part.shard} ${part.path}: ${what}`, ...part.notes.map((n) => `  ${n}`)].join('\n');
}

function describe(result: MergeResult): string {
  const samples = Object.entries(result.samples)
    .map(([status, n]) => `${n} ${status}`)
    .join(', ');
  const total = Object.values(result.samples).reduce((a, b) => a + b, 0);
  const lines = result.parts.map(describePart);
  lines.push(`${result.out}: ${result.merged.length} part(s), ${total} samples${samples ? ` (${samples})` : ''}`);
  if (result.missingShards.length > 0) lines.push(`not merged yet: shard(s) ${result.missingShards.join(', ')}`);
  const copies = result.crossPartDuplicates;
  if (copies && copies.total > 0) {
    lines.push(
      `${copies.total} image(s) are held by samples of different parts (decode.dedup works within a part), e.g. ` +
        `${copies.examples.map((keys) => keys.join(' = ')).join('; ')}; all are kept`,
    );
  }
  return `${lines.join('\n')}\n`;
}

export function registerMerge(program: Command, setExit: (code: number) => void): void {
  program
    .command('merge')
    .description('combine the part run databases of a --shard I/N build into one (parts are only read)')
    .requiredOption('-o, --out <db>', 'the merged database (new, or one an earlier merge wrote: parts are added to it)')
    .argument('<parts...>', 'part run databases (run-s0of4.db ...)')
    .option('--force', 'merge parts whose recipes differ in what decides samples')
    .option('--allow-unfinished', 'merge parts whose latest run did not finish (merged again once finished, they replace that)')
    .option('--json', 'machine-readable output')
    .action((parts: string[], flags: MergeFlags) => {
      let result: MergeResult;
      try {
        result = mergeParts({ out: flags.out, parts, force: flags.force ?? false, allowUnfinished: flags.allowUnfinished ?? false });
      } catch (err) {
        if (!(err instanceof MergeRefusedError)) throw err;
        process.stderr.write(`vlcurate: ${escapeControlChars(err.message)}\n`);
        setExit(EXIT_SAMPLES_FAILED);
        return;
      }
      process.stdout.write(flags.json ? `${JSON.stringify(result, null, 2)}\n` : describe(result));
      setExit(EXIT_OK);
    });
}
