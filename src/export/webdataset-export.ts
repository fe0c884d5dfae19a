import { createHash } from 'node:crypto';
import type { FailureCode } from '../core/failure-codes.js';
import { createReadStream, existsSync } from 'node:fs';
import { mkdir, readdir, rm, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { z } from 'zod';
import type { ShardSpec } from '../core/shard.js';
import type { Stage, StageContext } from '../core/stage.js';
import { batch } from '../iter/batch.js';
import type { ExportLedger, ShardRecord } from '../store/stage-ports.js';
import { renameNoReplace, syncDir, writeFileAtomically } from './durable-fs.js';
import type { ExportContext, ExportType } from './export-type.js';
import { parseSize } from './size.js';
import { exportImage } from './export-image.js';
import { toWebDatasetSample, type ExportableSample } from './webdataset-sample.js';
import { isOpen } from '../core/sample.js';
import { conversationFields } from './conversation-options.js';
import { statsFileName, WebDatasetConversations } from './webdataset-conversations.js';
import { shardFileName, WebDatasetWriter, type ShardInfo } from './webdataset-writer.js';
import { isBeingWritten, parseTmpName } from '../core/temp-file.js';
import { escapeRegExp } from '../core/escape-regexp.js';
import { assertOwnFolder, strangersError } from './export-folder.js';
import { isRemoved, pruneShards, type PruneHooks, type PruneReport } from './webdataset-prune.js';
import { exportTarget, remoteKey, remoteNames, remoteUrl, stagingFolder, uploadFile, type RemoteTarget } from './export-target.js';
import { pruneRemoteShards, recoverRemoteShards } from './remote-shards.js';

/**
 * WebDataset export stage with exactly-once output across crashes and re-runs.
 *
 * The protocol, per shard: write `NAME.tar.PID.RANDOM.tmp` completely and fsync it; record the shard (under a
 * file name no other shard has) and one export row per sample in the store, in one transaction; rename to
 * `NAME.tar`, never over an existing file. So the store holds a sample as exported exactly when a complete
 * shard holding it is recorded, and on start the stage makes the folder agree with the store: a recorded
 * shard left under its temporary name is renamed, anything of this prefix not recorded is deleted (a killed
 * process's partial shard) except the temporary files of a live process, and numbering continues after the
 * highest recorded shard. Then shards holding samples no longer kept (after a refilter) are rewritten without
 * them (`webdataset-prune.ts`). Samples the store already holds for this export are skipped, so a re-run
 * writes each sample once in all.
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
  /** Temporary shard files of this prefix that a live process is writing: left alone. */
  inUse: string[];
  /** Index for the next shard: one after the highest recorded, and after any file in use. */
  nextIndex: number;
}


/** Matches this prefix's final shard names and captures the index. */
function shardPattern(prefix: string): RegExp {
  return new RegExp(`^${escapeRegExp(prefix)}-(\\d{6,})\\.tar$`);
}

/** A file of this prefix in the folder: a final shard, or a temporary one being (or left) written. */
interface ShardFile {
  entry: string;
  index: number;
  tmp: boolean;
}

/**
 * Which shard file `entry` is: `NAME.tar`, `NAME.tar.PID.RANDOM.tmp` (`core/temp-file.ts`), or `NAME.tar.tmp`
 * as vlcurate named temporary shards before (never a live writer's now). Null for anything else.
 */
function shardFileOf(prefix: string, entry: string): ShardFile | null {
  const tmp = parseTmpName(entry)?.target ?? (entry.endsWith('.tar.tmp') ? entry.slice(0, -'.tmp'.length) : null);
  const match = shardPattern(prefix).exec(tmp ?? entry);
  return match ? { entry, index: Number(match[1]), tmp: tmp !== null } : null;
}

/** Recorded shards of this export written under `prefix`, by file index. */
function ownShards(store: ExportLedger, exportName: string, prefix: string): Map<number, ShardRecord> {
  const pattern = shardPattern(prefix);
  const own = new Map<number, ShardRecord>();
  for (const record of store.shards(exportName)) {
    const match = pattern.exec(basename(record.path));
    if (match) own.set(Number(match[1]), record);
  }
  return own;
}

async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** Whether a temporary shard is the recorded one: same size, same sha256. */
async function matchesRecord(path: string, record: ShardRecord): Promise<boolean> {
  const { size } = await stat(path);
  return size === record.byteLength && (await sha256File(path)) === record.sha256;
}

/**
 * Make `dir` agree with the store for one export and prefix: rename recorded shards still under a temporary
 * name (after checking their size and sha256 against the record), delete every file of this prefix that is
 * not a recorded shard, and find the next free index. Files of other prefixes are never touched, and
 * neither are temporary files a live process is writing (`inUse`): only a dead writer's leftovers go.
 * Runs under the run database's lock (`store/run-lock.ts`), so no other writer of this database is live.
 */
