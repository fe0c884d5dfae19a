/**
 * Exports that need a look: one that holds no sample, or one that left most of what reached it out for a
 * single reason (every record over `maxLength`, no conversation to tokenize, ...). A run with such an export
 * did not do what its recipe asked, so the summary names it and the build exits 1.
 *
 * Not a problem: an export still empty only because its samples wait for a later run (synthesis held
 * back by `--max-cost`, an interrupted run), since the next run writes them.
 */
import type { ExportProblem } from '../core/events.js';
import type { Db } from './database.js';

export function exportProblems(db: Db, exportNames: readonly string[]): ExportProblem[] {
  const problems: ExportProblem[] = [];
  const writtenOf = db.prepare('SELECT COUNT(*) FROM exports WHERE export_name = ?').pluck();
  const outcomes = db.prepare('SELECT status, code, COUNT(*) AS n FROM export_records WHERE export_name = ? GROUP BY status, code ORDER BY n DESC, code');
  const example = db.prepare(`SELECT message FROM export_records WHERE export_name = ? AND code = ? AND message IS NOT NULL LIMIT 1`).pluck();
  const waiting = db
    .prepare(`SELECT COUNT(*) FROM samples s WHERE s.status = 'ok' AND NOT EXISTS (SELECT 1 FROM exports e WHERE e.export_name = ? AND e.sample_key = s.key)`)
    .pluck();
  for (const name of exportNames) {
    const written = writtenOf.get(name) as number;
    const rows = outcomes.all(name) as { status: string; code: string | null; n: number }[];
    const total = rows.reduce((sum, r) => sum + r.n, 0);
    const top = rows.find((r) => r.status !== 'ok');
    const reason = top ? (top.code ?? top.status) : null;
    const detail = top && top.code !== null ? (example.get(name, top.code) as string | undefined) : undefined;
    const why = reason ? `${top!.n} of ${total} left out for ${reason}${detail ? ` (${detail})` : ''}` : '';
    if (written === 0) {
      if (top) {
        problems.push({ export: name, kind: 'empty', written, total, reason, count: top.n, message: `export ${name} holds no sample: ${why}` });
        continue;
      }
      if ((waiting.get(name) as number) > 0) continue;
      const counts = db.prepare('SELECT status, COUNT(*) AS n FROM samples GROUP BY status').all() as { status: string; n: number }[];
      const all = counts.reduce((sum, c) => sum + c.n, 0);
      const by = counts.map((c) => `${c.n} ${c.status}`).join(', ');
      const message = all === 0 ? `export ${name} holds no sample: the sources gave none` : `export ${name} holds no sample: none of the run's ${all} samples could be exported (${by})`;
      problems.push({ export: name, kind: 'empty', written, total: all, reason: null, count: 0, message });
    } else if (top && top.n * 2 > total) {
      problems.push({ export: name, kind: 'mostly_left_out', written, total, reason, count: top.n, message: `export ${name}: ${why}` });
    }
  }
  return problems;
}
