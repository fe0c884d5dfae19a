import { z } from 'zod';
import { ConfigError } from '../core/errors.js';
import type { Stage } from '../core/stage.js';
import type { ExportContext } from './export-type.js';
import type { ExportableSample } from './webdataset-sample.js';
import { webdatasetExport } from './webdataset-export.js';
import { JSON_EXPORT_DEFAULTS, llavaExport, qwen25vlExport, qwen2vlExport } from './json-export.js';
import { resolveConversationOptions } from './conversation-options.js';
import { ALL_TASKS } from './instruction-records.js';
import { assertOwnFolder } from './export-folder.js';
import type { ExportLedger } from '../store/stage-ports.js';
import { resolve } from 'node:path';
import { isRemote } from '../storage/location.js';

/**
 * Export formats by recipe `type`. Adding a format is one entry here: its `ExportType` (schema + factory);
 * the recipe schema and the dispatch below follow from this list.
 */
const EXPORT_TYPES = [webdatasetExport, llavaExport, qwen2vlExport, qwen25vlExport] as const;

/** The schemas of a tuple of export types, as a tuple (what `z.discriminatedUnion` wants). */
type SchemasOf<Types extends readonly unknown[]> = { -readonly [K in keyof Types]: Types[K] extends { schema: infer S } ? S : never };
type ExportSchemas = SchemasOf<typeof EXPORT_TYPES>;

/** Recipe schema of one `export:` entry, discriminated on `type`. */
export const exportSchema = z.discriminatedUnion(
  'type',
  EXPORT_TYPES.map((t) => t.schema) as unknown as ExportSchemas,
);

export type ExportOptions = z.output<typeof exportSchema>;

/** Export type names, for help texts and error messages. */
export const exportTypeNames: readonly string[] = EXPORT_TYPES.map((t) => t.type);

/**
 * Load what an export needs before any sample is read (its tokenizer, its templates), so a wrong
 * `template` or `tokenizer` stops the build at once rather than after the first batch. Loads are cached,
 * so the export's own start costs nothing more. With the store, also refuse an `out` folder that holds
 * another export's files (`export-folder.ts`).
 */
export async function checkExport(options: ExportOptions, baseDir: string, store?: ExportLedger): Promise<void> {
  // An object-storage prefix is checked when the export starts (`remote-shards.ts`, `json-export-output.ts`).
  if (store && !isRemote(options.out)) assertOwnFolder({ dir: resolve(baseDir, options.out), exportName: options.name, prefix: options.prefix ?? options.name, store }, { flags: false });
  const defaults = options.type === 'webdataset' ? { tasks: ALL_TASKS, regionFormat: 'llava' as const, template: null, stage1Template: null } : JSON_EXPORT_DEFAULTS[options.type];
  await resolveConversationOptions(options, defaults, baseDir);
}

/** Build the stage for one parsed `export:` entry. */
export function createExport<T extends ExportableSample = ExportableSample>(
  options: ExportOptions,
  ctx: ExportContext,
): Stage<T, T> {
  const entry = EXPORT_TYPES.find((t) => t.type === options.type);
  if (!entry) {
    throw new ConfigError(
      `export: Expected \`type\` to be one of ${exportTypeNames.join(', ')}, got ${JSON.stringify((options as { type: unknown }).type)}`,
    );
  }
  // The entry was found by the same `type` the options were parsed with, so its factory takes these options.
  const create = entry.create as <U extends ExportableSample>(options: ExportOptions, ctx: ExportContext) => Stage<U, U>;
  return create<T>(options, ctx);
}
