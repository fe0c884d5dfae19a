/**
 * One folder, one export (issue 11): `vlcurate export --out DIR` into a folder that holds another export's
 * shards used to write a second copy beside them under another prefix (a loader globbing `*.tar` read every
 * sample twice) and overwrote `manifest.json`. Now it is refused, exit 2, before anything is written, with a
 * message that names the folder, the other export and what to do. Real CLI processes, a real tar source.
 */
import { copyFileSync, mkdirSync, readdirSync, readFileSync, writeFileSync, type Dirent } from 'node:fs';
import { join, relative } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { makeGoodSamples, sampleMembers, writeTar } from '../fixtures/make-webdataset.js';
import { runCli } from '../e2e/helpers.js';
import { ownExportFiles } from '../../src/export/export-folder.js';
import { cleanup, listWithNodeTar, tempDir } from './fixtures.js';

afterEach(cleanup);

let dir: string;
let db: string;
let wds: string;

/** Everything in a folder (and its subfolders) with its bytes, to show a refused command changed nothing. */
function snapshot(folder: string): Record<string, string> {
  return Object.fromEntries(
    (readdirSync(folder, { recursive: true, withFileTypes: true }) as Dirent[])
      .filter((e) => e.isFile())
      .map((e) => relative(folder, join(e.parentPath, e.name)))
      .sort()
      .map((f) => [f, readFileSync(join(folder, f)).toString('base64')]),
  );
}

function exportRows(name: string): number {
  const handle = new Database(db, { readonly: true });
  try {
    return (handle.prepare('SELECT COUNT(*) AS n FROM exports WHERE export_name = ?').get(name) as { n: number }).n;
  } finally {
    handle.close();
  }
}

beforeEach(async () => {
  dir = tempDir();
  const goods = await makeGoodSamples(6);
  await writeTar(join(dir, 'shard-000000.tar'), goods.flatMap(sampleMembers));
  writeFileSync(
    join(dir, 'recipe.yaml'),
    stringify({
      run: { db: 'out/run.db' },
      sources: [{ type: 'webdataset', name: 'web', paths: 'shard-000000.tar' }],
      export: [{ type: 'webdataset', name: 'wds', out: 'out/wds', maxCount: 4 }],
    }),
  );
  const built = await runCli(['build', join(dir, 'recipe.yaml'), '--progress', 'plain']);
  expect(built.code, built.stderr).toBe(0);
  db = join(dir, 'out/run.db');
  wds = join(dir, 'out/wds');
  expect(readdirSync(wds).sort()).toEqual(['manifest.json', 'wds-000000.tar', 'wds-000001.tar']);
});

