/**
 * EXIF-turned images are exported upright (the frame widths, heights and boxes describe), without the
 * tag; images stored upright are copied byte for byte.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterEach, describe, expect, it } from 'vitest';
import { runBuild } from '../../src/run/run-build.js';
import { parseRecipe } from '../../src/config/recipe.js';
import { writeTar } from '../fixtures/make-webdataset.js';
import { cleanup, extractWithNodeTar, tempDir } from './fixtures.js';

afterEach(cleanup);

/** Stored 40x20: left half red, right half blue; orientation 6 shows it turned 90° clockwise (20x40, red on top). */
async function turnedJpeg(): Promise<Buffer> {
  const half = (r: number, b: number) => sharp({ create: { width: 20, height: 20, channels: 3, background: { r, g: 0, b } } }).png().toBuffer();
  return sharp({ create: { width: 40, height: 20, channels: 3, background: { r: 0, g: 0, b: 0 } } })
    .composite([
      { input: await half(255, 0), left: 0, top: 0 },
      { input: await half(0, 255), left: 20, top: 0 },
    ])
    .jpeg({ quality: 95 })
    .withMetadata({ orientation: 6 })
    .toBuffer();
}

async function pixel(bytes: Buffer, x: number, y: number): Promise<{ r: number; b: number }> {
  const { data, info } = await sharp(bytes).raw().toBuffer({ resolveWithObject: true });
  const at = (y * info.width + x) * info.channels;
  return { r: data[at]!, b: data[at + 2]! };
}

describe('exports of EXIF-turned images', () => {
  it('write the upright pixels without the tag; upright images stay byte for byte', async () => {
    const dir = tempDir();
    const turned = await turnedJpeg();
    const upright = await sharp({ create: { width: 12, height: 8, channels: 3, background: '#4080c0' } }).png().toBuffer();
    await writeTar(join(dir, 'in.tar'), [
      { name: 'turned.jpg', data: turned },
      { name: 'turned.txt', data: 'red over blue' },
      { name: 'plain.png', data: upright },
      { name: 'plain.txt', data: 'a blue tile' },
    ]);
    const recipe = {
      run: { db: 'run.db' },
      sources: [{ type: 'webdataset', paths: 'in.tar' }],
      export: [
        { type: 'webdataset', name: 'wds', out: 'wds' },
        { type: 'llava', name: 'llava', out: 'llava' },
      ],
    };
    for await (const _ of runBuild(parseRecipe(recipe, 'test', dir), { shard: { index: 0, count: 1 }, signal: new AbortController().signal })) {
      // drain
    }
    const shard = readdirSync(join(dir, 'wds')).find((f) => f.endsWith('.tar'))!;
    const out = extractWithNodeTar(join(dir, 'wds', shard));
    const json = JSON.parse(readFileSync(join(out, 'turned.json'), 'utf8')) as { width: number; height: number; sha256: string };
    for (const bytes of [readFileSync(join(out, 'turned.jpg')), readFileSync(join(dir, 'llava', 'images', 'turned.jpg'))]) {
      const meta = await sharp(bytes).metadata();
      expect([meta.width, meta.height, meta.orientation ?? 1]).toEqual([20, 40, 1]);
      expect([json.width, json.height]).toEqual([20, 40]);
      // Red on top, blue below: the stored left half went to the top.
      expect(await pixel(bytes, 10, 5)).toMatchObject({ r: expect.toSatisfy((v: number) => v > 200), b: expect.toSatisfy((v: number) => v < 60) });
      expect(await pixel(bytes, 10, 35)).toMatchObject({ r: expect.toSatisfy((v: number) => v < 60), b: expect.toSatisfy((v: number) => v > 200) });
    }
    const { createHash } = await import('node:crypto');
    expect(json.sha256).toBe(createHash('sha256').update(readFileSync(join(out, 'turned.jpg'))).digest('hex'));
    expect(Buffer.compare(readFileSync(join(out, 'plain.png')), upright)).toBe(0);
    expect(Buffer.compare(readFileSync(join(dir, 'llava', 'images', 'plain.png')), upright)).toBe(0);
  });
});
