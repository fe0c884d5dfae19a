/**
 * `vlcurate merge` (issue 16 item 4): the part databases of a `--shard I/4` build, merged, are the run a
 * single process makes of the same recipe: after a run-level cut (`refilter --itc-percentile`, which needs
 * every part's scores) the same samples are kept with the same captions, scores and verdicts, the same
 * instruction samples, and an export of the merged database holds the same samples as the single run's.
 * Real CLI processes, the bundled shapes models (ITC + ITM filter, nucleus captioner), real SQLite files,
 * shards read back with node-tar.
 */
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import * as tar from 'tar';
import { generateShapes } from '../../datasets/shapes/index.js';
import { runCli } from './helpers.js';
import { queryRows as query, runContent as content } from './run-content.js';
import { makeImage } from '../fixtures/make-webdataset.js';
import { inShard } from '../../src/core/shard.js';

const MODELS = join(import.meta.dirname, '../../models');
const PARTS = 4;
let dir: string;
let parts: string[];
let whole: string;
/** The single run's records before the tests refilter it. */
let wholeBefore: ReturnType<typeof content>;

function recipe(name: string, overrides: Record<string, unknown> = {}): string {
  const path = join(dir, `${name}.yaml`);
  writeFileSync(
    path,
    stringify({
      run: { db: `${name}/run.db`, commitEvery: 8 },
      sources: [{ type: 'webdataset', name: 'web', paths: 'data/webdataset/shapes-000000.tar' }],
      filter: {
        // High for the shapes CLIP (best caption per image 0.86-0.97): about half the samples dropped.
        itc: { model: join(MODELS, 'shapes-clip'), threshold: 0.92 },
        itm: { model: join(MODELS, 'shapes-itm'), threshold: 0.5 },
        policy: 'both',
      },
      captioner: { type: 'onnx', model: join(MODELS, 'shapes-captioner'), samples: 2, strategy: 'nucleus', topP: 0.9, minLength: 3, maxLength: 24, seed: 0 },
      synth: { tasks: ['stage1'] },
      export: [{ type: 'webdataset', name: 'wds', out: `${name}/wds`, maxCount: 10 }],
      ...overrides,
    }),
  );
  return path;
}

