/**
 * `refilter` reaches the files (issue 11). After a refilter, `vlcurate export RUN.db --name NAME` and the
 * next build used to keep the newly dropped samples in the shards (only `--fresh` removed them, calling
 * them "unrecorded files of an interrupted run"). Now every export holds exactly the samples kept now:
 * shards holding a dropped sample are rewritten without it (the others stay byte for byte), revived ones
 * are added once the build has synthesized them, JSON exports lose the records and images of dropped
 * samples; and a re-export killed with SIGKILL at any point ends, once run again, with the kept set exactly
 * once. Real CLI processes, the real shapes ITC model, shards read back with node-tar.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { generateShapes } from '../../datasets/shapes/index.js';
import { keysOf, readShardMembers, runCli } from './helpers.js';

const MODELS = join(import.meta.dirname, '../../models');
let dir: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'vlc-refilter-export-'));
  await generateShapes({ out: join(dir, 'data'), count: 160, noise: 0.4, seed: 11, shardSize: 160 });
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A recipe of its own (database and export folders) per test. */
async function built(name: string, maxCount: number): Promise<{ recipe: string; db: string; wds: string; llava: string }> {
  const recipe = join(dir, `${name}.yaml`);
  writeFileSync(
    recipe,
    stringify({
      run: { db: `${name}/run.db`, commitEvery: 16 },
      sources: [{ type: 'webdataset', name: 'web', paths: 'data/webdataset/shapes-000000.tar' }],
      filter: { itc: { model: join(MODELS, 'shapes-clip'), threshold: 0.3 } },
      synth: { tasks: ['stage1'] },
      export: [
        { type: 'webdataset', name: 'wds', out: `${name}/wds`, maxCount },
        { type: 'llava', name: 'llava', out: `${name}/llava` },
      ],
    }),
  );
  const result = await runCli(['build', recipe, '--progress', 'plain']);
  expect(result.code, result.stderr).toBe(0);
  return { recipe, db: join(dir, name, 'run.db'), wds: join(dir, name, 'wds'), llava: join(dir, name, 'llava') };
}

function query<T>(db: string, sql: string, ...params: unknown[]): T[] {
  const handle = new Database(db, { readonly: true });
  try {
    return handle.prepare(sql).all(...params) as T[];
  } finally {
    handle.close();
  }
}

const okKeys = (db: string) => query<{ key: string }>(db, `SELECT key FROM samples WHERE status = 'ok' ORDER BY key`).map((r) => r.key);
const sha256 = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');
const shardHashes = (folder: string) =>
  new Map(readdirSync(folder).filter((f) => f.endsWith('.tar')).map((f) => [f, sha256(join(folder, f))] as [string, string]));

/** The shards hold `expected` exactly once each; manifest.json lists exactly the shards on disk, hashes and counts right. */
async function expectShardsHold(folder: string, expected: string[]): Promise<void> {
  const members = await readShardMembers(folder);
  const keys = keysOf(members);
  expect(keys.length).toBe(new Set(keys).size);
  expect([...keys].sort()).toEqual(expected);
  // Each sample once: one .json member per key across all shards.
  expect(members.filter((m) => m.member.endsWith('.json'))).toHaveLength(expected.length);
  const manifest = JSON.parse(readFileSync(join(folder, 'manifest.json'), 'utf8')) as { shards: { path: string; count: number; sha256: string }[]; total: number };
  const onDisk = readdirSync(folder).filter((f) => f.endsWith('.tar')).sort();
  expect(manifest.shards.map((s) => s.path).sort()).toEqual(onDisk);
  expect(manifest.total).toBe(expected.length);
  for (const shard of manifest.shards) {
    expect(sha256(join(folder, shard.path))).toBe(shard.sha256);
    expect(keysOf(members.filter((m) => m.shard === shard.path))).toHaveLength(shard.count);
  }
  expect(readdirSync(folder).filter((f) => f.endsWith('.tmp'))).toEqual([]);
}

/** LLaVA JSON records and images/ hold exactly `expected` (stage-1 records: one per sample). */
function expectLlavaHolds(folder: string, expected: string[]): void {
  const records = JSON.parse(readFileSync(join(folder, 'llava-stage1.json'), 'utf8')) as { id: string; image: string }[];
  const keys = records.map((r) => r.image.split('.')[0]!).sort();
  expect(keys).toEqual(expected);
  expect(readdirSync(join(folder, 'images')).map((f) => f.split('.')[0]!).sort()).toEqual(expected);
}

