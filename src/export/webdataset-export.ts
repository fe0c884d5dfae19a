import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, readdir, rename, rm, stat } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { z } from 'zod';
import type { ShardSpec } from '../core/shard.js';
import type { Stage, StageContext } from '../core/stage.js';
import { batch } from '../iter/batch.js';
import type { RunStore, ShardRecord } from '../store/run-store.js';
import { syncDir, writeFileAtomically } from './durable-fs.js';
import type { ExportContext, ExportType } from './export-type.js';
import { parseSize } from './size.js';
import { exportImage } from './export-image.js';
import { toWebDatasetSample, type ExportableSample } from './webdataset-sample.js';
import { isExportable } from '../core/sample.js';
import { conversationFields } from './conversation-options.js';
import { WebDatasetConversations } from './webdataset-conversations.js';
import { shardFileName, tmpName, WebDatasetWriter, type ShardInfo } from './webdataset-writer.js';
import { escapeRegExp } from '../core/escape-regexp.js';
import { assertOwnFolder } from './export-folder.js';

/**
 * WebDataset export stage with exactly-once output across crashes and re-runs.
 *
 * The protocol, per shard: write `NAME.tar.tmp` completely and fsync it; record the shard and one export row
 * per sample in the store, in one transaction; rename to `NAME.tar`. So the store holds a sample as exported
 * exactly when a complete shard holding it is recorded, and on start the stage makes the folder agree with
 * the store: a recorded shard left as `.tmp` is renamed, anything of this prefix not recorded is deleted
 * (a killed process's partial shard), and numbering continues after the highest recorded shard. Samples the
 * store already holds for this export are skipped, so a re-run writes each sample once in all.
 */

const sizeOption = z.union([z.string(), z.number()]).superRefine((value, ctx) => {
  try {
    parseSize(value, 'maxSize');
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: (err as Error).message });
  }
});

export const webdatasetExportSchema = z.strictObject({
  type: z.literal('webdataset'),
  /** Export name in the run database (`inspect … stats` counts per name). Default `wds`. */
  name: z
    .string()
    .regex(/^[A-Za-z0-9_-]+$/, 'Expected `name` to match [A-Za-z0-9_-]+')
    .default('wds'),
  /** Output folder, relative to the recipe's folder. */
  out: z.string().min(1),
  /** Most samples per shard (webdataset's `maxcount`). Default 10000. */
  maxCount: z.number().int().positive().default(10000),
  /** Most bytes per shard: `1GB`, `500MB`, `64KiB` or a number of bytes. Default `1GB` (10^9 bytes). */
  maxSize: sizeOption.default('1GB'),
  /** Shard file prefix, `{prefix}-000000.tar`. Default: `name`. */
  prefix: z
    .string()
    .regex(/^[A-Za-z0-9_-]+$/, 'Expected `prefix` to match [A-Za-z0-9_-]+')
    .optional(),
  /**
   * Conversations and token-level loss masks (see `webdataset-conversations.ts`): instruction records merged
   * into `key.json`, and with `tokenizer` the `key.input_ids.npy` / `key.labels.npy` members.
   */
  ...conversationFields,
});

export type WebDatasetExportOptions = z.infer<typeof webdatasetExportSchema>;

/** Samples whose exported state is looked up in one query. */
const LOOKUP_BATCH = 256;

/** The file prefix this process writes: the configured prefix, plus `-s{I}of{N}` under `--shard I/N` with N > 1. */
export function shardPrefix(prefix: string, shard: ShardSpec): string {
  return shard.count > 1 ? `${prefix}-s${shard.index}of${shard.count}` : prefix;
}

/** `manifest.json`, or `manifest-s{I}of{N}.json` under `--shard I/N` with N > 1. */
export function manifestName(shard: ShardSpec): string {
  return shard.count > 1 ? `manifest-s${shard.index}of${shard.count}.json` : 'manifest.json';
}

export interface Manifest {
  export: string;
  format: 'webdataset';
  /** Shards in index order; `path` is relative to the manifest's folder. */
  shards: { path: string; count: number; bytes: number; sha256: string }[];
  total: number;
}

export interface RecoveryReport {
  /** Recorded shards found as `.tmp` and renamed to their final names. */
  renamed: string[];
  /** Unrecorded files of this prefix (final or `.tmp`) that were deleted. */
  deleted: string[];
  /** Recorded shards whose file is in neither form (moved or deleted by hand). */
  missing: string[];
  /** Index for the next shard: one after the highest recorded. */
  nextIndex: number;
}