/** Per sample key, its shard members' bytes hashed (name -> sha256), across every shard of a folder. */
async function exportedMembers(folder: string): Promise<Map<string, Record<string, string>>> {
  const out = new Map<string, Record<string, string>>();
  const manifest = JSON.parse(readFileSync(join(folder, 'manifest.json'), 'utf8')) as { shards: { path: string }[]; total: number };
  for (const shard of manifest.shards) {
    await tar.t({
      file: join(folder, shard.path),
      onReadEntry: (entry) => {
        const chunks: Buffer[] = [];
        entry.on('data', (c: Buffer) => chunks.push(c));
        entry.on('end', () => {
          const key = entry.path.split('.')[0]!;
          const member = entry.path.slice(key.length);
          out.set(key, { ...out.get(key), [member]: createHash('sha256').update(Buffer.concat(chunks)).digest('hex') });
        });
      },
    });
  }
  expect(manifest.total).toBe(out.size);
  return out;
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'vlc-merge-'));
  await generateShapes({ out: join(dir, 'data'), count: 40, noise: 0.4, seed: 16, shardSize: 40 });
  const partRecipe = recipe('parts');
  const builds = await Promise.all(Array.from({ length: PARTS }, (_, i) => runCli(['build', partRecipe, '--shard', `${i}/${PARTS}`, '--progress', 'plain'])));
  for (const b of builds) expect(b.code, b.stderr).toBe(0);
  parts = Array.from({ length: PARTS }, (_, i) => join(dir, 'parts', `run-s${i}of${PARTS}.db`));
  const single = await runCli(['build', recipe('whole'), '--progress', 'plain']);
  expect(single.code, single.stderr).toBe(0);
  whole = join(dir, 'whole', 'run.db');
  wholeBefore = content(whole);
}, 240_000);

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('vlcurate merge', () => {
  it('4 parts merged, refiltered with a percentile cut and exported equal the single-process run', async () => {
    const partHashes = parts.map((p) => createHash('sha256').update(readFileSync(p)).digest('hex'));
    const merged = join(dir, 'merged', 'merged.db');
    const result = await runCli(['merge', '--out', merged, ...parts, '--json']);
    expect(result.code, result.stderr).toBe(0);
    const summary = JSON.parse(result.stdout) as { parts: { action: string; counts: { samples: number } }[]; missingShards: string[]; samples: Record<string, number> };
    expect(summary.parts.map((p) => p.action)).toEqual(['added', 'added', 'added', 'added']);
    expect(summary.missingShards).toEqual([]);
    // Every part brought samples (40 keys hashed into 4 parts), and the parts were only read.
    for (const p of summary.parts) expect(p.counts.samples).toBeGreaterThan(0);
    expect(parts.map((p) => createHash('sha256').update(readFileSync(p)).digest('hex'))).toEqual(partHashes);

    // Before any run-level cut, the merged database already equals the single run (same threshold recipe).
    expect(content(merged)).toEqual(wholeBefore);
    expect(wholeBefore.samples).toHaveLength(40);

    // The run-level cut over all parts' scores: same threshold, same decisions as the single run.
    const cut = ['--policy', 'itc', '--itc-percentile', '80'];
    const refMerged = await runCli(['refilter', merged, ...cut, '--json']);
    const refWhole = await runCli(['refilter', whole, ...cut, '--json']);
    expect(refMerged.code, refMerged.stderr).toBe(0);
    expect(refWhole.code, refWhole.stderr).toBe(0);
    const [pm, pw] = [JSON.parse(refMerged.stdout), JSON.parse(refWhole.stdout)];
    expect(pm.policy).toEqual(pw.policy);
    expect({ ...pm, seconds: 0, apply: [] }).toEqual({ ...pw, seconds: 0, apply: [] });
    // The cut is one over all parts: a part's own percentile would differ from it.
    const partCuts = await Promise.all(parts.map(async (p) => JSON.parse((await runCli(['refilter', p, ...cut, '--dry-run', '--json'])).stdout).policy.itcThreshold as number));
    expect(partCuts).toHaveLength(PARTS);
    expect(partCuts.some((c) => c !== pm.policy.itcThreshold)).toBe(true);
    const kept = content(merged).samples.filter((s) => (s as { status: string }).status === 'ok');
    expect(kept.length).toBeGreaterThan(5);
    expect(kept.length).toBeLessThan(40);
    expect(content(merged)).toEqual(content(whole));

    // inspect reads the merged database as a build's.
    const stats = await Promise.all([merged, whole].map((db) => runCli(['inspect', db, 'stats', '--json'])));
    const [sm, sw] = stats.map((s) => JSON.parse(s.stdout) as Record<string, unknown>);
    expect(sm!['samples']).toEqual(sw!['samples']);
    expect(sm!['failures']).toEqual(sw!['failures']);

    // calibrate judges the same scores; report and inspect sql read the merged database.
    const labels = join(dir, 'data', 'ground_truth.jsonl');
    const calibrated = await Promise.all([merged, whole].map((db) => runCli(['calibrate', db, '--labels', labels, '--json'])));
    expect(calibrated[0]!.code, calibrated[0]!.stderr).toBe(0);
    expect(JSON.parse(calibrated[0]!.stdout)).toEqual(JSON.parse(calibrated[1]!.stdout));
    const report = await runCli(['report', merged, '-o', join(dir, 'merged', 'report.html')]);
    expect(report.code, report.stderr).toBe(0);
    const sql = await runCli(['inspect', merged, 'sql', 'SELECT COUNT(*) AS n FROM captions', '--json']);
    expect(sql.code, sql.stderr).toBe(0);
    expect(JSON.parse(sql.stdout)).toEqual([{ n: wholeBefore.captions.length }]);

    // The recipe's export continued from the merged database would write every sample a second time
    // beside the parts' own shards (wds-sIof4-*.tar): refused, the parts' files untouched.
    const partFolder = join(dir, 'parts', 'wds');
    const partFiles = () => readdirSync(partFolder).sort().map((f) => [f, createHash('sha256').update(readFileSync(join(partFolder, f))).digest('hex')]);
    const before = partFiles();
    expect(before.filter(([f]) => /^wds-s\dof4-\d{6}\.tar$/.test(f!)).length).toBeGreaterThanOrEqual(PARTS);
    const beside = await runCli(['export', merged, '--name', 'wds']);
    expect(beside.code).toBe(2);
    expect(beside.stderr).toContain(`${partFolder} holds the files of export "wds" written by the parts of a --shard build`);
    expect(partFiles()).toEqual(before);

    // One export across parts, the same samples and members as the single run's export of its database.
    const outMerged = join(dir, 'merged', 'wds');
    const outWhole = join(dir, 'whole', 'wds-again');
    for (const [db, out] of [[merged, outMerged], [whole, outWhole]] as const) {
      const exported = await runCli(['export', db, '--format', 'webdataset', '--name', 'again', '--out', out]);
      expect(exported.code, exported.stderr).toBe(0);
    }
    const [em, ew] = [await exportedMembers(outMerged), await exportedMembers(outWhole)];
    expect(em.size).toBe(kept.length);
    expect(new Map([...em].sort())).toEqual(new Map([...ew].sort()));
  }, 120_000);

  it('merging the same parts again is a no-op; a part added later joins; a part that changed replaces its rows', async () => {
    const merged = join(dir, 'incremental', 'merged.db');
    const first = await runCli(['merge', '--out', merged, parts[0]!, parts[1]!, '--json']);
    expect(first.code, first.stderr).toBe(0);
    expect(JSON.parse(first.stdout).missingShards).toEqual(['2/4', '3/4']);
    const countAfterTwo = query<{ n: number }>(merged, 'SELECT COUNT(*) AS n FROM samples')[0]!.n;

    const again = await runCli(['merge', '--out', merged, parts[0]!, parts[1]!, parts[1]!, '--json']);
    expect(again.code, again.stderr).toBe(0);
    expect(JSON.parse(again.stdout).parts.map((p: { action: string }) => p.action)).toEqual(['unchanged', 'unchanged', 'repeated']);
    expect(query<{ n: number }>(merged, 'SELECT COUNT(*) AS n FROM samples')[0]!.n).toBe(countAfterTwo);
    expect(query<{ n: number }>(merged, 'SELECT COUNT(*) AS n FROM runs')[0]!.n).toBe(2);

    // Part 2 is rebuilt after a change of its own state (a second, resumed run): merged again, it replaces.
    const rest = await runCli(['merge', '--out', merged, parts[2]!, parts[3]!]);
    expect(rest.code, rest.stderr).toBe(0);
    expect(content(merged)).toEqual(wholeBefore);

    const resumed = await runCli(['build', recipe('parts'), '--shard', `2/${PARTS}`, '--progress', 'plain']);
    expect(resumed.code, resumed.stderr).toBe(0);
    const replaced = await runCli(['merge', '--out', merged, parts[2]!, '--json']);
    expect(replaced.code, replaced.stderr).toBe(0);
    expect(JSON.parse(replaced.stdout).parts[0].action).toBe('replaced');
    expect(content(merged)).toEqual(wholeBefore);
    // The part's runs: the old ones gone, both of its runs now there once.
    expect(query<{ n: number }>(merged, `SELECT COUNT(*) AS n FROM runs WHERE shard = '2/4'`)[0]!.n).toBe(2);
    expect(query<{ n: number }>(merged, 'SELECT COUNT(*) AS n FROM merged_parts')[0]!.n).toBe(4);
  }, 120_000);
});

