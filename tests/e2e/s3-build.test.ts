/**
 * `vlcurate build` over a dataset on S3, end to end: the CLI as a child process, reaching a local s3rver
 * through the AWS SDK's own environment (AWS_ENDPOINT_URL, AWS_REGION, AWS_ACCESS_KEY_ID /
 * AWS_SECRET_ACCESS_KEY), exactly as a user points it at MinIO. Shards by brace pattern (one missing) and a
 * JSONL manifest with relative image paths; before issue 16 every s3:// path was a missing local file.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { S3Store } from '../../src/backends/s3-store.js';
import { s3Connection, storageSchema } from '../../src/storage/storage-settings.js';
import { makeGoodSamples, makeImage, sampleMembers, writeTar } from '../fixtures/make-webdataset.js';
import { startLocalS3, type LocalS3 } from '../s3-server/s3-server.js';
import { keysOf, readShardMembers, runCli } from './helpers.js';

let s3: LocalS3;
let dir: string;
const savedEnv = { ...process.env };
const goodKeys: string[] = [];

beforeAll(async () => {
  s3 = await startLocalS3(['vlc-e2e']);
  // Credentials and region for every process; the endpoint only where a test gives it.
  const { AWS_ENDPOINT_URL: _endpoint, ...rest } = s3.env;
  Object.assign(process.env, rest);
  dir = mkdtempSync(join(tmpdir(), 'vlc-s3-build-'));
  const store = new S3Store('vlc-e2e', s3Connection(storageSchema.parse({ s3: { endpoint: s3.endpoint } })));
  const samples = await makeGoodSamples(12);
  for (const [i, part] of [samples.slice(0, 6), samples.slice(6)].entries()) {
    const file = join(dir, `part-${i}.tar`);
    await writeTar(file, part.flatMap(sampleMembers));
    await store.put(`laion/shard-00${i}.tar`, readFileSync(file));
  }
  goodKeys.push(...samples.map((s) => s.key));
  await store.put('coco-ish/images/a.jpg', await makeImage(48, 32, 'jpeg', 3));
  await store.put('coco-ish/images/b.png', await makeImage(40, 30, 'png', 4));
  const rows = [
    { id: 'm-a', image: 'images/a.jpg', caption: 'a small picture' },
    { id: 'm-b', image: 'images/b.png', caption: 'another picture' },
    { id: 'm-gone', image: 'images/gone.jpg', caption: 'no such object' },
  ];
  await store.put('coco-ish/manifest.jsonl', Buffer.from(rows.map((r) => JSON.stringify(r)).join('\n')));
}, 60_000);

afterAll(async () => {
  process.env = savedEnv;
  await s3?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('vlcurate build over s3://', () => {
  it('reads shards and a manifest from S3, records the missing ones per shard and per sample, exports the rest', async () => {
    writeFileSync(
      join(dir, 'recipe.yaml'),
      stringify({
        run: { db: 'out/run.db' },
        sources: [
          { type: 'webdataset', name: 'laion', paths: 's3://vlc-e2e/laion/shard-{000..002}.tar' },
          { type: 'jsonl', name: 'manifest', path: 's3://vlc-e2e/coco-ish/manifest.jsonl', image: 'image', caption: 'caption', key: 'id' },
        ],
        export: [{ type: 'webdataset', out: 'out/wds' }],
      }),
    );
    // The child gets the endpoint and credentials from its environment only.
    const result = await runCli(['build', join(dir, 'recipe.yaml'), '--progress', 'plain'], { env: s3.env, cwd: dir });
    expect(result.code, result.stderr).toBe(1);

    const failed = JSON.parse((await runCli(['inspect', join(dir, 'out/run.db'), 'samples', '--status', 'failed', '--json'])).stdout) as { key: string; error_code: string }[];
    expect(Object.fromEntries(failed.map((f) => [f.key, f.error_code]))).toEqual({ 'shard-002_tar__shard': 'shard_missing', 'm-gone': 'image_missing' });
    const exported = keysOf(await readShardMembers(join(dir, 'out/wds'))).sort();
    expect(exported).toEqual([...goodKeys, 'm-a', 'm-b'].sort());

    // A later export reads each image back from its recorded reference: tar:s3://... members and s3 objects.
    const again = await runCli(['export', join(dir, 'out/run.db'), '--format', 'webdataset', '--out', join(dir, 'out/again'), '--name', 'again'], { env: s3.env, cwd: dir });
    expect(again.code, again.stderr).toBe(0);
    expect(keysOf(await readShardMembers(join(dir, 'out/again'))).sort()).toEqual(exported);
  }, 120_000);

  it('reaches the store through the recipe storage.s3.endpoint alone, in the build and in a later export', async () => {
    writeFileSync(
      join(dir, 'override.yaml'),
      stringify({
        run: { db: 'over/run.db' },
        storage: { s3: { endpoint: s3.endpoint } },
        sources: [{ type: 'webdataset', name: 'laion', paths: 's3://vlc-e2e/laion/' }],
        export: [{ type: 'webdataset', out: 'over/wds' }],
      }),
    );
    expect(process.env['AWS_ENDPOINT_URL']).toBeUndefined();
    const result = await runCli(['build', join(dir, 'override.yaml'), '--progress', 'plain'], { cwd: dir });
    expect(result.code, result.stderr).toBe(0);
    expect(keysOf(await readShardMembers(join(dir, 'over/wds'))).sort()).toEqual([...goodKeys].sort());
    const again = await runCli(['export', join(dir, 'over/run.db'), '--format', 'webdataset', '--out', join(dir, 'over/again'), '--name', 'again'], { cwd: dir });
    expect(again.code, again.stderr).toBe(0);
    expect(keysOf(await readShardMembers(join(dir, 'over/again'))).sort()).toEqual([...goodKeys].sort());
    // The report's thumbnails read the images the same way.
    const report = await runCli(['report', join(dir, 'over/run.db'), '--out', join(dir, 'over/report.html'), '--json'], { cwd: dir });
    expect(report.code, report.stderr).toBe(0);
    const thumbnails = (JSON.parse(report.stdout) as { thumbnails: { made: number; failed: number } }).thumbnails;
    expect(thumbnails.made).toBeGreaterThan(0);
    expect(thumbnails.failed).toBe(0);
  }, 120_000);

  it('refuses a gs:// path at its field with exit 2 and the interoperability hint', async () => {
    writeFileSync(join(dir, 'gs.yaml'), stringify({ run: { db: 'gs/run.db' }, sources: [{ type: 'webdataset', paths: 'gs://bucket/shard-{000..009}.tar' }], export: [] }));
    const result = await runCli(['build', join(dir, 'gs.yaml'), '--progress', 'plain'], { env: s3.env, cwd: dir });
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/sources\[0\]\.paths/);
    expect(result.stderr).toMatch(/storage\.googleapis\.com/);
  }, 60_000);
});