/** Matches this prefix's shard files and captures the index and the `.tmp` suffix. */
function shardPattern(prefix: string): RegExp {
  return new RegExp(`^${escapeRegExp(prefix)}-(\\d{6,})\\.tar(\\.tmp)?$`);
}

/** Recorded shards of this export written under `prefix`, by file index. */
function ownShards(store: RunStore, exportName: string, prefix: string): Map<number, ShardRecord> {
  const pattern = shardPattern(prefix);
  const own = new Map<number, ShardRecord>();
  for (const record of store.shards(exportName)) {
    const match = pattern.exec(basename(record.path));
    if (match && !match[2]) own.set(Number(match[1]), record);
  }
  return own;
}

async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/**
 * Make `dir` agree with the store for one export and prefix: rename recorded shards still named `.tmp`
 * (after checking their size and sha256 against the record), delete every file of this prefix that is not
 * a recorded shard, and find the next free index. Files of other prefixes are never touched.
 */
export async function recoverShards(params: {
  dir: string;
  prefix: string;
  exportName: string;
  store: RunStore;
}): Promise<RecoveryReport> {
  const { dir, prefix, exportName, store } = params;
  const report: RecoveryReport = { renamed: [], deleted: [], missing: [], nextIndex: 0 };
  const own = ownShards(store, exportName, prefix);
  for (const index of own.keys()) report.nextIndex = Math.max(report.nextIndex, index + 1);

  let entries: string[];
  try {
    entries = await readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    entries = [];
  }
  const present = new Set(entries);

  for (const [index, record] of own) {
    const name = shardFileName(prefix, index);
    if (present.has(name)) continue;
    const tmp = tmpName(name);
    if (!present.has(tmp)) {
      report.missing.push(name);
      continue;
    }
    const tmpPath = join(dir, tmp);
    const { size } = await stat(tmpPath);
    const sha256 = size === record.byteLength ? await sha256File(tmpPath) : null;
    if (sha256 !== record.sha256) {
      throw new Error(
        `export ${exportName}: ${tmpPath} does not match its recorded shard (${record.byteLength} bytes, sha256 ${record.sha256}); ` +
          'it was changed after it was written. Remove it and its record, or restore the file.',
      );
    }
    await rename(tmpPath, join(dir, name));
    present.delete(tmp);
    present.add(name);
    report.renamed.push(name);
  }

  const pattern = shardPattern(prefix);
  for (const entry of present) {
    const match = pattern.exec(entry);
    if (!match) continue;
    const recorded = own.has(Number(match[1]));
    // A final file is kept only when recorded; a `.tmp` left beside a recorded final file is a stale copy.
    if (recorded && !match[2]) continue;
    await rm(join(dir, entry), { force: true });
    report.deleted.push(entry);
  }

  if (report.renamed.length > 0 || report.deleted.length > 0) await syncDir(dir);
  report.renamed.sort();
  report.deleted.sort();
  report.missing.sort();
  return report;
}

/** The manifest of this prefix's shards, from the store (the source of truth), not from the folder. */
export function buildManifest(store: RunStore, exportName: string, prefix: string): Manifest {
  const own = [...ownShards(store, exportName, prefix)].sort(([a], [b]) => a - b);
  const shards = own.map(([index, record]) => ({
    path: shardFileName(prefix, index),
    count: record.sampleCount,
    bytes: record.byteLength,
    sha256: record.sha256,
  }));
  return {
    export: exportName,
    format: 'webdataset',
    shards,
    total: shards.reduce((sum, s) => sum + s.count, 0),
  };
}

/**
 * Record a finished shard under the next free index of the export, in one immediate transaction so that
 * processes sharing the database (`--shard I/N`) never pick the same index. File names number shards per
 * process; the store numbers them per export.
 */
function recordShard(store: RunStore, exportName: string, info: ShardInfo, keys: readonly string[]): void {
  const record = store.db.transaction(() => {
    const highest = store.shards(exportName).reduce((max, s) => Math.max(max, s.shardIndex), -1);
    store.recordShard(
      {
        exportName,
        shardIndex: highest + 1,
        path: info.path,
        sampleCount: info.count,
        byteLength: info.bytes,
        sha256: info.sha256,
      },
      keys,
    );
  });
  record.immediate();
}