describe('vlcurate merge and dedup', () => {
  it('says which images samples of different parts share (decode.dedup works within a part)', async () => {
    // Two files with the same bytes whose keys fall into different parts of 2, and one more of each part.
    const folder = join(dir, 'dups', 'images');
    mkdirSync(folder, { recursive: true });
    const names = Array.from({ length: 40 }, (_, i) => `img${i}`);
    const a = names.find((n) => inShard(n, { index: 0, count: 2 }))!;
    const b = names.find((n) => inShard(n, { index: 1, count: 2 }))!;
    const same = await makeImage(32, 32, 'png', 1);
    writeFileSync(join(folder, `${a}.png`), same);
    writeFileSync(join(folder, `${b}.png`), same);
    for (const [i, n] of names.filter((n) => n !== a && n !== b).slice(0, 4).entries()) writeFileSync(join(folder, `${n}.png`), await makeImage(32, 32, 'png', 10 + i));
    const recipePath = join(dir, 'dups', 'recipe.yaml');
    writeFileSync(recipePath, stringify({ run: { db: 'out/run.db' }, sources: [{ type: 'folder', path: 'images' }], decode: { dedup: 'exact' } }));
    for (const i of [0, 1]) expect((await runCli(['build', recipePath, '--shard', `${i}/2`, '--progress', 'plain'])).code).toBe(0);
    const result = await runCli(['merge', '--out', join(dir, 'dups', 'merged.db'), join(dir, 'dups', 'out', 'run-s0of2.db'), join(dir, 'dups', 'out', 'run-s1of2.db'), '--json']);
    expect(result.code, result.stderr).toBe(0);
    expect(JSON.parse(result.stdout).crossPartDuplicates).toEqual({ total: 1, examples: [[a, b].sort()] });
    const plain = await runCli(['merge', '--out', join(dir, 'dups', 'merged2.db'), join(dir, 'dups', 'out', 'run-s0of2.db'), join(dir, 'dups', 'out', 'run-s1of2.db')]);
    expect(plain.stdout).toContain(`1 image(s) are held by samples of different parts (decode.dedup works within a part), e.g. ${[a, b].sort().join(' = ')}; all are kept`);
  }, 60_000);
});

