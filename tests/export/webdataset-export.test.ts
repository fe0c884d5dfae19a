import { spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { StageEvent } from '../../src/core/events.js';
import { inShard } from '../../src/core/shard.js';
import type { ShardSpec } from '../../src/core/shard.js';
import {
  createWebDatasetExport,
  recoverShards,
  webdatasetExportSchema,
  type Manifest,
  type WebDatasetExportHooks,
} from '../../src/export/webdataset-export.js';
import type { ExportableSample } from '../../src/export/webdataset-sample.js';
import type { RunStore } from '../../src/store/run-store.js';
import {
  cleanup,
  extractWithNodeTar,
  failedPair,
  gnuNames,
  keyRuns,
  listWithNodeTar,
  makePairs,
  openTestStore,
  runStage,
  sha256File,
  stageContext,
  tempDir,
  tmpOf,
} from './fixtures.js';
import { expectEvery } from '../expect-every.js';

afterEach(cleanup);

function exportStage(
  store: RunStore,
  baseDir: string,
  options: Record<string, unknown> = {},
  shard: ShardSpec = { index: 0, count: 1 },
  hooks: WebDatasetExportHooks = {},
) {
  const parsed = webdatasetExportSchema.parse({ type: 'webdataset', out: 'wds', maxCount: 5, ...options });
  return createWebDatasetExport<ExportableSample>(parsed, { store, baseDir, shard }, hooks);
}

function tarFiles(dir: string): string[] {
  return readdirSync(dir).filter((f) => f.endsWith('.tar')).sort();
}

/** Every sample key in the folder's final shards, in order, read by GNU tar. */
function exportedKeysOnDisk(dir: string): string[] {
  return tarFiles(dir).flatMap((f) => keyRuns(gnuNames(join(dir, f))));
}

function readManifest(path: string): Manifest {
  return JSON.parse(readFileSync(path, 'utf8')) as Manifest;
}

/** The manifest agrees with the files: same shards, sizes, hashes recomputed, counts from node-tar. */
function expectManifestMatchesFiles(dir: string, manifestFile = 'manifest.json', prefix = 'wds-'): Manifest {
  const manifest = readManifest(join(dir, manifestFile));
  expect(manifest.shards.map((s) => s.path)).toEqual(tarFiles(dir).filter((f) => f.startsWith(prefix)));
  for (const shard of manifest.shards) {
    const file = join(dir, shard.path);
    expect(sha256File(file)).toBe(shard.sha256);
    expect(statSync(file).size).toBe(shard.bytes);
    expect(keyRuns(listWithNodeTar(file).map((m) => m.path))).toHaveLength(shard.count);
  }
  expect(manifest.total).toBe(manifest.shards.reduce((sum, s) => sum + s.count, 0));
  return manifest;
}

function exportRowCount(store: RunStore, name = 'wds'): number {
  return (store.db.prepare('SELECT COUNT(*) AS n FROM exports WHERE export_name = ?').get(name) as { n: number }).n;
}

describe('WebDataset export stage', () => {
  it('exports ok samples once, passes every sample on unchanged, and writes a matching manifest', async () => {
    const base = tempDir();
    const ok = await makePairs(12);
    const dropped: ExportableSample = { ...(await makePairs(1, 50))[0]!, fate: { kind: 'dropped', reason: 'no caption kept', stage: 'filter' } };
    const input = [...ok.slice(0, 6), failedPair('bad1'), dropped, ...ok.slice(6), failedPair('bad2')];
    const { store } = openTestStore(base, input);
    const stage = exportStage(store, base);
    expect(stage.name).toBe('export:wds');

    const out = await runStage(stage, input);
    expect(out).toHaveLength(input.length);
    out.forEach((sample, i) => expect(sample).toBe(input[i]));

    const dir = join(base, 'wds');
    expect(tarFiles(dir)).toEqual(['wds-000000.tar', 'wds-000001.tar', 'wds-000002.tar']);
    expect(exportedKeysOnDisk(dir)).toEqual(ok.map((s) => s.key));
    const manifest = expectManifestMatchesFiles(dir);
    expect(manifest).toMatchObject({ export: 'wds', format: 'webdataset', total: 12 });
    expect(manifest.shards.map((s) => s.count)).toEqual([5, 5, 2]);

    // The store holds exactly the ok samples, each in the shard and at the position where it is on disk.
    expect(exportRowCount(store)).toBe(12);
    const rows = store.db
      .prepare('SELECT sample_key AS key, shard_index AS shard, position FROM exports ORDER BY shard_index, position')
      .all() as { key: string; shard: number; position: number }[];
    expect(rows.map((r) => r.key)).toEqual(ok.map((s) => s.key));
    expect(rows[5]).toEqual({ key: ok[5]!.key, shard: 1, position: 0 });
    const recorded = store.shards('wds');
    expect(recorded.map((r) => r.path)).toEqual(tarFiles(dir).map((f) => join(dir, f)));
    expect(recorded.map((r) => r.sha256)).toEqual(manifest.shards.map((s) => s.sha256));

    // The extracted json describes the sample and the image is the original bytes.
    const extracted = extractWithNodeTar(join(dir, 'wds-000000.tar'));
    expect(Buffer.compare(readFileSync(join(extracted, `${ok[0]!.key}.png`)), ok[0]!.imageBytes!)).toBe(0);
    expect(JSON.parse(readFileSync(join(extracted, `${ok[0]!.key}.json`), 'utf8'))).toMatchObject({ key: ok[0]!.key, format: 'png' });
    expect(readFileSync(join(extracted, `${ok[0]!.key}.txt`), 'utf8')).toBe('a picture number 0');
  });

  it('gives byte-identical shards for the same samples in two runs', async () => {
    const samples = await makePairs(9);
    const hashes: string[][] = [];
    for (let run = 0; run < 2; run++) {
      const base = tempDir();
      const { store } = openTestStore(base, samples);
      await runStage(exportStage(store, base, { maxCount: 4 }), samples);
      hashes.push(readManifest(join(base, 'wds', 'manifest.json')).shards.map((s) => s.sha256));
    }
    expect(hashes[0]).toHaveLength(3);
    expect(hashes[0]).toEqual(hashes[1]);
  });

  it('rolls shards by maxSize given as text', async () => {
    const base = tempDir();
    const samples = await makePairs(6);
    const { store } = openTestStore(base, samples);
    await runStage(exportStage(store, base, { maxCount: 1000, maxSize: '8KiB' }), samples);
    const manifest = expectManifestMatchesFiles(join(base, 'wds'));
    // Each small sample takes about 2.5 kB of tar: a few fit in 8 KiB, never all six.
    expect(manifest.shards.length).toBeGreaterThan(1);
    expect(manifest.shards.length).toBeLessThan(6);
    for (const s of manifest.shards) expect(s.bytes).toBeLessThanOrEqual(8192);
    expect(manifest.total).toBe(6);
  });

  it('writes nothing new when run again over the same samples, and continues numbering for new ones', async () => {
    const base = tempDir();
    const first = await makePairs(7);
    const { store } = openTestStore(base, first);
    await runStage(exportStage(store, base), first);
    const dir = join(base, 'wds');
    const before = readManifest(join(dir, 'manifest.json'));
    const mtimes = tarFiles(dir).map((f) => statSync(join(dir, f)).mtimeMs);

    const again = await runStage(exportStage(store, base), first);
    expect(again).toHaveLength(7);
    expect(readManifest(join(dir, 'manifest.json'))).toEqual(before);
    expect(tarFiles(dir).map((f) => statSync(join(dir, f)).mtimeMs)).toEqual(mtimes);
    expect(exportRowCount(store)).toBe(7);

    // A later run with old and new samples mixed exports only the new ones, in new shards.
    const more = await makePairs(4, 100);
    store.writeSamples(1, more);
    await runStage(exportStage(store, base), [...first.slice(0, 3), ...more, ...first.slice(3)]);
    expect(tarFiles(dir)).toEqual(['wds-000000.tar', 'wds-000001.tar', 'wds-000002.tar']);
    expect(keyRuns(gnuNames(join(dir, 'wds-000002.tar')))).toEqual(more.map((s) => s.key));
    expect(exportedKeysOnDisk(dir).sort()).toEqual([...first, ...more].map((s) => s.key).sort());
    expect(expectManifestMatchesFiles(dir).total).toBe(11);
  });

  it('exports a key seen twice in the input once', async () => {
    const base = tempDir();
    const samples = await makePairs(3);
    const { store } = openTestStore(base, samples);
    const input = [samples[0]!, samples[1]!, samples[0]!, samples[2]!, samples[1]!];
    const out = await runStage(exportStage(store, base, { maxCount: 2 }), input);
    expect(out).toHaveLength(5);
    expect(exportedKeysOnDisk(join(base, 'wds'))).toEqual(['s000', 's001', 's002']);
  });

  it('recovers from a crash between recording a shard and renaming it', async () => {
    const base = tempDir();
    const samples = await makePairs(12);
    const { store } = openTestStore(base, samples);
    const dir = join(base, 'wds');
    let recorded = 0;
    const crashing = exportStage(store, base, {}, { index: 0, count: 1 }, {
      afterRecord: () => {
        if (++recorded === 2) throw new Error('killed after recordShard');
      },
    });
    await expect(runStage(crashing, samples)).rejects.toThrow('killed after recordShard');
    // Shard 0 is final; shard 1 is recorded but still .tmp; nothing else was started.
    const left = readdirSync(dir).sort();
    expect(left).toHaveLength(2);
    expect(left[0]).toBe('wds-000000.tar');
    expect(left[1]).toMatch(tmpOf('wds-000001.tar'));
    expect(store.shards('wds').map((s) => s.shardIndex)).toEqual([0, 1]);
    expect(exportRowCount(store)).toBe(10);

    const events: StageEvent[] = [];
    await runStage(exportStage(store, base), samples, events);
    expect(events).toContainEqual(expect.objectContaining({ type: 'log', level: 'info', message: expect.stringContaining('recovered 1') }));
    expect(readdirSync(dir).sort()).toEqual(['manifest.json', 'wds-000000.tar', 'wds-000001.tar', 'wds-000002.tar']);
    const keys = exportedKeysOnDisk(dir);
    expect(keys).toEqual(samples.map((s) => s.key));
    expect(new Set(keys).size).toBe(12);
    expect(exportRowCount(store)).toBe(12);
    expect(expectManifestMatchesFiles(dir).total).toBe(12);
  });

  it('deletes unrecorded leftovers of its prefix and re-exports their samples exactly once', async () => {
    const base = tempDir();
    const samples = await makePairs(8);
    const dir = join(base, 'wds');

    // Another database exported the same samples: its shards are complete but unknown to our store,
    // like the files of a process killed before recordShard, or of a deleted run database.
    const other = tempDir();
    const { store: otherStore } = openTestStore(other, samples);
    await runStage(exportStage(otherStore, other, { maxCount: 3 }), samples);

    const { store } = openTestStore(base, samples);
    await runStage(exportStage(store, base, { maxCount: 4 }), samples.slice(0, 4)); // records wds-000000
    copyFileSync(join(other, 'wds', 'wds-000001.tar'), join(dir, 'wds-000001.tar')); // unrecorded final
    copyFileSync(join(other, 'wds', 'wds-000002.tar'), join(dir, 'wds-000005.tar')); // unrecorded final
    writeFileSync(join(dir, 'wds-000003.tar.tmp'), 'partial tar of a killed process'); // unrecorded tmp
    writeFileSync(join(dir, 'wds-000000.tar.tmp'), 'stale copy beside a recorded final');
    // Files that are not this prefix's shards stay untouched.
    writeFileSync(join(dir, 'wds-s0of2-000000.tar'), 'another process');
    writeFileSync(join(dir, 'notes.tar'), 'user file');

    const events: StageEvent[] = [];
    await runStage(exportStage(store, base, { maxCount: 4 }), samples, events);
    expect(events).toContainEqual(expect.objectContaining({ type: 'log', message: expect.stringContaining('removed 4') }));
    expect(readdirSync(dir).sort()).toEqual(['manifest.json', 'notes.tar', 'wds-000000.tar', 'wds-000001.tar', 'wds-s0of2-000000.tar']);
    const keys = ['wds-000000.tar', 'wds-000001.tar'].flatMap((f) => keyRuns(gnuNames(join(dir, f))));
    expect(keys).toEqual(samples.map((s) => s.key));
    expect(expectManifestMatchesFiles(dir, 'manifest.json', 'wds-0').total).toBe(8);
  });

  it('renames a recorded .tmp only when it matches the record', async () => {
    const base = tempDir();
    const samples = await makePairs(3);
    const { store } = openTestStore(base, samples);
    await runStage(exportStage(store, base), samples);
    const dir = join(base, 'wds');
    const shard = join(dir, 'wds-000000.tar');
    const good = readFileSync(shard);

    // (a) A recorded shard left as .tmp is renamed.
    renameSync(shard, `${shard}.tmp`);
    const report = await recoverShards({ dir, prefix: 'wds', exportName: 'wds', store });
    expect(report).toEqual({ renamed: ['wds-000000.tar'], deleted: [], missing: [], inUse: [], nextIndex: 1 });
    expect(Buffer.compare(readFileSync(shard), good)).toBe(0);
    expect(existsSync(`${shard}.tmp`)).toBe(false);

    // A .tmp that differs from what was recorded is refused, not published.
    renameSync(shard, `${shard}.tmp`);
    const tampered = Buffer.from(good);
    tampered[600] = (tampered[600]! + 1) % 256;
    writeFileSync(`${shard}.tmp`, tampered);
    await expect(recoverShards({ dir, prefix: 'wds', exportName: 'wds', store })).rejects.toThrow(/does not match its recorded shard/);
    expect(existsSync(shard)).toBe(false);

    // A recorded shard gone entirely is reported missing.
    rmSync(`${shard}.tmp`);
    expect((await recoverShards({ dir, prefix: 'wds', exportName: 'wds', store })).missing).toEqual(['wds-000000.tar']);
  });

  it('finishes the partial shard when the input ends early (abort)', async () => {
    const base = tempDir();
    const samples = await makePairs(9);
    const { store } = openTestStore(base, samples);
    const controller = new AbortController();
    // The runner's source stops pulling on abort, so the stage simply sees its input end.
    async function* source() {
      for (const s of samples) {
        if (controller.signal.aborted) return;
        yield s;
        if (s.key === 's006') controller.abort();
      }
    }
    const stage = exportStage(store, base);
    const out: ExportableSample[] = [];
    for await (const s of stage.run(source(), { ...stageContext(), signal: controller.signal })) out.push(s);
    expect(out).toHaveLength(7);
    const dir = join(base, 'wds');
    expect(exportedKeysOnDisk(dir)).toEqual(samples.slice(0, 7).map((s) => s.key));
    expect(expectManifestMatchesFiles(dir).total).toBe(7);
    expect(readdirSync(dir).some((f) => f.endsWith('.tmp'))).toBe(false);
  });

  it('records what it passed on when the consumer stops early', async () => {
    const base = tempDir();
    const samples = await makePairs(8);
    const { store } = openTestStore(base, samples);
    const out: string[] = [];
    for await (const s of exportStage(store, base, { maxCount: 3 }).run((async function* () { yield* samples; })(), stageContext())) {
      out.push(s.key);
      if (out.length === 4) break;
    }
    expect(exportedKeysOnDisk(join(base, 'wds'))).toEqual(out);
    expect(store.handledKeys('wds', samples.map((s) => s.key))).toEqual(new Set(out));
  });

  it('leaves an unrecorded .tmp when it fails mid-shard, which the next run removes', async () => {
    const base = tempDir();
    const samples = await makePairs(4);
    const { store } = openTestStore(base, samples);
    // A key that breaks the Pair invariant stops the stage after two samples went into the open shard.
    const broken = { ...samples[3]!, key: 'not.valid' };
    await expect(runStage(exportStage(store, base), [samples[0]!, samples[1]!, broken])).rejects.toThrow(/"not\.valid"/);
    const dir = join(base, 'wds');
    expect(exportRowCount(store)).toBe(0);
    const left = readdirSync(dir);
    expect(left).toHaveLength(1);
    expect(left[0]).toMatch(tmpOf('wds-000000.tar'));

    await runStage(exportStage(store, base), samples);
    expect(exportedKeysOnDisk(dir)).toEqual(samples.map((s) => s.key));
    expect(readdirSync(dir).sort()).toEqual(['manifest.json', 'wds-000000.tar']);
    expect(exportRowCount(store)).toBe(4);
  });

  it('lets --shard processes share one folder and one database without collisions', async () => {
    const base = tempDir();
    const samples = await makePairs(20);
    const { store, path } = openTestStore(base, samples);
    const { openDatabase } = await import('../../src/store/database.js');
    const { RunStore: Store } = await import('../../src/store/run-store.js');
    const secondStore = new Store(openDatabase(path)); // a second connection, as a second process has
    const specs: ShardSpec[] = [
      { index: 0, count: 2 },
      { index: 1, count: 2 },
    ];
    await Promise.all(
      specs.map((spec, i) =>
        runStage(exportStage(i === 0 ? store : secondStore, base, { maxCount: 3 }, spec), samples.filter((s) => inShard(s.key, spec))),
      ),
    );
    const dir = join(base, 'wds');
    const files = readdirSync(dir).sort();
    expect(files).toContain('manifest-s0of2.json');
    expect(files).toContain('manifest-s1of2.json');
    expect(files).not.toContain('manifest.json');
    expectEvery(files.filter((f) => f.endsWith('.tar')), (f) => /^wds-s[01]of2-\d{6}\.tar$/.test(f));
    expect(files).toContain('wds-s1of2-000000.tar');

    const m0 = expectManifestMatchesFiles(dir, 'manifest-s0of2.json', 'wds-s0of2-');
    const m1 = expectManifestMatchesFiles(dir, 'manifest-s1of2.json', 'wds-s1of2-');
    expect(m0.total + m1.total).toBe(20);
    const keys = exportedKeysOnDisk(dir);
    expect(keys.sort()).toEqual(samples.map((s) => s.key).sort());
    const indices = store.shards('wds').map((s) => s.shardIndex);
    expect(new Set(indices).size).toBe(indices.length);
    expect(indices.length).toBe(m0.shards.length + m1.shards.length);
  });
});

describe('defence in depth: two writers that the run lock did not keep apart', () => {
  // The CLI holds the run database's lock (store/run-lock.ts); these stages run without it, as two
  // processes would on a file system whose POSIX locks do not work (issue 11: `export_shards` recorded two
  // shard indices with the same path, and the later shard's rename overwrote the earlier one).
  it('never gives one file name to two shards, never writes into or renames over another writer\'s file', async () => {
    const base = tempDir();
    const samples = await makePairs(24);
    const { store, path } = openTestStore(base, samples);
    const { openDatabase } = await import('../../src/store/database.js');
    const { RunStore: Store } = await import('../../src/store/run-store.js');
    const second = new Store(openDatabase(path)); // a second connection, as a second process has
    // Same export, same folder, same prefix; each writer has its own samples (as two sources would).
    const halves = [samples.filter((_, i) => i % 2 === 0), samples.filter((_, i) => i % 2 === 1)];
    await Promise.all([runStage(exportStage(store, base, { maxCount: 3 }), halves[0]!), runStage(exportStage(second, base, { maxCount: 3 }), halves[1]!)]);

    const dir = join(base, 'wds');
    const records = store.shards('wds');
    expect(records).toHaveLength(8);
    expect(new Set(records.map((r) => r.path)).size).toBe(records.length);
    for (const record of records) expect(sha256File(record.path)).toBe(record.sha256);
    expect(tarFiles(dir)).toEqual(records.map((r) => r.path.slice(dir.length + 1)).sort());
    const keys = exportedKeysOnDisk(dir);
    expect(keys).toHaveLength(24);
    expect(keys.sort()).toEqual(samples.map((s) => s.key).sort());
    expect(exportRowCount(store)).toBe(24);
    expect(readdirSync(dir).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });

  it('recovery removes the temporary shards of dead writers only, and numbers new shards after the live ones', async () => {
    const base = tempDir();
    const samples = await makePairs(2);
    const { store } = openTestStore(base, samples);
    const dir = join(base, 'wds');
    mkdirSync(dir);
    const sleeper = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)'], { stdio: 'ignore' });
    try {
      const live = `wds-000007.tar.${sleeper.pid}.0a1b2c3d.tmp`;
      const dead = `wds-000003.tar.${2 ** 22 + 999}.0a1b2c3d.tmp`; // above Linux's pid_max: no such process
      const mine = `wds-000004.tar.${process.pid}.0a1b2c3d.tmp`; // our pid, but not ours: left by a dead process that had it
      const legacy = 'wds-000005.tar.tmp'; // an older vlcurate's name
      for (const name of [live, dead, mine, legacy]) writeFileSync(join(dir, name), 'partial');
      const events: StageEvent[] = [];
      await runStage(exportStage(store, base), samples, events);
      expect(readdirSync(dir).sort()).toEqual(['manifest.json', 'wds-000008.tar', live].sort());
      expect(events).toContainEqual(
        expect.objectContaining({ type: 'log', level: 'warn', message: expect.stringContaining(`belong to another live process (${live})`) }),
      );
      expect(exportedKeysOnDisk(dir)).toEqual(samples.map((s) => s.key));

      sleeper.kill('SIGKILL');
      await new Promise((r) => sleeper.once('exit', r));
      const report = await recoverShards({ dir, prefix: 'wds', exportName: 'wds', store });
      expect(report.deleted).toEqual([live]);
      expect(report.inUse).toEqual([]);
      expect(report.nextIndex).toBe(9);
    } finally {
      sleeper.kill('SIGKILL');
    }
  });
});

describe('webdatasetExportSchema', () => {
  it('fills documented defaults', () => {
    expect(webdatasetExportSchema.parse({ type: 'webdataset', out: 'out/wds' })).toEqual({
      type: 'webdataset',
      name: 'wds',
      out: 'out/wds',
      maxCount: 10000,
      maxSize: '1GB',
    });
  });

  it('rejects bad values with the option named', () => {
    const bad = webdatasetExportSchema.safeParse({ type: 'webdataset', out: 'x', maxSize: 'lots' });
    expect(bad.success).toBe(false);
    expect(bad.error?.issues[0]?.message).toContain('`maxSize`');
    expect(bad.error?.issues[0]?.path).toEqual(['maxSize']);
    expect(webdatasetExportSchema.safeParse({ type: 'webdataset', out: 'x', name: 'a.b' }).success).toBe(false);
    expect(webdatasetExportSchema.safeParse({ type: 'webdataset', out: 'x', maxCount: 0 }).success).toBe(false);
    expect(webdatasetExportSchema.safeParse({ type: 'webdataset', out: 'x', maxcount: 5 }).success).toBe(false);
  });

  it('uses the prefix option for file names and the name for the store', async () => {
    const base = tempDir();
    const samples = await makePairs(2);
    const { store } = openTestStore(base, samples);
    await runStage(exportStage(store, base, { name: 'train', prefix: 'shapes' }), samples);
    expect(tarFiles(join(base, 'wds'))).toEqual(['shapes-000000.tar']);
    expect(readManifest(join(base, 'wds', 'manifest.json')).export).toBe('train');
    expect(exportRowCount(store, 'train')).toBe(2);
  });

});

describe('caption exports read by the obvious loader', () => {
  /**
   * webdataset's reader, as `wds.WebDataset(url).to_tuple("jpg;png", "txt")` groups and picks members
   * (webdataset/tariterators.py: keys split by base_plus_ext at the first dot of the file name; to_tuple raises
   * ValueError "Didn't find ... in ..." when a sample lacks a field).
   */
  function toTuple(file: string, fields: string[]): string[][] {
    const samples = new Map<string, Map<string, string>>();
    for (const member of listWithNodeTar(file)) {
      const match = /^((?:.*\/|)[^.]+)[.]([^/]*)$/.exec(member.path);
      if (!match) continue;
      if (!samples.has(match[1]!)) samples.set(match[1]!, new Map());
      samples.get(match[1]!)!.set(match[2]!, member.path);
    }
    return [...samples].map(([key, members]) =>
      fields.map((field) => {
        const found = field.split(';').find((ext) => members.has(ext));
        if (found === undefined) throw new Error(`Didn't find ${field} in ${[...members.keys()].join(', ')} (key ${key})`);
        return members.get(found)!;
      }),
    );
  }

  it('a caption export writes only samples with a caption to train on, each with key.txt, and counts the rest', async () => {
    const base = tempDir();
    const samples = await makePairs(4);
    samples[1] = { ...samples[1]!, captions: [] };
    samples[2] = { ...samples[2]!, captions: [{ ...samples[2]!.captions[0]!, text: '   ' }] };
    const { store } = openTestStore(base, samples);
    const events: StageEvent[] = [];
    await runStage(exportStage(store, base), samples, events);
    const dir = join(base, 'wds');
    const tuples = tarFiles(dir).flatMap((f) => toTuple(join(dir, f), ['jpg;png;webp', 'txt']));
    expect(tuples.map(([image, text]) => [image, text])).toEqual([
      [`${samples[0]!.key}.png`, `${samples[0]!.key}.txt`],
      [`${samples[3]!.key}.png`, `${samples[3]!.key}.txt`],
    ]);
    expect(store.handledKeys('wds', samples.map((s) => s.key))).toEqual(new Set(samples.map((s) => s.key)));
    expect(store.db.prepare('SELECT sample_key, code FROM export_left_out ORDER BY sample_key').all()).toEqual([
      { sample_key: samples[1]!.key, code: 'no_caption' },
      { sample_key: samples[2]!.key, code: 'no_caption' },
    ]);
    expect(events.some((e) => e.type === 'log' && e.level === 'warn' && /wds: 2 sample\(s\) left out \(no_caption 2\)/.test(e.message))).toBe(true);
    // A resume does not offer the left-out samples again (before, each run read, decoded and left them out anew).
    const before = tarFiles(dir).map((f) => readFileSync(join(dir, f)));
    const again: StageEvent[] = [];
    await runStage(exportStage(store, base), samples, again);
    expect(again.some((e) => e.type === 'log' && /left out/.test(e.message))).toBe(false);
    expect(tarFiles(dir).map((f) => readFileSync(join(dir, f)))).toEqual(before);
  });
});
