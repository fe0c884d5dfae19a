import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { generateShapes } from '../../datasets/shapes/index.js';
import { readShardMembers, runCli } from './helpers.js';

let dir: string;
const COUNT = 600;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'vlc-kill-'));
  await generateShapes({ out: join(dir, 'data'), count: COUNT, noise: 0.4, seed: 7, shardSize: 150 });
  // One bad shard next to the good ones: a copy of shard 0 cut off mid-member (its keys collide with
  // shard 0, so give it a key prefix through its own source entry).
  const good = readFileSync(join(dir, 'data/webdataset/shapes-000000.tar'));
  writeFileSync(join(dir, 'data/cut.tar'), good.subarray(0, Math.floor(good.length / 3) + 700));
  copyFileSync(join(dir, 'data/webdataset/shapes-000001.tar'), join(dir, 'data/copy.tar'));
  writeFileSync(
    join(dir, 'recipe.yaml'),
    stringify({
      run: { db: 'out/run.db', commitEvery: 16 },
      sources: [
        { type: 'webdataset', name: 'web', paths: 'data/webdataset/shapes-{000000..000003}.tar' },
        { type: 'webdataset', name: 'cut', paths: 'data/cut.tar', keyPrefix: 'cut_' },
      ],
      export: [{ type: 'webdataset', name: 'wds', out: 'out/wds', maxCount: 40 }],
    }),
  );
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

function recordedOut(line: string): number {
  try {
    const event = JSON.parse(line);
    if (event.type !== 'progress') return 0;
    return event.stages.find((s: { stage: string }) => s.stage === 'export:wds')?.out ?? 0;
  } catch {
    return 0;
  }
}

