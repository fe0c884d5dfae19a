import type { Command } from 'commander';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { stringify } from 'yaml';
import { evaluateSelections, generateShapes, readGroundTruth, SPLIT_SEEDS, type SelectionQuality } from '../../../datasets/shapes/index.js';
import { ConfigError } from '../../core/errors.js';
import { packageRoot } from '../../core/package-root.js';
import { openDatabase } from '../../store/database.js';
import { lockRunDatabase } from '../../store/run-lock.js';
import { demoSynth } from '../../synth/demo-synth.js';
import { parseProgressMode } from '../progress/choose.js';
import { renderTable } from '../table.js';
import { buildCommand } from './build.js';

export interface DemoOptions {
  out: string;
  count: string;
  noise: string;
  progress: string;
}

/** The bundled demo models, shipped in the package's `models/` folder. */
export const DEMO_MODELS = join(packageRoot(), 'models');

/** ITC cut for the shapes CLIP (calibrated on the train split; see models/README.md). */
export const DEMO_ITC_THRESHOLD = 0.3;
/**
 * ITM cut for the shapes ITM, stricter than BLIP's 0.5: the captioner's wrong relations are mostly scenes
 * whose objects sit near a diagonal, where the ITM is unsure too. Calibrated on the shapes test split (seed
 * 3, the demo recipe on 1000 images): the smallest of 0.5, 0.6, ..., 0.95 whose kept relation captions are
 * >= 95% right with a margin (0.5: 91.8%, 0.85: 95.0%, 0.9: 95.7%; images covered 98.9% -> 97.8%).
 */
export const DEMO_ITM_THRESHOLD = 0.9;

/**
 * The demo recipe, written next to the data so people can read it, edit it and re-run it with `build`:
 * CapFilt with the bundled models (ITC and ITM filter, nucleus-sampling captioner writing 3 captions per
 * image), template instruction samples (and LLM ones when an endpoint is configured), WebDataset and
 * LLaVA exports.
 */
export function demoRecipe(shards: string[], synth: Record<string, unknown>): Record<string, unknown> {
  return {
    run: { db: 'run.db', out: '.' },
    sources: [{ type: 'webdataset', name: 'shapes-web', paths: shards }],
    filter: {
      itc: { model: join(DEMO_MODELS, 'shapes-clip'), threshold: DEMO_ITC_THRESHOLD },
      itm: { model: join(DEMO_MODELS, 'shapes-itm'), threshold: DEMO_ITM_THRESHOLD },
      policy: 'both',
    },
    captioner: {
      type: 'onnx',
      model: join(DEMO_MODELS, 'shapes-captioner'),
      samples: 3,
      strategy: 'nucleus',
      topP: 0.9,
      repetitionPenalty: 1.1,
      // Shapes captions are 3-20 tokens; BLIP's 10/30 are for web captions.
      minLength: 3,
      maxLength: 24,
      seed: 0,
    },
    synth,
    export: [
      { type: 'webdataset', name: 'wds', out: 'wds', maxCount: 200 },
      { type: 'llava', name: 'llava', out: 'llava' },
    ],
  };
}

/** The three selections the demo compares, all measured on one run's stored captions and scores. */
export function demoSelections(itcThreshold: number) {
  return {
    'web captions only': (c: { origin: string }) => c.origin === 'web',
    'ITC filter only': (c: { origin: string; itc: number | null }) => c.origin === 'web' && c.itc !== null && c.itc >= itcThreshold,
    'full CapFilt': (c: { kept: boolean | null }) => c.kept === true,
  };
}

const pct = (x: number) => `${(100 * x).toFixed(1)}%`;

export function formatQualityTable(rows: SelectionQuality[]): string {
  const kinds = ['mismatch', 'swap', 'relation', 'boilerplate', 'empty'];
  return renderTable(
    rows.map((r) => ({
      selection: r.name,
      'kept pairs correct': pct(r.precision),
      'images with a correct caption': pct(r.coverage),
      'relations correct': r.keptWithRelation ? `${pct(r.relationPrecision)} of ${r.keptWithRelation}` : '-',
      ...Object.fromEntries(kinds.map((k) => [`${k} removed`, r.noiseRemoved[k] === undefined ? '-' : pct(r.noiseRemoved[k]!)])),
      'clean web removed': pct(r.cleanRemoved),
    })),
  );
}

/** What the demo made under its folder, removed when it starts over. */
const DEMO_OUTPUTS = ['data', 'run.db', 'run.db-wal', 'run.db-shm', 'wds', 'llava', 'recipe.yaml', 'capfilt-quality.json', 'downloads'];