export async function recoverShards(params: {
  dir: string;
  prefix: string;
  exportName: string;
  store: ExportLedger;
}): Promise<RecoveryReport> {
  const { dir, prefix, exportName, store } = params;
  const report: RecoveryReport = { renamed: [], deleted: [], missing: [], inUse: [], nextIndex: 0 };
  const own = ownShards(store, exportName, prefix);

  let entries: string[];
  try {
    entries = await readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    entries = [];
  }
  const files = entries.map((entry) => shardFileOf(prefix, entry)).filter((f): f is ShardFile => f !== null);
  // A final shard exists only once it is recorded, so with none recorded here final files of this prefix
  // were written by another run database (or one since removed): never this database's leftovers to delete.
  const strangers = own.size === 0 ? files.filter((f) => !f.tmp).map((f) => f.entry).sort() : [];
  if (strangers.length > 0) throw strangersError(exportName, dir, 'shards', strangers);
  const inUse = new Set(files.filter((f) => f.tmp && isBeingWritten(join(dir, f.entry))).map((f) => f.entry));
  const finals = new Set(files.filter((f) => !f.tmp).map((f) => f.index));
  const gone = new Set<string>();

  for (const [index, record] of own) {
    // A removed shard's record keeps its name taken (`webdataset-prune.ts`); it has no file to recover.
    if (isRemoved(record)) continue;
    if (finals.has(index)) continue;
    const name = shardFileName(prefix, index);
    const leftovers = files.filter((f) => f.tmp && f.index === index && !inUse.has(f.entry));
    if (leftovers.length === 0) {
      if (!files.some((f) => f.tmp && f.index === index)) report.missing.push(name);
      continue;
    }
    let found: ShardFile | null = null;
    for (const file of leftovers) {
      if (await matchesRecord(join(dir, file.entry), record)) {
        found = file;
        break;
      }
    }
    if (!found) {
      throw new Error(
        `export ${exportName}: ${join(dir, leftovers[0]!.entry)} does not match its recorded shard (${record.byteLength} bytes, sha256 ${record.sha256}); ` +
          'it was changed after it was written. Remove it and its record, or restore the file.',
      );
    }
    await renameNoReplace(join(dir, found.entry), join(dir, name));
    gone.add(found.entry);
    finals.add(index);
    report.renamed.push(name);
  }

  for (const file of files) {
    if (gone.has(file.entry)) continue;
    if (inUse.has(file.entry)) {
      report.inUse.push(file.entry);
      report.nextIndex = Math.max(report.nextIndex, file.index + 1);
      continue;
    }
    // A final file is kept only when recorded; a temporary one beside a recorded final file is a stale copy.
    const record = own.get(file.index);
    if (!file.tmp && record && !isRemoved(record)) continue;
    await rm(join(dir, file.entry), { force: true });
    report.deleted.push(file.entry);
  }
  // Numbering goes on after every recorded shard and every file a live writer still has.
  for (const index of own.keys()) report.nextIndex = Math.max(report.nextIndex, index + 1);

  if (report.renamed.length > 0 || report.deleted.length > 0) await syncDir(dir);
  report.renamed.sort();
  report.deleted.sort();
  report.missing.sort();
  report.inUse.sort();
  return report;
}

