import type { Db } from './database.js';
import type { Statement } from 'better-sqlite3';
import { nowIso } from './database.js';
import { failureOf, sampleStatus, type Caption, type DedupedPair } from '../core/sample.js';
import { CAPTION_COLUMNS_OF_C, captionFromRow, captionToRow, type CaptionRow } from './caption-row.js';
import { groupBy } from '../iter/group-by.js';
import { DUPLICATE_IMAGE } from '../core/stage-names.js';
import { InstructionStore } from './instruction-store.js';
import { asCollision, KEY_COLLISION_STAGE } from './key-collision.js';
import { doneCondition, exportedCondition, type DoneRule } from './done-rule.js';
import { otherExportsSettings, otherExportsShards } from './export-catalog.js';
import { ExportRecords } from './export-records.js';
import type {
  ContentIndex,
  DoneKeys,
  ExportLedger,
  RecordedWork,
  RecordedWorkLookup,
  ResumeState,
  SampleRecorder,
  ShardRecord,
} from './stage-ports.js';

export type { ShardRecord } from './stage-ports.js';

interface SampleProgress {
  key: string;
  source: string;
  done: number;
  /** 1 when every export of the rule holds the sample (0 for a rule without exports). */
  exported: number;
}

/**
 * Writes and reads the state of a run. Every method that writes runs in one transaction, so a batch of
 * samples or a finished shard is committed whole or not at all.
 */
export class RunStore implements DoneKeys, ContentIndex, RecordedWorkLookup, SampleRecorder, ExportLedger {
  private readonly upsertSample;
  private readonly ownerOf;
  private readonly deleteCaptions;
  private readonly insertCaption;
  private readonly deleteBoxes;
  private readonly insertBox;
  private readonly insertShard;
  private readonly insertExport;
  private readonly instructions: InstructionStore;
  private records: ExportRecords | undefined;
  /** Resume lookups by their SQL: a source asks one key at a time, and preparing is most of a lookup's cost. */
  private readonly resumeLookups = new Map<string, Statement<unknown[]>>();

  constructor(readonly db: Db) {
    this.upsertSample = db.prepare(`
      INSERT INTO samples (key, source, image_ref, width, height, format, byte_length, sha256, orientation,
                           status, error_code, error_message, error_stage, drop_reason, meta_json, run_id, updated_at)
      VALUES (@key, @source, @imageRef, @width, @height, @format, @byteLength, @sha256, @orientation,
              @status, @errorCode, @errorMessage, @errorStage, @dropReason, @metaJson, @runId, @now)
      ON CONFLICT(key) DO UPDATE SET
        source = excluded.source, image_ref = excluded.image_ref, width = excluded.width, height = excluded.height,
        format = excluded.format, byte_length = excluded.byte_length, sha256 = excluded.sha256,
        orientation = excluded.orientation, status = excluded.status, error_code = excluded.error_code,
        error_message = excluded.error_message, error_stage = excluded.error_stage, drop_reason = excluded.drop_reason,
        meta_json = excluded.meta_json, run_id = excluded.run_id, updated_at = excluded.updated_at
      WHERE samples.source = excluded.source`);
    this.ownerOf = db.prepare('SELECT source FROM samples WHERE key = ?').pluck();
    this.instructions = new InstructionStore(db);
    this.deleteCaptions = db.prepare('DELETE FROM captions WHERE sample_key = ?');
    this.insertCaption = db.prepare(`
      INSERT INTO captions (sample_key, idx, origin, text, issue, usable, model, itc, itm, kept, reason)
      VALUES (@sampleKey, @idx, @origin, @text, @issue, @usable, @model, @itc, @itm, @kept, @reason)`);
    this.deleteBoxes = db.prepare('DELETE FROM boxes WHERE sample_key = ?');
    this.insertBox = db.prepare(`
      INSERT INTO boxes (sample_key, idx, label, x1, y1, x2, y2, original_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`);
    this.insertShard = db.prepare(`
      INSERT INTO export_shards (export_name, shard_index, path, sample_count, byte_length, sha256, finished_at)
      VALUES (?, ?, ?, ?, ?, ?, ?)`);
    this.insertExport = db.prepare(`
      INSERT INTO exports (export_name, sample_key, shard_index, position) VALUES (?, ?, ?, ?)`);
  }

