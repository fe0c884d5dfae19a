import { basename, join, resolve } from 'node:path';
import type { Command } from 'commander';
import { fetchToFile } from '../../storage/fetch-to-file.js';
import { isRemote } from '../../storage/location.js';
import { ConfigError } from '../../core/errors.js';
import { StorageError } from '../../core/object-store.js';
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

/**
 * The parts as local files: an s3:// or https:// part (a part's state snapshot, `run.state`) is downloaded
 * whole to `OUT.parts/` beside the merged database, since SQLite reads local files only; that copy is the
 * part's path in the merged database.
 */
async function localParts(parts: readonly string[], out: string): Promise<string[]> {
  const folder = `${resolve(out)}.parts`;
  const local: string[] = [];
  for (const part of parts) {
    if (!isRemote(part)) {
      local.push(part);
      continue;
    }
    const file = join(folder, basename(new URL(part).pathname));
    const earlier = parts.slice(0, parts.indexOf(part)).find((p) => p !== part && isRemote(p) && basename(new URL(p).pathname) === basename(file));
    if (earlier) throw new ConfigError(`merge: ${part} and ${earlier} would both be downloaded to ${file}; merge them in two runs`);
    try {
      await fetchToFile(part, file, 'merge: <parts>');
    } catch (err) {
      if (!(err instanceof StorageError)) throw err;
      // A part that is not there or not readable is a usage error; a network failure, worth another try.
      if (err.kind === 'missing' || err.kind === 'denied') throw new ConfigError(`merge: ${part}: ${err.message}`, { cause: err });
      throw new MergeRefusedError(`cannot download the part ${part}: ${err.message}`);
    }
    local.push(file);
  }
  return local;
}

export function registerMerge(program: Command, setExit: (code: number) => void): void {
  program
    .command('merge')
    .description('combine the part run databases of a --shard I/N build into one (parts are only read)')
    .requiredOption('-o, --out <db>', 'the merged database (new, or one an earlier merge wrote: parts are added to it)')
    .argument('<parts...>', 'part run databases (run-s0of4.db ..., or s3:// URLs of part state snapshots, downloaded to OUT.parts/ first)')
    .option('--force', 'merge parts whose recipes differ in what decides samples')
    .option('--allow-unfinished', 'merge parts whose latest run did not finish (merged again once finished, they replace that)')
    .option('--json', 'machine-readable output')
    .action(async (given: string[], flags: MergeFlags) => {
      let result: MergeResult;
      try {
        const parts = await localParts(given, flags.out);
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
