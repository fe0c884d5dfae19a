/**
 * Instruction samples in the run database (`instructions` table): one row per sample, task and
 * variant, with its status (`ok`, `rejected` after every attempt was rejected, `failed` when no usable
 * answer came back, `not_applicable` when the task has nothing to work from: `no_caption`, `no_boxes`,
 * `no_context`; nobody needs to act on those), why (a stable `code` such as `leak_caption` or
 * `budget_exhausted`, and a `message`; an ok row has no code and may have notes as its message, such as
 * `unsupported_objects: dog`), the conversation, the hash of the last request (its raw answer is in
 * `llm_cache`) and the number of attempts. This file holds the one codec between rows and the table.
 */
import type { InstructionSample, InstructionTask, Turn } from '../core/conversation.js';
import type { Statement } from 'better-sqlite3';
import type { Db } from './database.js';
import { nowIso } from './database.js';

export type InstructionStatus = 'ok' | 'rejected' | 'failed' | 'not_applicable';

export interface InstructionRow {
  sampleKey: string;
  task: InstructionTask;
  variant: number;
  status: InstructionStatus;
  /** Why the row is not ok (`leak_caption`, `budget_exhausted`, ...); null on an ok row. */
  code: string | null;
  /** What happened (`mentions "caption"`), or an ok row's notes; null when there is nothing to say. */
  message: string | null;
  conversations: Turn[] | null;
  requestHash: string | null;
  attempts: number;
}

/**
 * The reason as one line for people (`leak_caption: mentions "caption"`); the table's computed `reason`
 * column (migration 7) gives the same text.
 */
export function instructionReasonText(row: { code: string | null; message: string | null }): string | null {
  if (row.code === null) return row.message;
  return row.message === null ? row.code : `${row.code}: ${row.message}`;
}

/** The columns an instruction row is read from, in `decodeInstructionRow`'s names. */
export const INSTRUCTION_COLUMNS =
  'sample_key AS sampleKey, task, variant, status, code, message, conversations_json AS conversationsJson, request_hash AS requestHash, attempts';

/** A row as the table gives it (`INSTRUCTION_COLUMNS`). */
export interface StoredInstructionRow extends Omit<InstructionRow, 'conversations'> {
  conversationsJson: string | null;
}

/**
 * A stored row as an `InstructionRow`. Conversations whose JSON does not parse are handed on as the text
 * stored (typed as turns): the export's record check fails that record with its cause.
 */
export function decodeInstructionRow({ conversationsJson, ...row }: StoredInstructionRow): InstructionRow {
  let conversations: Turn[] | null = null;
  if (conversationsJson !== null) {
    try {
      conversations = JSON.parse(conversationsJson) as Turn[];
    } catch {
      conversations = conversationsJson as unknown as Turn[];
    }
  }
  return { ...row, conversations };
}

/** The order samples of one image are listed in: LLM tasks, then template tasks. */
const TASK_ORDER: readonly InstructionTask[] = ['imported', 'conversation', 'detail', 'reasoning', 'stage1', 'grounding', 'referring'];

export class InstructionStore {
  private upsert: Statement | undefined;
  private readonly selectForSample;

  constructor(readonly db: Db) {
    this.selectForSample = db.prepare(`SELECT ${INSTRUCTION_COLUMNS} FROM instructions WHERE sample_key = ? ORDER BY task, variant`);
  }

  /** Prepared on the first write: a read-only database of an older schema reads instructions through a view. */
  private upsertStatement(): Statement {
    return (this.upsert ??= this.db.prepare(`
      INSERT INTO instructions (sample_key, task, variant, status, code, message, conversations_json, request_hash, attempts, created_at)
      VALUES (@sampleKey, @task, @variant, @status, @code, @message, @conversationsJson, @requestHash, @attempts, @createdAt)
      ON CONFLICT(sample_key, task, variant) DO UPDATE SET
        status = excluded.status, code = excluded.code, message = excluded.message, conversations_json = excluded.conversations_json,
        request_hash = excluded.request_hash, attempts = excluded.attempts, created_at = excluded.created_at`));
  }

  /** Write rows in one transaction, replacing what an earlier run wrote for the same sample, task and variant. */
  write(rows: readonly InstructionRow[]): void {
    if (rows.length === 0) return;
    const createdAt = nowIso();
    const upsert = this.upsertStatement();
    this.db.transaction(() => {
      for (const row of rows) {
        upsert.run({
          sampleKey: row.sampleKey,
          task: row.task,
          variant: row.variant,
          status: row.status,
          code: row.code,
          message: row.message,
          conversationsJson: row.conversations ? JSON.stringify(row.conversations) : null,
          requestHash: row.requestHash,
          attempts: row.attempts,
          createdAt,
        });
      }
    })();
  }

  rowsFor(sampleKey: string): InstructionRow[] {
    return (this.selectForSample.all(sampleKey) as StoredInstructionRow[]).map(decodeInstructionRow);
  }

  /** The ok instruction samples of a sample, as exports use them. */
  samplesFor(sampleKey: string): InstructionSample[] {
    return this.rowsFor(sampleKey)
      .filter((row) => row.status === 'ok' && row.conversations)
      .sort((a, b) => TASK_ORDER.indexOf(a.task) - TASK_ORDER.indexOf(b.task) || a.variant - b.variant)
      .map((row) => ({ sampleKey: row.sampleKey, task: row.task, variant: row.variant, conversations: row.conversations! }));
  }

  /**
   * Of `keys`, the samples with work a later run should redo: a task that failed with one of
   * `resumableCodes` (budget exhausted, interrupted, server trouble). Resume must not skip them.
   */
  unfinishedKeys(keys: readonly string[], resumableCodes: ReadonlySet<string>): Set<string> {
    const out = new Set<string>();
    const CHUNK = 500;
    for (let i = 0; i < keys.length; i += CHUNK) {
      const chunk = keys.slice(i, i + CHUNK);
      const rows = this.db
        .prepare(`SELECT sample_key AS key, code FROM instructions WHERE status = 'failed' AND sample_key IN (${chunk.map(() => '?').join(',')})`)
        .all(...chunk) as { key: string; code: string | null }[];
      for (const row of rows) if (row.code !== null && resumableCodes.has(row.code)) out.add(row.key);
    }
    return out;
  }
}
