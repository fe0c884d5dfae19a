import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { stringify } from 'yaml';
import { join, resolve } from 'node:path';
import { generateShapes } from '../datasets/shapes/index.js';

export const ROOT = resolve(import.meta.dirname, '../..');
export const CACHE = join(ROOT, 'bench', '.cache');

/** A shapes dataset cached between benchmark runs (generation is not what we measure). */
export async function cachedShapes(count: number, seed = 11): Promise<string> {
  const out = join(CACHE, `shapes-${count}-${seed}`);
  if (!existsSync(join(out, 'ground_truth.jsonl'))) {
    mkdirSync(CACHE, { recursive: true });
    await generateShapes({ out, count, noise: 0.4, seed });
  }
  return out;
}

/** Run a compiled bench script in a fresh node process and parse its one JSON line. */
export function runChild<T>(script: string, args: string[]): T {
  const stdout = execFileSync(process.execPath, [join(ROOT, 'dist', 'bench', script), ...args], { encoding: 'utf8', maxBuffer: 64 << 20 });
  return JSON.parse(stdout.trim().split('\n').at(-1)!) as T;
}

export function round(value: number, digits = 1): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

/**
 * A fresh work folder `CACHE/name` (what an earlier run left is removed) holding `recipe.yaml`: `body`
 * with the run database in that folder. `body` may use the folder (outputs) through the callback.
 */
export function freshRecipe(name: string, body: (work: string) => Record<string, unknown>): { work: string; recipe: string } {
  const work = join(CACHE, name);
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  const recipe = join(work, 'recipe.yaml');
  writeFileSync(recipe, stringify({ run: { db: join(work, 'run.db') }, ...body(work) }));
  return { work, recipe };
}