describe('export after refilter', () => {
  it('tighter cut: export --name rewrites only the shards that held a dropped sample; JSON loses their records and images', async () => {
    const { db, wds, llava } = await built('tight', 10);
    const before = shardHashes(wds);
    const keptBefore = okKeys(db);
    await expectShardsHold(wds, keptBefore);

    const refilter = await runCli(['refilter', db, '--itc-threshold', '0.5']);
    expect(refilter.code, refilter.stderr).toBe(0);
    const kept = okKeys(db);
    const dropped = keptBefore.filter((k) => !kept.includes(k));
    expect(dropped.length).toBeGreaterThanOrEqual(3);
    // The shards that hold a newly dropped sample, by the database's record of where each sample went.
    const touched = new Set(
      query<{ path: string }>(
        db,
        `SELECT DISTINCT sh.path FROM exports e JOIN export_shards sh ON sh.export_name = e.export_name AND sh.shard_index = e.shard_index
         WHERE e.export_name = 'wds' AND e.sample_key IN (${dropped.map(() => '?').join(',')})`,
        ...dropped,
      ).map((r) => r.path.split('/').at(-1)!),
    );
    expect(touched.size).toBeLessThan(before.size);
    // refilter says exactly what to run.
    expect(refilter.stdout).toContain(`vlcurate export ${db} --name wds`);
    expect(refilter.stdout).toContain(`vlcurate export ${db} --name llava`);

    // What refilter said to run: the export by name, with the settings the build recorded.
    const exported = await runCli(['export', db, '--name', 'wds']);
    expect(exported.code, exported.stderr).toBe(0);
    expect(exported.stderr).toContain(`export wds: continuing with the settings from the recipe of run 1 (webdataset -> ${wds})`);
    expect(exported.stderr).toContain(`export wds: ${dropped.length} sample(s) no longer kept (refilter) taken out of the shards: rewrote ${touched.size} shard(s)`);
    await expectShardsHold(wds, kept);
    const after = shardHashes(wds);
    // Untouched shards are the same files, byte for byte; each touched one was replaced by a new name.
    for (const [name, hash] of before) {
      if (touched.has(name)) expect(after.has(name)).toBe(false);
      else expect(after.get(name), name).toBe(hash);
    }
    expect(after.size).toBe(before.size);
    console.log(`refilter-export: ${dropped.length} dropped of ${keptBefore.length}; ${touched.size} of ${before.size} shards rewritten`);
    expect(query<{ n: number }>(db, `SELECT COUNT(*) AS n FROM exports WHERE export_name = 'wds'`)[0]!.n).toBe(kept.length);

    const json = await runCli(['export', db, '--name', 'llava']);
    expect(json.code, json.stderr).toBe(0);
    expectLlavaHolds(llava, kept);

    // Running it again changes nothing.
    const again = await runCli(['export', db, '--name', 'wds', '--format', 'webdataset', '--out', wds]);
    expect(again.code).toBe(0);
    expect(again.stderr).not.toContain('taken out');
    expect(shardHashes(wds)).toEqual(after);
  });

  it('looser cut: export holds revived samples back until the build synthesizes them; the build then adds them everywhere', async () => {
    const { recipe, db, wds, llava } = await built('loose', 10);
    const keptBefore = okKeys(db);
    const refilter = await runCli(['refilter', db, '--itc-threshold', '0.05']);
    expect(refilter.code).toBe(0);
    const kept = okKeys(db);
    const revived = kept.filter((k) => !keptBefore.includes(k));
    expect(revived.length).toBeGreaterThanOrEqual(3);
    expect(refilter.stdout).toContain(`vlcurate build`);

    // Their stage-1 samples do not exist yet: a shard written now would lack them.
    const early = await runCli(['export', db, '--name', 'wds', '--format', 'webdataset', '--out', wds, '--json']);
    expect(early.code, early.stderr).toBe(0);
    expect(JSON.parse(early.stdout).deferred).toBe(revived.length);
    await expectShardsHold(wds, keptBefore);

    const build = await runCli(['build', recipe, '--progress', 'plain']);
    expect(build.code, build.stderr).toBe(0);
    expect(okKeys(db)).toEqual(kept);
    await expectShardsHold(wds, kept);
    expectLlavaHolds(llava, kept);
    const members = await readShardMembers(wds);
    for (const key of revived) {
      const json = members.find((m) => m.member === `${key}.json`);
      expect(json, key).toBeDefined();
    }
  });

  it('the next build applies a tighter refilter to every export as well', async () => {
    const { recipe, db, wds, llava } = await built('viabuild', 10);
    expect((await runCli(['refilter', db, '--itc-threshold', '0.5'])).code).toBe(0);
    const build = await runCli(['build', recipe, '--progress', 'plain']);
    expect(build.code, build.stderr).toBe(0);
    expect(build.stderr).toMatch(/export wds: \d+ sample\(s\) no longer kept \(refilter\) taken out of the shards/);
    await expectShardsHold(wds, okKeys(db));
    expectLlavaHolds(llava, okKeys(db));
  });

  it('--fresh says what it removed, not "unrecorded files of an interrupted run"', async () => {
    const { db, wds } = await built('fresh', 40);
    const shards = readdirSync(wds).filter((f) => f.endsWith('.tar')).length;
    const fresh = await runCli(['export', db, '--name', 'wds', '--format', 'webdataset', '--out', wds, '--fresh']);
    expect(fresh.code, fresh.stderr).toBe(0);
    expect(fresh.stderr).toContain(`export wds: --fresh: forgot its ${okKeys(db).length} exported sample(s) and removed ${shards} shard file(s) from ${wds}`);
    expect(fresh.stderr).not.toContain('interrupted run');
    await expectShardsHold(wds, okKeys(db));
  });

  it('a re-export killed with SIGKILL at any point ends, run again, with every kept sample exactly once', async () => {
    const { db, wds, llava } = await built('killed', 3);
    expect((await runCli(['refilter', db, '--itc-threshold', '0.75'])).code).toBe(0);
    const kept = okKeys(db);
    const args = (name: string, format: string, out: string) => ['export', db, '--name', name, '--format', format, '--out', out];
    // Kill as soon as a .tmp file appears (a shard being rewritten, or recorded and not yet renamed), then
    // a little later each time, so the kills land at different points of the rewrite.
    let kills = 0;
    let midRewrite = 0;
    for (const delay of [0, 0, 5, 15, 30, 60, 120]) {
      const result = await runCliKilledAfterTmp(args('wds', 'webdataset', wds), wds, delay, () => midRewrite++);
      if (result === 'killed') kills++;
      else break;
    }
    console.log(`refilter-export kill test: ${kills} kills, ${midRewrite} with a shard .tmp on disk`);
    expect(kills).toBeGreaterThanOrEqual(3);
    expect(midRewrite).toBeGreaterThanOrEqual(2);
    const final = await runCli(args('wds', 'webdataset', wds));
    expect(final.code, final.stderr).toBe(0);
    await expectShardsHold(wds, kept);
    expect(query<{ n: number }>(db, `SELECT COUNT(*) AS n FROM exports WHERE export_name = 'wds'`)[0]!.n).toBe(kept.length);

    for (const delay of [0, 20, 80]) await runCliKilledAfterTmp(args('llava', 'llava', llava), llava, delay, () => undefined, 'json');
    const json = await runCli(args('llava', 'llava', llava));
    expect(json.code, json.stderr).toBe(0);
    expectLlavaHolds(llava, kept);
  });
});

