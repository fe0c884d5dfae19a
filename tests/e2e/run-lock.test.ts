/**
 * One writer per run database, with real processes (issue 11: two builds 0.3 s apart on one recipe and
 * database lost 100 of 2,000 samples: both numbered shards from the same index, one renamed over the other).
 * A build is frozen with SIGSTOP while it holds the lock, so the second and third writers meet it for sure.
 */
import { type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { generateShapes } from '../../datasets/shapes/index.js';
import { readShardMembers, runCli, type CliResult } from './helpers.js';
import { expectEvery } from '../expect-every.js';

let dir: string;
const COUNT = 600;
const live: ChildProcess[] = [];
/** The keys one build alone, with no other writer about, exports (samples without a caption are left out). */
let reference: string[];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'vlc-lock-'));
  await generateShapes({ out: join(dir, 'data'), count: COUNT, noise: 0.4, seed: 11, shardSize: 200 });
  const alone = await runCli(['build', writeRecipe('alone'), '--progress', 'plain']);
  expect(alone.code).toBe(0);
  reference = (await readShardMembers(join(dir, 'alone', 'wds'))).filter((m) => m.member.endsWith('.jpg')).map((m) => m.member.split('.')[0]!).sort();
  expect(reference.length).toBeGreaterThan(COUNT * 0.8);
});