  startRun(recipeJson: string, recipeHash: string, shard: string): number {
    // A run row left 'running' belongs to a process that died; say so instead of leaving it ambiguous.
    this.db.prepare(`UPDATE runs SET status = 'crashed' WHERE status = 'running'`).run();
    const info = this.db
      .prepare('INSERT INTO runs (recipe_json, recipe_hash, shard, started_at) VALUES (?, ?, ?, ?)')
      .run(recipeJson, recipeHash, shard, nowIso());
    return Number(info.lastInsertRowid);
  }

  /** Remove a run that never started (its stages could not be set up): no sample refers to it yet. */
  forgetRun(runId: number): void {
    this.db.prepare('DELETE FROM runs WHERE id = ?').run(runId);
  }

  /** `failed`: the build stopped on an error (it resumes like an aborted one). */
  finishRun(runId: number, status: 'finished' | 'aborted' | 'failed'): void {
    this.db.prepare('UPDATE runs SET status = ?, finished_at = ? WHERE id = ?').run(status, nowIso(), runId);
  }

  /**
   * Commit a batch of samples with their captions and boxes (replacing what an earlier attempt from the
   * same source wrote). Returns the samples as recorded: one whose key another source already owns comes
   * back as a `key_duplicate` failure under its own key (see `key-collision.ts`).
   */
  writeSamples<T extends DedupedPair>(runId: number, samples: readonly T[]): T[] {
    const now = nowIso();
    return this.db.transaction(() => samples.map((s) => this.writeSample(runId, s, now)))();
  }

  private writeSample<T extends DedupedPair>(runId: number, sample: T, now: string): T {
    let s = sample;
    if (!this.upsert(runId, s, now)) {
      const owner = this.ownerOf.get(sample.key) as string;
      // The colliding key may itself be another source's real key: then number it until one is free.
      for (let n = 1; ; n++) {
        s = asCollision(sample, owner, n);
        if (this.upsert(runId, s, now)) break;
      }
    }
    this.deleteCaptions.run(s.key);
    s.captions.forEach((c, idx) => this.insertCaption.run({ sampleKey: s.key, idx, ...captionToRow(c) }));
    this.deleteBoxes.run(s.key);
    s.boxes.forEach((b, idx) => this.insertBox.run(s.key, idx, b.label, ...b.box, b.original ? JSON.stringify(b.original) : null));
    if (s.conversations && s.conversations.length > 0) {
      // Checked like every instruction sample when exported; recorded as the source gave it.
      this.instructions.write([
        { sampleKey: s.key, task: 'imported', variant: 0, status: 'ok', code: null, message: null, conversations: s.conversations, requestHash: null, attempts: 1 },
      ]);
    }
    return s;
  }

  /** Insert or update one sample row; false when the key belongs to another source (nothing written). */
  private upsert(runId: number, s: DedupedPair, now: string): boolean {
    const failure = failureOf(s);
    const info = this.upsertSample.run({
      key: s.key,
      source: s.source,
      imageRef: s.imageRef,
      width: s.image?.width ?? null,
      height: s.image?.height ?? null,
      format: s.image?.format ?? null,
      byteLength: s.image?.byteLength ?? s.imageBytes?.length ?? null,
      sha256: s.image?.sha256 ?? null,
      orientation: s.image?.orientation ?? null,
      status: sampleStatus(s),
      errorCode: failure?.code ?? null,
      errorMessage: failure?.message ?? null,
      errorStage: failure?.stage ?? null,
      dropReason: s.fate.kind === 'dropped' ? s.fate.reason : null,
      // What dedup found is stored with the source's metadata, where `inspect` shows it.
      metaJson: JSON.stringify(s.duplicateOf === undefined ? s.meta : { ...s.meta, duplicateOf: s.duplicateOf }),
      runId,
      now,
    });
    return info.changes > 0;
  }

