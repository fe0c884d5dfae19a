/**
 * Local references stay in the source's own folder (issue 12, "Safe by default"): absolute paths and `file:`
 * URLs in manifests and LLaVA files read any file, and a row naming a private file outside its folder put it
 * into the exported shard. Real files and real symbolic links: a "private" image in a folder beside the
 * dataset, links into and out of the dataset's folder.
 */
import { mkdir, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { failureOf, type Pair } from '../../src/core/sample.js';
import { makeImage, makeTempDir } from '../fixtures/make-webdataset.js';
import { collect, context, sourceFrom } from './manifest-fixtures.js';

let dir: string;
let cleanup: () => Promise<void>;
let image: Buffer;
let secret: string;

beforeAll(async () => {
  ({ dir, cleanup } = await makeTempDir('vlcurate-confine-'));
  image = await makeImage(16, 12, 'jpeg', 8);
  await mkdir(path.join(dir, 'private'));
  secret = path.join(dir, 'private', 'secret.jpg');
  await writeFile(secret, image);
  await mkdir(path.join(dir, 'data', 'imgs'), { recursive: true });
  await writeFile(path.join(dir, 'data', 'imgs', 'own.jpg'), image);
  await symlink(secret, path.join(dir, 'data', 'imgs', 'out-link.jpg'));
  await symlink(path.join(dir, 'data', 'imgs', 'own.jpg'), path.join(dir, 'data', 'imgs', 'in-link.jpg'));
  await symlink(path.join(dir, 'private'), path.join(dir, 'data', 'imgs', 'private-dir'));
});

afterAll(async () => {
  await cleanup();
});

const codes = (pairs: Pair[]) => Object.fromEntries(pairs.map((p) => [p.key, failureOf(p)?.code ?? 'ok']));

describe('manifest image references', () => {
  const rows = () => [
    { key: 'own', image: 'own.jpg' },
    { key: 'own_abs', image: path.join(dir, 'data', 'imgs', 'own.jpg') },
    { key: 'in_link', image: 'in-link.jpg' },
    { key: 'abs', image: secret },
    { key: 'url', image: `file://${secret}` },
    { key: 'dotdot', image: '../../private/secret.jpg' },
    { key: 'out_link', image: 'out-link.jpg' },
    { key: 'via_dir_link', image: 'private-dir/secret.jpg' },
  ];

  async function read(extra: Record<string, unknown> = {}): Promise<Pair[]> {
    await writeFile(path.join(dir, 'data', 'm.jsonl'), rows().map((r) => JSON.stringify(r)).join('\n'));
    return collect(
      sourceFrom({ type: 'jsonl', path: 'data/m.jsonl', imagesDir: 'data/imgs', image: 'image', key: 'key', keyPrefix: '', order: 'input', ...extra }).read(context(dir)),
    );
  }

  it('by default read only inside the images folder, symbolic links followed', async () => {
    const pairs = await read();
    expect(codes(pairs)).toEqual({
      own: 'ok',
      own_abs: 'ok',
      in_link: 'ok',
      abs: 'image_path_invalid',
      url: 'image_path_invalid',
      dotdot: 'image_path_invalid',
      out_link: 'image_path_invalid',
      via_dir_link: 'image_path_invalid',
    });
    for (const pair of pairs.filter((p) => failureOf(p))) {
      expect(pair.imageBytes).toBeNull();
      expect(failureOf(pair)!.message).toMatch(/outside the folders this source may read \(.*data\/imgs\); list its folder in imageRoots, or set allowAbsolutePaths: true/);
    }
    expect(failureOf(pairs.find((p) => p.key === 'out_link')!)!.message).toContain(`(a symbolic link to ${secret})`);
  });

  it('read from the folders imageRoots lists, and from anywhere with allowAbsolutePaths', async () => {
    const allOk = Object.fromEntries(rows().map((r) => [r.key, 'ok']));
    expect(codes(await read({ imageRoots: ['private'] }))).toEqual(allOk);
    expect(codes(await read({ allowAbsolutePaths: true }))).toEqual(allOk);
    expect((await read({ allowAbsolutePaths: true })).find((p) => p.key === 'abs')!.imageBytes!.equals(image)).toBe(true);
  });
});

describe('LLaVA image references', () => {
  it('refuse an absolute path and a file: URL outside the images folder', async () => {
    const turns = [
      { from: 'human', value: '<image>\nWhat is it?' },
      { from: 'gpt', value: 'A photo.' },
    ];
    await writeFile(
      path.join(dir, 'data', 'llava.json'),
      JSON.stringify([
        { id: 'own', image: 'own.jpg', conversations: turns },
        { id: 'abs', image: secret, conversations: turns },
        { id: 'url', image: `file://${secret}`, conversations: turns },
        { id: 'link', image: 'out-link.jpg', conversations: turns },
      ]),
    );
    const read = (extra: Record<string, unknown>) => collect(sourceFrom({ type: 'llava', path: 'data/llava.json', images: 'data/imgs', ...extra }).read(context(dir)));
    expect(codes(await read({}))).toEqual({ own: 'ok', abs: 'image_path_invalid', url: 'image_path_invalid', link: 'image_path_invalid' });
    expect(codes(await read({ allowAbsolutePaths: true }))).toEqual({ own: 'ok', abs: 'ok', url: 'ok', link: 'ok' });
  });
});

describe('COCO and folder sources', () => {
  it('COCO: a file_name that is a link out of the images folder is image_path_invalid', async () => {
    await writeFile(
      path.join(dir, 'data', 'captions.json'),
      JSON.stringify({
        images: [
          { id: 1, file_name: 'own.jpg', width: 16, height: 12 },
          { id: 2, file_name: 'out-link.jpg', width: 16, height: 12 },
          { id: 3, file_name: secret, width: 16, height: 12 },
        ],
        annotations: [1, 2, 3].map((id) => ({ id, image_id: id, caption: `caption ${id}` })),
      }),
    );
    const read = (extra: Record<string, unknown>) => collect(sourceFrom({ type: 'coco', captions: 'data/captions.json', images: 'data/imgs', ...extra }).read(context(dir)));
    expect((await read({})).map((p) => failureOf(p)?.code ?? 'ok')).toEqual(['ok', 'image_path_invalid', 'image_path_invalid']);
    expect((await read({ imageRoots: ['private'] })).map((p) => failureOf(p)?.code ?? 'ok')).toEqual(['ok', 'ok', 'ok']);
  });

  it('folder: a link to a file outside the folder is image_path_invalid unless imageRoots lists its folder', async () => {
    const read = (extra: Record<string, unknown>) => collect(sourceFrom({ type: 'folder', path: 'data/imgs', ...extra }).read(context(dir)));
    expect(codes(await read({}))).toEqual({ 'in-link': 'ok', 'out-link': 'image_path_invalid', own: 'ok' });
    expect(codes(await read({ imageRoots: ['private'] }))).toEqual({ 'in-link': 'ok', 'out-link': 'ok', own: 'ok' });
  });
});
