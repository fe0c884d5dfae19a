import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { readFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { loadImages, parseImageRef, readImageRef, type ImageRefSample } from '../../src/images/image-ref.js';
import { writeTar } from '../fixtures/make-webdataset.js';
import { cleanup, makeImage, sha256, tempDir } from '../export/fixtures.js';
import { failureOf, OPEN } from '../../src/core/sample.js';

afterEach(cleanup);

async function* from<T>(items: readonly T[]): AsyncGenerator<T> {
  yield* items;
}

async function collect<T>(items: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of items) out.push(item);
  return out;
}

function ref(key: string, imageRef: string, bytes?: Buffer): ImageRefSample {
  return {
    key,
    imageRef,
    imageBytes: null,
    fate: OPEN,
    image: bytes ? { width: 1, height: 1, format: 'png', byteLength: bytes.length, sha256: sha256(bytes), orientation: 1 } : null,
  };
}

describe('image references', () => {
  it('parses tar and file references', () => {
    expect(parseImageRef('tar:/data/a#b.tar#000001.jpg')).toEqual({ kind: 'tar', path: '/data/a#b.tar', member: '000001.jpg' });
    expect(parseImageRef('file:/images/x.png')).toEqual({ kind: 'file', path: '/images/x.png' });
    expect(parseImageRef('tar:/data/a.tar')).toBeNull();
    expect(parseImageRef('http://x/y.png')).toBeNull();
  });

  it('reads each tar in one pass (tar order), files, gzip tars, and turns problems into failures', async () => {
    const dir = tempDir();
    const images = await Promise.all([0, 1, 2, 3, 4].map((i) => makeImage(i)));
    const tarA = join(dir, 'a.tar');
    await writeTar(tarA, [
      { name: 'k0.png', data: images[0]! },
      { name: 'k0.txt', data: 'caption' },
      { name: 'k1.png', data: images[1]! },
      { name: 'k2.png', data: images[2]! },
    ]);
    const tarB = join(dir, 'b.tar');
    await writeTar(tarB, [{ name: 'sub/k3.png', data: images[3]! }]);
    const gz = join(dir, 'b.tar.gz');
    writeFileSync(gz, gzipSync(readFileSync(tarB)));
    const file = join(dir, 'k4.png');
    writeFileSync(file, images[4]!);

    const input = [
      // Reversed: one pass over a.tar yields them in member order.
      ref('k2', `tar:${tarA}#k2.png`, images[2]),
      ref('k1', `tar:${tarA}#k1.png`, images[1]),
      ref('k0', `tar:${tarA}#k0.png`, images[0]),
      ref('gone', `tar:${tarA}#gone.png`),
      ref('k3', `tar:${gz}#sub/k3.png`, images[3]),
      ref('k4', `file:${file}`, images[4]),
      ref('changed', `file:${file}`, images[0]),
      ref('nofile', `file:${join(dir, 'missing.png')}`),
      ref('noshard', `tar:${join(dir, 'missing.tar')}#x.png`),
      ref('bad', 'tar:/only/a/shard.tar'),
    ];
    const out = await collect(loadImages(from(input)));
    expect(out.map((s) => s.key)).toEqual(['k0', 'k1', 'k2', 'gone', 'k3', 'k4', 'changed', 'nofile', 'noshard', 'bad']);
    for (const [i, key] of ['k0', 'k1', 'k2', 'k3', 'k4'].entries()) {
      const sample = out.find((s) => s.key === key)!;
      expect(failureOf(sample)).toBeNull();
      expect(Buffer.compare(sample.imageBytes!, images[i]!)).toBe(0);
    }
    const codes = Object.fromEntries(out.filter((s) => failureOf(s)).map((s) => [s.key, failureOf(s)!.code]));
    expect(codes).toEqual({ gone: 'image_missing', changed: 'image_changed', nofile: 'image_missing', noshard: 'shard_missing', bad: 'image_ref_invalid' });
    expect(failureOf(out.find((s) => s.key === 'gone')!)!.message).toMatch(/gone\.png is not in .*a\.tar/);
  });

  it('reads a single reference', async () => {
    const dir = tempDir();
    const image = await makeImage(9);
    const tarPath = join(dir, 's.tar');
    await writeTar(tarPath, [{ name: 'a.json', data: '{}' }, { name: 'a.png', data: image }]);
    expect(Buffer.compare(await readImageRef(`tar:${tarPath}#a.png`), image)).toBe(0);
    await expect(readImageRef(`tar:${tarPath}#b.png`)).rejects.toThrow(/not in/);
  });
});
