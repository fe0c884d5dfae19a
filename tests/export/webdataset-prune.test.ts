/**
 * Pruning a WebDataset export to the samples kept now (webdataset-prune.ts), at the crash points a child
 * process cannot hit reliably: killed right after the transaction that records the new shard (before its
 * rename), a shard changed on disk, a recorded shard missing. Real SQLite file, real tars read by node-tar.
 */
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { StageEvent } from '../../src/core/events.js';
import { createWebDatasetExport, webdatasetExportSchema, type WebDatasetExportHooks } from '../../src/export/webdataset-export.js';
import type { ExportableSample } from '../../src/export/webdataset-sample.js';
import type { RunStore } from '../../src/store/run-store.js';
import { cleanup, keyRuns, listWithNodeTar, makePairs, openTestStore, runStage, tempDir, type TestStore } from './fixtures.js';

afterEach(cleanup);

function exportStage(store: RunStore, baseDir: string, hooks: WebDatasetExportHooks = {}) {
  const parsed = webdatasetExportSchema.parse({ type: 'webdataset', out: 'wds', maxCount: 4 });
  return createWebDatasetExport<ExportableSample>(parsed, { store, baseDir, shard: { index: 0, count: 1 } }, hooks);
}

const shards = (dir: string) => readdirSync(dir).filter((f) => f.endsWith('.tar')).sort();
/** Sample keys per final shard, read by node-tar. */
const keysByShard = (dir: string) => Object.fromEntries(shards(dir).map((f) => [f, keyRuns(listWithNodeTar(join(dir, f)).map((m) => m.path))]));
const drop = (t: TestStore, keys: string[]) => t.db.prepare(`UPDATE samples SET status = 'dropped', drop_reason = 'no_caption_passed' WHERE key IN (${keys.map(() => '?').join(',')})`).run(...keys);

/** 12 samples exported into 3 shards of 4, then `dropped` refiltered away. */
async function exported(dropped: string[]) {
  const base = tempDir();
  const samples = await makePairs(12);
  const t = openTestStore(base, samples);
  await runStage(exportStage(t.store, base), keptOf(t, samples));
  const dir = join(base, 'wds');
  expect(keysByShard(dir)).toEqual({
    'wds-000000.tar': ['s000', 's001', 's002', 's003'],
    'wds-000001.tar': ['s004', 's005', 's006', 's007'],
    'wds-000002.tar': ['s008', 's009', 's010', 's011'],
  });
  drop(t, dropped);
  return { base, dir, samples, t };
}

/** The export's input as a build or `vlcurate export` gives it: the samples kept now. */
const keptOf = (t: TestStore, samples: ExportableSample[]) => {
  const kept = new Set(t.db.prepare(`SELECT key FROM samples WHERE status = 'ok'`).pluck().all() as string[]);
  return samples.filter((s) => kept.has(s.key));
};

const exportedRows = (t: TestStore) => (t.db.prepare(`SELECT sample_key FROM exports ORDER BY sample_key`).pluck().all() as string[]);