  /**
   * Of `keys`, those that need no more work (`done-rule.ts`): failed or dropped, or ok, held by every export
   * and synthesized. Resume skips them before reading their images. With `source`, only that source's
   * records count: a key another source recorded is not this source's work (see `resumeState`).
   */
  doneKeys(keys: readonly string[], rule: DoneRule, source?: string): Set<string> {
    return this.resumeState(keys, rule, source).done;
  }

  /**
   * One lookup for resume: the keys that need no more work (`doneKeys`), and the keys another source than
   * `source` already recorded, with that owner (this source's sample becomes a `key_duplicate`).
   */
  resumeState(
    keys: readonly string[],
    rule: DoneRule,
    source?: string,
  ): ResumeState {
    const done = new Set<string>();
    const owners = new Map<string, string>();
    // Held by every export, yet not done: synthesis will add instruction samples those exports lack.
    const reopened = new Set<string>();
    if (keys.length === 0) return { done, owners, reopened };
    const condition = doneCondition(rule);
    const exported = exportedCondition(rule.exports);
    const sql = `SELECT s.key, s.source, ${condition.sql} AS done, ${exported.sql} AS exported FROM samples s WHERE s.key IN (${keys.map(() => '?').join(',')})`;
    let lookup = this.resumeLookups.get(sql);
    if (lookup === undefined) {
      if (this.resumeLookups.size >= 64) this.resumeLookups.clear();
      lookup = this.db.prepare(sql);
      this.resumeLookups.set(sql, lookup);
    }
    const rows = lookup.all(...condition.params, ...exported.params, ...keys) as SampleProgress[];
    for (const row of rows) {
      if (source !== undefined && row.source !== source) owners.set(row.key, row.source);
      else if (row.done) done.add(row.key);
      else if (row.exported) reopened.add(row.key);
    }
    return { done, owners, reopened };
  }

  /**
   * For each sha256, the keys of recorded samples with those image bytes that own them: not failed and
   * not dropped as duplicates themselves (`decode/dedup-stage.ts`), oldest first.
   */
  imageOwners(sha256s: readonly string[]): Map<string, string[]> {
    const owners = new Map<string, string[]>();
    if (sha256s.length === 0) return owners;
    const rows = this.db
      .prepare(
        `SELECT sha256, key FROM samples
         WHERE sha256 IN (${sha256s.map(() => '?').join(',')}) AND status != 'failed' AND drop_reason IS NOT '${DUPLICATE_IMAGE}'
         ORDER BY updated_at, key`,
      )
      .all(...sha256s) as { sha256: string; key: string }[];
    for (const [sha256, group] of groupBy(rows, (r) => r.sha256)) owners.set(sha256, group.map((r) => r.key));
    return owners;
  }

  /**
   * The image sha256 and captions (with scores) an earlier run recorded for ok samples of `source`, for
   * resuming without inference: only from runs in `runIds` (see `run/reuse-stage.ts`).
   */
  recordedWork(keys: readonly string[], source: string, runIds: readonly number[]): Map<string, RecordedWork> {
    const found = new Map<string, RecordedWork>();
    if (keys.length === 0 || runIds.length === 0) return found;
    const rows = this.db
      .prepare(
        `SELECT c.sample_key, s.sha256, ${CAPTION_COLUMNS_OF_C}
         FROM captions c JOIN samples s ON s.key = c.sample_key
         WHERE s.status = 'ok' AND s.source = ? AND s.run_id IN (${runIds.map(() => '?').join(',')})
           AND c.sample_key IN (${keys.map(() => '?').join(',')})
         ORDER BY c.sample_key, c.idx`,
      )
      .all(source, ...runIds, ...keys) as (CaptionRow & { sample_key: string; sha256: string | null })[];
    for (const [key, group] of groupBy(rows, (r) => r.sample_key)) {
      // Scores come back, verdicts do not: the filter decides the reused captions with the policy in force.
      const captions = group.map((r) => withoutVerdict(captionFromRow(r)));
      found.set(key, { sha256: group[0]!.sha256, captions });
    }
    return found;
  }

  /**
   * Forget the records of samples that lost their key to another source. A build makes them again while
   * the sources still collide, and once the recipe gives the sources distinct `keyPrefix`es they stop
   * haunting the run's failure counts.
   */
  forgetKeyCollisions(): number {
    return this.db.prepare(`DELETE FROM samples WHERE error_code = 'key_duplicate' AND error_stage = ?`).run(KEY_COLLISION_STAGE).changes;
  }