export interface WebDatasetExportHooks {
  /**
   * Called after a shard is recorded in the store and before it is renamed. For tests that simulate a
   * crash at that point: throwing leaves the recorded `.tmp` behind, as a killed process would.
   */
  afterRecord?: (info: ShardInfo) => Promise<void> | void;
}

/**
 * The stage `export:<name>`: writes every sample without `failure`, not `dropped` and not `deferred` into WebDataset shards
 * under `out`, and passes every sample on unchanged once it is in the current shard. When the input ends
 * (also after an abort, when the runner stops the source) it finishes the partial shard and rewrites the
 * manifest from the store.
 */
export function createWebDatasetExport<T extends ExportableSample = ExportableSample>(
  options: WebDatasetExportOptions,
  ctx: ExportContext,
  hooks: WebDatasetExportHooks = {},
): Stage<T, T> {
  const { store, baseDir, shard } = ctx;
  const exportName = options.name;
  const dir = resolve(baseDir, options.out);
  const prefix = shardPrefix(options.prefix ?? options.name, shard);
  const maxSize = parseSize(options.maxSize, 'maxSize');
  const maxCount = options.maxCount;

  return {
    name: `export:${exportName}`,
    async *run(input: AsyncIterable<T>, stageCtx: StageContext): AsyncGenerator<T> {
      assertOwnFolder({ dir, exportName, prefix: options.prefix ?? options.name, store }, { flags: false });
      await mkdir(dir, { recursive: true });
      const recovery = await recoverShards({ dir, prefix, exportName, store });
      if (recovery.renamed.length > 0 || recovery.deleted.length > 0) {
        stageCtx.emit({
          type: 'log',
          level: 'info',
          message:
            `export ${exportName}: recovered ${recovery.renamed.length} recorded shard(s) left as .tmp, ` +
            `removed ${recovery.deleted.length} unrecorded file(s) of an interrupted run`,
        });
      }
      if (recovery.missing.length > 0) {
        stageCtx.emit({
          type: 'log',
          level: 'warn',
          message:
            `export ${exportName}: ${recovery.missing.length} recorded shard(s) are missing from ${dir} ` +
            `(${recovery.missing.slice(0, 3).join(', ')}${recovery.missing.length > 3 ? ', …' : ''}); their samples count as exported`,
        });
      }

      const conversations = await WebDatasetConversations.create(exportName, options, ctx);
      const writer = new WebDatasetWriter({
        dir,
        prefix,
        startIndex: recovery.nextIndex,
        maxCount,
        maxSize,
        onShardComplete: async (info, keys) => {
          // Record outcomes (token counts) first: they count once the shard record marks the samples exported.
          conversations.flush();
          recordShard(store, exportName, info, keys);
          await hooks.afterRecord?.(info);
        },
      });

      let failed = false;
      try {
        for await (const group of batch(input, LOOKUP_BATCH)) {
          const candidates = group.filter(isExportable).map((s) => s.key);
          const exported = store.exportedKeys(exportName, candidates);
          // Written but unknown to that query: the open shard's keys, then whatever this group adds.
          const written = new Set(writer.pendingKeys);
          for (const sample of group) {
            if (isExportable(sample) && !exported.has(sample.key) && !written.has(sample.key)) {
              const prepared = conversations.prepare(sample);
              if (prepared.ok) {
                written.add(sample.key);
                await writer.write(toWebDatasetSample(await exportImage(sample), prepared.extras ?? {}));
              }
            }
            yield sample;
          }
        }
      } catch (err) {
        failed = true;
        throw err;
      } finally {
        if (failed) {
          await writer.abort();
        } else {
          // Input ended, or the consumer stopped early: what is in the open shard is complete, so keep it.
          await writer.close();
          await writeFileAtomically(join(dir, manifestName(shard)), `${JSON.stringify(buildManifest(store, exportName, prefix), null, 2)}\n`);
          const stats = await conversations.finish(dir, shard);
          if (stats) stageCtx.emit({ type: 'log', level: stats.failed > 0 ? 'warn' : 'info', message: conversations.describe(stats) });
          const leftOut = conversations.describeLeftOut();
          if (leftOut) stageCtx.emit({ type: 'log', level: 'warn', message: leftOut });
        }
      }
    },
  };
}

export const webdatasetExport: ExportType<typeof webdatasetExportSchema> = {
  type: 'webdataset',
  schema: webdatasetExportSchema,
  create: (options, ctx) => createWebDatasetExport(options, ctx),
};
