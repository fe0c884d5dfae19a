import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createExport, exportSchema, exportTypeNames } from '../../src/export/registry.js';
import { cleanup, makePairs, openTestStore, runStage, tempDir, listWithNodeTar } from './fixtures.js';

afterEach(cleanup);

describe('export registry', () => {
  it('parses entries by type and builds the matching stage', async () => {
    expect(exportTypeNames).toEqual(['webdataset', 'llava', 'qwen2vl', 'qwen25vl']);
    const options = exportSchema.parse({ type: 'webdataset', name: 'w', out: 'shards', maxCount: 2 });
    const base = tempDir();
    const samples = await makePairs(3);
    const { store } = openTestStore(base, samples);
    const stage = createExport(options, { store, baseDir: base, shard: { index: 0, count: 1 } });
    expect(stage.name).toBe('export:w');
    expect(await runStage(stage, samples)).toEqual(samples);
    expect(listWithNodeTar(join(base, 'shards', 'w-000001.tar')).map((m) => m.path)).toEqual(['s002.json', 's002.png', 's002.txt']);
  });

  it('rejects unknown types and unknown fields', () => {
    const unknown = exportSchema.safeParse({ type: 'tfrecord', out: 'x' });
    expect(unknown.success).toBe(false);
    expect(unknown.error?.issues[0]?.path).toEqual(['type']);
    expect(exportSchema.safeParse({ type: 'webdataset', out: 'x', extra: 1 }).success).toBe(false);
  });
});