describe('kill -9 and resume', () => {
  it('yields every good sample exactly once in the shards and the database', async () => {
    // Kill at several depths into the run, each time resuming from what the last run left. The depths
    // count this run's exports, and a kill lands a little late on a busy machine: small steps keep at
    // least three kills before the ~750 samples run out.
    let kills = 0;
    for (const killAfter of [30, 90, 150, 210]) {
      const result = await runCli(['build', join(dir, 'recipe.yaml'), '--progress', 'json', '--progress-interval', '20'], {
        onStdoutLine: (line, child) => {
          if (recordedOut(line) >= killAfter && child.exitCode === null) child.kill('SIGKILL');
        },
      });
      // Either it was killed, or it got to the end first (which is fine too).
      expect(result.signal === 'SIGKILL' || result.code === 1).toBe(true);
      if (result.signal === 'SIGKILL') kills++;
    }
    // The test means nothing unless processes really died mid-run.
    expect(kills).toBeGreaterThanOrEqual(3);
    const final = await runCli(['build', join(dir, 'recipe.yaml'), '--progress', 'plain']);
    expect(final.stderr).toContain('finished');
    expect(final.code).toBe(1); // the cut shard's last sample failed

    const members = await readShardMembers(join(dir, 'out/wds'));
    const jpgKeys = members.filter((m) => m.member.endsWith('.jpg')).map((m) => m.member.split('.')[0]!);
    const db = new Database(join(dir, 'out/run.db'), { readonly: true });
    const ok = (db.prepare(`SELECT key FROM samples WHERE status = 'ok' ORDER BY key`).all() as { key: string }[]).map((r) => r.key);
    // A caption export leaves out samples with no caption to train on (noise 'empty'); every other ok one is in.
    const captioned = (
      db
        .prepare(`SELECT key FROM samples s WHERE status = 'ok' AND EXISTS (SELECT 1 FROM captions c WHERE c.sample_key = s.key AND c.usable = 1 AND trim(c.text) <> '') ORDER BY key`)
        .all() as { key: string }[]
    ).map((r) => r.key);
    const failed = db.prepare(`SELECT key, error_code FROM samples WHERE status = 'failed'`).all() as { key: string; error_code: string }[];
    const exportRows = (db.prepare(`SELECT COUNT(*) AS n FROM exports`).get() as { n: number }).n;
    db.close();

    // Exactly once: no key twice across shards, and every good sample present.
    expect(new Set(jpgKeys).size).toBe(jpgKeys.length);
    expect([...jpgKeys].sort()).toEqual(captioned);
    expect(captioned.length).toBeGreaterThan(ok.length * 0.8);
    expect(exportRows).toBe(captioned.length);
    // The four good shards hold COUNT samples; the cut copy adds some good ones and one truncated one.
    expect(ok.filter((k) => !k.startsWith('cut_'))).toHaveLength(COUNT);
    expect(ok.filter((k) => k.startsWith('cut_')).length).toBeGreaterThan(10);
    expect(failed).toEqual([expect.objectContaining({ error_code: 'tar_truncated' })]);
    // No leftovers of killed processes.
    expect(readdirSync(join(dir, 'out/wds')).filter((f) => f.endsWith('.tmp'))).toEqual([]);
    const manifest = JSON.parse(readFileSync(join(dir, 'out/wds/manifest.json'), 'utf8'));
    expect(manifest.total).toBe(captioned.length);

    // A further run finds nothing to do and changes nothing.
    const before = readdirSync(join(dir, 'out/wds')).sort();
    const again = await runCli(['build', join(dir, 'recipe.yaml'), '--progress', 'json']);
    const end = JSON.parse(again.stdout.trim().split('\n').at(-1)!);
    expect(end.type).toBe('run-end');
    expect(end.stages.find((s: { stage: string }) => s.stage === 'decode').in).toBe(0);
    expect(readdirSync(join(dir, 'out/wds')).sort()).toEqual(before);
  });

  it('Ctrl-C finishes in-flight work, exits 130 and leaves a resumable run', async () => {
    const recipe = join(dir, 'recipe-int.yaml');
    writeFileSync(
      recipe,
      stringify({
        run: { db: 'int/run.db', commitEvery: 8 },
        sources: [{ type: 'webdataset', paths: 'data/webdataset/shapes-{000000..000003}.tar' }],
        export: [{ type: 'webdataset', name: 'wds', out: 'int/wds', maxCount: 50 }],
      }),
    );
    let sent = false;
    const interrupted = await runCli(['build', recipe, '--progress', 'json', '--progress-interval', '20'], {
      onStdoutLine: (line, child) => {
        if (!sent && recordedOut(line) >= 60) {
          sent = true;
          child.kill('SIGINT');
        }
      },
    });
    expect(interrupted.code).toBe(130);
    const events = interrupted.stdout.trim().split('\n').map((l) => JSON.parse(l));
    expect(events.some((e) => e.type === 'aborting')).toBe(true);
    const end = events.at(-1);
    expect(end).toMatchObject({ type: 'run-end', aborted: true });
    // Graceful: everything recorded was exported (the partial shard was finished, not thrown away), but for
    // the samples a caption export leaves out (no caption to train on), which are recorded as left out.
    const intDb = new Database(join(dir, 'int/run.db'), { readonly: true });
    const leftOut = intDb.prepare(`SELECT COUNT(*) FROM export_left_out WHERE export_name = 'wds'`).pluck().get() as number;
    intDb.close();
    expect(leftOut).toBeGreaterThan(0);
    expect(end.summary.exported.wds + leftOut).toBe(end.summary.samples.ok);
    expect(end.summary.samples.ok).toBeLessThan(COUNT);
    expect(existsSync(join(dir, 'int/wds/manifest.json'))).toBe(true);

    const resumed = await runCli(['build', recipe, '--progress', 'plain']);
    expect(resumed.code).toBe(0);
    expect(resumed.stderr).toMatch(/resuming \(\d+ already done\)/);
    const keys = (await readShardMembers(join(dir, 'int/wds'))).filter((m) => m.member.endsWith('.jpg')).map((m) => m.member);
    const after = new Database(join(dir, 'int/run.db'), { readonly: true });
    const ok = after.prepare(`SELECT COUNT(*) FROM samples WHERE status = 'ok'`).pluck().get() as number;
    const skipped = after.prepare(`SELECT COUNT(*) FROM export_left_out WHERE export_name = 'wds' AND code = 'no_caption'`).pluck().get() as number;
    after.close();
    expect(ok).toBe(COUNT);
    expect(keys).toHaveLength(COUNT - skipped);
    expect(new Set(keys).size).toBe(keys.length);
  });
});
