/**
 * A part can move (issue 16, item 3): with `--state s3://...` the run database stays on the local disk and
 * its snapshots go to the bucket; a part killed with SIGKILL on one "machine" (a working directory) after a
 * snapshot resumes on another with no local database, and ends with the database and objects of a run that
 * was never interrupted. Shards the killed part uploaded after its last snapshot are not in the restored
 * database: they are deleted and their samples written again, so none is exported twice.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { generateShapes } from '../../datasets/shapes/index.js';
import { readShardMembers, runCli } from './helpers.js';
import { startLocalS3, type LocalS3 } from '../s3-server/s3-server.js';
import { bucketStore, download, keysUnder, startSlowProxy } from '../s3-server/s3-helpers.js';

let s3: LocalS3;
let data: string;
const made: string[] = [];
const COUNT = 240;

function machine(): string {
  const dir = mkdtempSync(join(tmpdir(), 'vlc-machine-'));
  made.push(dir);
  return dir;
}

beforeAll(async () => {
  s3 = await startLocalS3(['vlc-parts']);
  data = machine();
  await generateShapes({ out: data, count: COUNT, noise: 0.3, seed: 5, shardSize: 60 });
}, 60_000);

afterAll(async () => {
  await s3.close();
  for (const dir of made) rmSync(dir, { recursive: true, force: true });
});

/** The same recipe on every machine: inputs on the shared data folder, outputs under `out` in the bucket. */
function writeRecipe(dir: string, out: string): string {
  const recipe = join(dir, 'recipe.yaml');
  writeFileSync(
    recipe,
    stringify({
      run: { db: 'out/run.db', commitEvery: 8, snapshot: { seconds: 1, samples: 100000 } },
      sources: [{ type: 'webdataset', paths: join(data, 'webdataset/shapes-{000000..000003}.tar') }],
      export: [
        { type: 'webdataset', name: 'wds', out: `s3://vlc-parts/${out}/wds`, maxCount: 20 },
        { type: 'llava', name: 'llava', out: `s3://vlc-parts/${out}/llava` },
      ],
    }),
  );
  return recipe;
}

function snapshotShards(file: string): number {
  const db = new Database(file, { readonly: true });
  try {
    return db.prepare(`SELECT COUNT(*) FROM export_shards WHERE export_name = 'wds' AND sha256 != ''`).pluck().get() as number;
  } finally {
    db.close();
  }
}

/** What a run database holds, without ids and times: samples, captions with scores, exported keys. */
function contents(file: string): { samples: unknown[]; captions: unknown[]; wds: string[]; llava: unknown[] } {
  const db = new Database(file, { readonly: true });
  try {
    return {
      samples: db.prepare('SELECT key, source, status, error_code, sha256, width, height FROM samples ORDER BY key').all(),
      captions: db.prepare('SELECT sample_key, idx, origin, text, usable, itc, itm, kept FROM captions ORDER BY sample_key, idx').all(),
      wds: db.prepare(`SELECT sample_key FROM exports WHERE export_name = 'wds' ORDER BY sample_key`).pluck().all() as string[],
      llava: db.prepare(`SELECT record_id, part, status, record_json FROM export_records WHERE export_name = 'llava' ORDER BY record_id`).all(),
    };
  } finally {
    db.close();
  }
}

async function tarKeys(prefix: string): Promise<string[]> {
  const store = bucketStore(s3, 'vlc-parts');
  const tars = (await keysUnder(store, prefix)).filter((k) => k.endsWith('.tar'));
  const local = await download(store, prefix, tars);
  made.push(local);
  return (await readShardMembers(local)).filter((m) => m.member.endsWith('.jpg')).map((m) => m.member.split('.')[0]!);
}

