/**
 * Two sources that yield the same keys (two img2dataset outputs both number from 000000000): the first
 * source keeps its samples, the second's colliding samples become `key_duplicate` failures under keys of
 * their own, nothing is overwritten or written twice, and a resumed run does no work again.
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import * as tar from 'tar';
import { afterEach, describe, expect, it } from 'vitest';
import { runBuild } from '../../src/run/run-build.js';
import { parseRecipe } from '../../src/config/recipe.js';
import type { PipelineEvent } from '../../src/core/events.js';
import { openDatabase } from '../../src/store/database.js';
import { makeGoodSamples, sampleMembers, writeTar } from '../fixtures/make-webdataset.js';
import { cleanup, tempDir } from '../export/fixtures.js';
import { expectEvery } from '../expect-every.js';

afterEach(cleanup);

async function build(dir: string, recipe: unknown): Promise<PipelineEvent[]> {
  const events: PipelineEvent[] = [];
  const loaded = parseRecipe(recipe, 'test', dir);
  for await (const event of runBuild(loaded, { shard: { index: 0, count: 1 }, signal: new AbortController().signal })) events.push(event);
  return events;
}

/** Member names of every shard the export wrote, read back with node-tar. */
async function shardMembers(dir: string): Promise<string[]> {
  const names: string[] = [];
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.tar')).sort()) {
    await tar.list({ file: join(dir, file), onReadEntry: (entry) => names.push(entry.path) });
  }
  return names;
}

function rows(dir: string): { key: string; source: string; status: string; error_code: string | null; error_message: string | null }[] {
  const db = openDatabase(join(dir, 'run.db'));
  try {
    return db.prepare('SELECT key, source, status, error_code, error_message FROM samples ORDER BY key').all() as ReturnType<typeof rows>;
  } finally {
    db.close();
  }
}

async function twoOverlappingShards(dir: string): Promise<void> {
  // a.tar holds keys 0..4, b.tar keys 3..7: 3 and 4 are in both.
  await writeTar(join(dir, 'a.tar'), (await makeGoodSamples(5, 0)).flatMap(sampleMembers));
  await writeTar(join(dir, 'b.tar'), (await makeGoodSamples(5, 3)).flatMap(sampleMembers));
}

describe('sources with the same keys', () => {
  it('keep the first source`s samples and record the later ones as key_duplicate, once, across a resume', async () => {
    const dir = tempDir();
    await twoOverlappingShards(dir);
    const recipe = {
      run: { db: 'run.db' },
      sources: [
        { type: 'webdataset', paths: 'a.tar', name: 'laion' },
        { type: 'webdataset', paths: 'b.tar', name: 'cc3m' },
      ],
      export: [{ type: 'webdataset', out: 'wds' }],
    };
    await build(dir, recipe);
    const recorded = rows(dir);
    expect(recorded.map((r) => `${r.key} ${r.source} ${r.status}`)).toEqual([
      '000000000 laion ok',
      '000000001 laion ok',
      '000000002 laion ok',
      '000000003 laion ok',
      '000000003__cc3m cc3m failed',
      '000000004 laion ok',
      '000000004__cc3m cc3m failed',
      '000000005 cc3m ok',
      '000000006 cc3m ok',
      '000000007 cc3m ok',
    ]);
    const duplicate = recorded.find((r) => r.key === '000000003__cc3m')!;
    expect(duplicate.error_code).toBe('key_duplicate');
    expect(duplicate.error_message).toBe(
      'key "000000003" of source "cc3m" is already used by source "laion"; give the sources distinct `keyPrefix` to keep both',
    );
    const members = await shardMembers(join(dir, 'wds'));
    const keys = members.filter((m) => m.endsWith('.json')).map((m) => m.split('.')[0]);
    expect(keys.sort()).toEqual(['000000000', '000000001', '000000002', '000000003', '000000004', '000000005', '000000006', '000000007']);

    // Resume: every sample is done; only the two collisions are read again (their records are remade each
    // build, so they go away once the sources get distinct prefixes), and nothing is exported again.
    const again = await build(dir, recipe);
    const start = again.find((e) => e.type === 'run-start');
    expect(start?.type === 'run-start' && start.resumed).toBe(8);
    const end = again.find((e) => e.type === 'run-end');
    expect(end?.type === 'run-end' && end.stages.find((s) => s.stage === 'read')?.out).toBe(2);
    expect(end?.type === 'run-end' && end.stages.find((s) => s.stage === 'record')?.in).toBe(2);
    expect(rows(dir)).toEqual(recorded);
    expect(await shardMembers(join(dir, 'wds'))).toEqual(members);

    // Taking the message's advice: with a prefix on the second source its samples are kept, and the
    // collision records are gone.
    await build(dir, { ...recipe, sources: [recipe.sources[0], { ...recipe.sources[1], keyPrefix: 'cc3m_' }] });
    const fixed = rows(dir);
    expect(fixed.filter((r) => r.status === 'failed')).toEqual([]);
    // (The unprefixed keys it recorded before stay: a new prefix makes new keys.)
    expect(fixed.filter((r) => r.source === 'cc3m' && r.key.startsWith('cc3m_')).map((r) => r.key)).toEqual([
      'cc3m_000000003',
      'cc3m_000000004',
      'cc3m_000000005',
      'cc3m_000000006',
      'cc3m_000000007',
    ]);
  });

  it('keep both with a keyPrefix on each source', async () => {
    const dir = tempDir();
    await twoOverlappingShards(dir);
    await build(dir, {
      run: { db: 'run.db' },
      sources: [
        { type: 'webdataset', paths: 'a.tar', keyPrefix: 'a_' },
        { type: 'webdataset', paths: 'b.tar', keyPrefix: 'b_' },
      ],
    });
    const recorded = rows(dir);
    expect(recorded).toHaveLength(10);
    expectEvery(recorded, (r) => r.status === 'ok');
  });

  it('refuses two sources with one name, naming both', () => {
    expect(() =>
      parseRecipe({ sources: [{ type: 'webdataset', paths: 'a.tar', name: 'webdataset-1' }, { type: 'webdataset', paths: 'b.tar' }] }, 'r.yaml', '/'),
    ).toThrow('r.yaml: sources[1].name: source names must be unique, got "webdataset-1", the name of sources[0] too');
  });
});
