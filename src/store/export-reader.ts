/**
 * Reading samples back from a run database for re-export (`vlcurate export`): every `ok` sample with its
 * image facts, captions (with scores and verdicts), boxes and accepted instruction samples, as the records
 * the export stages take. Nothing is recomputed; image bytes are not read here (`images/image-ref.ts`).
 * A sample whose synthesis was left unfinished (instruction rows failed with a resumable code, such as
 * `budget_exhausted`) comes out `deferred`, so exports hold it back as the build does.
 *
 * Samples come ordered by image reference, then key, so samples of one tar arrive together and each tar is
 * scanned once. The reader uses its own read-only connections (WAL lets them read while the export writes
 * through the main one): one streams the ordered samples, the other fetches their rows in batches.
 */
import type { InstructionSample, WithInstructions } from '../core/conversation.js';
import { OPEN, type Box, type DecodedPair } from '../core/sample.js';
import { groupBy } from '../iter/group-by.js';
import { CAPTION_COLUMNS, captionFromRow, type CaptionRow } from './caption-row.js';
import { openDatabase, type Db } from './database.js';
import type { ImageColumns } from './image-columns.js';
import { decodeInstructionRow, INSTRUCTION_COLUMNS, type StoredInstructionRow } from './instruction-store.js';
import { unfinishedSynthesis } from './unfinished-synthesis.js';

/** A sample as read back: what the export stages take (`export/instruction-records.ts` InstructionExportable). */
export type StoredSample = DecodedPair & WithInstructions;

export interface ExportReaderOptions {
  /** Samples whose rows are fetched together. Default 256. */
  batchSize?: number;
  /** Only these sources (`samples.source`). Default: all. */
  sources?: readonly string[];
  /**
   * Instruction rows the run's synthesis gives every sample (`synth/wanted-instructions.ts`): a sample
   * lacking some (revived by `refilter`, or recorded by a run killed before synthesis) is held back
   * (`deferred`), since a later build synthesizes it and a shard written now would miss them.
   */
  wanted?: readonly { task: string; variants: number }[];
}

interface SampleRow extends ImageColumns {
  key: string;
  source: string;
  meta_json: string;
}

interface BoxRow {
  sample_key: string;
  label: string;
  x1: number;
  y1: number;
  x2: number;
  y2: number;
  original_json: string | null;
}

function openReadonly(path: string): Db {
  return openDatabase(path, { readonly: true });
}

function parseJson(text: string | null, fallback: unknown): unknown {
  if (text === null) return fallback;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return fallback;
  }
}

const byKey = (row: { sample_key: string }) => row.sample_key;

/** Count of `ok` samples the reader will yield (for progress). */
export function countExportSamples(dbPath: string, options: ExportReaderOptions = {}): number {
  const db = openReadonly(dbPath);
  try {
    const sources = options.sources ?? [];
    const where = sources.length > 0 ? ` AND source IN (${sources.map(() => '?').join(',')})` : '';
    return (db.prepare(`SELECT COUNT(*) AS n FROM samples WHERE status = 'ok'${where}`).get(...sources) as { n: number }).n;
  } finally {
    db.close();
  }
}

/** Stream the run's `ok` samples, ordered by image reference then key, with everything an export needs. */
export async function* readExportSamples(dbPath: string, options: ExportReaderOptions = {}): AsyncGenerator<StoredSample> {
  const batchSize = options.batchSize ?? 256;
  const stream = openReadonly(dbPath);
  const detail = openReadonly(dbPath);
  let rows: IterableIterator<SampleRow> | null = null;
  try {
    const sources = options.sources ?? [];
    const where = sources.length > 0 ? ` AND source IN (${sources.map(() => '?').join(',')})` : '';
    rows = stream
      .prepare(
        `SELECT key, source, image_ref, width, height, format, byte_length, sha256, orientation, meta_json
         FROM samples WHERE status = 'ok'${where} ORDER BY image_ref, key`,
      )
      .iterate(...sources) as IterableIterator<SampleRow>;
    let batch: SampleRow[] = [];
    const emit = (group: SampleRow[]): StoredSample[] => {
      const keys = group.map((r) => r.key);
      const marks = keys.map(() => '?').join(',');
      const captions = groupBy(
        detail
          .prepare(
            `SELECT sample_key, ${CAPTION_COLUMNS} FROM captions
             WHERE sample_key IN (${marks}) ORDER BY sample_key, idx`,
          )
          .all(...keys) as (CaptionRow & { sample_key: string })[],
        byKey,
      );
      const boxes = groupBy(
        detail
          .prepare(`SELECT sample_key, label, x1, y1, x2, y2, original_json FROM boxes WHERE sample_key IN (${marks}) ORDER BY sample_key, idx`)
          .all(...keys) as BoxRow[],
        byKey,
      );
      const instructions = groupBy(
        (
          detail
            .prepare(`SELECT ${INSTRUCTION_COLUMNS} FROM instructions WHERE sample_key IN (${marks}) ORDER BY sample_key, task, variant`)
            .all(...keys) as StoredInstructionRow[]
        ).map(decodeInstructionRow),
        (row) => row.sampleKey,
      );
      return group.map((row) => {
        const sample: StoredSample = {
          key: row.key,
          source: row.source,
          imageRef: row.image_ref,
          imageBytes: null,
          captions: (captions.get(row.key) ?? []).map(captionFromRow),
          boxes: (boxes.get(row.key) ?? []).map((b): Box => {
            const box: Box = { label: b.label, box: [b.x1, b.y1, b.x2, b.y2] };
            const original = parseJson(b.original_json, null);
            if (original) box.original = original as NonNullable<Box['original']>;
            return box;
          }),
          meta: parseJson(row.meta_json, {}) as Record<string, unknown>,
          fate: OPEN,
          image:
            row.width !== null && row.height !== null && row.format !== null
              ? {
                  width: row.width,
                  height: row.height,
                  format: row.format,
                  byteLength: row.byte_length ?? 0,
                  sha256: row.sha256 ?? '',
                  orientation: row.orientation ?? 1,
                }
              : null,
        };
        const rows = instructions.get(row.key) ?? [];
        // Synthesis left for a later run (budget, interruption, rate limits): held back like the build does.
        const unfinished = unfinishedSynthesis(rows);
        if (unfinished) sample.fate = { kind: 'deferred', ...unfinished };
        const lacking = (options.wanted ?? []).filter((w) => rows.filter((i) => i.task === w.task && i.variant < w.variants).length < w.variants);
        if (!unfinished && sample.image && lacking.length > 0) {
          sample.fate = { kind: 'deferred', reason: `synthesis_missing: ${lacking.map((w) => w.task).join(', ')} (vlcurate build synthesizes them)`, stage: 'synth' };
        }
        const own = rows.filter((i) => i.status === 'ok');
        if (own.length > 0) {
          // A row whose JSON does not parse is handed on as is (`decodeInstructionRow`); the export's check fails that record.
          sample.instructions = own.map(
            (i): InstructionSample => ({ sampleKey: i.sampleKey, task: i.task, variant: i.variant, conversations: i.conversations! }),
          );
        }
        return sample;
      });
    };
    for (const row of rows) {
      batch.push(row);
      if (batch.length >= batchSize) {
        const group = batch;
        batch = [];
        yield* emit(group);
      }
    }
    if (batch.length > 0) yield* emit(batch);
  } finally {
    rows?.return?.();
    stream.close();
    detail.close();
  }
}
