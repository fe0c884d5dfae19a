/**
 * Instruction samples in the run database (`instructions` table): one row per sample, task and
 * variant, with its status (`ok`, `rejected` after every attempt was rejected, `failed` when no usable
 * answer came back, `not_applicable` when the task has nothing to work from: `no_caption`, `no_boxes`,
 * `no_context`; nobody needs to act on those), the reason (a stable code first, e.g. `leak_caption: ...`, `budget_exhausted: ...`,
 * or flags on an ok sample such as `unsupported_objects: dog`), the conversation, the hash of the last
 * request (its raw answer is in `llm_cache`) and the number of attempts.
 */
import type { InstructionSample, InstructionTask, Turn } from '../core/conversation.js';
import type { Db } from './database.js';
import { nowIso } from './database.js';

export type InstructionStatus = 'ok' | 'rejected' | 'failed' | 'not_applicable';

export interface InstructionRow {
  sampleKey: string;
  task: InstructionTask;
  variant: number;
  status: InstructionStatus;
  reason: string | null;
  conversations: Turn[] | null;
  requestHash: string | null;
  attempts: number;
}

/** The stable code a reason starts with (`leak_caption: mentions "caption"` -> `leak_caption`). */
export function reasonCode(reason: string | null): string | null {
  if (reason === null) return null;
  const colon = reason.indexOf(':');
  return (colon >= 0 ? reason.slice(0, colon) : reason).trim();
}

/** The order samples of one image are listed in: LLM tasks, then template tasks. */
const TASK_ORDER: readonly InstructionTask[] = ['imported', 'conversation', 'detail', 'reasoning', 'stage1', 'grounding', 'referring'];

export class InstructionStore {
  private readonly upsert;
  private readonly selectForSample;

  constructor(readonly db: Db) {
    this.upsert = db.prepare(`
      INSERT INTO instructions (sample_key, task, variant, status, reason, conversations_json, request_hash, attempts, created_at)
      VALUES (@sampleKey, @task, @variant, @status, @reason, @conversationsJson, @requestHash, @attempts, @createdAt)
      ON CONFLICT(sample_key, task, variant) DO UPDATE SET
        status = excluded.status, reason = excluded.reason, conversations_json = excluded.conversations_json,
        request_hash = excluded.request_hash, attempts = excluded.attempts, created_at = excluded.created_at`);
    this.selectForSample = db.prepare(`
      SELECT sample_key AS sampleKey, task, variant, status, reason, conversations_json AS conversationsJson,
             request_hash AS requestHash, attempts
      FROM instructions WHERE sample_key = ? ORDER BY task, variant`);
  }

  /** Write rows in one transaction, replacing what an earlier run wrote for the same sample, task and variant. */
  write(rows: readonly InstructionRow[]): void {
    if (rows.length === 0) return;
    const createdAt = nowIso();
    this.db.transaction(() => {
      for (const row of rows) {
        this.upsert.run({
          sampleKey: row.sampleKey,
          task: row.task,
          variant: row.variant,
          status: row.status,
          reason: row.reason,
          conversationsJson: row.conversations ? JSON.stringify(row.conversations) : null,
          requestHash: row.requestHash,
          attempts: row.attempts,
          createdAt,
        });
      }
    })();
  }

  rowsFor(sampleKey: string): InstructionRow[] {
    return (this.selectForSample.all(sampleKey) as (Omit<InstructionRow, 'conversations'> & { conversationsJson: string | null })[]).map(
      ({ conversationsJson, ...row }) => ({ ...row, conversations: conversationsJson ? (JSON.parse(conversationsJson) as Turn[]) : null }),
    );
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
        .prepare(`SELECT sample_key AS key, reason FROM instructions WHERE status = 'failed' AND sample_key IN (${chunk.map(() => '?').join(',')})`)
        .all(...chunk) as { key: string; reason: string | null }[];
      for (const row of rows) {
        const code = reasonCode(row.reason);
        if (code !== null && resumableCodes.has(code)) out.add(row.key);
      }
    }
    return out;
  }

  /** Rows per task and status, for summaries: `{conversation: {ok: 10, rejected: 1}}`. */
  counts(): Record<string, Record<string, number>> {
    const out: Record<string, Record<string, number>> = {};
    for (const row of this.db.prepare('SELECT task, status, COUNT(*) AS n FROM instructions GROUP BY task, status ORDER BY task, status').all() as {
      task: string;
      status: string;
      n: number;
    }[]) {
      (out[row.task] ??= {})[row.status] = row.n;
    }
    return out;
  }

  /** Failure and rejection reasons by code: `{leak_caption: 3, budget_exhausted: 12}`. */
  reasonCounts(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const row of this.db.prepare(`SELECT reason FROM instructions WHERE status != 'ok' AND reason IS NOT NULL`).all() as { reason: string }[]) {
      const code = reasonCode(row.reason)!;
      out[code] = (out[code] ?? 0) + 1;
    }
    return out;
  }
}