/** The manifest of this prefix's shards, from the store (the source of truth), not from the folder. */
export function buildManifest(store: ExportLedger, exportName: string, prefix: string): Manifest {
  const own = [...ownShards(store, exportName, prefix)].filter(([, record]) => !isRemoved(record)).sort(([a], [b]) => a - b);
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
 * process; the store numbers them per export. A file name is never given to a second shard: when the
 * writer's name is recorded already (for any shard of any export) or a file has it, the next free file
 * index is taken, and returned for the writer to rename the shard to.
 */
function recordShard(store: ExportLedger, exportName: string, prefix: string, info: ShardInfo, keys: readonly string[]): number {
  const dir = dirname(info.path);
  return store.recordNextShard(
    { exportName, sampleCount: info.count, byteLength: info.bytes, sha256: info.sha256 },
    { from: info.index, pathOf: (i) => join(dir, shardFileName(prefix, i)), taken: existsSync },
    keys,
  );
}

/** One line on what pruning did, or null when it did nothing. */
function describePrune(exportName: string, report: PruneReport): string | null {
  const parts: string[] = [];
  if (report.rewritten.length > 0) parts.push(`rewrote ${report.rewritten.length} shard(s) keeping their ${report.kept} kept samples`);
  if (report.removed.length > 0) parts.push(`removed ${report.removed.length} shard(s) with no kept sample`);
  if (report.missing.length > 0) {
    parts.push(`forgot ${report.missing.length} recorded shard(s) missing from the folder (${report.missing.slice(0, 3).join(', ')}), whose kept samples are written again`);
  }
  if (parts.length === 0) return null;
  return `export ${exportName}: ${report.dropped} sample(s) no longer kept (refilter) taken out of the shards: ${parts.join('; ')}`;
}

export interface WebDatasetExportHooks {
  /** Crash points of pruning (see `webdataset-prune.ts`). */
  prune?: PruneHooks;
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
  const prefix = shardPrefix(options.prefix ?? options.name, shard);
  const maxSize = parseSize(options.maxSize, 'maxSize');
  const maxCount = options.maxCount;

  const target = exportTarget(options.out, baseDir, ctx.storage, `export ${exportName}: out`);

  /** Make the local folder agree with the store; returns the first free shard index. */
  const prepareLocal = async (dir: string, stageCtx: StageContext): Promise<number> => {
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
    if (recovery.inUse.length > 0) {
      stageCtx.emit({
        type: 'log',
        level: 'warn',
        message:
          `export ${exportName}: ${recovery.inUse.length} temporary shard file(s) in ${dir} belong to another live process ` +
          `(${recovery.inUse.slice(0, 3).join(', ')}${recovery.inUse.length > 3 ? ', …' : ''}); left alone. Does another run write this folder?`,
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

    // Shards holding samples no longer kept (a refilter dropped them) are rewritten without them.
    const pruned = await pruneShards({ dir, prefix, exportName, store, own: ownShards(store, exportName, prefix), nextIndex: recovery.nextIndex, hooks: hooks.prune });
    // Outcomes recorded for samples no longer kept (a sample left out with a reason) no longer count.
    store.exportRecords().forgetNotKept(exportName);
    const note = describePrune(exportName, pruned);
    if (note) stageCtx.emit({ type: 'log', level: pruned.missing.length > 0 ? 'warn' : 'info', message: note });
    return pruned.nextIndex;
  };

  return {
    name: `export:${exportName}`,
    async *run(input: AsyncIterable<T>, stageCtx: StageContext): AsyncGenerator<T> {
      let startIndex: number;
      let remote: RemoteWriting | null = null;
      let conversations: WebDatasetConversations;
      if (target.kind === 'local') {
        startIndex = await prepareLocal(target.dir, stageCtx);
        conversations = await WebDatasetConversations.create(exportName, options, ctx);
      } else {
        // Asked before the conversations claim the export: objects of a prefix this database never claimed are not its own.
        const claimed = store.exportRecords().claimed(exportName);
        conversations = await WebDatasetConversations.create(exportName, options, ctx);
        remote = await prepareRemote(target, { exportName, prefix, claimed, store, ctx, stageCtx });
        startIndex = remote.startIndex;
      }
      const dir = target.kind === 'local' ? target.dir : remote!.staging.dir;
      const writer = new WebDatasetWriter({
        dir,
        prefix,
        startIndex,
        maxCount,
        maxSize,
        discardFinished: remote !== null,
        onShardComplete: async (info, keys) => {
          // Uploaded before anything is recorded: a recorded remote shard always has its object.
          if (remote) await remote.upload(info);
          // Record outcomes (token counts) first: they count once the shard record marks the samples exported.
          conversations.flush();
          const index = remote ? remote.record(info, keys) : recordShard(store, exportName, prefix, info, keys);
          await hooks.afterRecord?.(info);
          return index;
        },
      });

      let failed = false;
      try {
        for await (const group of batch(input, LOOKUP_BATCH)) {
          const candidates = group.filter(isOpen).map((s) => s.key);
          const exported = store.handledKeys(exportName, candidates);
          // Written but unknown to that query: the open shard's keys, then whatever this group adds.
          const written = new Set(writer.pendingKeys);
          const leftOut: { key: string; code: FailureCode }[] = [];
          for (const sample of group) {
            if (isOpen(sample) && !exported.has(sample.key) && !written.has(sample.key)) {
              const prepared = conversations.prepare(sample);
              if (prepared.ok) {
                written.add(sample.key);
                await writer.write(toWebDatasetSample(await exportImage(sample), prepared.extras ?? {}));
              } else {
                leftOut.push({ key: sample.key, code: prepared.code });
              }
            }
            yield sample;
          }
          // Their outcome records first (conversation exports), then the mark that makes a resume skip them.
          conversations.flush();
          store.leaveOut(exportName, leftOut);
        }
      } catch (err) {
        failed = true;
        throw err;
      } finally {
        if (failed) {
          await writer.abort();
          await remote?.staging.dispose();
        } else {
          // Input ended, or the consumer stopped early: what is in the open shard is complete, so keep it.
          let stats: Awaited<ReturnType<typeof conversations.finish>>;
          try {
            await writer.close();
            const manifest = `${JSON.stringify(buildManifest(store, exportName, prefix), null, 2)}\n`;
            if (remote) await remote.target.store.put(remoteKey(remote.target, manifestName(shard)), Buffer.from(manifest), { contentType: 'application/json' });
            else await writeFileAtomically(join(dir, manifestName(shard)), manifest);
            stats = await conversations.finish(dir, shard);
            if (remote && stats) await uploadFile(remote.target, statsFileName(shard), join(dir, statsFileName(shard)), 'application/json');
          } finally {
            // The staged files go whether the last upload worked or not (a failed shard is written again on resume).
            await remote?.finish();
          }
          if (stats) stageCtx.emit({ type: 'log', level: stats.failed > 0 ? 'warn' : 'info', message: conversations.describe(stats) });
          const leftOut = conversations.describeLeftOut();
          if (leftOut) stageCtx.emit({ type: 'log', level: 'warn', message: leftOut });
        }
      }
    },
  };
}

/** A WebDataset export writing to object storage: where shards are staged, how each is uploaded and recorded. */
interface RemoteWriting {
  target: RemoteTarget;
  staging: { dir: string; dispose: () => Promise<void> };
  startIndex: number;
  upload(info: ShardInfo): Promise<void>;
  record(info: ShardInfo, keys: readonly string[]): number;
  /** Remove the staging folder. */
  finish(): Promise<void>;
}

/**
 * Start a WebDataset export into object storage (`remote-shards.ts`): claim the prefix in the run database,
 * save the part's state, make the objects agree with the database, take samples no longer kept out.
 */
async function prepareRemote(
  target: RemoteTarget,
  params: { exportName: string; prefix: string; claimed: boolean; store: ExportLedger; ctx: ExportContext; stageCtx: StageContext },
): Promise<RemoteWriting> {
  const { exportName, prefix, store, ctx, stageCtx } = params;
  const own = ownShards(store, exportName, prefix);
  const pattern = shardPattern(prefix);
  const recovery = await recoverRemoteShards({
    target,
    prefix,
    exportName,
    store,
    own,
    claimed: params.claimed,
    indexOf: (name) => {
      const match = pattern.exec(name);
      return match ? Number(match[1]) : null;
    },
  });
  // Claimed only once recovery found no stranger's objects (refused, it must stay unclaimed): the
  // conversations claim an export they write; a plain one is claimed here, with where it writes.
  const records = store.exportRecords();
  if (!records.claimed(exportName)) records.claim(exportName, 'webdataset', { out: target.url, prefix: prefix.replace(/-s\d+of\d+$/, '') });
  await ctx.checkpoint?.();
  if (recovery.deleted.length > 0 || recovery.forgotten.length > 0) {
    stageCtx.emit({
      type: 'log',
      level: recovery.forgotten.length > 0 ? 'warn' : 'info',
      message:
        `export ${exportName}: removed ${recovery.deleted.length} object(s) of ${target.url} the run database does not hold (an interrupted run's)` +
        (recovery.forgotten.length > 0 ? `; ${recovery.forgotten.length} recorded shard(s) had no object (${recovery.forgotten.slice(0, 3).join(', ')}): their samples are written again` : ''),
    });
  }
  const pruned = await pruneRemoteShards({ target, prefix, exportName, store, own: ownShards(store, exportName, prefix) });
  store.exportRecords().forgetNotKept(exportName);
  if (pruned.removed.length > 0) {
    stageCtx.emit({
      type: 'log',
      level: 'info',
      message: `export ${exportName}: ${pruned.dropped} sample(s) no longer kept (refilter): removed ${pruned.removed.length} shard(s); their ${pruned.rewritten} kept sample(s) are written again`,
    });
  }
  const staging = await stagingFolder('wds');
  const known = await remoteNames(target, `${prefix}-`);
  return {
    target,
    staging,
    startIndex: recovery.nextIndex,
    async upload(info) {
      await uploadFile(target, info.name, info.tmpPath, 'application/x-tar');
      known.add(info.name);
    },
    record(info, keys) {
      const url = remoteUrl(target, info.name);
      const index = store.recordNextShard(
        { exportName, sampleCount: info.count, byteLength: info.bytes, sha256: info.sha256 },
        { from: info.index, pathOf: (i) => remoteUrl(target, shardFileName(prefix, i)), taken: (path) => path !== url && known.has(basename(path)) },
        keys,
      );
      // The object is in place under its name already: the database must not give the shard another.
      if (index !== info.index) throw new Error(`export ${exportName}: ${url} was uploaded, but the run database holds a shard of that name already`);
      return index;
    },
    finish: () => staging.dispose(),
  };
}

export const webdatasetExport: ExportType<typeof webdatasetExportSchema> = {
  type: 'webdataset',
  schema: webdatasetExportSchema,
  create: (options, ctx) => createWebDatasetExport(options, ctx),
};
