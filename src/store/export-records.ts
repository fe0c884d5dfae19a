/**
 * Per-record state of the exports that write conversations (LLaVA/Qwen JSON, WebDataset with
 * conversations): every record's outcome (ok, failed with a code, dropped as too long), its JSON text for
 * JSON exports, and its token count. JSON files are rewritten from these rows, so they hold each record once
 * however often a run is interrupted and resumed; token statistics come from them too.
 *
 * The tables come from schema migration 2 (`EXPORT_RECORDS_SCHEMA`).
 */
import type { FailureCode } from '../core/failure-codes.js';
import { ConfigError } from '../core/errors.js';
import { nowIso, type Db } from './database.js';
import { recordedSettings } from './export-catalog.js';

export type RecordStatus = 'ok' | 'failed' | 'dropped';

export interface RecordRow {
  recordId: string;
  sampleKey: string;
  part: string;
  seq: number;
  status: RecordStatus;
  code: FailureCode | null;
  message: string | null;
  recordJson: string | null;
  tokens: number | null;
  truncated: boolean;
}

export interface RecordsSummary {
  /** Records written (status ok, sample exported). */
  records: number;
  /** Samples with at least one record written. */
  samples: number;
  failed: number;
  dropped: number;
  /** Failed and dropped records by code. */
  reasons: Record<string, number>;
  /** Written records that were tokenized and passed the mask verifier. */
  verified: number;
  truncated: number;
  /** Token counts of written and dropped-as-too-long records (before truncation). */
  lengths: number[];
}

/** Settings as stable text: keys sorted, undefined left out. */
function canonicalJson(value: Record<string, unknown>): string {
  const sorted: Record<string, unknown> = {};
  for (const key of Object.keys(value).sort()) if (value[key] !== undefined) sorted[key] = value[key];
  return JSON.stringify(sorted);
}

export class ExportRecords {
  private readonly upsertRow;
  private readonly insertExport;

  constructor(readonly db: Db) {
    this.upsertRow = db.prepare(`
      INSERT INTO export_records (export_name, record_id, sample_key, part, seq, status, code, message, record_json, tokens, truncated)
      VALUES (@exportName, @recordId, @sampleKey, @part, @seq, @status, @code, @message, @recordJson, @tokens, @truncated)
      ON CONFLICT(export_name, record_id) DO UPDATE SET
        sample_key = excluded.sample_key, part = excluded.part, seq = excluded.seq, status = excluded.status,
        code = excluded.code, message = excluded.message, record_json = excluded.record_json,
        tokens = excluded.tokens, truncated = excluded.truncated`);
    this.insertExport = db.prepare(
      'INSERT OR IGNORE INTO exports (export_name, sample_key, shard_index, position) VALUES (?, ?, ?, ?)',
    );
  }

  /**
   * Remember the settings an export was started with; refuse different ones later, since records written
   * under one tokenizer or template must not be mixed with another's. Returns true on the first call.
   */
  claim(exportName: string, type: string, settings: Record<string, unknown>): boolean {
    const text = canonicalJson(settings);
    const row = recordedSettings(this.db, exportName);
    if (!row) {
      this.db
        .prepare('INSERT INTO export_configs (export_name, type, settings_json, created_at) VALUES (?, ?, ?, ?)')
        .run(exportName, type, text, nowIso());
      return true;
    }
    if (row.type === type && row.settingsJson === text) return false;
    const before: Record<string, unknown> = { type: row.type, ...(JSON.parse(row.settingsJson) as Record<string, unknown>) };
    const now: Record<string, unknown> = { type, ...(JSON.parse(text) as Record<string, unknown>) };
    const changed = [...new Set([...Object.keys(before), ...Object.keys(now)])]
      .filter((k) => JSON.stringify(before[k]) !== JSON.stringify(now[k]))
      .map((k) => `${k}: ${JSON.stringify(before[k]) ?? 'unset'} -> ${JSON.stringify(now[k]) ?? 'unset'}`);
    throw new ConfigError(
      `export "${exportName}" was started with other settings (${changed.join('; ')}); ` +
        'give the export another name, or start it over (vlcurate export ... --fresh)',
    );
  }

  /** Whether the run database has started export `exportName` (`claim` was called for it). */
  claimed(exportName: string): boolean {
    return this.db.prepare('SELECT 1 FROM export_configs WHERE export_name = ?').get(exportName) !== undefined;
  }

  /** One past the highest `seq` of the export (0 when it has none). */
  nextSeq(exportName: string): number {
    const row = this.db.prepare('SELECT MAX(seq) AS s FROM export_records WHERE export_name = ?').get(exportName) as { s: number | null };
    return row.s === null ? 0 : row.s + 1;
  }

  private upsertAll(exportName: string, rows: readonly RecordRow[]): void {
    for (const r of rows) this.upsertRow.run({ exportName, ...r, truncated: r.truncated ? 1 : 0 });
  }

  /** Record outcomes without marking samples exported (WebDataset: the shard record does that). */
  upsert(exportName: string, rows: readonly RecordRow[]): void {
    if (rows.length === 0) return;
    this.db.transaction(() => this.upsertAll(exportName, rows))();
  }

  /**
   * Record outcomes and mark samples exported, in one transaction: a sample counts as exported exactly when
   * its records are stored.
   */
  commit(exportName: string, rows: readonly RecordRow[], exported: readonly { key: string; position: number }[]): void {
    if (rows.length === 0 && exported.length === 0) return;
    this.db.transaction(() => {
      this.upsertAll(exportName, rows);
      for (const e of exported) this.insertExport.run(exportName, e.key, 0, e.position);
    })();
  }