describe('a part moves to another machine', () => {
  it('killed with SIGKILL after a snapshot, resumed in a fresh directory from --state: the database and objects of an uninterrupted run', async () => {
    const store = bucketStore(s3, 'vlc-parts');
    const state = 's3://vlc-parts/state/moved/';
    const first = machine();
    // Kill once the bucket holds shards uploaded after the latest snapshot (they must not survive the move).
    let kill: NodeJS.Timeout | null = null;
    let checking = false;
    // The part uploads through a slow link, so its run outlasts the polling below on an idle machine too
    // (at full speed it could finish before a shard landed after a snapshot, and was never killed).
    const link = await startSlowProxy(s3.endpoint, 1_000_000);
    const killed = await runCli(['build', writeRecipe(first, 'moved'), '--state', state, '--progress', 'plain'], {
      env: { ...s3.env, AWS_ENDPOINT_URL: link.endpoint },
      onStart: (child) => {
        kill = setInterval(() => {
          if (checking || child.exitCode !== null) return;
          checking = true;
          (async () => {
            const snapshot = await store.stat('state/moved/run.db');
            if (!snapshot) return;
            const file = join(machine(), 'snap.db');
            writeFileSync(file, await store.readBytes('state/moved/run.db'));
            const recorded = snapshotShards(file);
            const objects = (await keysUnder(store, 'moved/wds/')).filter((k) => k.endsWith('.tar')).length;
            if (recorded >= 1 && objects > recorded) child.kill('SIGKILL');
          })()
            .catch(() => undefined)
            .finally(() => (checking = false));
        }, 50);
      },
    });
    clearInterval(kill!);
    await link.close();
    expect(killed.signal, killed.stderr).toBe('SIGKILL');
    // What the move must undo: objects the last snapshot does not know of.
    const last = join(machine(), 'last.db');
    writeFileSync(last, await store.readBytes('state/moved/run.db'));
    const recordedAtKill = snapshotShards(last);
    expect((await keysUnder(store, 'moved/wds/')).filter((k) => k.endsWith('.tar')).length).toBeGreaterThan(recordedAtKill);
    expect(contents(last).wds.length).toBeLessThan(COUNT * 0.9);

    // Another machine: a fresh directory, no local database, the same recipe and state.
    const second = machine();
    const resumed = await runCli(['build', writeRecipe(second, 'moved'), '--state', state, '--progress', 'json'], { env: s3.env });
    expect(resumed.stderr + resumed.stdout).toContain('run database restored from the snapshot s3://vlc-parts/state/moved/run.db');
    expect(resumed.code).toBe(0);
    // Only the work since the snapshot is done again: the shards the snapshot held stand as they were.
    const shardsOf = (file: string) => {
      const db = new Database(file, { readonly: true });
      const rows = db.prepare(`SELECT path, sha256 FROM export_shards WHERE export_name = 'wds' AND sha256 != '' ORDER BY path`).all();
      db.close();
      return rows;
    };
    const kept = shardsOf(last);
    expect(kept.length).toBe(recordedAtKill);
    expect(shardsOf(join(second, 'out/run.db'))).toEqual(expect.arrayContaining(kept));

    const reference = machine();
    const whole = await runCli(['build', writeRecipe(reference, 'reference'), '--progress', 'plain'], { env: s3.env });
    expect(whole.stderr).toContain('finished');

    const moved = contents(join(second, 'out/run.db'));
    const uninterrupted = contents(join(reference, 'out/run.db'));
    expect(moved.samples).toHaveLength(COUNT);
    expect(moved.samples).toEqual(uninterrupted.samples);
    expect(moved.captions).toEqual(uninterrupted.captions);
    expect(moved.wds).toEqual(uninterrupted.wds);
    expect(moved.llava).toEqual(uninterrupted.llava);

    // The objects: every sample exactly once, the same samples, nothing stray.
    const movedKeys = await tarKeys('moved/wds/');
    expect(new Set(movedKeys).size).toBe(movedKeys.length);
    expect([...movedKeys].sort()).toEqual(uninterrupted.wds);
    expect([...(await tarKeys('reference/wds/'))].sort()).toEqual(uninterrupted.wds);
    const manifest = JSON.parse((await store.readBytes('moved/wds/manifest.json')).toString()) as { shards: { path: string }[]; total: number };
    expect((await keysUnder(store, 'moved/wds/')).map((k) => k.slice('moved/wds/'.length))).toEqual([...manifest.shards.map((s) => s.path), 'manifest.json'].sort());
    expect(manifest.total).toBe(uninterrupted.wds.length);
    const llava = (p: string) => store.readBytes(`${p}/llava/llava-stage1.json`).then((b) => b.toString());
    expect(await llava('moved')).toBe(await llava('reference'));
    expect((await keysUnder(store, 'moved/llava/images/')).length).toBe((await keysUnder(store, 'reference/llava/images/')).length);
  }, 240_000);

  it('SIGTERM (a scheduler preempting the part) ends the run gracefully and leaves a last snapshot of it; an https:// state is refused', async () => {
    const store = bucketStore(s3, 'vlc-parts');
    const dir = machine();
    const recipe = writeRecipe(dir, 'termed');
    // Periodic snapshots off: what the bucket holds after the exit is the one taken on the way out.
    writeFileSync(recipe, readFileSync(recipe, 'utf8').replace(/seconds: 1\b/, 'seconds: 3600'));
    let sent = false;
    const termed = await runCli(['build', recipe, '--state', 's3://vlc-parts/state/termed/', '--progress', 'json', '--progress-interval', '20'], {
      env: s3.env,
      onStdoutLine: (line, child) => {
        const event = line.startsWith('{') ? JSON.parse(line) : null;
        const exported = event?.type === 'progress' ? (event.stages.find((s: { stage: string }) => s.stage === 'export:wds')?.out ?? 0) : 0;
        if (!sent && exported >= 40) {
          sent = true;
          child.kill('SIGTERM');
        }
      },
    });
    expect(sent).toBe(true);
    expect(termed.code, termed.stderr).toBe(130);
    const snapshot = join(machine(), 'snapshot.db');
    writeFileSync(snapshot, await store.readBytes('state/termed/run.db'));
    const local = contents(join(dir, 'out/run.db'));
    expect(contents(snapshot)).toEqual(local);
    expect(local.wds.length).toBeLessThan(COUNT);
    const db = new Database(snapshot, { readonly: true });
    expect(db.prepare('SELECT status FROM runs ORDER BY id DESC LIMIT 1').pluck().get()).toBe('aborted');
    db.close();

    const https = await runCli(['build', recipe, '--state', 'https://example.org/parts/', '--progress', 'plain'], { env: s3.env });
    expect(https.code).toBe(2);
    expect(https.stderr).toContain('--state: "https://example.org/parts/" is read-only');
  }, 120_000);
});
