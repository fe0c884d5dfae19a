/**
 * `vlcurate inspect` on a small scored run (tests/report/make-run.ts), through the built CLI: every
 * `samples` filter and order is checked against the same answer computed in JavaScript from the raw
 * tables, and `stats` against counts taken directly.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase } from '../../src/store/database.js';
import { CLI, runCli } from '../e2e/helpers.js';
import { makeScoredRun, type MadeRun } from '../report/make-run.js';

let dir: string;
let run: MadeRun;

interface Row {
  key: string;
  status: string;
  error_code: string | null;
  drop_reason: string | null;
  source: string;
  best_itc: number | null;
  best_itm: number | null;
  origins: string[];
}
let all: Row[];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'vlc-inspect-'));
  run = await makeScoredRun(dir, 40);
  const db = openDatabase(run.db, { readonly: true });
  const samples = db.prepare('SELECT key, status, error_code, drop_reason, source FROM samples').all() as Row[];
  const captions = db.prepare('SELECT sample_key, origin, itc, itm FROM captions').all() as { sample_key: string; origin: string; itc: number | null; itm: number | null }[];
  db.close();
  const max = (a: number | null, b: number | null) => (a === null ? b : b === null ? a : Math.max(a, b));
  all = samples.map((s) => {
    const own = captions.filter((c) => c.sample_key === s.key);
    return {
      ...s,
      best_itc: own.reduce<number | null>((m, c) => max(m, c.itc), null),
      best_itm: own.reduce<number | null>((m, c) => max(m, c.itm), null),
      origins: own.map((c) => c.origin),
    };
  });
}, 120_000);

afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function samples(...args: string[]): Promise<Row[]> {
  const result = await runCli(['inspect', run.db, 'samples', ...args, '--json']);
  expect(result.code, result.stderr).toBe(0);
  return JSON.parse(result.stdout) as Row[];
}

const keys = (rows: { key: string }[]) => rows.map((r) => r.key);
const byKey = (a: Row, b: Row) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0);
/** Descending by score, nulls last, ties by key. */
const desc = (field: 'best_itc' | 'best_itm') => (a: Row, b: Row) =>
  (a[field] === null ? 1 : 0) - (b[field] === null ? 1 : 0) || (b[field] ?? 0) - (a[field] ?? 0) || byKey(a, b);
const asc = (field: 'best_itc' | 'best_itm') => (a: Row, b: Row) =>
  (a[field] === null ? 1 : 0) - (b[field] === null ? 1 : 0) || (a[field] ?? 0) - (b[field] ?? 0) || byKey(a, b);