/**
 * Run the CLI and SIGKILL it `delay` ms after a temporary `.EXT` file (a shard being written) first shows up
 * in `folder` (polled every 2 ms); `onMid` is called when one is still there at the kill.
 */
async function runCliKilledAfterTmp(args: string[], folder: string, delay: number, onMid: () => void, ext = 'tar'): Promise<'killed' | 'finished'> {
  // `NAME.tar.PID.RANDOM.tmp` (core/temp-file.ts), or `NAME.tar.tmp`.
  const tmpOf = new RegExp(`\\.${ext}(\\.\\d+\\.[0-9a-f]{8})?\\.tmp$`);
  let timer: NodeJS.Timeout | undefined;
  const result = await runCli(args, {
    onStart: (child) => {
      let seen = false;
      timer = setInterval(() => {
        const tmp = existsSync(folder) && readdirSync(folder).some((f) => tmpOf.test(f));
        if (!seen && tmp) {
          seen = true;
          setTimeout(() => {
            if (child.exitCode !== null) return;
            if (readdirSync(folder).some((f) => tmpOf.test(f))) onMid();
            child.kill('SIGKILL');
          }, delay);
        }
      }, 2);
    },
  });
  clearInterval(timer);
  return result.signal === 'SIGKILL' ? 'killed' : 'finished';
}
