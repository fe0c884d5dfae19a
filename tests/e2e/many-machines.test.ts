/**
 * The many-machines simulation (issue 16, Tests): 4 parts of one recipe run as separate `vlcurate build
 * --shard I/4` processes, each in its own working directory (its own "local disk"), reading their inputs
 * from and writing their exports and state snapshots to a local S3 server through the real AWS SDK. One
 * part is killed with SIGKILL mid-run and restarted in a fresh directory from its state. Then the parts'
 * databases (their last snapshots, downloaded) are merged: the merged database and the exported objects
 * equal a single-process run of the same recipe (same kept samples, captions, scores and instruction
 * samples; every sample exactly once, member for member).
 */
import type { ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tar from 'tar';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { generateShapes } from '../../datasets/shapes/index.js';
import { runCli } from './helpers.js';
import { queryRows as query, runContent as content } from './run-content.js';
import { startLocalS3, type LocalS3 } from '../s3-server/s3-server.js';
import { bucketStore, download, keysUnder } from '../s3-server/s3-helpers.js';

const MODELS = join(import.meta.dirname, '../../models');
const PARTS = 4;
const COUNT = 60;
const KILLED = 2;
let s3: LocalS3;
const made: string[] = [];

function machine(): string {
  const dir = mkdtempSync(join(tmpdir(), 'vlc-machine-'));
  made.push(dir);
  return dir;
}

beforeAll(async () => {
  s3 = await startLocalS3(['vlc-sim']);
  // The inputs live in the bucket only.
  const data = machine();
  await generateShapes({ out: data, count: COUNT, noise: 0.4, seed: 21, shardSize: 30 });
  const store = bucketStore(s3, 'vlc-sim');
  for (const name of ['shapes-000000.tar', 'shapes-000001.tar']) await store.put(`data/${name}`, readFileSync(join(data, 'webdataset', name)));
}, 60_000);

afterAll(async () => {
  await s3.close();
  for (const dir of made) rmSync(dir, { recursive: true, force: true });
});

/** The recipe every machine runs; only the export prefix differs between the parts' run and the single run. */
function writeRecipe(dir: string, out: string): string {
  const path = join(dir, 'recipe.yaml');
  writeFileSync(
    path,
    stringify({
      run: { db: 'run/run.db', commitEvery: 4, snapshot: { seconds: 1 } },
      sources: [{ type: 'webdataset', name: 'web', paths: 's3://vlc-sim/data/shapes-{000000..000001}.tar' }],
      filter: {
        itc: { model: join(MODELS, 'shapes-clip'), threshold: 0.3 },
        itm: { model: join(MODELS, 'shapes-itm'), threshold: 0.5 },
        policy: 'either',
      },
      captioner: { type: 'onnx', model: join(MODELS, 'shapes-captioner'), samples: 2, strategy: 'nucleus', topP: 0.9, minLength: 3, maxLength: 24, seed: 0 },
      synth: { tasks: ['stage1'] },
      export: [{ type: 'webdataset', name: 'wds', out: `s3://vlc-sim/${out}/wds`, maxCount: 3 }],
    }),
  );
  return path;
}

/** Per sample key, its members' sha256 across every tar under `prefix`; fails on a key in two shards. */
async function exportedMembers(prefix: string): Promise<Map<string, Record<string, string>>> {
  const store = bucketStore(s3, 'vlc-sim');
  const tars = (await keysUnder(store, prefix)).filter((k) => k.endsWith('.tar'));
  const local = await download(store, prefix, tars);
  made.push(local);
  const out = new Map<string, Record<string, string>>();
  for (const name of tars.map((t) => t.slice(prefix.length))) {
    const seen = new Set<string>();
    await tar.t({
      file: join(local, name),
      onReadEntry: (entry) => {
        const chunks: Buffer[] = [];
        entry.on('data', (c: Buffer) => chunks.push(c));
        entry.on('end', () => {
          const key = entry.path.split('.')[0]!;
          if (!seen.has(key)) {
            // Every sample exactly once across all shards of all parts.
            expect(out.has(key), `${key} in a second shard (${name})`).toBe(false);
            seen.add(key);
          }
          out.set(key, { ...out.get(key), [entry.path.slice(key.length)]: createHash('sha256').update(Buffer.concat(chunks)).digest('hex') });
        });
      },
    });
  }
  return out;
}

describe('many machines', () => {
  it('4 parts on their own disks, one killed and moved, merged: the single-process run', async () => {
    const store = bucketStore(s3, 'vlc-sim');
    const state = 's3://vlc-sim/state/';
    const part = (i: number, dir: string, onStart?: (child: ChildProcess) => void) =>
      runCli(['build', writeRecipe(dir, 'parts'), '--shard', `${i}/${PARTS}`, '--state', state, '--progress', 'plain'], { env: s3.env, onStart });

    // Part KILLED dies once it has a snapshot and has uploaded a shard; the others run to the end.
    let poll: NodeJS.Timeout | null = null;
    let polling = false;
    const runs = await Promise.all(
      Array.from({ length: PARTS }, (_, i) =>
        part(i, machine(), (child) => {
          if (i !== KILLED) return;
          poll = setInterval(() => {
            if (polling || child.exitCode !== null) return;
            polling = true;
            (async () => {
              const snapshot = await store.stat(`state/run-s${KILLED}of${PARTS}.db`);
              const shards = (await keysUnder(store, `parts/wds/wds-s${KILLED}of${PARTS}-`)).length;
              if (snapshot && shards >= 1) child.kill('SIGKILL');
            })()
              .catch(() => undefined)
              .finally(() => (polling = false));
          }, 50);
        }),
      ),
    );
    clearInterval(poll!);
    for (const [i, run] of runs.entries()) {
      if (i === KILLED) expect(run.signal, run.stderr).toBe('SIGKILL');
      else expect(run.code, run.stderr).toBe(0);
    }
    // Restarted on another machine: a fresh directory, the database from the state snapshot.
    const moved = await part(KILLED, machine());
    expect(moved.code, moved.stderr).toBe(0);
    expect(moved.stderr).toContain(`run database restored from the snapshot s3://vlc-sim/state/run-s${KILLED}of${PARTS}.db`);

    // The merge, on yet another machine, reads the parts' state snapshots from the bucket.
    const merging = machine();
    const merged = join(merging, 'merged.db');
    const merge = await runCli(['merge', '--out', merged, ...Array.from({ length: PARTS }, (_, i) => `${state}run-s${i}of${PARTS}.db`)], { env: s3.env });
    expect(merge.code, merge.stderr).toBe(0);
    const missing = await runCli(['merge', '--out', join(merging, 'other.db'), `${state}run-s9of${PARTS}.db`], { env: s3.env });
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain(`merge: ${state}run-s9of${PARTS}.db`);

    const single = machine();
    const whole = await runCli(['build', writeRecipe(single, 'single'), '--progress', 'plain'], { env: s3.env });
    expect(whole.code, whole.stderr).toBe(0);

    const mergedContent = content(merged);
    const wholeContent = content(join(single, 'run/run.db'));
    expect(mergedContent.samples).toHaveLength(COUNT);
    expect(mergedContent.samples).toEqual(wholeContent.samples);
    expect(mergedContent.captions).toEqual(wholeContent.captions);
    expect(mergedContent.instructions).toEqual(wholeContent.instructions);
    expect(mergedContent.instructions.length).toBeGreaterThan(0);

    // The objects: the parts' shards together hold what the single run's hold, each sample once.
    const fromParts = await exportedMembers('parts/wds/');
    const fromSingle = await exportedMembers('single/wds/');
    expect(fromSingle.size).toBeGreaterThan(COUNT / 3);
    expect(new Map([...fromParts].sort())).toEqual(new Map([...fromSingle].sort()));
    // Each part's manifest lists exactly its shards in the bucket; nothing stray.
    const objects = (await keysUnder(store, 'parts/wds/')).map((k) => k.slice('parts/wds/'.length));
    const listed: string[] = [];
    let total = 0;
    for (let i = 0; i < PARTS; i++) {
      const manifest = JSON.parse((await store.readBytes(`parts/wds/manifest-s${i}of${PARTS}.json`)).toString()) as { shards: { path: string }[]; total: number };
      listed.push(`manifest-s${i}of${PARTS}.json`, ...manifest.shards.map((s) => s.path));
      total += manifest.total;
    }
    expect(objects).toEqual(listed.sort());
    expect(total).toBe(fromParts.size);
  }, 480_000);
});