describe('inspect samples filters', () => {
  it('--status failed keeps the JSON contract', async () => {
    const rows = await samples('--status', 'failed');
    expect(rows).toEqual([expect.objectContaining({ key: 'broken_000', status: 'failed', error_code: 'image_truncated', error_message: expect.any(String) })]);
  });

  it('--status, --reason, --origin, --limit', async () => {
    const dropped = all.filter((r) => r.status === 'dropped').sort(byKey);
    expect(dropped.length).toBeGreaterThan(2);
    expect(keys(await samples('--status', 'dropped', '--limit', '1000'))).toEqual(keys(dropped));
    expect(keys(await samples('--reason', 'no_caption_passed', '--limit', '1000'))).toEqual(keys(dropped));
    expect(keys(await samples('--reason', 'image_truncated'))).toEqual(['broken_000']);
    const annotated = all.filter((r) => r.origins.includes('annotation')).sort(byKey);
    expect(keys(await samples('--origin', 'annotation'))).toEqual(keys(annotated));
    expect(keys(await samples('--limit', '3'))).toEqual(keys([...all].sort(byKey).slice(0, 3)));
  });

  it('--min-itm and --max-itc filter on the best scores, --order sorts by them', async () => {
    const minItm = all.filter((r) => r.best_itm !== null && r.best_itm >= 0.8).sort(desc('best_itm'));
    expect(minItm.length).toBeGreaterThan(3);
    expect(keys(await samples('--min-itm', '0.8', '--order', '-itm', '--limit', '1000'))).toEqual(keys(minItm));
    const maxItc = all.filter((r) => r.best_itc !== null && r.best_itc <= 0.3).sort(asc('best_itc'));
    expect(maxItc.length).toBeGreaterThan(1);
    expect(keys(await samples('--max-itc', '0.3', '--order', 'itc', '--limit', '1000'))).toEqual(keys(maxItc));
    const top = [...all].sort(desc('best_itc')).slice(0, 5);
    const rows = await samples('--order', '-itc', '--limit', '5');
    expect(keys(rows)).toEqual(keys(top));
    expect(rows[0]!.best_itc).toBeCloseTo(top[0]!.best_itc!);
    // Filters combine.
    const combined = all.filter((r) => r.status === 'ok' && r.best_itm !== null && r.best_itm >= 0.6).sort(asc('best_itm'));
    expect(keys(await samples('--status', 'ok', '--min-itm', '0.6', '--order', 'itm', '--limit', '1000'))).toEqual(keys(combined));
  });

  it('refuses bad filter values with the flag, the value and what was expected', async () => {
    const bad = await runCli(['inspect', run.db, 'samples', '--order', 'best']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--order: expected one of key | itm | -itm | itc | -itc | updated, got "best"');
    const nan = await runCli(['inspect', run.db, 'samples', '--min-itm', 'high']);
    expect(nan.code).toBe(2);
    expect(nan.stderr).toContain('--min-itm: expected a number, got "high"');
    const origin = await runCli(['inspect', run.db, 'samples', '--origin', 'human']);
    expect(origin.code).toBe(2);
    expect(origin.stderr).toContain('--origin: expected one of web | annotation | synthetic, got "human"');
  });
});

describe('inspect stats', () => {
  it('--json: the contract plus per-stage failures, verdicts by origin, score quantiles, instructions', async () => {
    const result = await runCli(['inspect', run.db, 'stats', '--json']);
    expect(result.code).toBe(0);
    const stats = JSON.parse(result.stdout);
    const dropped = all.filter((r) => r.status === 'dropped').length;
    expect(stats.samples).toEqual({ total: 41, ok: 40 - dropped, failed: 1, dropped });
    expect(stats.failures).toEqual({ image_truncated: 1 });
    expect(stats.exported).toEqual({ wds: 40 });
    expect(stats.failuresByStage).toEqual({ decode: { image_truncated: 1 } });
    expect(stats.dropReasons).toEqual({ no_caption_passed: dropped });
    expect(stats.captions.byOrigin).toEqual({ annotation: 1, synthetic: 120, web: 40 });
    const db = openDatabase(run.db, { readonly: true });
    const kept = db.prepare(`SELECT origin, SUM(kept = 1) AS k FROM captions GROUP BY origin`).all() as { origin: string; k: number | null }[];
    const itm = (db.prepare('SELECT itm FROM captions WHERE itm IS NOT NULL ORDER BY itm').all() as { itm: number }[]).map((r) => r.itm);
    db.close();
    for (const { origin, k } of kept) expect(stats.captions.verdictsByOrigin[origin].kept).toBe(k ?? 0);
    expect(stats.captions.kept).toBe(kept.reduce((s, r) => s + (r.k ?? 0), 0));
    expect(stats.scores.itm).toMatchObject({ count: itm.length, min: itm[0], max: itm.at(-1), p50: itm[Math.floor(0.5 * (itm.length - 1))] });
    expect(stats.instructions).toEqual({ conversation: { ok: 6 }, detail: { ok: 6 } });
  });

  it('human tables by default', async () => {
    const result = await runCli(['inspect', run.db, 'stats']);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^samples {2}41 total {2}\d+ ok {2}1 failed {2}\d+ dropped$/m);
    expect(result.stdout).toMatch(/failures by stage\nstage\s+code\s+count\n[- ]+\ndecode\s+image_truncated\s+1/);
    expect(result.stdout).toMatch(/captions\norigin\s+count\s+kept\s+rejected\s+undecided/);
    expect(result.stdout).toMatch(/^synthetic\s+120\s+\d+\s+\d+\s+0$/m);
    expect(result.stdout).toMatch(/scores\nscore\s+count\s+min\s+p10\s+p50\s+p90\s+max\s+mean/);
    expect(result.stdout).toMatch(/instructions\ntask\s+ok\n[- ]+\nconversation\s+6\ndetail\s+6/);
  });

  it('show KEY gives captions with scores and verdicts, boxes, instructions and the export', async () => {
    const key = all.find((r) => r.status === 'ok')!.key;
    const result = await runCli(['inspect', run.db, 'show', key]);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/captions\nidx\s+origin\s+itc\s+itm\s+kept\s+reason/);
    expect(result.stdout).toMatch(/boxes\nidx\s+label\s+x1\s+y1\s+x2\s+y2/);
    expect(result.stdout).toMatch(/instructions\ntask\s+variant\s+status\s+reason\n[- ]+\nconversation\s+0\s+ok/);
    expect(result.stdout).toMatch(/exports\nexport_name\s+shard_index\s+position\s+path\n[- ]+\nwds\s+0\s+\d+\s+\S+wds-000000\.tar/);
    // The source's metadata (img2dataset json, COCO record, duplicateOf, ...) on one line.
    expect(result.stdout).toMatch(/^meta {5}\{.*\}$/m);
  });
});

