/**
 * What vlcurate writes it must read back, and a trainer on webdataset's default decoders must decode.
 *
 * webdataset's image handler decodes a member only when its extension is in `IMAGE_EXTENSIONS`
 * (src/webdataset/autodecode.py, lines 33-95 at e0953f9): PIL's openable extensions, which have gif, tif,
 * tiff, webp and jp2 but no heif, heic, avif or jxl; before 0.2.31 the list was
 * `"jpg jpeg png ppm pgm pbm pnm"` (webdataset/autodecode.py line 15 before 6fe3a18). vlcurate's own
 * WebDataset source reads jpg, jpeg, png and webp members. So the exports keep JPEG, PNG and WebP bytes as
 * they are and write every other format as PNG (lossless; the first frame of an animation), and the test
 * reads the result back with node-tar and with vlcurate's own WebDataset source.
 */
import { readdirSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterEach, describe, expect, it } from 'vitest';
import { runBuild } from '../../src/run/run-build.js';
import { parseRecipe } from '../../src/config/recipe.js';
import { openDatabase } from '../../src/store/database.js';
import { cleanup, extractWithNodeTar, sha256, tempDir } from './fixtures.js';

afterEach(cleanup);

const W = 32;
const H = 24;

/** A tile whose pixels differ across it, so a lossy or shifted copy would show. */
function tile(seed: number): Promise<Buffer> {
  const raw = Buffer.alloc(W * H * 3);
  for (let i = 0; i < raw.length; i++) raw[i] = (i * (7 + seed) + seed * 31) % 256;
  return sharp(raw, { raw: { width: W, height: H, channels: 3 } }).png().toBuffer();
}

async function rawPixels(bytes: Buffer): Promise<Buffer> {
  return sharp(bytes).removeAlpha().raw().toBuffer();
}

async function build(dir: string, recipe: Record<string, unknown>): Promise<void> {
  for await (const _ of runBuild(parseRecipe({ run: { db: 'run.db' }, ...recipe }, 'test', dir), { shard: { index: 0, count: 1 }, signal: new AbortController().signal })) {
    // drain
  }
}

