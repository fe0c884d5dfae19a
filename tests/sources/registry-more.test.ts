import { describe, expect, it } from 'vitest';
import { createSource, SOURCE_TYPES, sourceSchema } from '../../src/sources/registry.js';

describe('source registry: manifests, folders, LLaVA', () => {
  it('registers the new types after webdataset and coco', () => {
    expect(SOURCE_TYPES.map((t) => t.type)).toEqual(['webdataset', 'coco', 'jsonl', 'csv', 'tsv', 'parquet', 'folder', 'llava']);
  });

  it('parses the recipe examples of the design, filling defaults', () => {
    const parquet = sourceSchema.parse({ type: 'parquet', path: 'm.parquet', image: 'url', caption: 'caption' });
    expect(parquet).toMatchObject({ type: 'parquet', image: 'url', caption: 'caption', boxFormat: 'xyxy', extra: [], order: 'completion' });
    expect((parquet as { download: unknown }).download).toMatchObject({ concurrency: 16, perHost: 4, timeoutMs: 10_000, maxRedirects: 5, cache: true, ignoreRobots: false });
    expect(sourceSchema.parse({ type: 'folder', path: 'imgs/' })).toMatchObject({ recursive: true, concurrency: 8 });
    expect(sourceSchema.parse({ type: 'llava', path: 'llava.json', images: 'imgs/' })).toMatchObject({ textOnly: 'skip', briefCaptions: true });
    expect(createSource(sourceSchema.parse({ type: 'tsv', path: 'x.tsv', image: 'url' }), 3).name).toBe('tsv-3');
  });

  it('rejects a manifest without an image column, unknown keys and bad download options, naming the field', () => {
    const noImage = sourceSchema.safeParse({ type: 'csv', path: 'x.csv' });
    expect(noImage.success).toBe(false);
    expect(noImage.error!.issues[0]!.path).toEqual(['image']);
    const unknown = sourceSchema.safeParse({ type: 'jsonl', path: 'x', image: 'u', download: { concurency: 3 } });
    expect(unknown.success).toBe(false);
    expect(unknown.error!.issues[0]!.path).toEqual(['download']);
    const delimiter = sourceSchema.safeParse({ type: 'csv', path: 'x', image: 'u', delimiter: ';;' });
    expect(delimiter.success).toBe(false);
    expect(delimiter.error!.issues[0]!.path).toEqual(['delimiter']);
  });
});
