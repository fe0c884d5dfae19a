/**
 * Exports to object storage (issue 16, item 2): `out: s3://bucket/prefix` writes shards, JSON parts,
 * images and manifests as objects on a local S3 server (s3rver, through the real AWS SDK), exactly once,
 * also when the writer is killed with SIGKILL in the middle of an upload. Before, `s3://...` was a local
 * folder named `s3:` and the bucket stayed empty.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { generateShapes } from '../../datasets/shapes/index.js';
import { readShardMembers, runCli } from '../e2e/helpers.js';
import { startLocalS3, type LocalS3 } from '../s3-server/s3-server.js';
import { bucketStore, download, keysUnder, startSlowProxy } from '../s3-server/s3-helpers.js';

let s3: LocalS3;
let data: string;
const COUNT = 120;

beforeAll(async () => {
  s3 = await startLocalS3(['vlc-out']);
  data = mkdtempSync(join(tmpdir(), 'vlc-s3-export-'));
  await generateShapes({ out: data, count: COUNT, noise: 0.3, seed: 11, shardSize: 60 });
}, 60_000);

afterAll(async () => {
  await s3.close();
  rmSync(data, { recursive: true, force: true });
});

function writeRecipe(dir: string, out: string, extra: Record<string, unknown> = {}): string {
  const recipe = join(dir, 'recipe.yaml');
  writeFileSync(
    recipe,
    stringify({
      run: { db: 'out/run.db', commitEvery: 8 },
      sources: [{ type: 'webdataset', paths: join(data, 'webdataset/shapes-{000000..000001}.tar') }],
      export: [
        { type: 'webdataset', name: 'wds', out: `${out}/wds`, maxCount: 20 },
        { type: 'llava', name: 'llava', out: `${out}/llava` },
      ],
      ...extra,
    }),
  );
  return recipe;
}

function dbRows(dir: string): { exported: string[]; captioned: string[]; shards: { path: string; sample_count: number; byte_length: number; sha256: string }[] } {
  const db = new Database(join(dir, 'out/run.db'), { readonly: true });
  try {
    const exported = (db.prepare(`SELECT sample_key FROM exports WHERE export_name = 'wds' ORDER BY sample_key`).pluck().all() as string[]);
    const captioned = db
      .prepare(`SELECT key FROM samples s WHERE status = 'ok' AND EXISTS (SELECT 1 FROM captions c WHERE c.sample_key = s.key AND c.usable = 1 AND trim(c.text) <> '') ORDER BY key`)
      .pluck()
      .all() as string[];
    const shards = db.prepare(`SELECT path, sample_count, byte_length, sha256 FROM export_shards WHERE export_name = 'wds' AND sha256 != '' ORDER BY path`).all() as {
      path: string;
      sample_count: number;
      byte_length: number;
      sha256: string;
    }[];
    return { exported, captioned, shards };
  } finally {
    db.close();
  }
}

/** What the bucket holds under `prefix` for the WebDataset export: every tar's keys (read with node-tar), and the manifest. */
async function readWds(prefix: string): Promise<{ tars: string[]; keys: string[]; manifest: { shards: { path: string; count: number; bytes: number; sha256: string }[]; total: number } }> {
  const store = bucketStore(s3, 'vlc-out');
  const all = await keysUnder(store, prefix);
  const tars = all.filter((k) => k.endsWith('.tar'));
  const local = await download(store, prefix, tars);
  const members = await readShardMembers(local);
  const keys = members.filter((m) => m.member.endsWith('.jpg') || m.member.endsWith('.png')).map((m) => m.member.split('.')[0]!);
  const manifest = JSON.parse((await store.readBytes(`${prefix}manifest.json`)).toString('utf8')) as Awaited<ReturnType<typeof readWds>>['manifest'];
  // Each listed shard is the object there, byte for byte.
  for (const shard of manifest.shards) {
    const bytes = readFileSync(join(local, shard.path));
    expect({ bytes: bytes.length, sha256: createHash('sha256').update(bytes).digest('hex') }).toEqual({ bytes: shard.bytes, sha256: shard.sha256 });
  }
  rmSync(local, { recursive: true, force: true });
  return { tars: tars.map((t) => t.slice(prefix.length)), keys, manifest };
}

