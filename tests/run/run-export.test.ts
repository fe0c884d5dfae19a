/**
 * The re-export pipeline fed directly (no CLI): a real build over a real tar writes the run database, then
 * `exportRun` writes the export again from it, saying what happens as events.
 */
import { existsSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { exportEventLines } from '../../src/cli/commands/export.js';
import { parseRecipe } from '../../src/config/recipe.js';
import { ConfigError } from '../../src/core/errors.js';
import { exportSchema } from '../../src/export/registry.js';
import { exportRun, reportedFailures, type ExportRunEvent } from '../../src/run/run-export.js';
import { runBuild } from '../../src/run/run-build.js';
import { openDatabase } from '../../src/store/database.js';
import { exportedSampleCount } from '../../src/store/queries.js';
import { expectEvery } from '../expect-every.js';
import { cleanup, tempDir } from '../export/fixtures.js';
import { makeGoodSamples, sampleMembers, writeTar } from '../fixtures/make-webdataset.js';

afterEach(cleanup);

/** A run database built from one tar of 5 samples. */
async function built(): Promise<{ dir: string; db: string; tar: string; keys: string[] }> {
  const dir = tempDir();
  const goods = await makeGoodSamples(5, 0);
  const tar = join(dir, 'shard-000000.tar');
  await writeTar(tar, goods.flatMap(sampleMembers));
  const loaded = parseRecipe({ run: { db: 'run.db' }, sources: [{ type: 'webdataset', paths: 'shard-000000.tar' }] }, 'test', dir);
  for await (const _ of runBuild(loaded, { shard: { index: 0, count: 1 }, signal: new AbortController().signal })) {
    // drain the events
  }
  return { dir, db: join(dir, 'run.db'), tar, keys: goods.map((g) => g.key) };
}

function webdataset(out: string, name = 'wds') {
  return exportSchema.parse({ type: 'webdataset', name, out });
}

describe('exportRun', () => {
  it('writes the export from the database, reports it, and says its progress as events', async () => {
    const { dir, db } = await built();
    const events: ExportRunEvent[] = [];
    const report = await exportRun({ dbPath: db, target: { options: webdataset(join(dir, 'out')), baseDir: dir } }, { onEvent: (e) => events.push(e) });
    expect(report).toMatchObject({ export: 'wds', format: 'webdataset', samplesRead: 5, samplesExported: 5, imageFailures: {}, deferred: 0, aborted: false });
    expect(reportedFailures(report)).toBe(0);
    const progress = events.filter((e) => e.type === 'progress');
    expect(progress.map((e) => (e.type === 'progress' ? e.read : -1))).toEqual([1, 2, 3, 4, 5]);
    expectEvery(progress, (e) => e.type === 'progress' && e.total === 5 && e.exportName === 'wds');
    expect(readdirSync(join(dir, 'out')).filter((f) => f.endsWith('.tar'))).toHaveLength(1);
  });

  it('continues a recorded export by name, and starts it over with fresh', async () => {
    const { dir, db } = await built();
    const out = join(dir, 'out');
    await exportRun({ dbPath: db, target: { options: webdataset(out), baseDir: dir } });
    const events: ExportRunEvent[] = [];
    const again = await exportRun({ dbPath: db, target: { name: 'wds' } }, { onEvent: (e) => events.push(e) });
    expect(again.samplesExported).toBe(5);
    expect(events[0]).toEqual({ type: 'log', level: 'info', message: `export wds: continuing with the settings from its recorded shards (webdataset -> ${out})` });

    const fresh: ExportRunEvent[] = [];
    const redone = await exportRun({ dbPath: db, target: { name: 'wds' }, fresh: true }, { onEvent: (e) => fresh.push(e) });
    expect(redone.samplesExported).toBe(5);
    expect(fresh).toContainEqual({ type: 'log', level: 'info', message: `export wds: --fresh: forgot its 5 exported sample(s) and removed 1 shard file(s) from ${out}` });
  });

  it('a sample whose image cannot be read back is an event with its key and code, counted in the report', async () => {
    const { dir, db, tar, keys } = await built();
    rmSync(tar);
    const events: ExportRunEvent[] = [];
    const report = await exportRun({ dbPath: db, target: { options: webdataset(join(dir, 'out')), baseDir: dir } }, { onEvent: (e) => events.push(e) });
    const failed = events.filter((e) => e.type === 'image_failed');
    expect(failed.map((e) => (e.type === 'image_failed' ? e.key : '')).sort()).toEqual([...keys].sort());
    const code = failed[0]!.type === 'image_failed' ? failed[0]!.code : '';
    expect(code).not.toBe('');
    expect(report.imageFailures).toEqual({ [code]: 5 });
    expect(report.samplesExported).toBe(0);
    expect(reportedFailures(report)).toBe(5);
  });

  it('an unknown recorded name or a missing database is a config error', async () => {
    const { dir, db } = await built();
    await expect(exportRun({ dbPath: db, target: { name: 'nope' } })).rejects.toThrow(ConfigError);
    await expect(exportRun({ dbPath: db, target: { name: 'nope' } })).rejects.toThrow(/records no settings of an export "nope"/);
    const missing = join(dir, 'missing.db');
    await expect(exportRun({ dbPath: missing, target: { name: 'wds' } })).rejects.toThrow(`run database "${missing}" does not exist`);
    expect(existsSync(missing)).toBe(false);
  });

  it('an unreadable stats.json is a warning event, not an error', async () => {
    const { dir, db } = await built();
    const out = join(dir, 'out');
    await exportRun({ dbPath: db, target: { options: webdataset(out), baseDir: dir } });
    writeFileSync(join(out, 'stats.json'), '{not json');
    const events: ExportRunEvent[] = [];
    const report = await exportRun({ dbPath: db, target: { name: 'wds' } }, { onEvent: (e) => events.push(e) });
    expect(report.stats).toBeNull();
    expect(events.some((e) => e.type === 'log' && e.level === 'warn' && e.message.startsWith(`cannot read ${join(out, 'stats.json')}`))).toBe(true);
  });
});

describe('export event lines (the CLI consumer)', () => {
  it('prefixes warnings, shows the first ten image failures, and throttles progress', () => {
    const lines: string[] = [];
    const consume = exportEventLines((line) => lines.push(line));
    consume({ type: 'log', level: 'warn', message: 'careful' });
    consume({ type: 'log', level: 'info', message: 'fine' });
    for (let i = 0; i < 12; i++) consume({ type: 'image_failed', key: `k${i}`, code: 'image_missing', message: 'gone' });
    consume({ type: 'progress', exportName: 'wds', read: 1, total: 9 });
    expect(lines).toEqual(['warning: careful', 'fine', ...Array.from({ length: 10 }, (_, i) => `  k${i}: image_missing: gone`)]);
  });
});

describe('store queries used by the re-export', () => {
  it('the count of exported samples', async () => {
    const { dir, db: dbPath } = await built();
    await exportRun({ dbPath, target: { options: webdataset(join(dir, 'out')), baseDir: dir } });
    const db = openDatabase(dbPath);
    try {
      expect(exportedSampleCount(db, 'wds')).toBe(5);
      expect(exportedSampleCount(db, 'other')).toBe(0);
    } finally {
      db.close();
    }
  });
});
