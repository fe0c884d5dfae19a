/**
 * Parquet with the images inside (Hugging Face `datasets` writes an Image feature as a `{bytes, path}`
 * struct; other writers use a plain binary column): read as pairs, built into a run database, and written
 * again by `vlcurate export` with the bytes read back from the Parquet file.
 */
import { readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { parquetWriteFile } from 'hyparquet-writer';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runBuild } from '../../src/run/run-build.js';
import { runExport } from '../../src/cli/commands/export.js';
import { parseRecipe } from '../../src/config/recipe.js';
import { openDatabase } from '../../src/store/database.js';
import { loadImages, parquetImageRef, parseImageRef, readImageRef, type ImageRefSample } from '../../src/images/image-ref.js';
import { makeImage, makeTempDir } from '../fixtures/make-webdataset.js';
import { byKey, collect, context, sourceFrom } from './manifest-fixtures.js';
import { failureOf, OPEN } from '../../src/core/sample.js';

let dir: string;
let cleanup: () => Promise<void>;
let red: Buffer;
let blue: Buffer;
let onDisk: Buffer;

/** Rows: 0 struct with bytes, 1 struct with only a path, 2 struct with neither, 3 null, 4 struct with bytes. */
function writeHfParquet(file: string): void {
  parquetWriteFile({
    filename: file,
    columnData: [
      { name: 'image', data: [{ bytes: red, path: 'red.png' }, { bytes: null, path: 'disk.jpg' }, { bytes: null, path: null }, null, { bytes: blue, path: null }] },
      { name: 'text', data: ['a red square', 'from the disk', 'nothing', 'null cell', 'a blue square'] },
    ],
    schema: [
      { name: 'root', num_children: 2 },
      { name: 'image', repetition_type: 'OPTIONAL', num_children: 2 },
      { name: 'bytes', type: 'BYTE_ARRAY', repetition_type: 'OPTIONAL' },
      { name: 'path', type: 'BYTE_ARRAY', converted_type: 'UTF8', repetition_type: 'OPTIONAL' },
      { name: 'text', type: 'BYTE_ARRAY', converted_type: 'UTF8', repetition_type: 'REQUIRED' },
    ],
    rowGroupSize: 2,
  });
}

beforeEach(async () => {
  ({ dir, cleanup } = await makeTempDir('vlcurate-parquet-embedded-'));
  red = await makeImage(20, 12, 'png', 1);
  blue = await makeImage(16, 16, 'webp', 2);
  onDisk = await makeImage(24, 10, 'jpeg', 3);
  await writeFile(path.join(dir, 'disk.jpg'), onDisk);
  writeHfParquet(path.join(dir, 'hf.parquet'));
});
afterEach(() => cleanup());

