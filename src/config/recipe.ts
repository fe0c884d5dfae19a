import { createHash } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { ConfigError } from '../core/errors.js';
import { sourceSchema } from '../sources/registry.js';
import { decodeOptionsSchema } from '../decode/decode-stage.js';
import { exportSchema } from '../export/registry.js';
import { filterOptionsSchema } from '../filter/filter-options.js';
import { synthOptionsSchema } from '../synth/synth-options.js';
import { captionerOptionsSchema } from '../captioner/registry.js';
import { formatIssues } from '../core/format-issues.js';
import { runtimeSchema } from '../core/runtime-settings.js';
import { storageSchema } from '../storage/storage-settings.js';

/**
 * The recipe schema, composed from each stage's own options schema: every option and its default is
 * declared once, next to the code that uses it. `vlcurate build RECIPE --print-recipe` shows the
 * resolved recipe with all defaults filled in.
 */
export const runOptionsSchema = z
  .object({
    /** Run database; relative paths resolve against the recipe's folder. */
    db: z.string().min(1).default('out/run.db'),
    /** Folder for outputs that have no path of their own. */
    out: z.string().min(1).default('out'),
    /** Samples committed to the run database per transaction. */
    commitEvery: z.number().int().min(1).default(64),
    /**
     * Where this part's state lives on shared storage (`s3://bucket/parts/` or a shared folder), so that
     * it can resume on another machine (`run/part-state.ts`); `--state` overrides it. Off when absent.
     */
    state: z.string().min(1).optional(),
    /** How often the run database is snapshotted to `state`: whichever comes first. */
    snapshot: z
      .strictObject({
        seconds: z.number().positive().default(300),
        samples: z.number().int().min(1).default(10_000),
      })
      .optional(),
  })
  .strict();

export const recipeSchema = z
  .object({
    run: runOptionsSchema.default(() => runOptionsSchema.parse({})),
    /**
     * Device, threads and workers of every ONNX model (filter.itc, filter.itm, an onnx captioner), each of
     * which may override it under its own `runtime`; `auto` is resolved by `core/runtime-settings.ts`.
     */
    runtime: runtimeSchema.default(() => runtimeSchema.parse({})),
    /**
     * What `auto` resolved to on the machine that printed the recipe (`--print-recipe` writes it). Ignored
     * when read: `auto` is resolved again on the machine that runs the build.
     */
    resolvedRuntime: z.unknown().optional(),
    /**
     * How to reach S3-compatible storage for s3:// paths (endpoint, region, path style, profile, part size;
     * `storage/storage-settings.ts`). Optional without a default, so recipes without it hash as before.
     */
    storage: storageSchema.optional(),
    sources: z.array(sourceSchema).min(1),
    decode: decodeOptionsSchema.default(() => decodeOptionsSchema.parse({})),
    /** CapFilt filter: score captions with ITC and/or ITM and keep those that pass. Off when absent. */
    filter: filterOptionsSchema.optional(),
    /** CapFilt captioner: K new captions per image, scored by the filter with the web ones. Off when absent. */
    captioner: captionerOptionsSchema.optional(),
    /** Instruction synthesis (LLaVA-style tasks; template tasks need no LLM). Off when absent. */
    synth: synthOptionsSchema.optional(),
    export: z.array(exportSchema).default([]),
  })
  .strict();

export type Recipe = z.infer<typeof recipeSchema>;

export interface LoadedRecipe {
  recipe: Recipe;
  /** Folder relative paths resolve against. */
  baseDir: string;
  /** sha256 of the resolved recipe, stored with each run. */
  hash: string;
  /** The recipe file, absolute, when it was read from one. */
  path?: string;
}

/** Validate a recipe object; every problem is reported at once, each naming field, value and expectation. */
export function parseRecipe(input: unknown, origin: string, baseDir: string): LoadedRecipe {
  const result = recipeSchema.safeParse(input);
  if (!result.success) {
    const lines = formatIssues(result.error, input);
    throw new ConfigError(`${origin}: invalid recipe\n  ${lines.join('\n  ')}`);
  }
  const recipe = result.data;
  delete recipe.resolvedRuntime;
  // A sample's source name says which source owns its key (see `store/key-collision.ts`).
  const sourceNames = new Map<string, number>();
  recipe.sources.forEach((source, i) => {
    // The default name is filled in, so `--print-recipe` and the stored recipe show it.
    const name = (source.name ??= `${source.type}-${i}`);
    const other = sourceNames.get(name);
    if (other !== undefined) {
      throw new ConfigError(`${origin}: sources[${i}].name: source names must be unique, got "${name}", the name of sources[${other}] too`);
    }
    sourceNames.set(name, i);
  });
  const names = new Set<string>();
  const places = new Map<string, string>();
  for (const exp of recipe.export) {
    if (names.has(exp.name)) {
      throw new ConfigError(`${origin}: export names must be unique, got "${exp.name}" twice (set \`name\` on each export)`);
    }
    names.add(exp.name);
    // One folder per export: two in one folder would be read together by a loader globbing it, overwrite
    // each other's manifest.json and, for JSON exports, share images/ (see export/export-folder.ts).
    const place = resolve(baseDir, exp.out);
    const other = places.get(place);
    if (other) {
      throw new ConfigError(`${origin}: exports "${other}" and "${exp.name}" both write into "${exp.out}"; give each export an \`out\` folder of its own`);
    }
    places.set(place, exp.name);
  }
  const hash = createHash('sha256').update(JSON.stringify(recipe)).digest('hex');
  return { recipe, baseDir, hash };
}

/** Most bytes a recipe file may have (a recipe is a page of YAML). */
const MAX_RECIPE_BYTES = 4 * 1024 * 1024;

/** Read a YAML or JSON recipe file (JSON is YAML, so one parser reads both). */
export function loadRecipe(path: string): LoadedRecipe {
  let text: string;
  try {
    // A recipe is a small regular file: a FIFO or a device (`/dev/zero`) would block or never end.
    const info = statSync(path);
    if (info.isDirectory()) throw new ConfigError(`recipe "${path}": it is a folder, expected a YAML or JSON file`);
    if (!info.isFile()) throw new ConfigError(`recipe "${path}": not a regular file, expected a YAML or JSON file`);
    if (info.size > MAX_RECIPE_BYTES) throw new ConfigError(`recipe "${path}": ${info.size} bytes, more than a recipe may have (${MAX_RECIPE_BYTES})`);
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'the file does not exist' : code === 'EACCES' ? 'permission denied' : (code ?? (err as Error).message);
    throw new ConfigError(`recipe "${path}": cannot read (${why})`, { cause: err });
  }
  let input: unknown;
  try {
    input = parseYaml(text);
  } catch (err) {
    throw new ConfigError(`recipe "${path}": not valid YAML or JSON (${(err as Error).message.split('\n')[0]})`);
  }
  if (input === null || typeof input !== 'object' || Array.isArray(input)) {
    throw new ConfigError(`recipe "${path}": expected a mapping with at least \`sources\`, got ${Array.isArray(input) ? 'a list' : JSON.stringify(input)}`);
  }
  return { ...parseRecipe(input, path, dirname(resolve(path))), path: resolve(path) };
}
