/**
 * Reading a run database in the end-to-end tests that compare runs (merged parts vs one process, a moved
 * part vs an uninterrupted one): rows by SQL, and what a run decided without row ids and times.
 */
import Database from 'better-sqlite3';

export function queryRows<T>(db: string, sql: string, ...params: unknown[]): T[] {
  const handle = new Database(db, { readonly: true });
  try {
    return handle.prepare(sql).all(...params) as T[];
  } finally {
    handle.close();
  }
}

/** What a run decided, independent of row ids and times: samples, captions with scores, boxes, instruction samples. */
export function runContent(db: string) {
  return {
    samples: queryRows(db, 'SELECT key, source, status, error_code, drop_reason, sha256, width, height, meta_json FROM samples ORDER BY key'),
    captions: queryRows(db, 'SELECT sample_key, idx, origin, text, model, itc, itm, kept, reason FROM captions ORDER BY sample_key, idx'),
    boxes: queryRows(db, 'SELECT sample_key, idx, label, x1, y1, x2, y2 FROM boxes ORDER BY sample_key, idx'),
    instructions: queryRows(db, 'SELECT sample_key, task, variant, status, code, conversations_json FROM instructions ORDER BY sample_key, task, variant'),
  };
}