describe('export into a folder that holds another export', () => {
  it('refuses a WebDataset export under another name (exit 2), naming the folder, the export and the fix; nothing changes', async () => {
    const before = snapshot(wds);
    const result = await runCli(['export', db, '--format', 'webdataset', '--out', wds]);
    expect(result.code, result.stderr).toBe(2);
    expect(result.stderr).toContain(wds);
    expect(result.stderr).toContain('export "wds"');
    expect(result.stderr).toContain('manifest.json');
    expect(result.stderr).toContain('--name wds');
    expect(result.stderr).toContain('--out a folder of its own');
    expect(snapshot(wds)).toEqual(before);
    expect(exportRows('webdataset')).toBe(0);

    // --fresh is refused the same way, and forgets nothing.
    const fresh = await runCli(['export', db, '--format', 'webdataset', '--out', wds, '--fresh']);
    expect(fresh.code).toBe(2);
    expect(snapshot(wds)).toEqual(before);
    expect(exportRows('wds')).toBe(6);
  });

  it('refuses a JSON export there too; the same export by its name continues as before', async () => {
    const before = snapshot(wds);
    const llava = await runCli(['export', db, '--format', 'llava', '--out', wds]);
    expect(llava.code).toBe(2);
    expect(llava.stderr).toContain('export "wds"');
    expect(snapshot(wds)).toEqual(before);

    const same = await runCli(['export', db, '--format', 'webdataset', '--name', 'wds', '--out', wds]);
    expect(same.code, same.stderr).toBe(0);
    expect(snapshot(wds)).toEqual(before);
    const keys = (await Promise.all(['wds-000000.tar', 'wds-000001.tar'].map((f) => listWithNodeTar(join(wds, f))))).flat();
    expect(keys.filter((m) => m.path.endsWith('.json'))).toHaveLength(6);
  });

  it('recognises shards of another prefix without a manifest (another run killed before writing one)', async () => {
    const other = join(dir, 'other');
    mkdirSync(other);
    copyFileSync(join(wds, 'wds-000000.tar'), join(other, 'shapes-000000.tar'));
    const result = await runCli(['export', db, '--format', 'webdataset', '--name', 'second', '--out', other]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('"shapes" (shapes-000000.tar)');
    expect(readdirSync(other)).toEqual(['shapes-000000.tar']);
  });

  it('a build whose recipe points an export at another export\'s folder stops before its run starts', async () => {
    writeFileSync(
      join(dir, 'recipe2.yaml'),
      stringify({
        run: { db: 'out/run2.db' },
        sources: [{ type: 'webdataset', name: 'web', paths: 'shard-000000.tar' }],
        export: [{ type: 'webdataset', name: 'train', out: 'out/wds' }],
      }),
    );
    const before = snapshot(wds);
    const result = await runCli(['build', join(dir, 'recipe2.yaml'), '--progress', 'plain']);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('export "train"');
    expect(result.stderr).toContain('export "wds"');
    expect(snapshot(wds)).toEqual(before);
  });

  it('a recipe with two exports in one folder is a configuration error', async () => {
    writeFileSync(
      join(dir, 'recipe3.yaml'),
      stringify({
        run: { db: 'out/run3.db' },
        sources: [{ type: 'webdataset', name: 'web', paths: 'shard-000000.tar' }],
        export: [
          { type: 'webdataset', name: 'a', out: 'out/shared', prefix: 'a' },
          { type: 'llava', name: 'b', out: 'out/shared' },
        ],
      }),
    );
    const result = await runCli(['build', join(dir, 'recipe3.yaml'), '--progress', 'plain']);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('exports "a" and "b" both write into "out/shared"');
  });
  it('refuses the same export name from another run database: its shards are not this database\'s leftovers (exit 2, nothing deleted)', async () => {
    // Found by QA: a second run database exporting under the same name into this folder took the first
    // one's shards for unrecorded files of an interrupted run and deleted them all.
    writeFileSync(
      join(dir, 'recipe4.yaml'),
      stringify({
        run: { db: 'other/run.db' },
        sources: [{ type: 'webdataset', name: 'web', paths: 'shard-000000.tar' }],
        export: [{ type: 'webdataset', name: 'wds', out: 'out/wds', maxCount: 4 }],
      }),
    );
    const before = snapshot(wds);
    const built = await runCli(['build', join(dir, 'recipe4.yaml'), '--progress', 'plain']);
    expect(built.code, built.stderr).toBe(2);
    expect(built.stderr).toContain('wds-000000.tar');
    expect(built.stderr).toContain('did not write');
    expect(snapshot(wds)).toEqual(before);

    const other = join(dir, 'other/run.db');
    const exported = await runCli(['export', other, '--format', 'webdataset', '--name', 'wds', '--out', wds]);
    expect(exported.code, exported.stderr).toBe(2);
    expect(exported.stderr).toContain('did not write');
    expect(snapshot(wds)).toEqual(before);
  });

  it('refuses a JSON export of the same name that another run database wrote (exit 2, nothing rewritten); --fresh of its own database starts it over', async () => {
    // Found by QA: a LLaVA export of another database under the same name and folder rewrote the parts,
    // manifest.json and images/ of the first, as the WebDataset case deleted its shards.
    const llava = join(dir, 'out/llava');
    const exported = await runCli(['export', db, '--format', 'llava', '--name', 'lv', '--out', llava]);
    expect(exported.code, exported.stderr).toBe(0);
    const before = snapshot(llava);
    expect(Object.keys(before)).toContain('manifest.json');
    writeFileSync(
      join(dir, 'recipe5.yaml'),
      stringify({
        run: { db: 'other5/run.db' },
        sources: [{ type: 'webdataset', name: 'web', paths: 'shard-000000.tar' }],
        export: [{ type: 'llava', name: 'lv', out: 'out/llava' }],
      }),
    );
    const built = await runCli(['build', join(dir, 'recipe5.yaml'), '--progress', 'plain']);
    expect(built.code, built.stderr).toBe(2);
    expect(built.stderr).toContain('manifest.json');
    expect(built.stderr).toContain('did not write');
    expect(snapshot(llava)).toEqual(before);
    // The database that wrote it can still start it over: --fresh removes its own parts and manifest first.
    const fresh = await runCli(['export', db, '--name', 'lv', '--fresh']);
    expect(fresh.code, fresh.stderr).toBe(0);
    expect(Object.keys(snapshot(llava))).toEqual(Object.keys(before));
  });

  it('an export\'s own files are told apart per --shard part (a part never takes the whole export\'s files, or another part\'s, for its own)', () => {
    const folder = join(dir, 'parts');
    mkdirSync(folder);
    for (const [name, text] of [
      ['manifest.json', '{"export": "lv"}'],
      ['manifest-s0of3.json', '{"export": "lv"}'],
      ['manifest-s1of3.json', '{"export": "other"}'],
      ['lv-mixed.json', '[]'],
      ['lv-stage1-s0of3.json', '[]'],
      ['lv-mixed-s1of3.json', '[]'],
      ['lvx-mixed.json', '[]'],
      ['lv-000000.tar', ''],
      ['lv-s0of3-000001.tar', ''],
      ['notes.json', '{}'],
    ]) writeFileSync(join(folder, name!), text!);
    const claim = { dir: folder, exportName: 'lv', prefix: 'lv' };
    expect(ownExportFiles(claim, '')).toEqual(['lv-000000.tar', 'lv-mixed.json', 'manifest.json']);
    expect(ownExportFiles(claim, '-s0of3')).toEqual(['lv-s0of3-000001.tar', 'lv-stage1-s0of3.json', 'manifest-s0of3.json']);
    expect(ownExportFiles(claim, '-s1of3')).toEqual(['lv-mixed-s1of3.json']);
  });
});