describe('Parquet with embedded images', () => {
  it('reads {bytes, path} structs: bytes when present, else the path; empty cells are row_invalid', async () => {
    const file = path.join(dir, 'hf.parquet');
    const pairs = byKey(await collect(sourceFrom({ type: 'parquet', name: 'hf', path: 'hf.parquet', image: 'image', caption: 'text', order: 'input' }).read(context(dir))));
    const at = (row: number) => pairs.get(`hf_${String(row).padStart(9, '0')}`)!;
    expect(Buffer.compare(at(0).imageBytes!, red)).toBe(0);
    expect(at(0).imageRef).toBe(parquetImageRef(file, 0, 'image'));
    expect(at(0).meta).toMatchObject({ row: 0, imagePath: 'red.png' });
    expect(at(0).captions.map((c) => c.text)).toEqual(['a red square']);
    expect(Buffer.compare(at(1).imageBytes!, onDisk)).toBe(0);
    expect(at(1).imageRef).toBe(`file:${path.join(dir, 'disk.jpg')}`);
    expect(failureOf(at(2))).toMatchObject({ code: 'row_invalid' });
    expect(failureOf(at(2))!.message).toContain('column "image" (image) has neither bytes nor a path');
    expect(failureOf(at(3))!.message).toContain('column "image" (image) is empty');
    expect(Buffer.compare(at(4).imageBytes!, blue)).toBe(0);
  });

  it('reads a plain binary column as the image, and text in an unannotated binary column as a path', async () => {
    parquetWriteFile({
      filename: path.join(dir, 'raw.parquet'),
      columnData: [{ name: 'jpg', data: [onDisk, new TextEncoder().encode('disk.jpg'), new Uint8Array([0x00, 0xff, 0x13])] }],
      schema: [{ name: 'root', num_children: 1 }, { name: 'jpg', type: 'BYTE_ARRAY', repetition_type: 'REQUIRED' }],
    });
    const pairs = await collect(sourceFrom({ type: 'parquet', name: 'raw', path: 'raw.parquet', image: 'jpg', order: 'input' }).read(context(dir)));
    expect(Buffer.compare(pairs[0]!.imageBytes!, onDisk)).toBe(0);
    expect(pairs[0]!.imageRef).toMatch(/^parquet:.*#row=0&column=jpg$/);
    expect(pairs[1]!.imageRef).toBe(`file:${path.join(dir, 'disk.jpg')}`);
    // Not text and not an image: it reaches the decoder, which records why.
    expect(pairs[2]!.imageBytes).toHaveLength(3);
  });

  it('reads embedded images back from their references, one pass per file, with failures as data', async () => {
    const file = path.join(dir, 'hf.parquet');
    expect(parseImageRef(parquetImageRef('/d/a#b.parquet', 7, 'img col&x'))).toEqual({ kind: 'parquet', path: '/d/a#b.parquet', row: 7, column: 'img col&x' });
    expect(Buffer.compare(await readImageRef(parquetImageRef(file, 4, 'image')), blue)).toBe(0);
    const sample = (key: string, ref: string): ImageRefSample => ({ key, imageRef: ref, imageBytes: null, fate: OPEN });
    const loaded = await (async () => {
      const out: ImageRefSample[] = [];
      const input = [sample('a', parquetImageRef(file, 4, 'image')), sample('b', parquetImageRef(file, 0, 'image')), sample('c', parquetImageRef(file, 3, 'image')), sample('d', parquetImageRef(path.join(dir, 'gone.parquet'), 0, 'image'))];
      for await (const s of loadImages((async function* () { yield* input; })())) out.push(s);
      return out;
    })();
    expect(loaded.map((s) => s.key)).toEqual(['a', 'b', 'c', 'd']);
    expect(Buffer.compare(loaded[0]!.imageBytes!, blue)).toBe(0);
    expect(Buffer.compare(loaded[1]!.imageBytes!, red)).toBe(0);
    expect(failureOf(loaded[2]!)).toMatchObject({ code: 'image_missing' });
    expect(failureOf(loaded[3]!)).toMatchObject({ code: 'image_missing' });
  });

  it('builds a run from them, and `vlcurate export` writes the same images again from the database', async () => {
    await mkdir(path.join(dir, 'out'), { recursive: true });
    const loaded = parseRecipe(
      { run: { db: 'run.db' }, sources: [{ type: 'parquet', name: 'hf', path: 'hf.parquet', image: 'image', caption: 'text' }] },
      'test',
      dir,
    );
    for await (const _ of runBuild(loaded, { shard: { index: 0, count: 1 }, signal: new AbortController().signal })) {
      // drain
    }
    const db = openDatabase(path.join(dir, 'run.db'), { readonly: true });
    const rows = db.prepare(`SELECT key, status, format FROM samples ORDER BY key`).all();
    db.close();
    expect(rows).toEqual([
      { key: 'hf_000000000', status: 'ok', format: 'png' },
      { key: 'hf_000000001', status: 'ok', format: 'jpeg' },
      { key: 'hf_000000002', status: 'failed', format: null },
      { key: 'hf_000000003', status: 'failed', format: null },
      { key: 'hf_000000004', status: 'ok', format: 'webp' },
    ]);
    const out = path.join(dir, 'llava');
    const { report } = await runExport(path.join(dir, 'run.db'), { format: 'llava', out }, { log: () => undefined });
    expect(report).toMatchObject({ samplesExported: 3, imageFailures: {} });
    expect(Buffer.compare(readFileSync(path.join(out, 'images', 'hf_000000000.png')), red)).toBe(0);
    expect(Buffer.compare(readFileSync(path.join(out, 'images', 'hf_000000004.webp')), blue)).toBe(0);
    expect(Buffer.compare(readFileSync(path.join(out, 'images', 'hf_000000001.jpg')), onDisk)).toBe(0);
  });
});
