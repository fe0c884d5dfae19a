/**
 * `vlcurate merge`: the SQL that combines part run databases (one per `vlcurate build --shard I/N`) into
 * one. The decisions (what may be merged, in which order, what to say) live in `run/merge-parts.ts`.
 *
 * A part is never opened for writing: it is copied first (`snapshotPart`: `VACUUM INTO` on a read-only
 * connection, a consistent snapshot even while a build writes it), and the copy is brought to the current
 * schema and attached to the merged database. What is carried: runs (with the part they came from),
 * samples, captions, boxes, instruction samples and the LLM response cache. What is not: the parts' export
 * ledgers (their files belong to each part; export the merged database for one export across parts) and
 * their refilter logs (a refilter decided over one part's scores only).
 *
 * A part is named by its shard and the start of its first run (`PartIdentity`): merged again unchanged it is
 * skipped, changed (resumed, finished since) its earlier rows are replaced, in one transaction.
 */
import { createHash } from 'node:crypto';
import Database from 'better-sqlite3';
import type { Db } from './database.js';
import { nowIso } from './database.js';
import { DUPLICATE_IMAGE } from '../core/stage-names.js';

/** Tables whose rows a merge carries, parents first (foreign keys are on). */
const CARRIED = ['samples', 'captions', 'boxes', 'instructions'] as const;
/** The sample key column of each carried table. */
const KEY_COLUMN: Record<(typeof CARRIED)[number], string> = { samples: 'key', captions: 'sample_key', boxes: 'sample_key', instructions: 'sample_key' };

export interface PartIdentity {
  /** `I/N` as the part's runs recorded it. */
  shard: string;
  /** When the part's first run started. */
  firstRunAt: string;
}

export interface PartFacts extends PartIdentity {
  fingerprint: string;
  samples: number;
  /** Status of the part's latest run: finished, running, aborted, failed or crashed. */
  latestStatus: string;
  /** The recipe (resolved, as stored) of the part's latest run. */
  latestRecipeJson: string;
  /** Shards recorded by its runs (a part resumed with another --shard has several). */
  shards: string[];
  /** Samples held by the part's own exports, per export name (not carried). */
  exported: Record<string, number>;
  refilters: number;
  /** Parts the file itself was merged from (a merged database given as a part). */
  mergedParts: number;
}

/**
 * Copy the run database at `path` to `copyPath` without writing to it: a read-only connection, one
 * consistent snapshot (`VACUUM INTO`). Throws when it cannot be opened as a database.
 */
export function snapshotPart(path: string, copyPath: string): void {
  const db = new Database(path, { readonly: true, fileMustExist: true });
  try {
    db.prepare('VACUUM INTO ?').run(copyPath);
  } finally {
    db.close();
  }
}

/** What a part's (migrated copy's) database says about itself. Null when it holds no run. */
export function partFacts(db: Db): PartFacts | null {
  const runs = db.prepare('SELECT id, recipe_json, recipe_hash, shard, started_at, finished_at, status FROM runs ORDER BY id').all() as {
    id: number;
    recipe_json: string;
    recipe_hash: string;
    shard: string;
    started_at: string;
    finished_at: string | null;
    status: string;
  }[];
  if (runs.length === 0) return null;
  const first = runs[0]!;
  const latest = runs[runs.length - 1]!;
  const counts = db
    .prepare(
      `SELECT (SELECT COUNT(*) FROM samples) AS samples, (SELECT MAX(updated_at) FROM samples) AS lastSample,
              (SELECT COUNT(*) FROM instructions) AS instructions, (SELECT MAX(created_at) FROM instructions) AS lastInstruction,
              (SELECT COUNT(*) FROM llm_cache) AS answers, (SELECT COUNT(*) FROM refilters) AS refilters,
              (SELECT COUNT(*) FROM merged_parts) AS mergedParts`,
    )
    .get() as { samples: number; lastSample: string | null; instructions: number; lastInstruction: string | null; answers: number; refilters: number; mergedParts: number };
  const runsText = JSON.stringify(runs.map((r) => [r.id, r.recipe_hash, r.shard, r.started_at, r.finished_at, r.status]));
  const fingerprint = createHash('sha256')
    .update(JSON.stringify([runsText, counts.samples, counts.lastSample, counts.instructions, counts.lastInstruction, counts.answers, counts.refilters]))
    .digest('hex')
    .slice(0, 32);
  const exported: Record<string, number> = {};
  for (const row of db.prepare('SELECT export_name AS name, COUNT(*) AS n FROM exports GROUP BY export_name ORDER BY export_name').all() as { name: string; n: number }[]) {
    exported[row.name] = row.n;
  }
  return {
    shard: latest.shard,
    firstRunAt: first.started_at,
    fingerprint,
    samples: counts.samples,
    latestStatus: latest.status,
    latestRecipeJson: latest.recipe_json,
    shards: [...new Set(runs.map((r) => r.shard))],
    exported,
    refilters: counts.refilters,
    mergedParts: counts.mergedParts,
  };
}

