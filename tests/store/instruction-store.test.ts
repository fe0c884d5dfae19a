import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { openDatabase } from '../../src/store/database.js';
import { InstructionStore, instructionReasonText, type InstructionRow } from '../../src/store/instruction-store.js';
import { MIGRATIONS } from '../../src/store/migrations.js';
import { runSummary, showSample } from '../../src/store/queries.js';
import { databaseAtVersion, tempDatabasePath } from './store-fixtures.js';

type Shape = [task: InstructionRow['task'], variant: number, status: InstructionRow['status'], reason: string | null, code: string | null, message: string | null];

/**
 * Reasons as versions up to migration 6 stored them (one "code: message" string), with the code and message
 * migration 7 must split them into: messages holding ": " (an HTTP status line, a model's words), a bare
 * code, an ok row's notes (no code), and texts of no "code: message" shape (kept whole as the message).
 */
const OLD_REASONS: Shape[] = [
  ['detail', 0, 'failed', 'budget_exhausted: --max-cost 1 reached', 'budget_exhausted', '--max-cost 1 reached'],
  ['detail', 1, 'failed', 'http_401: HTTP 401: Incorrect API key provided', 'http_401', 'HTTP 401: Incorrect API key provided'],
  ['detail', 2, 'failed', 'aborted', 'aborted', null],
  ['detail', 3, 'failed', 'no colon here', null, 'no colon here'],
  ['detail', 4, 'failed', 'weird:no space: after the first colon', null, 'weird:no space: after the first colon'],
  ['detail', 5, 'failed', null, null, null],
  ['detail', 6, 'failed', 'server_error: ', 'server_error', ''],
  ['detail', 7, 'failed', ': starts with a colon', null, ': starts with a colon'],
  ['conversation', 0, 'rejected', 'refusal: says: "I cannot" (3 attempts: refusal, refusal, refusal)', 'refusal', 'says: "I cannot" (3 attempts: refusal, refusal, refusal)'],
  ['reasoning', 0, 'ok', 'unsupported_objects: dog; retried: refusal: declines', null, 'unsupported_objects: dog; retried: refusal: declines'],
  ['stage1', 0, 'not_applicable', 'no_caption: the sample has no published caption', 'no_caption', 'the sample has no published caption'],
  ['grounding', 0, 'ok', null, null, null],
];

/** A database made at migration 6 holding `OLD_REASONS` for sample `s`. */
function version6Database(): string {
  const path = tempDatabasePath();
  const old = databaseAtVersion(path, 6, ['s']);
  const insert = old.prepare(`INSERT INTO instructions (sample_key, task, variant, status, reason, created_at) VALUES ('s', ?, ?, ?, ?, 'then')`);
  for (const [task, variant, status, reason] of OLD_REASONS) insert.run(task, variant, status, reason);
  old.close();
  return path;
}

const byTaskVariant = (a: { task: string; variant: number }, b: { task: string; variant: number }) => a.task.localeCompare(b.task) || a.variant - b.variant;
const expectedRows = () =>
  [...OLD_REASONS].sort((a, b) => byTaskVariant({ task: a[0], variant: a[1] }, { task: b[0], variant: b[1] })).map(([task, variant, status, , code, message]) => ({ task, variant, status, code, message }));

