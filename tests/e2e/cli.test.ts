import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { makeGoodSamples, makeImage, makePngClaiming, sampleMembers, writeTar, type Member } from '../fixtures/make-webdataset.js';
import { CLI, keysOf, readShardMembers, runCli } from './helpers.js';

let dir: string;

/** One shard with good samples and every kind of bad input the issue names, then a shard cut mid-member. */
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'vlc-cli-'));
  const good = await makeGoodSamples(12);
  const jpeg = await makeImage(64, 48, 'jpeg', 99);
  const members: Member[] = [
    ...good.slice(0, 4).flatMap(sampleMembers),
    { name: 'trunc.jpg', data: jpeg.subarray(0, Math.floor(jpeg.length * 0.6)) },
    { name: 'trunc.txt', data: 'a truncated photo' },
    { name: 'zero.jpg', data: Buffer.alloc(0) },
    { name: 'notimage.jpg', data: 'this is not an image at all, just text' },
    { name: 'bomb.png', data: await makePngClaiming(30000, 30000) },
    ...good.slice(4, 8).flatMap(sampleMembers),
    { name: 'badutf8.jpg', data: await makeImage(20, 20, 'jpeg', 5) },
    { name: 'badutf8.txt', data: Buffer.from([0x61, 0x20, 0xff, 0xfe, 0x62]) },
    { name: 'ctrl.jpg', data: await makeImage(20, 20, 'jpeg', 6) },
    { name: 'ctrl.txt', data: 'a red\u0007 circle\u202e here' },
    ...good.slice(8, 12).flatMap(sampleMembers),
  ];
  await writeTar(join(dir, 'a.tar'), members);
  const more = await makeGoodSamples(5, 100);
  await writeTar(join(dir, 'b-full.tar'), more.flatMap(sampleMembers));
  const full = readFileSync(join(dir, 'b-full.tar'));
  writeFileSync(join(dir, 'b.tar'), full.subarray(0, full.length - 1500));
  writeFileSync(
    join(dir, 'recipe.yaml'),
    stringify({
      run: { db: 'out/run.db' },
      sources: [{ type: 'webdataset', paths: ['a.tar', 'b.tar', 'missing.tar'] }],
      export: [{ type: 'webdataset', out: 'out/wds', maxCount: 5 }],
    }),
  );
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('vlcurate build and inspect on bad input', () => {
  it('records a specific error for each bad sample, keeps every good one, exits 1', async () => {
    const result = await runCli(['build', join(dir, 'recipe.yaml'), '--progress', 'plain']);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/samples: \d+ total/);

    const failed = JSON.parse((await runCli(['inspect', join(dir, 'out/run.db'), 'samples', '--status', 'failed', '--json'])).stdout);
    const codes = Object.fromEntries(failed.map((f: { key: string; error_code: string }) => [f.key, f.error_code]));
    expect(codes).toMatchObject({
      trunc: 'image_truncated',
      zero: 'image_empty',
      notimage: 'image_unsupported',
      bomb: 'image_too_large',
    });
    expect(Object.values(codes)).toContain('tar_truncated');
    expect(Object.values(codes)).toContain('shard_missing');
    for (const f of failed) expect(f.error_message.length).toBeGreaterThan(10);
    expect(failed.find((f: { key: string }) => f.key === 'bomb').error_message).toContain('30000x30000');

    // Bad caption text is a caption-level issue: the image is kept, the caption marked.
    const bad = JSON.parse((await runCli(['inspect', join(dir, 'out/run.db'), 'show', 'badutf8', '--json'])).stdout);
    expect(bad.sample.status).toBe('ok');
    expect(bad.captions[0]).toMatchObject({ issue: 'invalid_utf8', usable: 0 });
    const ctrl = JSON.parse((await runCli(['inspect', join(dir, 'out/run.db'), 'show', 'ctrl', '--json'])).stdout);
    expect(ctrl.captions[0]).toMatchObject({ issue: 'control_chars_removed', usable: 1, text: 'a red circle here' });

    const stats = JSON.parse((await runCli(['inspect', join(dir, 'out/run.db'), 'stats', '--json'])).stdout);
    const okKeys: string[] = JSON.parse(
      (await runCli(['inspect', join(dir, 'out/run.db'), 'samples', '--status', 'ok', '--limit', '1000', '--json'])).stdout,
    ).map((r: { key: string }) => r.key);
    // Every good sample of a.tar, the two with bad caption text, and the samples of b.tar before the cut.
    const goodA = (await makeGoodSamples(12)).map((g) => g.key);
    const fromB = okKeys.filter((k) => k.startsWith('0000001')).sort();
    expect(okKeys.sort()).toEqual([...goodA, ...fromB, 'badutf8', 'ctrl'].sort());
    expect(fromB).toEqual(['000000100', '000000101', '000000102', '000000103'].slice(0, fromB.length));
    expect(fromB.length).toBeGreaterThanOrEqual(3);
    expect(stats.samples.failed).toBe(Object.keys(codes).length);
    expect(stats.failures.image_truncated).toBe(1);
    // A caption export writes every ok sample with a caption to train on; badutf8 has none (left out, counted).
    expect(stats.exported).toEqual({ wds: stats.samples.ok - 1 });
    expect(result.stderr).toMatch(/export wds: 1 sample\(s\) left out \(no_caption 1\)/);

    // The shards hold exactly those samples, checked with node-tar and GNU tar.
    const members = await readShardMembers(join(dir, 'out/wds'));
    expect(keysOf(members).sort()).toEqual(okKeys.filter((k) => k !== 'badutf8').sort());
    const gnu = execFileSync('tar', ['-tvf', join(dir, 'out/wds/wds-000000.tar')], { encoding: 'utf8' });
    expect(gnu).toMatch(/-rw-r--r--/);
    // Every sample has its .txt (what to_tuple("jpg", "txt") reads).
    for (const key of keysOf(members)) expect(members.some((m) => m.member === `${key}.txt`)).toBe(true);
    expect(members.some((m) => m.member.startsWith('badutf8.'))).toBe(false);
  });

  it('inspect sql reads, refuses writes with a clear message, and shows tables', async () => {
    const db = join(dir, 'out/run.db');
    const read = await runCli(['inspect', db, 'sql', 'SELECT status, COUNT(*) AS n FROM samples GROUP BY status ORDER BY status', '--json']);
    expect(read.code).toBe(0);
    expect(JSON.parse(read.stdout).map((r: { status: string }) => r.status)).toEqual(['failed', 'ok']);
    const write = await runCli(['inspect', db, 'sql', 'DELETE FROM samples']);
    expect(write.code).toBe(2);
    expect(write.stderr).toMatch(/read-only/);
    const table = await runCli(['inspect', db, 'stats']);
    expect(table.stdout).toMatch(/failures\s*\nname\s+count/);
    const unknown = await runCli(['inspect', db, 'show', 'no-such-key']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('no sample with key "no-such-key"');
  });
});

