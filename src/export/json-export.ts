/**
 * LLaVA and Qwen-family JSON exports (`type: llava | qwen2vl | qwen25vl`).
 *
 * Output, in `out/`:
 * - `{prefix}-{part}.json`: a JSON array of `{id, image, conversations: [{from, value}]}` records, `image`
 *   relative to `images/` (`KEY.jpg`), left out for text-only records. Parts: `split: mixed` (default) writes
 *   every task but stage 1 to `mixed` and stage 1 to `stage1` (a different training stage); `split: task`
 *   writes one part per task. Regions are rendered in the format's family style (see `regions/render-regions.ts`).
 * - `images/KEY.ext`: the original image bytes (turned upright, or written as PNG when not JPEG, PNG or WebP: `export-image.ts`).
 *   A key too long for a file name is shortened with a hash (`file-name.ts`); should the file system still
 *   refuse the name (or a folder sit in its place), that sample's records fail (`image_write_failed`),
 *   never the export.
 * - `manifest.json` (files with record counts, sizes, sha256) and `stats.json` (see `export-stats.ts`).
 * Under `--shard I/N` with N > 1 the file names carry `-sIofN`.
 *
 * **Exactly once.** Records are not appended to the JSON files as they come: each sample's records (their
 * JSON text, or why they failed) are committed to the run database together with the sample's `exports` row,
 * after its image is in `images/`. When the stage ends (input done, or Ctrl-C) every JSON file is rewritten
 * from the store — streamed in `seq` order to `.tmp`, fsynced, renamed — so the files always hold each stored
 * record once, whatever was interrupted where. A resumed run skips the samples the store holds and rewrites
 * the files with old and new records. A crash before the commit leaves at most an image file that the next
 * run writes again.
 */
import { basename } from 'node:path';
import { z } from 'zod';
import type { InstructionTask } from '../core/conversation.js';
import { describeError } from '../core/errors.js';
import { isOpen } from '../core/sample.js';
import type { Stage, StageContext } from '../core/stage.js';
import { batch } from '../iter/batch.js';
import type { ExportRecords, RecordRow } from '../store/export-records.js';
import { ConversationEncoder } from './conversation-encoder.js';
import { conversationFields, resolveConversationOptions, type ConversationDefaults } from './conversation-options.js';
import { fileStem } from './file-name.js';
import { describeStats, exportStats } from './export-stats.js';
import type { ExportContext, ExportType } from './export-type.js';
import { exportImage } from './export-image.js';
import { ALL_TASKS, collectRecords, type InstructionExportable } from './instruction-records.js';
import type { JsonArrayFileInfo } from './json-array-file.js';
import { openJsonExportOutput, type JsonExportOutput } from './json-export-output.js';
import { exportTarget } from './export-target.js';
import { manifestName } from './webdataset-export.js';
import { assertOwnFolder, ownExportFiles, ownFilePatterns, strangersError } from './export-folder.js';
import { imageExtension } from './webdataset-sample.js';

export const JSON_EXPORT_TYPES = ['llava', 'qwen2vl', 'qwen25vl'] as const;
export type JsonExportType = (typeof JSON_EXPORT_TYPES)[number];

const NAME = /^[A-Za-z0-9_-]+$/;

function jsonExportSchema<T extends JsonExportType>(type: T) {
  return z.strictObject({
    type: z.literal(type),
    /** Export name in the run database. Default: the type. */
    name: z.string().regex(NAME, 'Expected `name` to match [A-Za-z0-9_-]+').default(type),
    /** Output folder, relative to the recipe's folder. */
    out: z.string().min(1),
    /** JSON file prefix, `{prefix}-mixed.json`. Default: `name`. */
    prefix: z.string().regex(NAME, 'Expected `prefix` to match [A-Za-z0-9_-]+').optional(),
    /** `mixed`: one file for all tasks but stage 1, plus `stage1`; `task`: one file per task. */
    split: z.enum(['mixed', 'task']).default('mixed'),
    ...conversationFields,
  });
}