/** Whether `vlcurate merge` wrote this database (it holds parts, not a build's own runs). */
export function isMergedDatabase(db: Db): boolean {
  try {
    return (db.prepare('SELECT COUNT(*) FROM merged_parts').pluck().get() as number) > 0;
  } catch {
    return false; // a database of a schema before merges (read-only, not migrated)
  }
}

export interface MergedPart extends PartIdentity {
  id: number;
  fingerprint: string;
  path: string;
  mergedAt: string;
  samples: number;
}

/** A sample key held by two parts. */
export interface KeyConflict {
  key: string;
  /** True when both hold the same sample: same row, captions with scores and verdicts, boxes, instructions. */
  identical: boolean;
}

/** What one part added to the merged database. */
export interface PartCounts {
  samples: number;
  /** Keys the merged database held already with the same content (skipped). */
  sameSamples: number;
  instructions: number;
  llmAnswers: number;
  runs: number;
}

/**
 * The merged database, written by one `merge` at a time (its caller holds the run lock). A part's copy is
 * attached as schema `part` while it is checked and merged.
 */
export class MergeTarget {
  constructor(readonly db: Db) {
    // Keys claimed by the parts of this merge so far, to find two parts of one command sharing a key
    // before anything is written.
    db.exec('CREATE TEMP TABLE IF NOT EXISTS merge_claims (key TEXT PRIMARY KEY, part INTEGER NOT NULL) WITHOUT ROWID');
  }

  /** Runs of the database that came from no part: it is a build's own database, not a merged one. */
  ownRuns(): number {
    return this.db.prepare('SELECT COUNT(*) FROM runs WHERE part_id IS NULL').pluck().get() as number;
  }

  /** The recipe of the latest run merged so far (null in a new merged database). */
  latestRecipeJson(): string | null {
    return (this.db.prepare('SELECT recipe_json FROM runs ORDER BY id DESC LIMIT 1').pluck().get() as string | undefined) ?? null;
  }

  mergedParts(): MergedPart[] {
    return this.db
      .prepare('SELECT id, shard, first_run_at AS firstRunAt, fingerprint, path, merged_at AS mergedAt, samples FROM merged_parts ORDER BY id')
      .all() as MergedPart[];
  }

  mergedPart(identity: PartIdentity): MergedPart | null {
    return (
      (this.db
        .prepare('SELECT id, shard, first_run_at AS firstRunAt, fingerprint, path, merged_at AS mergedAt, samples FROM merged_parts WHERE shard = ? AND first_run_at = ?')
        .get(identity.shard, identity.firstRunAt) as MergedPart | undefined) ?? null
    );
  }

  attach(copyPath: string, schema = 'part'): void {
    this.db.prepare(`ATTACH DATABASE ? AS ${schema}`).run(copyPath);
  }

  detach(schema = 'part'): void {
    this.db.exec(`DETACH DATABASE ${schema}`);
  }

  /**
   * Keys of the attached part that the merged database holds from another part (not from `replacing`, the
   * earlier merge of this same part), each with that part's id, at most `limit`; and how many in all.
   */
  conflictsWithMerged(replacing: number | null, limit: number): { total: number; keys: { key: string; partId: number }[] } {
    const from = `FROM part.samples p JOIN main.samples m ON m.key = p.key JOIN main.runs r ON r.id = m.run_id WHERE r.part_id IS NOT ?`;
    const total = this.db.prepare(`SELECT COUNT(*) ${from}`).pluck().get(replacing) as number;
    const keys = this.db.prepare(`SELECT p.key AS key, r.part_id AS partId ${from} ORDER BY p.key LIMIT ?`).all(replacing, limit) as { key: string; partId: number }[];
    return { total, keys };
  }