describe('configuration errors exit 2 and name the field', () => {
  it('a recipe with a wrong type', async () => {
    writeFileSync(join(dir, 'bad.yaml'), stringify({ sources: [{ type: 'webdatset', paths: 'a.tar' }] }));
    const result = await runCli(['build', join(dir, 'bad.yaml')]);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/sources\[0\]\.type: expected one of "webdataset" \| "coco" \| .*, got "webdatset"/);
  });

  it('a bad flag value', async () => {
    const result = await runCli(['build', join(dir, 'recipe.yaml'), '--shard', '3/2']);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('--shard');
  });

  it('a llava file holding a JSON object instead of a list: one line naming the source entry, the file and what was expected', async () => {
    writeFileSync(join(dir, 'wrapped.json'), JSON.stringify({ data: [{ id: 'x', image: 'x.jpg', conversations: [] }] }));
    writeFileSync(join(dir, 'llava-object.yaml'), stringify({ run: { db: 'out-llava-object/run.db' }, sources: [{ type: 'llava', path: 'wrapped.json' }] }));
    const result = await runCli(['build', join(dir, 'llava-object.yaml'), '--progress', 'plain']);
    expect(result.code).toBe(2);
    // Found before the run starts: the error is the only line.
    expect(result.stderr).toBe(
      `vlcurate: sources[0]: llava path: "${join(dir, 'wrapped.json')}" holds one JSON object (keys "data") and no LLaVA records; ` +
        'expected a JSON list of LLaVA records [{"id", "image", "conversations"}, ...] or JSON Lines with one record per line\n',
    );
  });

  it('an unknown command', async () => {
    expect((await runCli(['frobnicate'])).code).toBe(2);
  });

  it('a path that cannot be written, or a file that is not a database: one line naming it, exit 2', async () => {
    const file = join(dir, 'a-file');
    writeFileSync(file, 'not a folder');
    const mkdir = await runCli(['datasets', 'shapes', '--out', join(file, 'x'), '--count', '3']);
    expect(mkdir.code).toBe(2);
    expect(mkdir.stderr).toBe(`vlcurate: cannot create the folder "${join(file, 'x', 'webdataset')}": a part of the path is a file, not a folder\n`);
    const notDb = await runCli(['inspect', join(dir, 'recipe.yaml'), 'stats']);
    expect(notDb.code).toBe(2);
    expect(notDb.stderr).toMatch(/^vlcurate: file is not a database: the run database path points at a file that is not a SQLite database\n$/);
  });
});