describe('instruction rows: code and message stored apart', () => {
  it('writes and reads back code, message, conversations and attempts; an ok row keeps its notes without a code', () => {
    const db = openDatabase(tempDatabasePath());
    db.prepare(`INSERT INTO runs (id, recipe_json, recipe_hash, started_at) VALUES (1, '{}', 'h', 'now')`).run();
    db.prepare(`INSERT INTO samples (key, source, image_ref, status, run_id, updated_at) VALUES ('k', 'src', 'file:k', 'ok', 1, 'now')`).run();
    const store = new InstructionStore(db);
    const turns = [
      { from: 'human' as const, value: '<image>\nWhat is it?' },
      { from: 'gpt' as const, value: 'A dog.' },
    ];
    const rows: InstructionRow[] = [
      { sampleKey: 'k', task: 'conversation', variant: 0, status: 'ok', code: null, message: 'unsupported_objects: cat', conversations: turns, requestHash: 'h1', attempts: 2 },
      { sampleKey: 'k', task: 'detail', variant: 0, status: 'failed', code: 'http_500', message: 'HTTP 500: upstream: timed out', conversations: null, requestHash: null, attempts: 3 },
      { sampleKey: 'k', task: 'detail', variant: 1, status: 'rejected', code: 'leak_caption', message: null, conversations: null, requestHash: 'h2', attempts: 1 },
    ];
    store.write(rows);
    expect(store.rowsFor('k')).toEqual(rows);
    // Rewriting a row replaces it: a later run's answer over an earlier failure.
    store.write([{ ...rows[1]!, status: 'ok', code: null, message: null, conversations: turns }]);
    expect(store.rowsFor('k')[1]).toMatchObject({ task: 'detail', variant: 0, status: 'ok', code: null, message: null, conversations: turns });
    expect(store.samplesFor('k').map((s) => `${s.task}/${s.variant}`)).toEqual(['conversation/0', 'detail/0']);
    db.close();
  });

  it('the computed reason column and instructionReasonText give the same one line for every shape', () => {
    const db = openDatabase(tempDatabasePath());
    db.prepare(`INSERT INTO runs (id, recipe_json, recipe_hash, started_at) VALUES (1, '{}', 'h', 'now')`).run();
    db.prepare(`INSERT INTO samples (key, source, image_ref, status, run_id, updated_at) VALUES ('s', 'src', 'file:s', 'ok', 1, 'now')`).run();
    const store = new InstructionStore(db);
    store.write(OLD_REASONS.map(([task, variant, status, , code, message]) => ({ sampleKey: 's', task, variant, status, code, message, conversations: null, requestHash: null, attempts: 1 })));
    const stored = db.prepare('SELECT task, variant, reason FROM instructions ORDER BY task, variant').all() as { task: string; variant: number; reason: string | null }[];
    const rows = store.rowsFor('s');
    expect(stored).toHaveLength(OLD_REASONS.length);
    expect(rows).toHaveLength(OLD_REASONS.length);
    for (const [i, row] of rows.entries()) {
      const original = OLD_REASONS.find(([task, variant]) => task === row.task && variant === row.variant)![3];
      expect(stored[i]!.reason, `${row.task}/${row.variant}`).toBe(original);
      expect(instructionReasonText(row), `${row.task}/${row.variant}`).toBe(original);
    }
    // `reason` is computed: nothing writes it.
    expect(() => db.prepare(`UPDATE instructions SET reason = 'x'`).run()).toThrow(/generated column/);
    db.close();
  });
});

describe('migration 7: a database made at migration 6', () => {
  it('splits every stored reason into code and message losslessly; the reason column reads as before', () => {
    const path = version6Database();
    const db = openDatabase(path);
    expect(db.pragma('user_version', { simple: true })).toBe(MIGRATIONS.length);
    const rows = new InstructionStore(db).rowsFor('s');
    expect(rows.map(({ task, variant, status, code, message }) => ({ task, variant, status, code, message }))).toEqual(expectedRows());
    const reasons = db.prepare('SELECT task, variant, reason FROM instructions ORDER BY task, variant').all() as { task: string; variant: number; reason: string | null }[];
    expect(reasons).toHaveLength(OLD_REASONS.length);
    for (const { task, variant, reason } of reasons) {
      expect(reason, `${task}/${variant}`).toBe(OLD_REASONS.find((r) => r[0] === task && r[1] === variant)![3]);
    }
    // Summaries count by the stored code; the "stopped" message is the message itself, ": " and all.
    expect(runSummary(db).synthesis).toMatchObject({
      ok: 2,
      failed: 8,
      rejected: 1,
      notApplicable: 1,
      reasons: { budget_exhausted: 1, http_401: 1, aborted: 1, server_error: 1, refusal: 1, failed: 4 },
    });
    db.close();
  });

  it('opened read-only (not migrated), it reads the same codes and messages and stays at version 6', () => {
    const path = version6Database();
    const db = openDatabase(path, { readonly: true });
    const rows = new InstructionStore(db).rowsFor('s');
    expect(rows.map(({ task, variant, status, code, message }) => ({ task, variant, status, code, message }))).toEqual(expectedRows());
    expect(runSummary(db).synthesis).toMatchObject({ failed: 8, reasons: { budget_exhausted: 1, http_401: 1, aborted: 1 } });
    expect(showSample(db, 's')!.instructions.find((r) => r.task === 'detail' && r.variant === 1)).toMatchObject({ reason: 'http_401: HTTP 401: Incorrect API key provided' });
    db.close();
    const raw = new Database(path, { readonly: true });
    expect(raw.pragma('user_version', { simple: true })).toBe(6);
    expect((raw.prepare('PRAGMA table_info(instructions)').all() as { name: string }[]).map((c) => c.name)).toContain('reason');
    expect((raw.prepare('PRAGMA table_info(instructions)').all() as { name: string }[]).map((c) => c.name)).not.toContain('code');
    raw.close();
  });
});
