import type { Command } from 'commander';
import { writeFileSync, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { stringify } from 'yaml';
import { generateShapes, SPLIT_SEEDS } from '../../../datasets/shapes/index.js';
import { ConfigError } from '../../core/errors.js';
import { buildCommand } from './build.js';

export interface DemoOptions {
  out: string;
  count: string;
  noise: string;
  progress: string;
}

/** The demo recipe, written next to the data so people can read it, edit it and re-run it with `build`. */
export function demoRecipe(): Record<string, unknown> {
  return {
    run: { db: 'run.db', out: '.' },
    sources: [{ type: 'webdataset', name: 'shapes-web', paths: 'data/webdataset/shapes-{000000..999999}.tar' }],
    export: [{ type: 'webdataset', name: 'wds', out: 'wds', maxCount: 200 }],
  };
}

export async function demoCommand(opts: DemoOptions): Promise<number> {
  const out = resolve(opts.out);
  const count = Number(opts.count);
  if (!Number.isInteger(count) || count < 1) throw new ConfigError(`--count: expected a whole number from 1 and up, got "${opts.count}"`);
  const noise = Number(opts.noise);
  if (!(noise >= 0 && noise <= 1)) throw new ConfigError(`--noise: expected a number from 0 to 1, got "${opts.noise}"`);
  mkdirSync(out, { recursive: true });
  process.stderr.write(`generating ${count} shapes scenes (demo split, ${Math.round(noise * 100)}% noisy web captions) in ${join(out, 'data')}\n`);
  const summary = await generateShapes({ out: join(out, 'data'), count, noise, seed: SPLIT_SEEDS.demo });
  const recipe = demoRecipe();
  // The generator writes exactly the shards it needs; point the recipe at them.
  (recipe.sources as Record<string, unknown>[])[0]!.paths = summary.shards.map((p) => p.slice(out.length + 1));
  const recipePath = join(out, 'recipe.yaml');
  writeFileSync(recipePath, stringify(recipe));
  process.stderr.write(`recipe: ${recipePath}\n`);
  const code = await buildCommand(recipePath, { shard: '0/1', progress: opts.progress });
  process.stderr.write(
    `\nrun database: ${join(out, 'run.db')}  (try: vlcurate inspect ${join(out, 'run.db')} stats)\n` +
      `shards: ${join(out, 'wds')}\nground truth: ${summary.groundTruth}\n`,
  );
  return code;
}

export function registerDemo(program: Command, setExit: (code: number) => void): void {
  program
    .command('demo')
    .description('generate the shapes demo split and run the pipeline on it with the bundled models')
    .option('--out <dir>', 'where the data, run database and exports go', 'demo-out')
    .option('--count <n>', 'number of scenes', '1000')
    .option('--noise <f>', 'share of noisy web captions', '0.4')
    .option('--progress <mode>', 'auto | tty | plain | json', 'auto')
    .action(async (opts: DemoOptions) => setExit(await demoCommand(opts)));
}
