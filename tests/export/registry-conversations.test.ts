import { afterEach, describe, expect, it } from 'vitest';
import { parseRecipe } from '../../src/config/recipe.js';
import { exportSchema, exportTypeNames } from '../../src/export/registry.js';
import { cleanup, tempDir } from './fixtures.js';

afterEach(cleanup);

describe('conversation export types in the registry', () => {
  it('registers llava, qwen2vl and qwen25vl beside webdataset, with their defaults', () => {
    expect(exportTypeNames).toEqual(expect.arrayContaining(['webdataset', 'llava', 'qwen2vl', 'qwen25vl']));
    expect(exportSchema.parse({ type: 'llava', out: 'o' })).toEqual({ type: 'llava', name: 'llava', out: 'o', split: 'mixed' });
    expect(exportSchema.parse({ type: 'qwen25vl', out: 'o', tokenizer: 't', maxLength: 2048, overLength: 'truncate' })).toMatchObject({
      name: 'qwen25vl',
      maxLength: 2048,
      overLength: 'truncate',
    });
    // The WebDataset export takes the same conversation options, all optional.
    expect(exportSchema.parse({ type: 'webdataset', out: 'o', tokenizer: 't', template: 'qwen2_vl' })).toMatchObject({ template: 'qwen2_vl' });
  });

  it('rejects unknown fields and bad values, naming them', () => {
    expect(exportSchema.safeParse({ type: 'llava', out: 'o', templat: 'x' }).success).toBe(false);
    const bad = exportSchema.safeParse({ type: 'llava', out: 'o', tasks: ['conversation', 'poetry'], overLength: 'squeeze' });
    expect(bad.success).toBe(false);
    expect(bad.error!.issues.map((i) => i.path.join('.')).sort()).toEqual(['overLength', 'tasks.1']);
  });

  it('lets a recipe list several exports of different formats', () => {
    const dir = tempDir();
    const { recipe } = parseRecipe(
      {
        sources: [{ type: 'webdataset', paths: 'x.tar' }],
        export: [
          { type: 'webdataset', out: 'wds' },
          { type: 'llava', out: 'llava', template: 'vicuna_v1', tokenizer: 'tok' },
          { type: 'qwen2vl', name: 'qwen', out: 'qwen' },
        ],
      },
      'recipe',
      dir,
    );
    expect(recipe.export.map((e) => [e.type, e.name])).toEqual([
      ['webdataset', 'wds'],
      ['llava', 'llava'],
      ['qwen2vl', 'qwen'],
    ]);
  });
});
