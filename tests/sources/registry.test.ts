import { describe, expect, it } from 'vitest';
import { createSource, SOURCE_TYPES, sourceSchema } from '../../src/sources/registry.js';

describe('source registry', () => {
  it('registers webdataset and coco first', () => {
    expect(SOURCE_TYPES.map((t) => t.type).slice(0, 2)).toEqual(['webdataset', 'coco']);
  });

  it('parses each type through the discriminated union', () => {
    expect(sourceSchema.parse({ type: 'webdataset', paths: 'data/shard-{000000..000009}.tar' })).toEqual({
      type: 'webdataset',
      paths: 'data/shard-{000000..000009}.tar',
    });
    expect(
      sourceSchema.parse({ type: 'coco', captions: 'ann/captions.json', instances: 'ann/instances.json', images: 'ann/images/' }),
    ).toMatchObject({ type: 'coco', images: 'ann/images/' });
  });

  it('rejects unknown types, unknown keys and a coco entry without annotation files', () => {
    const unknownType = sourceSchema.safeParse({ type: 'webdatset', paths: 'x.tar' });
    expect(unknownType.success).toBe(false);
    expect(unknownType.error!.issues[0]!.path).toEqual(['type']);
    const unknownKey = sourceSchema.safeParse({ type: 'webdataset', paths: 'x.tar', shuffle: true });
    expect(unknownKey.success).toBe(false);
    expect(unknownKey.error!.issues[0]!.code).toBe('unrecognized_keys');
    const noFiles = sourceSchema.safeParse({ type: 'coco', images: 'imgs' });
    expect(noFiles.success).toBe(false);
    expect(noFiles.error!.issues[0]!.message).toMatch(/`captions` or `instances`/);
  });

  it('names sources <type>-<index> unless named', () => {
    expect(createSource(sourceSchema.parse({ type: 'webdataset', paths: 'x.tar' }), 2).name).toBe('webdataset-2');
    expect(createSource(sourceSchema.parse({ type: 'coco', captions: 'c.json', images: 'i', name: 'val' }), 0).name).toBe('val');
  });
});