export const llavaExportSchema = jsonExportSchema('llava');
export const qwen2vlExportSchema = jsonExportSchema('qwen2vl');
export const qwen25vlExportSchema = jsonExportSchema('qwen25vl');

export type JsonExportOptions =
  | z.output<typeof llavaExportSchema>
  | z.output<typeof qwen2vlExportSchema>
  | z.output<typeof qwen25vlExportSchema>;

/** Per-format defaults: region style and templates. */
export const JSON_EXPORT_DEFAULTS: Readonly<Record<JsonExportType, ConversationDefaults>> = {
  llava: { tasks: ALL_TASKS, regionFormat: 'llava', template: 'vicuna_v1', stage1Template: 'plain', family: 'llava' },
  qwen2vl: { tasks: ALL_TASKS, regionFormat: 'qwen2vl', template: 'qwen2_vl', stage1Template: null, family: 'qwen' },
  qwen25vl: { tasks: ALL_TASKS, regionFormat: 'qwen25vl', template: 'qwen2_vl', stage1Template: null, family: 'qwen' },
};

/** Samples whose exported state is looked up, and whose records are committed, together. */
const COMMIT_BATCH = 128;
/** Records read back per query when the files are rewritten. */
const PAGE = 2000;

function shardSuffix(ctx: ExportContext): string {
  return ctx.shard.count > 1 ? `-s${ctx.shard.index}of${ctx.shard.count}` : '';
}

/** File name of a part: `{prefix}-{part}.json`, with `-sIofN` under `--shard`. */
export function jsonPartFile(prefix: string, part: string, ctx: ExportContext): string {
  return `${prefix}-${part}${shardSuffix(ctx)}.json`;
}

export function statsName(ctx: ExportContext): string {
  return `stats${shardSuffix(ctx)}.json`;
}

export interface JsonManifest {
  export: string;
  format: JsonExportType;
  /** Folder of the image files, relative to the manifest. */
  images: string;
  files: { path: string; part: string; records: number; bytes: number; sha256: string }[];
  total: number;
}

/** One sample's image copy in flight, and the records that refer to it. */
interface ImageWrite {
  key: string;
  path: string;
  rows: RecordRow[];
  done: Promise<void>;
}

/** Still open (not failed, dropped or deferred) and decoded. */
function isExportable(sample: InstructionExportable): boolean {
  return isOpen(sample) && sample.image !== null;
}

/** Stream a part's stored records in order, a page at a time (no long-lived statement on the connection). */
async function* storedRecords(records: ExportRecords, exportName: string, part: string): AsyncGenerator<string> {
  let after = -1;
  for (;;) {
    const rows = records.page(exportName, part, after, PAGE);
    for (const row of rows) yield row.json;
    if (rows.length < PAGE) return;
    after = rows[rows.length - 1]!.seq;
  }
}