  /** Keys of the attached part claimed by an earlier part of this merge (by its position), at most `limit`; and how many in all. */
  conflictsWithClaims(limit: number): { total: number; keys: { key: string; part: number }[] } {
    const from = 'FROM part.samples p JOIN temp.merge_claims c ON c.key = p.key';
    const total = this.db.prepare(`SELECT COUNT(*) ${from}`).pluck().get() as number;
    const keys = this.db.prepare(`SELECT p.key AS key, c.part AS part ${from} ORDER BY p.key LIMIT ?`).all(limit) as { key: string; part: number }[];
    return { total, keys };
  }

  /** Claim the attached part's keys for the part at `position` of this merge (the first claim of a key stays). */
  claimKeys(position: number): void {
    this.db.prepare('INSERT OR IGNORE INTO temp.merge_claims (key, part) SELECT key, ? FROM part.samples').run(position);
  }

  /**
   * Everything recorded about `key` in `schema` that a merged sample carries, as one text: the sample row
   * (without the run and time that wrote it), its captions with scores and verdicts, boxes and instruction
   * samples. Two parts holding the same text hold the same sample.
   */
  sampleContent(schema: string, key: string): string {
    const rows = CARRIED.map((table) => {
      const columns = this.contentColumns(schema, table);
      const order = table === 'samples' ? '' : ` ORDER BY ${table === 'instructions' ? 'task, variant' : 'idx'}`;
      return this.db.prepare(`SELECT ${columns.join(', ')} FROM ${schema}.${table} WHERE ${KEY_COLUMN[table]} = ?${order}`).raw().all(key);
    });
    return JSON.stringify(rows);
  }

  /**
   * Merge the attached part in one transaction: its runs under new ids (with `partId`), then the rows of
   * its samples the merged database does not hold yet (a key it holds has been checked to be the same
   * sample), then LLM answers not cached yet. With `replacing`, that earlier merge of the part goes first.
   */
  mergeAttached(part: { identity: PartIdentity; fingerprint: string; path: string; samples: number }, replacing: number | null): PartCounts {
    const merge = this.db.transaction((): PartCounts => {
      // Refilters of the merged database laid over the replaced part's runs: over its new runs instead, so
      // they stay in force while the part's recipe decides as before (filter/policy-in-force.ts).
      const refiltersOver = replacing === null ? [] : (this.db.prepare('SELECT f.id FROM main.refilters f JOIN main.runs r ON r.id = f.run_id WHERE r.part_id = ?').pluck().all(replacing) as number[]);
      if (replacing !== null) this.forgetPart(replacing);
      const partId = Number(
        this.db
          .prepare('INSERT INTO merged_parts (shard, first_run_at, fingerprint, path, samples, merged_at) VALUES (?, ?, ?, ?, ?, ?)')
          .run(part.identity.shard, part.identity.firstRunAt, part.fingerprint, part.path, part.samples, nowIso()).lastInsertRowid,
      );
      this.db.exec('DROP TABLE IF EXISTS temp.merge_runs; CREATE TEMP TABLE merge_runs (old INTEGER PRIMARY KEY, new INTEGER NOT NULL)');
      const runColumns = this.copiedColumns('runs').filter((c) => c !== 'part_id' && c !== 'id');
      const insertRun = this.db.prepare(`INSERT INTO main.runs (${runColumns.join(', ')}, part_id) SELECT ${runColumns.join(', ')}, ? FROM part.runs WHERE id = ?`);
      const mapRun = this.db.prepare('INSERT INTO temp.merge_runs (old, new) VALUES (?, ?)');
      const oldRuns = this.db.prepare('SELECT id FROM part.runs ORDER BY id').pluck().all() as number[];
      let latestRun: number | null = null;
      for (const old of oldRuns) mapRun.run(old, (latestRun = Number(insertRun.run(partId, old).lastInsertRowid)));
      const moveRefilter = this.db.prepare('UPDATE main.refilters SET run_id = ? WHERE id = ?');
      for (const id of refiltersOver) moveRefilter.run(latestRun, id);
      // Keys this part brings: those the merged database does not hold (the others were found identical).
      this.db.exec('DROP TABLE IF EXISTS temp.merge_take; CREATE TEMP TABLE merge_take (key TEXT PRIMARY KEY) WITHOUT ROWID');
      this.db.exec('INSERT INTO temp.merge_take (key) SELECT key FROM part.samples WHERE key NOT IN (SELECT key FROM main.samples)');
      const taken = this.db.prepare('SELECT COUNT(*) FROM temp.merge_take').pluck().get() as number;
      const sampleColumns = this.copiedColumns('samples').filter((c) => c !== 'run_id');
      this.db.exec(
        `INSERT INTO main.samples (${sampleColumns.join(', ')}, run_id)
         SELECT ${sampleColumns.map((c) => `s.${c}`).join(', ')}, m.new FROM part.samples s JOIN temp.merge_runs m ON m.old = s.run_id
         WHERE s.key IN (SELECT key FROM temp.merge_take)`,
      );
      let instructions = 0;
      for (const table of ['captions', 'boxes', 'instructions'] as const) {
        // Row ids are the merged database's own; (sample_key, idx) and (sample_key, task, variant) stay unique.
        const columns = this.copiedColumns(table).filter((c) => c !== 'id');
        const info = this.db
          .prepare(`INSERT INTO main.${table} (${columns.join(', ')}) SELECT ${columns.join(', ')} FROM part.${table} WHERE sample_key IN (SELECT key FROM temp.merge_take) ORDER BY id`)
          .run();
        if (table === 'instructions') instructions = info.changes;
      }
      const cacheColumns = this.copiedColumns('llm_cache');
      // The first answer for a request wins, as in a build (store/llm-cache.ts).
      const answers = this.db.prepare(`INSERT OR IGNORE INTO main.llm_cache (${cacheColumns.join(', ')}) SELECT ${cacheColumns.join(', ')} FROM part.llm_cache`).run().changes;
      return { samples: taken, sameSamples: part.samples - taken, instructions, llmAnswers: answers, runs: oldRuns.length };
    });
    return merge.immediate();
  }

