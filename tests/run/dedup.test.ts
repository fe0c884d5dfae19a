/**
 * `decode.dedup: exact`: later copies of the same image bytes are dropped before any model sees them,
 * the first copy stays, a resumed run keeps the decisions, and refilter leaves duplicates alone.
 */
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { runBuild } from '../../src/run/run-build.js';
import { parseRecipe } from '../../src/config/recipe.js';
import type { PipelineEvent } from '../../src/core/events.js';
import { resolvePolicy } from '../../src/filter/resolve-policy.js';
import { refilterRun } from '../../src/filter/refilter.js';
import { openDatabase } from '../../src/store/database.js';
import { makeGoodSamples, sampleMembers, writeTar, type GoodSample } from '../fixtures/make-webdataset.js';
import { cleanup, tempDir } from '../export/fixtures.js';
import { expectEvery } from '../expect-every.js';

afterEach(cleanup);

async function build(dir: string, recipe: unknown): Promise<PipelineEvent[]> {
  const events: PipelineEvent[] = [];
  for await (const event of runBuild(parseRecipe(recipe, 'test', dir), { shard: { index: 0, count: 1 }, signal: new AbortController().signal })) events.push(event);
  return events;
}

function rows(dir: string): { key: string; status: string; drop_reason: string | null; duplicate_of: string | null }[] {
  const db = openDatabase(join(dir, 'run.db'), { readonly: true });
  try {
    return db
      .prepare(`SELECT key, status, drop_reason, json_extract(meta_json, '$.duplicateOf') AS duplicate_of FROM samples ORDER BY key`)
      .all() as ReturnType<typeof rows>;
  } finally {
    db.close();
  }
}

/** Six samples; 2 and 4 carry the bytes of 0, 5 those of 3 (other captions, other keys). */
async function withCopies(dir: string, file: string, goods?: GoodSample[]): Promise<GoodSample[]> {
  goods ??= await makeGoodSamples(6);
  const copy = (sample: GoodSample, of: GoodSample): GoodSample => ({ ...sample, image: of.image, ext: of.ext });
  const shard = [goods[0]!, goods[1]!, copy(goods[2]!, goods[0]!), goods[3]!, copy(goods[4]!, goods[0]!), copy(goods[5]!, goods[3]!)];
  await writeTar(join(dir, file), shard.flatMap(sampleMembers));
  return goods;
}

const RECIPE = {
  run: { db: 'run.db' },
  sources: [{ type: 'webdataset', paths: 'shard.tar' }],
  decode: { dedup: 'exact' },
  export: [{ type: 'webdataset', out: 'wds' }],
};

describe('decode.dedup: exact', () => {
  it('drops later copies of the same bytes, naming the first; a resumed run keeps every decision', async () => {
    const dir = tempDir();
    const goods = await withCopies(dir, 'shard.tar');
    const events = await build(dir, RECIPE);
    const expected = [
      { key: '000000000', status: 'ok', drop_reason: null, duplicate_of: null },
      { key: '000000001', status: 'ok', drop_reason: null, duplicate_of: null },
      { key: '000000002', status: 'dropped', drop_reason: 'duplicate_image', duplicate_of: '000000000' },
      { key: '000000003', status: 'ok', drop_reason: null, duplicate_of: null },
      { key: '000000004', status: 'dropped', drop_reason: 'duplicate_image', duplicate_of: '000000000' },
      { key: '000000005', status: 'dropped', drop_reason: 'duplicate_image', duplicate_of: '000000003' },
    ];
    expect(rows(dir)).toEqual(expected);
    const end = events.find((e) => e.type === 'run-end');
    expect(end?.type === 'run-end' && end.summary.exported).toEqual({ wds: 3 });
    expect(end?.type === 'run-end' && end.stages.find((s) => s.stage === 'dedup')).toMatchObject({ in: 6, out: 6, dropped: 3 });

    // A second shard with the same images (fixture images are random: the same objects), added to the
    // recipe: compared against what the database holds.
    await withCopies(dir, 'more.tar', goods);
    await build(dir, { ...RECIPE, sources: [{ type: 'webdataset', paths: 'shard.tar' }, { type: 'webdataset', paths: 'more.tar', keyPrefix: 'more_' }] });
    const after = rows(dir);
    expect(after.slice(0, 6)).toEqual(expected);
    expect(after.slice(6).map((r) => [r.key, r.duplicate_of])).toEqual([
      ['more_000000000', '000000000'],
      ['more_000000001', '000000001'],
      ['more_000000002', '000000000'],
      ['more_000000003', '000000003'],
      ['more_000000004', '000000000'],
      ['more_000000005', '000000003'],
    ]);
  });

  it('is off by default, and refilter never turns a duplicate back into a sample', async () => {
    const dir = tempDir();
    await withCopies(dir, 'shard.tar');
    await build(dir, { ...RECIPE, decode: {} });
    expectEvery(rows(dir), (r) => r.status === 'ok');

    const other = tempDir();
    await withCopies(other, 'shard.tar');
    await build(other, RECIPE);
    const db = openDatabase(join(other, 'run.db'));
    // Web captions with scores that pass: refilter may only re-decide by captions.
    db.prepare(`UPDATE captions SET itc = 0.9, itm = 0.9`).run();
    const summary = refilterRun(db, resolvePolicy({ itc: { model: 'x', threshold: 0.5 }, itm: { model: 'y', threshold: 0.5 } } as never, null));
    db.close();
    expect(summary.samples).toBe(3);
    expect(rows(other).filter((r) => r.drop_reason === 'duplicate_image')).toHaveLength(3);
  });

  it('a sample failed as another source`s key is no original: the next copy of its image is kept', async () => {
    const dir = tempDir();
    const [img0, img1] = await makeGoodSamples(2);
    const as = (key: string, from: GoodSample): GoodSample => ({ ...from, key, json: { ...from.json, key } });
    await writeTar(join(dir, 'a.tar'), sampleMembers(as('k0', img0!)));
    await writeTar(join(dir, 'b.tar'), sampleMembers(as('k0', img1!)));
    await writeTar(join(dir, 'c.tar'), sampleMembers(as('k9', img1!)));
    await build(dir, {
      run: { db: 'run.db' },
      sources: ['a', 'b', 'c'].map((name) => ({ type: 'webdataset', name, paths: `${name}.tar` })),
      decode: { dedup: 'exact' },
      export: [{ type: 'webdataset', out: 'wds' }],
    });
    const db = openDatabase(join(dir, 'run.db'), { readonly: true });
    const got = db.prepare('SELECT key, source, status, error_code, drop_reason FROM samples ORDER BY key').all();
    db.close();
    expect(got).toEqual([
      { key: 'k0', source: 'a', status: 'ok', error_code: null, drop_reason: null },
      { key: 'k0__b', source: 'b', status: 'failed', error_code: 'key_duplicate', drop_reason: null },
      { key: 'k9', source: 'c', status: 'ok', error_code: null, drop_reason: null },
    ]);
  });
});