describe('inspect sql on queries that fail at run time', () => {
  it('SQLite runtime errors, ATTACH and DETACH: one line each, exit 2, no stack', async () => {
    const other = join(dir, 'other.db');
    openDatabase(other).close();
    const cases: [string, string][] = [
      ["SELECT load_extension('libc.so.6')", 'vlcurate: sql: not authorized (inspect sql cannot load extensions)\n'],
      ['SELECT zeroblob(2000000000)', 'vlcurate: sql: string or blob too big (a value is larger than SQLite allows) [SQLITE_TOOBIG]\n'],
      ['SELECT abs(-9223372036854775808)', 'vlcurate: sql: integer overflow\n'],
      [`ATTACH '${join(dir, 'nope.db')}' AS x`, 'vlcurate: sql: ATTACH is not allowed: inspect sql reads the run database it is given; to query another database, inspect that one\n'],
      // An existing database attached "worked" (an empty table) and was no use: one statement per call.
      [`/* a comment */ attach '${other}' AS x`, 'vlcurate: sql: ATTACH is not allowed: inspect sql reads the run database it is given; to query another database, inspect that one\n'],
      ['DETACH main', 'vlcurate: sql: DETACH is not allowed: inspect sql reads the run database it is given; to query another database, inspect that one\n'],
    ];
    for (const [query, message] of cases) {
      const result = await runCli(['inspect', run.db, 'sql', query]);
      expect({ query, code: result.code, stderr: result.stderr, stdout: result.stdout }).toEqual({ query, code: 2, stderr: message, stdout: '' });
    }
  });

  it('a blob is shown by its size; a table on a terminal stops at 10000 rows and says so; piped or --json, every row', async () => {
    const blob = await runCli(['inspect', run.db, 'sql', 'SELECT zeroblob(3) AS b, 7 AS n', '--json']);
    expect(blob.code).toBe(0);
    expect(JSON.parse(blob.stdout)).toEqual([{ b: '<blob 3 bytes>', n: 7 }]);
    const count = 'WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 10005) SELECT x FROM c';
    // On a terminal (a pseudo-terminal from util-linux `script`; stdout and stderr both land in it).
    const tty = spawnSync('script', ['-qec', `${JSON.stringify(process.execPath)} ${JSON.stringify(CLI)} inspect ${JSON.stringify(run.db)} sql "${count}"`, '/dev/null'], { encoding: 'utf8', maxBuffer: 64 << 20 });
    expect(tty.status).toBe(0);
    const ttyLines = tty.stdout.replace(/\r\n/g, '\n').trimEnd().split('\n');
    expect(ttyLines).toHaveLength(2 + 10_000 + 1);
    expect(ttyLines.at(-2)!.trim()).toBe('10000');
    expect(ttyLines.at(-1)).toBe('vlcurate: sql: the first 10000 rows are shown; add a LIMIT, or use --json for all of them');
    // Piped into a file or a program: cutting the table there would lose rows without anyone seeing the note.
    const table = await runCli(['inspect', run.db, 'sql', count]);
    expect(table.code).toBe(0);
    const lines = table.stdout.trimEnd().split('\n');
    expect(lines).toHaveLength(2 + 10_005);
    expect(lines.at(-1)!.trim()).toBe('10005');
    expect(table.stderr).toBe('');
    const json = await runCli(['inspect', run.db, 'sql', count, '--json']);
    expect(json.code).toBe(0);
    const rows = JSON.parse(json.stdout) as { x: number }[];
    expect(rows).toHaveLength(10_005);
    expect(rows.at(-1)).toEqual({ x: 10_005 });
    const none = await runCli(['inspect', run.db, 'sql', 'SELECT key FROM samples WHERE 0', '--json']);
    expect(JSON.parse(none.stdout)).toEqual([]);
  });
});