export function createJsonExport<T extends InstructionExportable>(options: JsonExportOptions, ctx: ExportContext): Stage<T, T> {
  const exportName = options.name;
  const target = exportTarget(options.out, ctx.baseDir, ctx.storage, `export ${exportName}: out`);
  const dir = target.kind === 'local' ? target.dir : target.url;
  const prefix = options.prefix ?? options.name;
  const defaults = JSON_EXPORT_DEFAULTS[options.type];
  const partOf = (task: InstructionTask) => (options.split === 'task' ? task : task === 'stage1' ? 'stage1' : 'mixed');

  async function* write(input: AsyncIterable<T>, stageCtx: StageContext, output: JsonExportOutput): AsyncGenerator<T> {
    const resolved = await resolveConversationOptions(options, defaults, ctx.baseDir);
    const encoder = new ConversationEncoder(resolved.encoder);
    const records = ctx.store.exportRecords();
    if (!records.claimed(exportName)) {
      // A first start, yet the folder holds this export's files: another run database wrote them, and
      // rewriting the parts, manifest and images/ from this one would replace its records.
      const { summary, files } = ownFilePatterns(prefix, shardSuffix(ctx));
      const strangers =
        target.kind === 'local' ? ownExportFiles({ dir, exportName, prefix }, shardSuffix(ctx)) : (await output.names()).filter((n) => summary.test(n) || files.test(n));
      if (strangers.length > 0) throw strangersError(exportName, dir, 'files', strangers);
    }
    const { type, name: _name, out: _out, prefix: _prefix, ...rest } = options;
    records.claim(exportName, type, { ...rest, out: dir, prefix, tokenizer: resolved.tokenizerPath, template: resolved.templateName, stage1Template: resolved.stage1TemplateName });
    // Saved with the claim, before the first object: a run database restored from it owns this prefix.
    if (target.kind === 'remote') await ctx.checkpoint?.();
    await output.prepare();
    // Samples no longer kept (a refilter dropped them) leave the export: their images first, then their
    // records (a kill in between finds them again); the files are rewritten from the store at the end.
    const images = records.imagesNotKept(exportName);
    for (const image of images) if (basename(image) === image) await output.deleteImage(image);
    const forgotten = records.forgetNotKept(exportName);
    if (forgotten > 0) {
      stageCtx.emit({ type: 'log', level: 'info', message: `export ${exportName}: ${forgotten} sample(s) no longer kept (refilter) taken out, with ${images.length} image(s)` });
    }
    let seq = records.nextSeq(exportName);

    let rows: RecordRow[] = [];
    let exported: { key: string; position: number }[] = [];
    // Image copies of the batch being prepared, written concurrently; all are in place before the commit.
    let imageWrites: ImageWrite[] = [];
    const commit = async () => {
      const writes = imageWrites;
      const pendingRows = rows;
      let pendingExported = exported;
      imageWrites = [];
      rows = [];
      exported = [];
      const outcomes = await Promise.allSettled(writes.map((w) => w.done));
      for (const [i, outcome] of outcomes.entries()) {
        if (outcome.status === 'fulfilled') continue;
        // A problem of the disk or the folder (full, read-only, no permission) stops the export, and the
        // batch is not committed (the next run redoes it); one of this file (its name refused, a folder
        // in its place) fails that sample's records.
        if (output.stopsTheExport(outcome.reason)) throw outcome.reason;
        const write = writes[i]!;
        for (const row of write.rows) {
          row.status = 'failed';
          row.code = 'image_write_failed';
          row.message = `cannot write ${write.path}: ${describeError(outcome.reason)}`;
          row.recordJson = null;
        }
        const left = pendingRows.filter((row) => row.sampleKey === write.key && row.status === 'ok');
        pendingExported = pendingExported.flatMap((e) => (e.key !== write.key ? [e] : left.length > 0 ? [{ key: e.key, position: left[0]!.seq }] : []));
      }
      records.commit(exportName, pendingRows, pendingExported);
    };

    const exportSample = (sample: T) => {
      const image = sample.image!;
      const imageName = `${fileStem(sample.key)}.${imageExtension(image.format)}`;
      let first: number | null = null;
      const imageRows: RecordRow[] = [];
      for (const source of collectRecords(sample, resolved.tasks)) {
        const result = encoder.encodeRecord(source, { width: image.width, height: image.height });
        const row: RecordRow = {
          recordId: source.id,
          sampleKey: sample.key,
          part: partOf(source.task),
          seq: seq++,
          status: result.status,
          code: null,
          message: null,
          recordJson: null,
          tokens: null,
          truncated: false,
        };
        if (result.status === 'ok') {
          if (result.hasImage && !sample.imageBytes) {
            row.status = 'failed';
            row.code = 'image_missing';
            row.message = 'the sample has no image bytes to copy';
          } else {
            const record = result.hasImage
              ? { id: source.id, image: imageName, conversations: result.conversations }
              : { id: source.id, conversations: result.conversations };
            row.recordJson = JSON.stringify(record);
            row.tokens = result.tokens?.length ?? null;
            row.truncated = result.tokens?.truncated ?? false;
            if (result.hasImage) imageRows.push(row);
            first ??= row.seq;
          }
        } else {
          row.code = result.code;
          row.message = result.message;
          row.tokens = result.length;
        }
        rows.push(row);
      }
      if (imageRows.length > 0) {
        imageWrites.push({ key: sample.key, path: `${output.where}/images/${imageName}`, rows: imageRows, done: output.putImage(imageName, sample.imageBytes!) });
      }
      if (first !== null) exported.push({ key: sample.key, position: first });
    };

    let failed = false;
    try {
      for await (const group of batch(input, COMMIT_BATCH)) {
        const done = ctx.store.handledKeys(
          exportName,
          group.filter(isExportable).map((s) => s.key),
        );
        for (const sample of group) {
          if (isExportable(sample) && !done.has(sample.key)) {
            done.add(sample.key);
            exportSample(await exportImage(sample));
          }
        }
        await commit();
        for (const sample of group) yield sample;
      }
    } catch (err) {
      failed = true;
      throw err;
    } finally {
      if (failed) {
        // Let image writes in flight finish; commit nothing more (the next run redoes the batch).
        await Promise.allSettled(imageWrites.map((w) => w.done));
      } else {
        await commit();
      }
      if (!failed) {
        // Input ended, or the consumer stopped early: rewrite every file from the store.
        const files: JsonArrayFileInfo[] = [];
        const parts = records.parts(exportName);
        for (const part of parts) files.push(await output.writeArray(jsonPartFile(prefix, part, ctx), storedRecords(records, exportName, part)));
        // A part with no records any more (an export started over with other tasks) must not linger.
        for (const stale of ['mixed', ...ALL_TASKS].filter((p) => !parts.includes(p))) {
          await output.delete(jsonPartFile(prefix, stale, ctx));
        }
        const manifest: JsonManifest = {
          export: exportName,
          format: options.type,
          images: 'images',
          files: files.map((f, i) => ({ path: jsonPartFile(prefix, parts[i]!, ctx), part: parts[i]!, records: f.items, bytes: f.bytes, sha256: f.sha256 })),
          total: files.reduce((sum, f) => sum + f.items, 0),
        };
        await output.writeText(manifestName(ctx.shard), `${JSON.stringify(manifest, null, 2)}\n`);
        const stats = exportStats(records, {
          exportName,
          format: options.type,
          tokenizer: resolved.tokenizerPath,
          template: resolved.templateName,
          stage1Template: resolved.stage1TemplateName,
          maxLength: options.maxLength ?? null,
          visionPixels: resolved.visionPixels,
          regions: resolved.regions,
          legacy: resolved.legacy,
          qwenImageText: resolved.qwen?.imageText ?? null,
        });
        await output.writeText(statsName(ctx), `${JSON.stringify(stats, null, 2)}\n`);
        stageCtx.emit({ type: 'log', level: stats.failed > 0 ? 'warn' : 'info', message: describeStats(stats) });
      }
    }
  }

  return {
    name: `export:${exportName}`,
    async *run(input: AsyncIterable<T>, stageCtx: StageContext): AsyncGenerator<T> {
      if (target.kind === 'local') assertOwnFolder({ dir, exportName, prefix, store: ctx.store }, { flags: false });
      const output = await openJsonExportOutput(target);
      try {
        yield* write(input, stageCtx, output);
      } finally {
        await output.close();
      }
    },
  };
}

function jsonExportType<S extends typeof llavaExportSchema | typeof qwen2vlExportSchema | typeof qwen25vlExportSchema>(
  type: JsonExportType,
  schema: S,
): ExportType<S> {
  return {
    type: type as z.output<S>['type'],
    schema,
    create: (options, ctx) => createJsonExport(options as JsonExportOptions, ctx),
  };
}

export const llavaExport = jsonExportType('llava', llavaExportSchema);
export const qwen2vlExport = jsonExportType('qwen2vl', qwen2vlExportSchema);
export const qwen25vlExport = jsonExportType('qwen25vl', qwen25vlExportSchema);