describe('exported image formats', () => {
  it('GIF, TIFF and AVIF are written as PNG (first frame, lossless); JPEG, PNG and WebP stay byte for byte; all read back', async () => {
    const dir = tempDir();
    const images = join(dir, 'images');
    mkdirSync(images);
    const inputs: Record<string, Buffer> = {
      anim: await sharp([await tile(1), await tile(2)], { join: { animated: true } }).gif().toBuffer(),
      scan: await sharp(await tile(3)).tiff().toBuffer(),
      photo: await sharp(await tile(4)).avif().toBuffer(),
      jpeg: await sharp(await tile(5)).jpeg().toBuffer(),
      png: await tile(6),
      webp: await sharp(await tile(7)).webp().toBuffer(),
    };
    const ext: Record<string, string> = { anim: 'gif', scan: 'tiff', photo: 'avif', jpeg: 'jpg', png: 'png', webp: 'webp' };
    for (const [key, bytes] of Object.entries(inputs)) {
      writeFileSync(join(images, `${key}.${ext[key]}`), bytes);
      writeFileSync(join(images, `${key}.txt`), `a tile named ${key}`);
    }
    expect((await sharp(inputs.anim!).metadata()).pages).toBe(2);
    await build(dir, {
      sources: [{ type: 'folder', path: 'images', extensions: ['gif', 'tiff', 'avif', 'jpg', 'png', 'webp'] }],
      export: [
        { type: 'webdataset', name: 'wds', out: 'wds' },
        { type: 'llava', name: 'llava', out: 'llava' },
      ],
    });

    const db = openDatabase(join(dir, 'run.db'), { readonly: true });
    expect(db.prepare(`SELECT key, status, format FROM samples ORDER BY key`).all()).toEqual([
      { key: 'anim', status: 'ok', format: 'gif' },
      { key: 'jpeg', status: 'ok', format: 'jpeg' },
      { key: 'photo', status: 'ok', format: 'heif' },
      { key: 'png', status: 'ok', format: 'png' },
      { key: 'scan', status: 'ok', format: 'tiff' },
      { key: 'webp', status: 'ok', format: 'webp' },
    ]);
    db.close();

    const shard = readdirSync(join(dir, 'wds')).filter((f) => f.endsWith('.tar'));
    expect(shard).toHaveLength(1);
    const extracted = extractWithNodeTar(join(dir, 'wds', shard[0]!));
    const members = readdirSync(extracted).sort();
    const imageMembers = members.filter((m) => !/\.(json|txt)$/.test(m));
    expect(imageMembers).toEqual(['anim.png', 'jpeg.jpg', 'photo.png', 'png.png', 'scan.png', 'webp.webp']);

    // Kept formats: the original bytes.
    for (const [key, member] of [['jpeg', 'jpeg.jpg'], ['png', 'png.png'], ['webp', 'webp.webp']] as const) {
      expect(sha256(readFileSync(join(extracted, member)))).toBe(sha256(inputs[key]!));
    }
    // Converted: a real PNG with the same pixels as the decoded input (its first frame), nothing lost on the way.
    const firstFrame = await sharp(inputs.anim!).removeAlpha().raw().toBuffer();
    expect(Buffer.compare(await rawPixels(readFileSync(join(extracted, 'anim.png'))), firstFrame)).toBe(0);
    expect(Buffer.compare(await rawPixels(readFileSync(join(extracted, 'scan.png'))), await rawPixels(inputs.scan!))).toBe(0);
    expect(Buffer.compare(await rawPixels(readFileSync(join(extracted, 'photo.png'))), await rawPixels(inputs.photo!))).toBe(0);
    for (const key of ['anim', 'scan', 'photo']) {
      const png = readFileSync(join(extracted, `${key}.png`));
      expect(png.subarray(1, 4).toString('latin1')).toBe('PNG');
      const json = JSON.parse(readFileSync(join(extracted, `${key}.json`), 'utf8'));
      expect(json).toMatchObject({ format: 'png', width: W, height: H, sha256: sha256(png) });
      expect(json.image_converted).toMatchObject({ from: { format: key === 'anim' ? 'gif' : key === 'scan' ? 'tiff' : 'heif', sha256: sha256(inputs[key]!) } });
    }
    expect(JSON.parse(readFileSync(join(extracted, 'anim.json'), 'utf8')).image_converted.from.frames).toBe(2);
    expect(JSON.parse(readFileSync(join(extracted, 'jpeg.json'), 'utf8'))).not.toHaveProperty('image_converted');

    // The LLaVA export's images/ folder holds the same files.
    expect(readdirSync(join(dir, 'llava', 'images')).sort()).toEqual(imageMembers);
    expect(sha256(readFileSync(join(dir, 'llava', 'images', 'anim.png')))).toBe(sha256(readFileSync(join(extracted, 'anim.png'))));

    // vlcurate reads its own output: every sample of the shards comes back ok, in the format written.
    await build(dir, { run: { db: 'again.db' }, sources: [{ type: 'webdataset', paths: `wds/${shard[0]}` }] });
    const again = openDatabase(join(dir, 'again.db'), { readonly: true });
    expect(again.prepare(`SELECT key, status, format, error_code FROM samples ORDER BY key`).all()).toEqual([
      { key: 'anim', status: 'ok', format: 'png', error_code: null },
      { key: 'jpeg', status: 'ok', format: 'jpeg', error_code: null },
      { key: 'photo', status: 'ok', format: 'png', error_code: null },
      { key: 'png', status: 'ok', format: 'png', error_code: null },
      { key: 'scan', status: 'ok', format: 'png', error_code: null },
      { key: 'webp', status: 'ok', format: 'webp', error_code: null },
    ]);
    again.close();
  });
});