describe('exports to s3://', () => {
  it('writes WebDataset shards and a LLaVA export as objects, read back exactly once; a re-run changes nothing', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vlc-s3-run-'));
    try {
      const recipe = writeRecipe(dir, 's3://vlc-out/round');
      const first = await runCli(['build', recipe, '--progress', 'plain'], { env: s3.env });
      expect(first.stderr).toContain('finished');
      // Nothing went to a local folder named after the URL.
      expect(existsSync(join(dir, 's3:'))).toBe(false);

      const { exported, captioned, shards } = dbRows(dir);
      expect(captioned.length).toBeGreaterThan(COUNT * 0.6);
      expect(exported).toEqual(captioned);
      const wds = await readWds('round/wds/');
      expect(wds.tars.length).toBeGreaterThanOrEqual(4);
      expect(new Set(wds.keys).size).toBe(wds.keys.length);
      expect([...wds.keys].sort()).toEqual(captioned);
      // The manifest lists exactly the objects there, as the database recorded them.
      expect(wds.manifest.shards.map((s) => s.path)).toEqual(wds.tars);
      expect(wds.manifest.total).toBe(captioned.length);
      expect(shards.map((s) => s.path)).toEqual(wds.tars.map((t) => `s3://vlc-out/round/wds/${t}`));
      expect(wds.manifest.shards.map((s) => s.sha256)).toEqual(shards.map((s) => s.sha256));

      const store = bucketStore(s3, 'vlc-out');
      const llavaKeys = await keysUnder(store, 'round/llava/');
      expect(llavaKeys.filter((k) => !k.startsWith('round/llava/images/'))).toEqual(['round/llava/llava-stage1.json', 'round/llava/manifest.json', 'round/llava/stats.json']);
      const stage1 = JSON.parse((await store.readBytes('round/llava/llava-stage1.json')).toString()) as { id: string; image: string }[];
      const images = llavaKeys.filter((k) => k.startsWith('round/llava/images/')).map((k) => k.slice('round/llava/images/'.length));
      expect(stage1.length).toBeGreaterThan(COUNT * 0.6);
      expect([...new Set(stage1.map((r) => r.image))].sort()).toEqual(images);
      const manifest = JSON.parse((await store.readBytes('round/llava/manifest.json')).toString()) as { total: number; files: { path: string; sha256: string }[] };
      expect(manifest.total).toBe(stage1.length);
      expect(manifest.files[0]!.sha256).toBe(createHash('sha256').update(await store.readBytes('round/llava/llava-stage1.json')).digest('hex'));

      // A re-run finds everything done and writes no shard.
      const before = await keysUnder(store, 'round/');
      const again = await runCli(['build', recipe, '--progress', 'plain'], { env: s3.env });
      expect(again.stderr).toContain('finished');
      expect(await keysUnder(store, 'round/')).toEqual(before);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);

  it('deletes objects the run database does not hold and writes again the samples of a shard that is gone', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vlc-s3-run-'));
    try {
      const recipe = writeRecipe(dir, 's3://vlc-out/stray');
      expect((await runCli(['build', recipe, '--progress', 'plain'], { env: s3.env })).stderr).toContain('finished');
      const store = bucketStore(s3, 'vlc-out');
      const shards = (await keysUnder(store, 'stray/wds/')).filter((k) => k.endsWith('.tar'));
      // A killed writer's object that was never recorded, and a recorded shard lost from the bucket.
      await store.put('stray/wds/wds-000042.tar', Buffer.from('not a recorded shard'));
      await store.delete(shards[1]!);
      const resumed = await runCli(['build', recipe, '--progress', 'plain'], { env: s3.env });
      expect(resumed.stderr).toContain('finished');
      expect(resumed.stderr).toMatch(/removed 1 object\(s\) of s3:\/\/vlc-out\/stray\/wds/);
      const { exported, captioned } = dbRows(dir);
      const wds = await readWds('stray/wds/');
      expect(wds.tars).not.toContain('wds-000042.tar');
      expect(new Set(wds.keys).size).toBe(wds.keys.length);
      expect([...wds.keys].sort()).toEqual(captioned);
      expect(exported).toEqual(captioned);
      expect(wds.manifest.shards.map((s) => s.path)).toEqual(wds.tars);

      // A recorded shard overwritten with other bytes is refused, not listed.
      await store.put(`stray/wds/${wds.tars[0]}`, Buffer.from('other bytes'));
      const changed = await runCli(['build', recipe, '--progress', 'plain'], { env: s3.env });
      expect(changed.code).not.toBe(0);
      expect(changed.stderr).toContain(`s3://vlc-out/stray/wds/${wds.tars[0]} is 11 bytes, recorded as`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);

  it('a writer killed with SIGKILL in the middle of an upload resumes with every sample exactly once and no stray object', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vlc-s3-run-'));
    // Uploads crawl through the proxy, so the process spends its time uploading; it is killed when the
    // third shard upload is half sent.
    const proxy = await startSlowProxy(s3.endpoint, 400_000);
    try {
      const recipe = writeRecipe(dir, 's3://vlc-out/killed');
      let uploads = 0;
      let killedAt: string | null = null;
      const killed = await runCli(['build', recipe, '--progress', 'plain'], {
        env: { ...s3.env, AWS_ENDPOINT_URL: proxy.endpoint },
        onStart: (child) => {
          proxy.onHalfUpload = (path) => {
            if (!path.includes('/killed/wds/')) return false;
            uploads++;
            if (uploads !== 3 || child.exitCode !== null) return false;
            killedAt = path;
            child.kill('SIGKILL');
            return true;
          };
        },
      });
      proxy.onHalfUpload = null;
      expect(killed.signal).toBe('SIGKILL');
      expect(killedAt).toMatch(/wds-000002\.tar/);
      const store = bucketStore(s3, 'vlc-out');
      // The half-sent shard never became an object; the two before it did.
      expect((await keysUnder(store, 'killed/wds/')).filter((k) => k.endsWith('.tar'))).toEqual(['killed/wds/wds-000000.tar', 'killed/wds/wds-000001.tar']);

      const resumed = await runCli(['build', recipe, '--progress', 'plain'], { env: s3.env });
      expect(resumed.stderr).toContain('finished');
      const { exported, captioned, shards } = dbRows(dir);
      const wds = await readWds('killed/wds/');
      expect(new Set(wds.keys).size).toBe(wds.keys.length);
      expect([...wds.keys].sort()).toEqual(captioned);
      expect(exported).toEqual(captioned);
      // No stray objects: exactly the recorded shards and the manifest.
      expect(await keysUnder(store, 'killed/wds/')).toEqual([...shards.map((s) => s.path.slice('s3://vlc-out/'.length)), 'killed/wds/manifest.json'].sort());
      expect(wds.manifest.shards.map((s) => s.path)).toEqual(wds.tars);
    } finally {
      await proxy.close();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 180_000);

  it('vlcurate export writes a run database to s3://, continues a recipe export there, and refuses a prefix holding --shard parts files', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vlc-s3-run-'));
    try {
      const recipe = writeRecipe(dir, 's3://vlc-out/cli');
      expect((await runCli(['build', recipe, '--progress', 'plain'], { env: s3.env })).stderr).toContain('finished');
      const db = join(dir, 'out/run.db');
      const { captioned } = dbRows(dir);
      const again = await runCli(['export', db, '--format', 'webdataset', '--name', 'again', '--out', 's3://vlc-out/cli/again'], { env: s3.env });
      expect(again.code, again.stderr).toBe(0);
      expect(existsSync(join(dir, 's3:'))).toBe(false);
      const wds = await readWds('cli/again/');
      expect(new Set(wds.keys).size).toBe(wds.keys.length);
      expect([...wds.keys].sort()).toEqual(captioned);
      expect(wds.manifest.shards.map((s) => s.path)).toEqual(wds.tars);

      // Continuing the recipe's export by name finds it complete and writes nothing.
      const store = bucketStore(s3, 'vlc-out');
      const before = await keysUnder(store, 'cli/wds/');
      const continued = await runCli(['export', db, '--name', 'wds'], { env: s3.env });
      expect(continued.code, continued.stderr).toBe(0);
      expect(continued.stderr).toContain('s3://vlc-out/cli/wds');
      expect(await keysUnder(store, 'cli/wds/')).toEqual(before);

      // A prefix holding a --shard part's shards: this database's export there would duplicate them.
      await store.put('cli/parts/wds-s0of2-000000.tar', Buffer.from('a part shard'));
      const refused = await runCli(['export', db, '--format', 'webdataset', '--name', 'wds', '--out', 's3://vlc-out/cli/parts'], { env: s3.env });
      expect(refused.code).toBe(2);
      expect(refused.stderr).toContain('written by the parts of a --shard build (wds-s0of2-000000.tar)');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);

  it('never cleans a prefix another run database wrote: a first start finding this export\'s objects there is refused and leaves them', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vlc-s3-run-'));
    try {
      const store = bucketStore(s3, 'vlc-out');
      await store.put('foreign/wds/wds-000000.tar', Buffer.from('another database wrote this'));
      await store.put('foreign/llava/llava-stage1.json', Buffer.from('[]'));
      const recipe = writeRecipe(dir, 's3://vlc-out/foreign');
      const refused = await runCli(['build', recipe, '--progress', 'plain'], { env: s3.env });
      expect(refused.code).toBe(2);
      expect(refused.stderr).toMatch(/s3:\/\/vlc-out\/foreign\/(wds holds shards|llava holds files) of an export "(wds|llava)" that this run database did not write/);
      expect(await keysUnder(store, 'foreign/')).toEqual(['foreign/llava/llava-stage1.json', 'foreign/wds/wds-000000.tar']);
      // Refused, the export stays unclaimed: a second start is refused the same way, never cleans.
      const again = await runCli(['build', recipe, '--progress', 'plain'], { env: s3.env });
      expect(again.code).toBe(2);
      expect(await keysUnder(store, 'foreign/')).toEqual(['foreign/llava/llava-stage1.json', 'foreign/wds/wds-000000.tar']);
      // Without the JSON export's file, the WebDataset export's own refusal is what stops it.
      await store.delete('foreign/llava/llava-stage1.json');
      const third = await runCli(['build', recipe, '--progress', 'plain'], { env: s3.env });
      expect(third.code).toBe(2);
      expect(third.stderr).toContain('s3://vlc-out/foreign/wds holds shards of an export "wds" that this run database did not write (wds-000000.tar)');
      expect(await keysUnder(store, 'foreign/wds/')).toEqual(['foreign/wds/wds-000000.tar']);
      const fourth = await runCli(['build', recipe, '--progress', 'plain'], { env: s3.env });
      expect(fourth.code).toBe(2);
      expect(await keysUnder(store, 'foreign/wds/')).toEqual(['foreign/wds/wds-000000.tar']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