describe('output piped into a command that stops reading', () => {
  it('ends quietly (no EPIPE stack)', () => {
    const rows = 'WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 200000) SELECT x FROM n';
    const db = JSON.stringify(join(dir, 'out/run.db'));
    const r = spawnSync('bash', ['-c', `node ${JSON.stringify(CLI)} inspect ${db} sql "${rows}" | head -c 10 >/dev/null; echo "rc=\${PIPESTATUS[0]}"`], { encoding: 'utf8' });
    expect(r.stdout).toBe('rc=0\n');
    expect(r.stderr).toBe('');
  });
});

describe('vlcurate demo', () => {
  it('leaves the data, its ground truth, the run database and the exports under --out', async () => {
    const out = join(dir, 'demo');
    const result = await runCli(['demo', '--out', out, '--count', '60', '--progress', 'plain']);
    expect(result.code).toBe(0);
    for (const path of ['run.db', 'recipe.yaml', 'data/ground_truth.jsonl', 'wds/manifest.json', 'capfilt-quality.json']) expect(existsSync(join(out, path))).toBe(true);
    const stats = JSON.parse((await runCli(['inspect', join(out, 'run.db'), 'stats', '--json'])).stdout);
    expect(stats.samples.total).toBe(60);
    expect(stats.samples.failed).toBe(0);
    // CapFilt may drop an image whose captions all fail; every kept one is exported.
    expect(stats.exported.wds).toBe(stats.samples.ok);
  });
});

describe('vlcurate calibrate', () => {
  it('matches labels to run keys through --key-prefix, and says so when keys do not match', async () => {
    const out = join(dir, 'demo'); // made by the demo test above
    const prefixed = join(dir, 'prefixed.db');
    copyFileSync(join(out, 'run.db'), prefixed);
    const db = new Database(prefixed);
    db.pragma('foreign_keys = OFF');
    db.exec(`UPDATE captions SET sample_key = 'p_' || sample_key; UPDATE samples SET key = 'p_' || key;`);
    db.close();
    const labels = join(out, 'data', 'ground_truth.jsonl');
    const plain = await runCli(['calibrate', join(out, 'run.db'), '--labels', labels, '--json']);
    expect(plain.code).toBe(0);
    const missing = await runCli(['calibrate', prefixed, '--labels', labels]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('if the source had a keyPrefix, pass it as --key-prefix');
    const withPrefix = await runCli(['calibrate', prefixed, '--labels', labels, '--key-prefix', 'p_', '--json']);
    expect(withPrefix.code).toBe(0);
    expect(JSON.parse(withPrefix.stdout).pairs).toBe(JSON.parse(plain.stdout).pairs);
  });
});

describe('vlcurate demo run again with other settings', () => {
  it('starts over instead of resuming a database made from other scenes', async () => {
    const out = join(dir, 'demo-again');
    expect((await runCli(['demo', '--out', out, '--count', '12', '--progress', 'plain'])).code).toBe(0);
    const same = await runCli(['demo', '--out', out, '--count', '12', '--progress', 'plain']);
    expect(same.stderr).not.toContain('starting over');
    expect(same.stderr).toMatch(/resuming \(12 already done\)/);
    const other = await runCli(['demo', '--out', out, '--count', '16', '--progress', 'plain']);
    expect(other.code).toBe(0);
    expect(other.stderr).toContain(`${out} holds a demo made with other settings ({"count":12,"noise":0.4,"seed":2}); starting over`);
    const stats = JSON.parse((await runCli(['inspect', join(out, 'run.db'), 'stats', '--json'])).stdout);
    expect(stats.samples.total).toBe(16);
    expect((await runCli(['demo', '--out', join(dir, 'demo-bad'), '--progress', 'fancy'])).code).toBe(2);
    expect(existsSync(join(dir, 'demo-bad', 'data'))).toBe(false);
  });
});

describe('--shard I/N', () => {
  it('N processes together cover every input exactly once, each with its own database and shard names', async () => {
    const out = join(dir, 'demo'); // made by the demo test above
    const recipe = join(out, 'recipe.yaml');
    const results = await Promise.all([0, 1, 2].map((i) => runCli(['build', recipe, '--shard', `${i}/3`, '--progress', 'plain'])));
    expect(results.map((r) => r.code)).toEqual([0, 0, 0]);
    const keysPerShard = await Promise.all(
      [0, 1, 2].map(async (i) => {
        const stats = JSON.parse((await runCli(['inspect', join(out, `run-s${i}of3.db`), 'stats', '--json'])).stdout);
        expect(stats.samples.total).toBeGreaterThan(5);
        return keysOf((await readShardMembers(join(out, 'wds'))).filter((m) => m.shard.startsWith(`wds-s${i}of3-`)));
      }),
    );
    const all = keysPerShard.flat();
    expect(all).toHaveLength(60);
    expect(new Set(all).size).toBe(60);
    expect(existsSync(join(out, 'wds', 'manifest-s1of3.json'))).toBe(true);
  });
});