  /** Runs whose recipe gives `sameAs` for its parts that decide captions (filter, captioner, decode). */
  runsWithSettings(settingsOf: (recipe: Record<string, unknown>) => string, sameAs: string): number[] {
    const runs = this.db.prepare('SELECT id, recipe_json FROM runs').all() as { id: number; recipe_json: string }[];
    return runs.filter((r) => {
      try {
        return settingsOf(JSON.parse(r.recipe_json) as Record<string, unknown>) === sameAs;
      } catch {
        return false;
      }
    }).map((r) => r.id);
  }

  /** How many samples need no more work (see `doneKeys`), for the resume line at the start of a run. */
  countDone(rule: DoneRule): number {
    const condition = doneCondition(rule);
    return this.db.prepare(`SELECT COUNT(*) FROM samples s WHERE ${condition.sql}`).pluck().get(...condition.params) as number;
  }

  /** Keys an export already holds or left out on purpose (`leaveOut`), of those given. */
  handledKeys(exportName: string, keys: readonly string[]): Set<string> {
    if (keys.length === 0) return new Set();
    const list = keys.map(() => '?').join(',');
    const rows = this.db
      .prepare(
        `SELECT sample_key FROM exports WHERE export_name = ? AND sample_key IN (${list})
         UNION SELECT sample_key FROM export_left_out WHERE export_name = ? AND sample_key IN (${list})`,
      )
      .all(exportName, ...keys, exportName, ...keys) as { sample_key: string }[];
    return new Set(rows.map((r) => r.sample_key));
  }

  /** Remember samples an export left out on purpose, with the reason's code: a resume does not offer them again. */
  leaveOut(exportName: string, samples: readonly { key: string; code: string }[]): void {
    if (samples.length === 0) return;
    const insert = this.db.prepare('INSERT OR REPLACE INTO export_left_out (export_name, sample_key, code) VALUES (?, ?, ?)');
    this.db.transaction(() => {
      for (const s of samples) insert.run(exportName, s.key, s.code);
    })();
  }

  /** Record a finished shard and which samples it holds, in one transaction. */
  recordShard(shard: ShardRecord, keys: readonly string[]): void {
    this.db.transaction(() => {
      this.insertShard.run(shard.exportName, shard.shardIndex, shard.path, shard.sampleCount, shard.byteLength, shard.sha256, nowIso());
      keys.forEach((key, position) => this.insertExport.run(shard.exportName, key, shard.shardIndex, position));
    })();
  }

  /**
   * Record a finished shard under the export's next free shard index and the first file index from
   * `file.from` whose path (`file.pathOf`) no shard of any export has and that is not `file.taken` (a file
   * there), in one immediate transaction, so that processes sharing the database (`--shard I/N`) never pick
   * the same index or name. Returns the file index taken.
   */
  recordNextShard(
    shard: Omit<ShardRecord, 'shardIndex' | 'path'>,
    file: { from: number; pathOf: (index: number) => string; taken: (path: string) => boolean },
    keys: readonly string[],
  ): number {
    const recorded = this.db.prepare('SELECT 1 FROM export_shards WHERE path = ?').pluck();
    const highest = this.db.prepare('SELECT MAX(shard_index) FROM export_shards WHERE export_name = ?').pluck();
    const record = this.db.transaction(() => {
      let index = file.from;
      while (recorded.get(file.pathOf(index)) !== undefined || file.taken(file.pathOf(index))) index++;
      const shardIndex = ((highest.get(shard.exportName) as number | null) ?? -1) + 1;
      this.recordShard({ ...shard, shardIndex, path: file.pathOf(index) }, keys);
      return index;
    });
    return record.immediate();
  }

  /**
   * Per recorded shard of an export, how many of the samples it holds are still kept (status ok). A shard
   * holding fewer than it was recorded with holds samples a refilter dropped (or whose records are gone).
   */
  keptPerShard(exportName: string): Map<number, number> {
    const rows = this.db
      .prepare(
        `SELECT e.shard_index AS shard, COUNT(*) AS n FROM exports e JOIN samples s ON s.key = e.sample_key
         WHERE e.export_name = ? AND s.status = 'ok' GROUP BY e.shard_index`,
      )
      .all(exportName) as { shard: number; n: number }[];
    return new Map(rows.map((r) => [r.shard, r.n]));
  }