  /** Output files that have written records, sorted. */
  parts(exportName: string): string[] {
    return (
      this.db
        .prepare(
          `SELECT DISTINCT r.part FROM export_records r
           WHERE r.export_name = ? AND r.status = 'ok'
             AND EXISTS (SELECT 1 FROM exports e WHERE e.export_name = r.export_name AND e.sample_key = r.sample_key)
           ORDER BY r.part`,
        )
        .all(exportName) as { part: string }[]
    ).map((r) => r.part);
  }

  /** Written records of one part after `afterSeq`, in `seq` order (page through with the last seq). */
  page(exportName: string, part: string, afterSeq: number, limit: number): { seq: number; json: string }[] {
    return this.db
      .prepare(
        `SELECT r.seq, r.record_json AS json FROM export_records r
         WHERE r.export_name = ? AND r.part = ? AND r.seq > ? AND r.status = 'ok' AND r.record_json IS NOT NULL
           AND EXISTS (SELECT 1 FROM exports e WHERE e.export_name = r.export_name AND e.sample_key = r.sample_key)
         ORDER BY r.seq LIMIT ?`,
      )
      .all(exportName, part, afterSeq, limit) as { seq: number; json: string }[];
  }

  summary(exportName: string): RecordsSummary {
    const visible = `r.export_name = ? AND (r.status != 'ok' OR EXISTS (SELECT 1 FROM exports e WHERE e.export_name = r.export_name AND e.sample_key = r.sample_key))`;
    const out: RecordsSummary = { records: 0, samples: 0, failed: 0, dropped: 0, reasons: {}, verified: 0, truncated: 0, lengths: [] };
    const rows = this.db
      .prepare(
        `SELECT r.status, r.code, COUNT(*) AS n, SUM(r.tokens IS NOT NULL) AS tokenized, SUM(r.truncated) AS truncated
         FROM export_records r WHERE ${visible} GROUP BY r.status, r.code ORDER BY n DESC, r.code`,
      )
      .all(exportName) as { status: RecordStatus; code: string | null; n: number; tokenized: number; truncated: number }[];
    for (const row of rows) {
      if (row.status === 'ok') {
        out.records += row.n;
        out.verified += row.tokenized;
        out.truncated += row.truncated;
      } else {
        out[row.status] += row.n;
        const code = row.code ?? 'unknown';
        out.reasons[code] = (out.reasons[code] ?? 0) + row.n;
      }
    }
    out.samples = (
      this.db
        .prepare(
          `SELECT COUNT(DISTINCT r.sample_key) AS n FROM export_records r WHERE r.export_name = ? AND r.status = 'ok'
             AND EXISTS (SELECT 1 FROM exports e WHERE e.export_name = r.export_name AND e.sample_key = r.sample_key)`,
        )
        .get(exportName) as { n: number }
    ).n;
    out.lengths = this.db
      .prepare(`SELECT r.tokens FROM export_records r WHERE ${visible} AND r.tokens IS NOT NULL AND r.status IN ('ok', 'dropped')`)
      .pluck()
      .all(exportName) as number[];
    return out;
  }

  /** Failed and dropped records, for `--json` reports and debugging. */
  problems(exportName: string, limit = 100): { record_id: string; sample_key: string; status: RecordStatus; code: string; message: string }[] {
    return this.db
      .prepare(
        `SELECT record_id, sample_key, status, code, message FROM export_records
         WHERE export_name = ? AND status != 'ok' ORDER BY seq LIMIT ?`,
      )
      .all(exportName, limit) as { record_id: string; sample_key: string; status: RecordStatus; code: string; message: string }[];
  }

  /**
   * The image files (as the records name them) of exported samples that are no longer kept (a refilter
   * dropped them): `images/NAME` is removed before `forgetNotKept` forgets them.
   */
  imagesNotKept(exportName: string): string[] {
    const rows = this.db
      .prepare(
        `SELECT r.record_json AS json FROM export_records r JOIN samples s ON s.key = r.sample_key
         WHERE r.export_name = ? AND s.status != 'ok' AND r.status = 'ok' AND r.record_json IS NOT NULL`,
      )
      .pluck()
      .all(exportName) as string[];
    const images = new Set<string>();
    for (const json of rows) {
      const image = (JSON.parse(json) as { image?: unknown }).image;
      if (typeof image === 'string') images.add(image);
    }
    return [...images].sort();
  }

  /**
   * Forget, in one transaction, every sample of the export that is no longer kept: its `exports` row and
   * its records (written, failed or dropped). Returns how many exported samples were forgotten.
   */
  forgetNotKept(exportName: string): number {
    let removed = 0;
    this.db.transaction(() => {
      const notKept = `SELECT key FROM samples WHERE status != 'ok'`;
      removed = this.db.prepare(`DELETE FROM exports WHERE export_name = ? AND sample_key IN (${notKept})`).run(exportName).changes;
      this.db.prepare(`DELETE FROM export_records WHERE export_name = ? AND sample_key IN (${notKept})`).run(exportName);
      this.db.prepare(`DELETE FROM export_left_out WHERE export_name = ? AND sample_key IN (${notKept})`).run(exportName);
    })();
    return removed;
  }

  /** Forget everything about an export (records, exported samples, shards, settings), to start it over. */
  reset(exportName: string): void {
    this.db.transaction(() => {
      for (const table of ['export_records', 'exports', 'export_left_out', 'export_shards', 'export_configs']) {
        this.db.prepare(`DELETE FROM ${table} WHERE export_name = ?`).run(exportName);
      }
    })();
  }
}