/**
 * The generator gives a key other scenes for another `--count` or `--noise`, so a run database made with
 * other settings would be resumed against the wrong data (and the quality table measured against the
 * wrong ground truth): then the demo starts over. The settings are kept in `demo.json`.
 */
function startOverIfChanged(out: string, settings: { count: number; noise: number; seed: number }): void {
  const stamp = join(out, 'demo.json');
  const wanted = JSON.stringify(settings);
  const before = existsSync(stamp) ? readFileSync(stamp, 'utf8').trim() : null;
  if (before !== wanted && (before !== null || existsSync(join(out, 'run.db')))) {
    process.stderr.write(`${out} holds a demo made with other settings (${before ?? 'unknown'}); starting over\n`);
    for (const name of DEMO_OUTPUTS) rmSync(join(out, name), { recursive: true, force: true });
  }
  writeFileSync(stamp, `${wanted}\n`);
}

export async function demoCommand(opts: DemoOptions): Promise<number> {
  const out = resolve(opts.out);
  const count = Number(opts.count);
  if (!Number.isInteger(count) || count < 1) throw new ConfigError(`--count: expected a whole number from 1 and up, got "${opts.count}"`);
  const noise = Number(opts.noise);
  if (!(noise >= 0 && noise <= 1)) throw new ConfigError(`--noise: expected a number from 0 to 1, got "${opts.noise}"`);
  parseProgressMode(opts.progress);
  for (const name of ['shapes-clip', 'shapes-itm', 'shapes-captioner']) {
    if (!existsSync(join(DEMO_MODELS, name, 'config.json'))) throw new ConfigError(`demo: the bundled model ${join(DEMO_MODELS, name)} is missing`);
  }
  // The demo writes its run database (and may delete it to start over): one demo or build at a time.
  const lock = lockRunDatabase(join(out, 'run.db'));
  try {
    return await runDemo(out, count, noise, opts.progress);
  } finally {
    lock.release();
  }
}

async function runDemo(out: string, count: number, noise: number, progress: string): Promise<number> {
  startOverIfChanged(out, { count, noise, seed: SPLIT_SEEDS.demo });
  process.stderr.write(`generating ${count} shapes scenes (demo split, ${Math.round(noise * 100)}% noisy web captions) in ${join(out, 'data')}\n`);
  const summary = await generateShapes({ out: join(out, 'data'), count, noise, seed: SPLIT_SEEDS.demo });
  const synth = demoSynth(process.env);
  process.stderr.write(`${synth.note}\n`);
  const recipe = demoRecipe(
    summary.shards.map((p) => p.slice(out.length + 1)),
    synth.synth as Record<string, unknown>,
  );
  const recipePath = join(out, 'recipe.yaml');
  writeFileSync(recipePath, stringify(recipe));
  process.stderr.write(`recipe: ${recipePath}\n`);
  const code = await buildCommand(recipePath, { shard: '0/1', progress });

  // Measure against the ground truth, which the pipeline itself never read.
  const db = openDatabase(join(out, 'run.db'), { readonly: true });
  let rows: SelectionQuality[];
  try {
    rows = evaluateSelections(db, readGroundTruth(summary.groundTruth), demoSelections(DEMO_ITC_THRESHOLD));
  } finally {
    db.close();
  }
  writeFileSync(join(out, 'capfilt-quality.json'), `${JSON.stringify(rows, null, 2)}\n`);
  process.stdout.write(`\nCapFilt on the demo split (${count} images, ${Math.round(noise * 100)}% noisy web captions), against the ground truth:\n`);
  process.stdout.write(`${formatQualityTable(rows)}\n`);
  process.stderr.write(
    `\nrun database: ${join(out, 'run.db')}  (try: vlcurate inspect ${join(out, 'run.db')} stats)\n` +
      `shards: ${join(out, 'wds')}\nLLaVA JSON: ${join(out, 'llava')}\nground truth: ${summary.groundTruth}\n`,
  );
  return code;
}

export function registerDemo(program: Command, setExit: (code: number) => void): void {
  program
    .command('demo')
    .description('generate the shapes demo split and run CapFilt, synthesis and exports on it with the bundled models')
    .option('--out <dir>', 'where the data, run database and exports go', 'demo-out')
    .option('--count <n>', 'number of scenes', '1000')
    .option('--noise <f>', 'share of noisy web captions', '0.4')
    .option('--progress <mode>', 'auto | tty | plain | json', 'auto')
    .action(async (opts: DemoOptions) => setExit(await demoCommand(opts)));
}