  /** The kept (status ok) samples a recorded shard holds, in shard order. */
  keptInShard(exportName: string, shardIndex: number): string[] {
    return this.db
      .prepare(
        `SELECT e.sample_key FROM exports e JOIN samples s ON s.key = e.sample_key
         WHERE e.export_name = ? AND e.shard_index = ? AND s.status = 'ok' ORDER BY e.position`,
      )
      .pluck()
      .all(exportName, shardIndex) as string[];
  }

  /**
   * Replace a recorded shard by one holding only `keys` (or by nothing), in one immediate transaction: the
   * new shard is recorded under the next free index, `keys` move to it in order, every other sample of the
   * old shard stops counting as exported (with its export records, when it is no longer kept), and the old
   * shard's record goes (without a replacement it stays as a removed shard: sample count 0, no sha256). A sample that is still kept but not in `keys` is then written again by the export.
   */
  replaceShard(exportName: string, oldIndex: number, replacement: Omit<ShardRecord, 'exportName' | 'shardIndex'> | null, keys: readonly string[]): void {
    const replace = this.db.transaction(() => {
      if (replacement) {
        const highest = this.db.prepare('SELECT MAX(shard_index) FROM export_shards WHERE export_name = ?').pluck().get(exportName) as number | null;
        const index = (highest ?? -1) + 1;
        this.insertShard.run(exportName, index, replacement.path, replacement.sampleCount, replacement.byteLength, replacement.sha256, nowIso());
        const move = this.db.prepare('UPDATE exports SET shard_index = ?, position = ? WHERE export_name = ? AND sample_key = ? AND shard_index = ?');
        keys.forEach((key, position) => {
          if (move.run(index, position, exportName, key, oldIndex).changes !== 1) throw new Error(`export ${exportName}: ${key} is not in shard ${oldIndex}`);
        });
      }
      this.db
        .prepare(
          `DELETE FROM export_records WHERE export_name = ? AND sample_key IN
             (SELECT e.sample_key FROM exports e JOIN samples s ON s.key = e.sample_key
              WHERE e.export_name = ? AND e.shard_index = ? AND s.status != 'ok')`,
        )
        .run(exportName, exportName, oldIndex);
      this.db.prepare('DELETE FROM exports WHERE export_name = ? AND shard_index = ?').run(exportName, oldIndex);
      if (replacement) {
        this.db.prepare('DELETE FROM export_shards WHERE export_name = ? AND shard_index = ?').run(exportName, oldIndex);
      } else {
        // Removed without a replacement: the record stays, holding nothing, so its file name (the highest,
        // maybe) is never given to another shard.
        this.db.prepare(`UPDATE export_shards SET sample_count = 0, byte_length = 0, sha256 = '' WHERE export_name = ? AND shard_index = ?`).run(exportName, oldIndex);
      }
    });
    replace.immediate();
  }

  /** The per-record outcomes and settings of exports (`export_records`, `export_configs`). */
  exportRecords(): ExportRecords {
    return (this.records ??= new ExportRecords(this.db));
  }

  /** Every other export's recorded shard paths and settings, to tell its files from `exportName`'s in a folder. */
  otherExports(exportName: string): { shards: { name: string; path: string }[]; settings: { name: string; settingsJson: string }[] } {
    return { shards: otherExportsShards(this.db, exportName), settings: otherExportsSettings(this.db, exportName) };
  }

  shards(exportName: string): ShardRecord[] {
    return this.db
      .prepare(
        `SELECT export_name AS exportName, shard_index AS shardIndex, path, sample_count AS sampleCount,
                byte_length AS byteLength, sha256 FROM export_shards WHERE export_name = ? ORDER BY shard_index`,
      )
      .all(exportName) as ShardRecord[];
  }
}

function withoutVerdict(caption: Caption): Caption {
  const { kept: _kept, reason: _reason, ...unjudged } = caption;
  return unjudged;
}