  /**
   * Images (sha256) that samples of more than one part hold, neither failed nor dropped as duplicates:
   * copies `decode.dedup: exact` would have dropped in one process, but each part dedups only within
   * itself. How many, and the keys of the first `limit`.
   */
  crossPartDuplicates(limit: number): { total: number; examples: string[][] } {
    const groups = `SELECT s.sha256, group_concat(s.key, ' ') AS keys FROM samples s JOIN runs r ON r.id = s.run_id
      WHERE s.sha256 IS NOT NULL AND s.status != 'failed' AND s.drop_reason IS NOT '${DUPLICATE_IMAGE}'
      GROUP BY s.sha256 HAVING COUNT(DISTINCT r.part_id) > 1`;
    const total = this.db.prepare(`SELECT COUNT(*) FROM (${groups})`).pluck().get() as number;
    const rows = this.db.prepare(`${groups} ORDER BY s.sha256 LIMIT ?`).all(limit) as { keys: string }[];
    return { total, examples: rows.map((r) => r.keys.split(' ').sort()) };
  }

  /** The samples of each status the merged database holds. */
  sampleCounts(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const row of this.db.prepare('SELECT status, COUNT(*) AS n FROM samples GROUP BY status ORDER BY status').all() as { status: string; n: number }[]) out[row.status] = row.n;
    return out;
  }

  /** Remove what an earlier merge of a part brought: its samples (with their captions, boxes, instructions), its runs, its record. */
  private forgetPart(partId: number): void {
    // Captions, boxes, instructions and export rows of these samples go with them (ON DELETE CASCADE).
    this.db.prepare('DELETE FROM main.samples WHERE run_id IN (SELECT id FROM main.runs WHERE part_id = ?)').run(partId);
    this.db.prepare('DELETE FROM main.runs WHERE part_id = ?').run(partId);
    this.db.prepare('DELETE FROM main.merged_parts WHERE id = ?').run(partId);
  }

  /** Columns of `table` both the merged database and the part have, stored ones only (a generated column is computed). */
  private copiedColumns(table: string): string[] {
    const part = new Set(this.storedColumns('part', table));
    return this.storedColumns('main', table).filter((c) => part.has(c));
  }

  private contentColumns(schema: string, table: string): string[] {
    const skip = new Set(['id', 'run_id', 'updated_at', 'created_at']);
    return this.storedColumns(schema, table).filter((c) => !skip.has(c));
  }

  private storedColumns(schema: string, table: string): string[] {
    const rows = this.db.prepare(`SELECT name, hidden FROM pragma_table_xinfo(?, ?)`).all(table, schema) as { name: string; hidden: number }[];
    // hidden: 0 an ordinary column, 1 a virtual table's hidden one, 2 and 3 generated columns.
    return rows.filter((r) => r.hidden === 0).map((r) => r.name);
  }
}