describe('vlcurate merge refuses', () => {
  it('a key held by two parts with different contents: exit 1, both parts named, nothing written', async () => {
    // Part 1 with one sample changed under the key of a part-0 sample.
    const doctored = join(dir, 'conflict', 'other.db');
    mkdirSync(join(dir, 'conflict'), { recursive: true });
    copyFileSync(parts[1]!, doctored);
    const key = query<{ key: string }>(parts[0]!, 'SELECT key FROM samples ORDER BY key LIMIT 1')[0]!.key;
    const handle = new Database(doctored);
    handle.pragma('foreign_keys = OFF');
    const victim = (handle.prepare('SELECT key FROM samples ORDER BY key LIMIT 1').pluck().get() as string);
    for (const [table, column] of [['samples', 'key'], ['captions', 'sample_key'], ['boxes', 'sample_key'], ['instructions', 'sample_key'], ['exports', 'sample_key'], ['export_records', 'sample_key']]) {
      handle.prepare(`UPDATE ${table} SET ${column} = ? WHERE ${column} = ?`).run(key, victim);
    }
    handle.prepare(`UPDATE runs SET started_at = '2000-01-01T00:00:00.000Z'`).run();
    handle.close();
    const merged = join(dir, 'conflict', 'merged.db');
    const result = await runCli(['merge', '--out', merged, parts[0]!, doctored]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(parts[0]!);
    expect(result.stderr).toContain(doctored);
    expect(result.stderr).toContain(JSON.stringify(key));
    expect(result.stderr).toContain('Nothing was merged');
    expect(query<{ n: number }>(merged, 'SELECT COUNT(*) AS n FROM samples')[0]!.n).toBe(0);
    // A key both hold with the same contents is no conflict: the sample is merged once.
    const same = join(dir, 'conflict', 'same.db');
    copyFileSync(parts[0]!, same);
    const h = new Database(same);
    h.prepare(`UPDATE runs SET started_at = '2001-01-01T00:00:00.000Z'`).run();
    h.close();
    const ok = await runCli(['merge', '--out', merged, parts[0]!, same, '--json']);
    expect(ok.code, ok.stderr).toBe(0);
    const counts = JSON.parse(ok.stdout).parts.map((p: { counts: { samples: number; sameSamples: number } }) => p.counts);
    expect(counts[1].samples).toBe(0);
    expect(counts[1].sameSamples).toBe(counts[0].samples);
  }, 60_000);

  it('parts of different recipes name the fields that differ (--force merges them); unfinished parts; a merged database as a part', async () => {
    const other = recipe('other', { filter: { itc: { model: join(MODELS, 'shapes-clip'), threshold: 0.9 }, itm: { model: join(MODELS, 'shapes-itm'), threshold: 0.5 }, policy: 'both' } });
    const built = await runCli(['build', other, '--shard', `3/${PARTS}`, '--progress', 'plain']);
    expect(built.code, built.stderr).toBe(0);
    const otherPart = join(dir, 'other', `run-s3of${PARTS}.db`);
    const merged = join(dir, 'recipes', 'merged.db');
    const refused = await runCli(['merge', '--out', merged, parts[0]!, otherPart]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('filter.itc.threshold: 0.92 vs 0.9');
    expect(refused.stderr).toContain('--force');
    expect(existsSync(merged) ? query<{ n: number }>(merged, 'SELECT COUNT(*) AS n FROM samples')[0]!.n : 0).toBe(0);
    const forced = await runCli(['merge', '--out', merged, parts[0]!, otherPart, '--force']);
    expect(forced.code, forced.stderr).toBe(0);
    expect(forced.stdout).toContain('recipe differs (--force): filter.itc.threshold: 0.92 vs 0.9');

    // A part whose latest run did not finish.
    const unfinished = join(dir, 'recipes', 'unfinished.db');
    copyFileSync(parts[1]!, unfinished);
    const h = new Database(unfinished);
    h.prepare(`UPDATE runs SET status = 'crashed' WHERE id = (SELECT MAX(id) FROM runs)`).run();
    h.close();
    const stopped = await runCli(['merge', '--out', join(dir, 'recipes', 'm2.db'), unfinished]);
    expect(stopped.code).toBe(1);
    expect(stopped.stderr).toContain('is not finished: its latest run is crashed');
    expect((await runCli(['merge', '--out', join(dir, 'recipes', 'm2.db'), unfinished, '--allow-unfinished'])).code).toBe(0);

    // A part of another split (N = 2 among parts of 4).
    const half = join(dir, 'recipes', 'half.db');
    copyFileSync(parts[1]!, half);
    const hh = new Database(half);
    hh.prepare(`UPDATE runs SET shard = '1/2'`).run();
    hh.close();
    const split = await runCli(['merge', '--out', join(dir, 'recipes', 'm5.db'), parts[0]!, half]);
    expect(split.code).toBe(1);
    expect(split.stderr).toContain('is part 1/2, of a split into 2, and the other parts are of a split into 4');

    // Usage errors: exit 2.
    const asPart = await runCli(['merge', '--out', join(dir, 'recipes', 'm3.db'), merged]);
    expect(asPart.code).toBe(2);
    expect(asPart.stderr).toContain('is itself a merged database');
    const intoBuild = await runCli(['merge', '--out', whole, parts[0]!]);
    expect(intoBuild.code).toBe(2);
    expect(intoBuild.stderr).toContain("is a build's run database");
    const missing = await runCli(['merge', '--out', join(dir, 'recipes', 'm4.db'), join(dir, 'nope.db')]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('no such file');
    expect(statSync(whole).isFile()).toBe(true);
  }, 120_000);
});

describe('a run-level cut that revives samples, carried back to the parts', () => {
  // Last in this file: it refilters and rebuilds the parts.
  it('the global threshold laid on each part, the parts rebuilt and merged again, equal a single run refiltered and rebuilt', async () => {
    const merged = join(dir, 'revive', 'merged.db');
    expect((await runCli(['merge', '--out', merged, ...parts])).code).toBe(0);
    // A looser cut than the recipe's: samples the parts dropped are kept now, without their stage-1 samples.
    const cut = ['--policy', 'itc', '--itc-percentile', '5'];
    const refiltered = await runCli(['refilter', merged, ...cut, '--json']);
    expect(refiltered.code, refiltered.stderr).toBe(0);
    const { policy, revived, apply } = JSON.parse(refiltered.stdout) as { policy: { itcThreshold: number }; revived: number; apply: string[] };
    expect(revived).toBeGreaterThan(0);
    // What refilter says to do on a merged database: the cut as thresholds on each part, their builds, the merge again.
    const advice = apply.join('\n');
    expect(advice).toContain(`vlcurate refilter PART.db --policy itc --itc-threshold ${policy.itcThreshold}`);
    expect(advice).toContain('--shard I/N');
    expect(advice).not.toMatch(/`vlcurate build [^`]*` synthesizes them/);
    const flags = advice.match(/`vlcurate refilter PART\.db ([^`]*)`/)![1]!.split(' ');
    const partRecipe = recipe('parts');
    for (const [i, part] of parts.entries()) {
      const r = await runCli(['refilter', part, ...flags]);
      expect(r.code, r.stderr).toBe(0);
      const b = await runCli(['build', partRecipe, '--shard', `${i}/${PARTS}`, '--progress', 'plain']);
      expect(b.code, b.stderr).toBe(0);
    }
    const again = await runCli(['merge', '--out', merged, ...parts, '--json']);
    expect(again.code, again.stderr).toBe(0);
    expect(JSON.parse(again.stdout).parts.map((p: { action: string }) => p.action)).toEqual(['replaced', 'replaced', 'replaced', 'replaced']);
    // The merged database's refilter is still the decision in force (its parts' recipe decides as before).
    const inForce = await runCli(['refilter', merged, '--dry-run', '--json']);
    expect(JSON.parse(inForce.stdout)).toMatchObject({ policy: { policy: 'itc', itcThreshold: policy.itcThreshold }, changed: 0 });

    // The single process: build, the same cut, build again (it synthesizes what revived samples lack).
    const single = recipe('whole2');
    expect((await runCli(['build', single, '--progress', 'plain'])).code).toBe(0);
    const db = join(dir, 'whole2', 'run.db');
    expect((await runCli(['refilter', db, ...cut])).code).toBe(0);
    expect((await runCli(['build', single, '--progress', 'plain'])).code).toBe(0);
    const [m, w] = [content(merged), content(db)];
    expect(m).toEqual(w);
    // Every kept sample has its stage-1 sample in both.
    const keptKeys = m.samples.filter((s) => (s as { status: string }).status === 'ok').map((s) => (s as { key: string }).key);
    const withStage1 = new Set(m.instructions.filter((r) => (r as { status: string }).status === 'ok').map((r) => (r as { sample_key: string }).sample_key));
    expect(keptKeys.length).toBeGreaterThan(0);
    expect(keptKeys.filter((k) => !withStage1.has(k))).toEqual([]);
  }, 240_000);
});
