import type { Command } from 'commander';
import { runBuild } from '../../run/run-build.js';
import { loadRecipe } from '../../config/recipe.js';
import { resolveRecipeRuntime } from '../../config/recipe-runtime.js';
import { parseShard } from '../../core/shard.js';
import { ConfigError } from '../../core/errors.js';
import type { RunSummary } from '../../core/events.js';
import { EXIT_INTERRUPTED, EXIT_OK, exitCodeOf } from '../exit.js';
import { abortOnSignals } from '../interrupt.js';
import { openReporter, parseProgressMode } from '../progress/choose.js';

export interface BuildCliOptions {
  shard: string;
  progress: string;
  progressInterval?: string;
  maxCost?: string;
  printRecipe?: boolean;
  state?: string;
}

/** Run a recipe with a progress reporter; returns the exit code. */
export async function buildCommand(recipePath: string, opts: BuildCliOptions): Promise<number> {
  const loaded = loadRecipe(recipePath);
  if (opts.printRecipe) {
    // What `auto` resolved to on this machine rides along; the recipe reader ignores it.
    const printed = { ...loaded.recipe, resolvedRuntime: resolveRecipeRuntime(loaded.recipe) };
    process.stdout.write(`${JSON.stringify(printed, null, 2)}\n`);
    return EXIT_OK;
  }
  const shard = parseShard(opts.shard);
  const tickMs = Number(opts.progressInterval ?? 500);
  if (!Number.isInteger(tickMs) || tickMs < 10) {
    throw new ConfigError(`--progress-interval: expected milliseconds, a whole number from 10 up, got "${opts.progressInterval}"`);
  }
  let maxCostUsd: number | null = null;
  if (opts.maxCost !== undefined) {
    maxCostUsd = Number(opts.maxCost);
    if (opts.maxCost.trim() === '' || !Number.isFinite(maxCostUsd) || maxCostUsd < 0) {
      throw new ConfigError(`--max-cost: expected US dollars, a number from 0 up, got "${opts.maxCost}"`);
    }
  }
  const reporter = await openReporter(parseProgressMode(opts.progress));
  const controller = new AbortController();
  const release = abortOnSignals(controller);
  let summary: RunSummary | null = null;
  let aborted = false;
  try {
    for await (const event of runBuild(loaded, { shard, signal: controller.signal, tickMs, maxCostUsd, state: opts.state })) {
      reporter.onEvent(event);
      if (event.type === 'run-end') {
        summary = event.summary;
        aborted = event.aborted;
      }
    }
  } finally {
    reporter.close();
    release();
  }
  if (aborted) return EXIT_INTERRUPTED;
  return exitCodeOf(summary);
}

export function registerBuild(program: Command, setExit: (code: number) => void): void {
  program
    .command('build')
    .description('run a recipe: read sources, decode, record in the run database, export; re-running resumes')
    .argument('<recipe>', 'recipe file (YAML or JSON)')
    .option('--shard <I/N>', 'this process handles part I of N (0-based); N processes together cover every input once', '0/1')
    .option('--progress <mode>', 'auto | tty | plain | json', 'auto')
    .option('--progress-interval <ms>', 'how often progress events are emitted', '500')
    .option('--state <url>', "where this part's state lives (s3://bucket/parts/ or a shared folder): its run database is snapshotted there and restored on a fresh machine; overrides run.state")
    .option('--max-cost <usd>', 'stop starting LLM requests once this many US dollars are spent (resumable)')
    .option('--print-recipe', 'print the resolved recipe with every default filled in (and what runtime `auto` resolved to on this machine), and exit')
    .action(async (recipe: string, opts: BuildCliOptions) => setExit(await buildCommand(recipe, opts)));
}
