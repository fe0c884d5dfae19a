/**
 * Exports that need a look: one that holds no sample, or one that left most of what reached it out for a
 * single reason (every record over `maxLength`, no conversation to tokenize, no caption to train on, ...).
 * A run with such an export did not do what its recipe asked, so the summary names it and the build exits 1.
 *
 * Exports that write conversations record why each record was left out (`export_records`); for a caption
 * export (WebDataset without conversation options) the ok samples it does not hold are what it left out,
 * with the reasons it noted (`export_left_out`). Samples waiting for a later run are not counted: their synthesis or captioning was
 * held back (`--max-cost`, an interrupted run, an LLM error the next run asks again), and the next run
 * writes them.
 */
import { RESUMABLE_LLM_CODES } from '../core/failure-codes.js';
import type { ExportProblem } from '../core/events.js';
import type { Db } from './database.js';
import { heldBackCondition } from './done-rule.js';

export function exportProblems(db: Db, exportNames: readonly string[]): ExportProblem[] {
  const problems: ExportProblem[] = [];
  const writtenOf = db.prepare('SELECT COUNT(*) FROM exports WHERE export_name = ?').pluck();
  const outcomes = db.prepare('SELECT status, code, COUNT(*) AS n FROM export_records WHERE export_name = ? GROUP BY status, code ORDER BY n DESC, code');
  const example = db.prepare('SELECT message FROM export_records WHERE export_name = ? AND code = ? AND message IS NOT NULL LIMIT 1').pluck();
  const resumable = [...RESUMABLE_LLM_CODES];
  const notHeld = `s.status = 'ok' AND NOT EXISTS (SELECT 1 FROM exports e WHERE e.export_name = ? AND e.sample_key = s.key)`;
  const waitingOf = db
    .prepare(
      `SELECT COUNT(*) FROM samples s WHERE ${notHeld} AND EXISTS (SELECT 1 FROM instructions i WHERE i.sample_key = s.key AND i.status = 'failed'
         AND i.code IN (${resumable.map(() => '?').join(',')}))`,
    )
    .pluck();
  const okOf = db.prepare(`SELECT COUNT(*) FROM samples WHERE status = 'ok'`).pluck();
  const leftOutOf = db.prepare('SELECT code, COUNT(*) AS n FROM export_left_out WHERE export_name = ? GROUP BY code ORDER BY n DESC, code LIMIT 1');
  const held = heldBackCondition();
  const heldBack = db.prepare(`SELECT COUNT(*) FROM samples s WHERE ${held.sql}`).pluck().get(...held.params) as number;

  for (const name of exportNames) {
    const written = writtenOf.get(name) as number;
    const rows = outcomes.all(name) as { status: string; code: string | null; n: number }[];
    const top = rows.find((r) => r.status !== 'ok');
    if (top) {
      const total = rows.reduce((sum, r) => sum + r.n, 0);
      const reason = top.code ?? top.status;
      const detail = top.code === null ? undefined : (example.get(name, top.code) as string | undefined);
      const why = `${top.n} of ${total} left out for ${reason}${detail ? ` (${detail})` : ''}`;
      if (written === 0) problems.push({ export: name, kind: 'empty', written, total, reason, count: top.n, message: `export ${name} holds no sample: ${why}` });
      else if (top.n * 2 > total) problems.push({ export: name, kind: 'mostly_left_out', written, total, reason, count: top.n, message: `export ${name}: ${why}` });
      continue;
    }
    // Nothing recorded as left out: count by samples.
    const ok = okOf.get() as number;
    const considered = ok - (waitingOf.get(name, ...resumable) as number);
    const leftOut = considered - written;
    if (written === 0 && considered === 0) {
      if (ok > 0 || heldBack > 0) continue; // every sample that could be exported waits for a later run
      const counts = db.prepare('SELECT status, COUNT(*) AS n FROM samples GROUP BY status ORDER BY status').all() as { status: string; n: number }[];
      const all = counts.reduce((sum, c) => sum + c.n, 0);
      const message =
        all === 0
          ? `export ${name} holds no sample: the sources gave none`
          : `export ${name} holds no sample: none of the run's ${all} samples could be exported (${counts.map((c) => `${c.n} ${c.status}`).join(', ')})`;
      problems.push({ export: name, kind: 'empty', written, total: all, reason: null, count: 0, message });
    } else if (leftOut * 2 > considered) {
      // A caption export notes why it left a sample out (`export_left_out`), not in export_records.
      const top = leftOutOf.get(name) as { code: string; n: number } | undefined;
      const why = top
        ? `${leftOut} of ${considered} ok samples left out (${top.code} ${top.n})`
        : `${leftOut} of ${considered} ok samples left out (the run's log says why)`;
      const kind = written === 0 ? 'empty' : 'mostly_left_out';
      problems.push({ export: name, kind, written, total: considered, reason: top?.code ?? null, count: top?.n ?? leftOut, message: written === 0 ? `export ${name} holds no sample: ${why}` : `export ${name}: ${why}` });
    }
  }
  return problems;
}