describe('pruning shards to the kept samples', () => {
  it('rewrites the shards holding dropped samples under new names, removes one left empty, keeps the rest byte for byte', async () => {
    const { base, dir, samples, t } = await exported(['s001', 's004', 's005', 's006', 's007']);
    const events: StageEvent[] = [];
    await runStage(exportStage(t.store, base), keptOf(t, samples), events);
    expect(keysByShard(dir)).toEqual({ 'wds-000002.tar': ['s008', 's009', 's010', 's011'], 'wds-000003.tar': ['s000', 's002', 's003'] });
    expect(exportedRows(t)).toEqual(['s000', 's002', 's003', 's008', 's009', 's010', 's011']);
    expect(events).toContainEqual(
      expect.objectContaining({ message: 'export wds: 5 sample(s) no longer kept (refilter) taken out of the shards: rewrote 1 shard(s) keeping their 3 kept samples; removed 1 shard(s) with no kept sample' }),
    );
  });

  it('the name of a shard removed altogether (here the highest) is never given to another shard', async () => {
    const { base, dir, samples, t } = await exported(['s008', 's009', 's010', 's011']);
    await runStage(exportStage(t.store, base), keptOf(t, samples));
    expect(shards(dir)).toEqual(['wds-000000.tar', 'wds-000001.tar']);
    const more = await makePairs(2, 12);
    t.store.writeSamples(t.runId, more);
    await runStage(exportStage(t.store, base), [...keptOf(t, samples), ...more]);
    expect(keysByShard(dir)).toEqual({
      'wds-000000.tar': ['s000', 's001', 's002', 's003'],
      'wds-000001.tar': ['s004', 's005', 's006', 's007'],
      'wds-000003.tar': ['s012', 's013'],
    });
    const manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as { shards: { path: string }[]; total: number };
    expect(manifest.shards.map((s) => s.path)).toEqual(['wds-000000.tar', 'wds-000001.tar', 'wds-000003.tar']);
    expect(manifest.total).toBe(10);
  });

  it('killed after recording the new shard, before its rename: the next run renames it and deletes the old file', async () => {
    const { base, dir, samples, t } = await exported(['s005']);
    const crash = new Error('killed here');
    const hooks: WebDatasetExportHooks = { prune: { afterRecord: () => Promise.reject(crash) } };
    await expect(runStage(exportStage(t.store, base, hooks), keptOf(t, samples))).rejects.toBe(crash);
    // As a kill leaves it: the new shard recorded but still .tmp, the old one on disk but no longer recorded.
    const files = readdirSync(dir).sort();
    expect(files.filter((f) => !f.endsWith('.tmp'))).toEqual(['manifest.json', 'wds-000000.tar', 'wds-000001.tar', 'wds-000002.tar']);
    expect(files.filter((f) => f.endsWith('.tmp'))).toEqual([expect.stringMatching(/^wds-000003\.tar\.\d+\.[0-9a-f]{8}\.tmp$/)]);
    expect(exportedRows(t)).not.toContain('s005');

    const events: StageEvent[] = [];
    await runStage(exportStage(t.store, base), keptOf(t, samples), events);
    expect(events).toContainEqual(expect.objectContaining({ message: expect.stringContaining('recovered 1 recorded shard(s) left as .tmp, removed 1 unrecorded file(s)') }));
    expect(keysByShard(dir)).toEqual({
      'wds-000000.tar': ['s000', 's001', 's002', 's003'],
      'wds-000002.tar': ['s008', 's009', 's010', 's011'],
      'wds-000003.tar': ['s004', 's006', 's007'],
    });
    expect(exportedRows(t)).toHaveLength(11);
  });

  it('refuses to copy a shard changed on disk since it was written, and changes nothing', async () => {
    const { base, dir, samples, t } = await exported(['s005']);
    writeFileSync(join(dir, 'wds-000001.tar'), 'not the shard that was recorded');
    await expect(runStage(exportStage(t.store, base), keptOf(t, samples))).rejects.toThrow(/wds-000001\.tar does not match its recorded shard/);
    expect(exportedRows(t)).toHaveLength(12);
    expect(shards(dir)).toEqual(['wds-000000.tar', 'wds-000001.tar', 'wds-000002.tar']);
    // The next run refuses again, until the file is restored or the export starts over (--fresh).
    await expect(runStage(exportStage(t.store, base), keptOf(t, samples))).rejects.toThrow(/does not match/);
  });

  it('a recorded shard that is missing is forgotten: its kept samples are written again', async () => {
    const { base, dir, samples, t } = await exported(['s005']);
    const { rmSync } = await import('node:fs');
    rmSync(join(dir, 'wds-000001.tar'));
    await runStage(exportStage(t.store, base), keptOf(t, samples));
    expect(existsSync(join(dir, 'wds-000001.tar'))).toBe(false);
    const all = Object.values(keysByShard(dir)).flat().sort();
    expect(all).toEqual(samples.map((s) => s.key).filter((k) => k !== 's005'));
    expect(exportedRows(t)).toEqual(all);
  });

  it('a sample whose record is gone altogether (forgotten key collision) leaves the shard too', async () => {
    const { base, dir, samples, t } = await exported([]);
    t.db.prepare(`DELETE FROM samples WHERE key = 's009'`).run();
    await runStage(exportStage(t.store, base), keptOf(t, samples));
    expect(Object.values(keysByShard(dir)).flat()).not.toContain('s009');
    expect(Object.values(keysByShard(dir)).flat()).toHaveLength(11);
  });
});