afterAll(() => {
  for (const child of live) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

/** A recipe over the three shapes tars as three sources (as in the issue), small shards so there are many. */
function writeRecipe(name: string, extra: Record<string, unknown> = {}, file = `${name}.yaml`): string {
  const path = join(dir, file);
  writeFileSync(
    path,
    stringify({
      run: { db: `${name}/run.db`, commitEvery: 16 },
      sources: [0, 1, 2].map((i) => ({ type: 'webdataset', name: `web${i}`, paths: `data/webdataset/shapes-00000${i}.tar` })),
      export: [{ type: 'webdataset', name: 'wds', out: `${name}/wds`, maxCount: 30 }],
      ...extra,
    }),
  );
  return path;
}

/**
 * Start a build and freeze it (SIGSTOP) once its first shard is in place (a final name means recorded): it
 * holds the lock, mid-run. `firstShard` is that shard's path.
 */
function startFrozen(args: string[], firstShard: string): { frozen: Promise<ChildProcess>; done: Promise<CliResult> } {
  let onFrozen!: (child: ChildProcess) => void;
  const frozen = new Promise<ChildProcess>((resolve) => (onFrozen = resolve));
  let stopped = false;
  const done = runCli(['build', ...args, '--progress', 'json', '--progress-interval', '20'], {
    onStdoutLine: (line, child) => {
      if (!stopped && line.includes('"progress"') && existsSync(firstShard)) {
        stopped = true;
        child.kill('SIGSTOP');
        live.push(child);
        onFrozen(child);
      }
    },
  });
  // A build that ends before it could be frozen fails the test instead of hanging it.
  void done.then(() => onFrozen(null as unknown as ChildProcess));
  return { frozen, done };
}

/** The refusal: exit 2 and exactly one line naming the database, the holder and what to do. */
function expectRefused(result: CliResult, db: string, holderPid: number): void {
  expect(result.code).toBe(2);
  const lines = result.stderr.trimEnd().split('\n');
  expect(lines).toHaveLength(1);
  expect(lines[0]).toContain(`run database "${db}" is in use by "vlcurate build `);
  expect(lines[0]).toContain(`(pid ${holderPid} on host ${hostname()}, started 20`);
  expect(lines[0]).toContain('wait for it to finish or stop it, then run this command again');
}

/** The shards hold what a lone build exports, each sample once, and agree with the database (records, files, manifest). */
async function expectExactlyOnce(name: string): Promise<void> {
  const out = join(dir, name, 'wds');
  const members = await readShardMembers(out);
  const jpgKeys = members.filter((m) => m.member.endsWith('.jpg')).map((m) => m.member.split('.')[0]!);
  const db = new Database(join(dir, name, 'run.db'), { readonly: true });
  const ok = (db.prepare(`SELECT key FROM samples WHERE status = 'ok' ORDER BY key`).all() as { key: string }[]).map((r) => r.key);
  const exported = (db.prepare(`SELECT sample_key FROM exports WHERE export_name = 'wds' ORDER BY sample_key`).all() as { sample_key: string }[]).map(
    (r) => r.sample_key,
  );
  const shards = db.prepare(`SELECT path, sample_count AS count, sha256 FROM export_shards WHERE export_name = 'wds'`).all() as {
    path: string;
    count: number;
    sha256: string;
  }[];
  db.close();
  expect(ok).toHaveLength(COUNT);
  expect(new Set(jpgKeys).size).toBe(jpgKeys.length);
  expect([...jpgKeys].sort()).toEqual(reference);
  expect(exported).toEqual(reference);
  // One record per file, each file the bytes recorded, and no file that is not recorded.
  expect(new Set(shards.map((s) => s.path)).size).toBe(shards.length);
  for (const shard of shards) expect(createHash('sha256').update(readFileSync(shard.path)).digest('hex')).toBe(shard.sha256);
  expect(readdirSync(out).filter((f) => f.endsWith('.tar')).sort()).toEqual(shards.map((s) => s.path.slice(out.length + 1)).sort());
  expect(readdirSync(out).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  expect(JSON.parse(readFileSync(join(out, 'manifest.json'), 'utf8')).total).toBe(reference.length);
}

describe('one writer per run database', () => {
  it('builds started together: every process runs to the end or stops with exit 2, and no sample is lost or doubled', async () => {
    const recipe = writeRecipe('together');
    const results = await Promise.all([0, 1, 2].map(() => runCli(['build', recipe, '--progress', 'plain'])));
    const codes = results.map((r) => r.code);
    expectEvery(codes, (c) => c === 0 || c === 2, JSON.stringify(results.map((r) => [r.code, r.stderr.slice(-400)])));
    expect(codes).toHaveLength(3);
    expect(codes).toContain(0);
    for (const refused of results.filter((r) => r.code === 2)) {
      expect(refused.stderr.trimEnd().split('\n')).toHaveLength(1);
      expect(refused.stderr).toContain('is in use by "vlcurate build ');
    }
    await expectExactlyOnce('together');
  });

  it('while a build holds the lock: two more builds, export and refilter stop at once; inspect and report read', async () => {
    const recipe = writeRecipe('held');
    const db = join(dir, 'held', 'run.db');
    const first = startFrozen([recipe], join(dir, 'held', 'wds', 'wds-000000.tar'));
    const holder = await first.frozen;
    expect(holder, 'the first build finished before it could be frozen').not.toBeNull();

    const [second, third] = await Promise.all([runCli(['build', recipe, '--progress', 'plain']), runCli(['build', recipe, '--progress', 'plain'])]);
    expectRefused(second, db, holder.pid!);
    expectRefused(third, db, holder.pid!);
    expectRefused(await runCli(['export', db, '--format', 'webdataset', '--out', join(dir, 'held', 'again')]), db, holder.pid!);
    expectRefused(await runCli(['refilter', db, '--itm-threshold', '0.9']), db, holder.pid!);
    expect(existsSync(join(dir, 'held', 'again'))).toBe(false);

    // Readers take no lock and see what the frozen build has committed.
    const stats = await runCli(['inspect', db, 'stats', '--json']);
    expect(stats.code).toBe(0);
    const counts = JSON.parse(stats.stdout);
    expect(counts.samples.total).toBeGreaterThan(0);
    expect(counts.exported.wds).toBeGreaterThanOrEqual(30);
    const report = await runCli(['report', db, '-o', join(dir, 'held', 'report.html')]);
    expect(report.code).toBe(0);
    expect(readFileSync(join(dir, 'held', 'report.html'), 'utf8')).toContain('<html');
    const dryRun = await runCli(['refilter', db, '--itm-threshold', '0.9', '--dry-run']);
    expect(dryRun.code).toBe(0);
    // The same run with template synthesis (no LLM): `estimate` reads the database the build holds.
    const estimate = await runCli(['estimate', writeRecipe('held', { synth: { tasks: ['stage1'] } }, 'held-synth.yaml')]);
    expect(estimate.code).toBe(0);
    expect(estimate.stdout).toContain('without requests: stage1');

    holder.kill('SIGCONT');
    const finished = await first.done;
    expect(finished.code).toBe(0);
    await expectExactlyOnce('held');
    // A clean release leaves no lock files.
    expect(readdirSync(join(dir, 'held')).filter((f) => f.includes('.lock'))).toEqual([]);
  });

  it('a build killed with SIGKILL while holding the lock: the next build resumes without any unlock', async () => {
    const recipe = writeRecipe('killed');
    const db = join(dir, 'killed', 'run.db');
    const first = startFrozen([recipe], join(dir, 'killed', 'wds', 'wds-000000.tar'));
    const holder = await first.frozen;
    expect(holder, 'the first build finished before it could be frozen').not.toBeNull();
    expectRefused(await runCli(['build', recipe, '--progress', 'plain']), db, holder.pid!);
    holder.kill('SIGKILL');
    expect((await first.done).signal).toBe('SIGKILL');
    // The dead holder's files are still there; the kernel released its lock.
    expect(existsSync(`${db}.lock`)).toBe(true);
    expect(JSON.parse(readFileSync(`${db}.lock.json`, 'utf8')).pid).toBe(holder.pid);

    const resumed = await runCli(['build', recipe, '--progress', 'plain']);
    expect(resumed.stderr).not.toContain('in use');
    expect(resumed.code).toBe(0);
    expect(resumed.stderr).toMatch(/resuming \(\d+ already done\)/);
    await expectExactlyOnce('killed');
    expect(existsSync(`${db}.lock`)).toBe(false);
  });

  it('--shard I/N parts have their own databases and locks: one part frozen does not block another', async () => {
    const recipe = writeRecipe('parts');
    const first = startFrozen([recipe, '--shard', '0/2'], join(dir, 'parts', 'wds', 'wds-s0of2-000000.tar'));
    const holder = await first.frozen;
    expect(holder, 'the first part finished before it could be frozen').not.toBeNull();
    const other = await runCli(['build', recipe, '--shard', '1/2', '--progress', 'plain']);
    expect(other.code).toBe(0);
    const same = await runCli(['build', recipe, '--shard', '0/2', '--progress', 'plain']);
    expectRefused(same, join(dir, 'parts', 'run-s0of2.db'), holder.pid!);
    holder.kill('SIGCONT');
    expect((await first.done).code).toBe(0);
    const keys = (await readShardMembers(join(dir, 'parts', 'wds'))).filter((m) => m.member.endsWith('.jpg')).map((m) => m.member);
    expect(keys.map((k) => k.split('.')[0]!).sort()).toEqual(reference);
  });
});
