/**
 * `decode.concurrency` follows the resolved runtime (issue 15): `auto` (the default) decodes the decode
 * share of the cores at once, at least 2 (`core/runtime-settings.ts`, rule 5), instead of a fixed 4 whatever
 * the machine. Measured in a real build over a shard of PNGs (JPEGs are checked by a structure walk that
 * never calls sharp): sharp's header read is slowed down by a spy, so that the images the decode stage has
 * in flight pile up to its limit, and the most seen at once is the concurrency.
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { ShardWriter } from '../../datasets/shapes/shard-writer.js';
import { parseRecipe } from '../../src/config/recipe.js';
import type { PipelineEvent } from '../../src/core/events.js';
import { runBuild } from '../../src/run/run-build.js';
import { openDatabase } from '../../src/store/database.js';

const IMAGES = 16;
let dir: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'vlc-decode-concurrency-'));
  mkdirSync(join(dir, 'data'));
  const writer = new ShardWriter(join(dir, 'data'), 'png', 1000);
  for (let i = 0; i < IMAGES; i++) {
    const png = await sharp({ create: { width: 16, height: 16, channels: 3, background: { r: i * 10, g: 40, b: 90 } } }).png().toBuffer();
    await writer.add(`k${String(i).padStart(3, '0')}`, [{ ext: 'png', data: png }, { ext: 'txt', data: Buffer.from(`image ${i}`) }]);
  }
  await writer.close();
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));
afterEach(() => vi.restoreAllMocks());

/** Build `db` on a machine of `cores` cores; the most decodes in flight at once, and the stored resolution. */
async function build(db: string, cores: number, decode: Record<string, unknown> = {}): Promise<{ most: number; total: number; stored: Record<string, unknown> }> {
  const original = sharp.prototype.metadata;
  let inFlight = 0;
  let most = 0;
  let total = 0;
  vi.spyOn(sharp.prototype, 'metadata').mockImplementation(async function (this: ReturnType<typeof sharp>) {
    inFlight++;
    total++;
    most = Math.max(most, inFlight);
    try {
      await new Promise((resolve) => setTimeout(resolve, 25));
      return await original.call(this);
    } finally {
      inFlight--;
    }
  } as never);
  const recipe = parseRecipe({ run: { db }, decode, sources: [{ type: 'webdataset', paths: 'data/png-000000.tar' }] }, 'test', dir);
  const events: PipelineEvent[] = [];
  for await (const event of runBuild(recipe, { shard: { index: 0, count: 1 }, signal: new AbortController().signal, cores })) events.push(event);
  const end = events.find((e) => e.type === 'run-end');
  if (end?.type !== 'run-end') throw new Error('no run-end');
  expect(end.summary.samples.total).toBe(IMAGES);
  const handle = openDatabase(join(dir, db), { readonly: true });
  try {
    const row = handle.prepare('SELECT recipe_json FROM runs ORDER BY id DESC LIMIT 1').get() as { recipe_json: string };
    return { most, total, stored: JSON.parse(row.recipe_json).resolvedRuntime as Record<string, unknown> };
  } finally {
    handle.close();
  }
}

describe('decode concurrency follows the runtime', () => {
  it('auto on 2 cores decodes 2 images at once (decoding shares the models\' cores)', async () => {
    const r = await build('two.db', 2);
    expect(r.total).toBe(IMAGES);
    expect(r.most).toBe(2);
    expect(r.stored).toMatchObject({ cores: 2, decodeCores: 0, decodeConcurrency: 2 });
  });

  it('auto on 48 cores decodes its 6-core share at once', async () => {
    const r = await build('many.db', 48);
    expect(r.total).toBe(IMAGES);
    expect(r.most).toBe(6);
    expect(r.stored).toMatchObject({ cores: 48, decodeCores: 6, decodeConcurrency: 6 });
  });

  it('a set decode.concurrency is kept whatever the cores', async () => {
    const r = await build('set.db', 48, { concurrency: 3 });
    expect(r.most).toBe(3);
    expect(r.stored).toMatchObject({ decodeConcurrency: 3 });
  });

  it('refuses a concurrency that is neither auto nor a positive integer, naming the field', () => {
    expect(() => parseRecipe({ decode: { concurrency: 0 }, sources: [{ type: 'webdataset', paths: 'x.tar' }] }, 'test', dir)).toThrow(
      /decode\.concurrency: expected "auto" or an integer from 1 and up, got 0/,
    );
  });
});
