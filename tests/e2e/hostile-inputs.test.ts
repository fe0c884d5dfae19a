/**
 * Builds in a child process on inputs that once took the machine down, hung, or leaked a file (issue 12): a
 * manifest whose rows name `/dev/zero` and a FIFO, and a private file outside the dataset's folder. The
 * build must finish on its own (no timer here: a read of /dev/zero or of a FIFO nobody writes to never
 * ends, so finishing at all is the check) and record a code per row.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { makeImage, writeTar } from '../fixtures/make-webdataset.js';
import { keysOf, readShardMembers, runCli } from './helpers.js';

let dir: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'vlc-hostile-'));
  mkdirSync(join(dir, 'data'));
  mkdirSync(join(dir, 'private'));
  writeFileSync(join(dir, 'data', 'ok.jpg'), await makeImage(32, 24, 'jpeg', 1));
  writeFileSync(join(dir, 'private', 'secret.jpg'), await makeImage(32, 24, 'jpeg', 2));
  execFileSync('mkfifo', [join(dir, 'data', 'pipe.jpg')]);
  symlinkSync('/dev/zero', join(dir, 'data', 'zero-link.jpg'));
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function failures(db: string): Promise<Record<string, string>> {
  const failed = JSON.parse((await runCli(['inspect', db, 'samples', '--status', 'failed', '--json'])).stdout) as { key: string; error_code: string }[];
  return Object.fromEntries(failed.map((f) => [f.key, f.error_code]));
}

describe('a build on a manifest naming /dev/zero, a FIFO and a private file', () => {
  it('finishes, records a code for each row, and exports only the good row', async () => {
    const rows = [
      { key: 'ok', image: 'ok.jpg', caption: 'a photo' },
      { key: 'zero_abs', image: '/dev/zero', caption: 'zero' },
      { key: 'zero_url', image: 'file:///dev/zero', caption: 'zero url' },
      { key: 'zero_link', image: 'zero-link.jpg', caption: 'zero link' },
      { key: 'fifo', image: 'pipe.jpg', caption: 'fifo' },
      { key: 'private', image: join(dir, 'private', 'secret.jpg'), caption: 'a private file' },
    ];
    writeFileSync(join(dir, 'data', 'm.jsonl'), rows.map((r) => JSON.stringify(r)).join('\n'));
    const manifest = { type: 'jsonl', path: 'data/m.jsonl', image: 'image', caption: 'caption', key: 'key' };
    writeFileSync(
      join(dir, 'recipe.yaml'),
      stringify({
        run: { db: 'out/run.db' },
        sources: [
          { ...manifest, name: 'confined', keyPrefix: '' },
          // The same rows with local paths allowed anywhere: only what is not a regular file is refused then.
          { ...manifest, name: 'anywhere', keyPrefix: 'any_', allowAbsolutePaths: true },
        ],
        export: [{ type: 'webdataset', out: 'out/wds' }],
      }),
    );
    const result = await runCli(['build', join(dir, 'recipe.yaml'), '--progress', 'plain']);
    expect(result.code).toBe(1);
    expect(await failures(join(dir, 'out/run.db'))).toEqual({
      zero_abs: 'image_path_invalid',
      zero_url: 'image_path_invalid',
      zero_link: 'image_path_invalid',
      fifo: 'image_unreadable',
      private: 'image_path_invalid',
      any_zero_abs: 'image_unreadable',
      any_zero_url: 'image_unreadable',
      any_zero_link: 'image_unreadable',
      any_fifo: 'image_unreadable',
    });
    const stats = JSON.parse((await runCli(['inspect', join(dir, 'out/run.db'), 'stats', '--json'])).stdout);
    expect(stats.samples).toMatchObject({ total: 12, ok: 3, failed: 9 });
    expect(stats.exported).toEqual({ wds: 3 });
    // The private file went into the shard only where the recipe allowed any path.
    expect(keysOf(await readShardMembers(join(dir, 'out/wds'))).sort()).toEqual(['any_ok', 'any_private', 'ok']);
  });
});

describe('a build on a manifest with a 2 MB caption', () => {
  it('keeps the caption on record cut to decode.maxCaptionChars, marked too_long, and publishes none of it', async () => {
    const huge = `a red circle ${'and more '.repeat(250_000)}`;
    const rows = [
      { key: 'big', image: 'ok.jpg', caption: huge },
      { key: 'small', image: 'ok.jpg', caption: 'a red circle' },
    ];
    writeFileSync(join(dir, 'data', 'captions.jsonl'), rows.map((r) => JSON.stringify(r)).join('\n'));
    writeFileSync(
      join(dir, 'captions.yaml'),
      stringify({
        run: { db: 'out-captions/run.db' },
        sources: [{ type: 'jsonl', path: 'data/captions.jsonl', image: 'image', caption: 'caption', key: 'key', keyPrefix: '' }],
        synth: { tasks: ['stage1'] },
        export: [{ type: 'webdataset', out: 'out-captions/wds' }],
      }),
    );
    const result = await runCli(['build', join(dir, 'captions.yaml'), '--progress', 'plain']);
    expect(result.code).toBe(0);
    const db = join(dir, 'out-captions/run.db');
    const big = JSON.parse((await runCli(['inspect', db, 'show', 'big', '--json'])).stdout);
    expect(big.captions).toHaveLength(1);
    expect(big.captions[0]).toMatchObject({ issue: 'too_long', usable: 0 });
    expect(big.captions[0].text).toBe(huge.slice(0, 16_384));
    // No stage-1 sample from it, no published caption in the shard, and the shard and report stay small.
    const stage1 = JSON.parse((await runCli(['inspect', db, 'sql', "SELECT sample_key, status FROM instructions WHERE task = 'stage1' ORDER BY sample_key", '--json'])).stdout);
    expect(stage1.map((r: { sample_key: string; status: string }) => [r.sample_key, r.status === 'ok'])).toEqual([
      ['big', false],
      ['small', true],
    ]);
    const members = (await readShardMembers(join(dir, 'out-captions/wds'))).map((m) => m.member);
    expect(members.filter((m) => m.endsWith('.txt'))).toEqual(['small.txt']);
    expect(statSync(join(dir, 'out-captions/wds/wds-000000.tar')).size).toBeLessThan(200_000);
    const report = await runCli(['report', db, '-o', join(dir, 'out-captions/report.html')]);
    expect(report.code).toBe(0);
    expect(statSync(join(dir, 'out-captions/report.html')).size).toBeLessThan(1_000_000);
  });
});

describe('a WebDataset key of 300 characters', () => {
  it('exports under a shortened file name, in LLaVA and WebDataset alike, and the run finishes and resumes', async () => {
    // Folders inside the tar are part of the key: each path component fits on disk, the key does not.
    const folders = ['a'.repeat(100), 'b'.repeat(100), 'c'.repeat(100)];
    const longMember = `${folders.join('/')}/sample`;
    const image = await makeImage(32, 24, 'jpeg', 5);
    await writeTar(join(dir, 'long.tar'), [
      { name: `${longMember}.jpg`, data: image },
      { name: `${longMember}.txt`, data: 'a long-named photo' },
      { name: 'short.jpg', data: image },
      { name: 'short.txt', data: 'a short-named photo' },
    ]);
    writeFileSync(
      join(dir, 'long.yaml'),
      stringify({
        run: { db: 'out-long/run.db' },
        sources: [{ type: 'webdataset', paths: 'long.tar' }],
        synth: { tasks: ['stage1'] },
        export: [
          { type: 'llava', out: 'out-long/llava' },
          { type: 'webdataset', out: 'out-long/wds' },
        ],
      }),
    );
    const db = join(dir, 'out-long/run.db');
    for (const attempt of ['first', 'resume']) {
      const result = await runCli(['build', join(dir, 'long.yaml'), '--progress', 'plain']);
      expect(result.code, `${attempt}: ${result.stderr}`).toBe(0);
      const runs = JSON.parse((await runCli(['inspect', db, 'sql', 'SELECT status FROM runs ORDER BY id', '--json'])).stdout);
      expect(runs.map((r: { status: string }) => r.status)).toEqual(attempt === 'first' ? ['finished'] : ['finished', 'finished']);
    }
    const keys = JSON.parse((await runCli(['inspect', db, 'samples', '--json'])).stdout).map((r: { key: string }) => r.key);
    const longKey = keys.find((k: string) => k.length > 255);
    expect(longKey).toBeDefined();

    const records = JSON.parse(readFileSync(join(dir, 'out-long/llava/llava-stage1.json'), 'utf8')) as { id: string; image: string }[];
    expect(records).toHaveLength(2);
    for (const record of records) {
      expect(Buffer.byteLength(record.image)).toBeLessThanOrEqual(255);
      expect(readFileSync(join(dir, 'out-long/llava/images', record.image)).equals(image)).toBe(true);
    }
    expect(readdirSync(join(dir, 'out-long/llava/images')).sort()).toEqual(records.map((r) => r.image).sort());

    const members = (await readShardMembers(join(dir, 'out-long/wds'))).map((m) => m.member);
    expect(members).toHaveLength(6);
    for (const member of members) expect(Buffer.byteLength(member)).toBeLessThanOrEqual(255);
    // The shortened member name still names the whole key inside its JSON.
    const jsonMember = members.find((m) => m.endsWith('.json') && m !== 'short.json')!;
    const extracted = join(dir, 'out-long/extract');
    mkdirSync(extracted);
    execFileSync('tar', ['-xf', join(dir, 'out-long/wds/wds-000000.tar'), '-C', extracted]);
    expect(JSON.parse(readFileSync(join(extracted, jsonMember), 'utf8')).key).toBe(longKey);
  });

  it('an image file that cannot be written fails that record, not the build', async () => {
    writeFileSync(
      join(dir, 'squat.yaml'),
      stringify({
        run: { db: 'out-squat/run.db' },
        sources: [{ type: 'webdataset', paths: 'long.tar' }],
        synth: { tasks: ['stage1'] },
        export: [{ type: 'llava', out: 'out-squat/llava' }],
      }),
    );
    // A folder sits where short.jpg would go.
    mkdirSync(join(dir, 'out-squat/llava/images/short.jpg'), { recursive: true });
    const result = await runCli(['build', join(dir, 'squat.yaml'), '--progress', 'plain']);
    expect(result.stderr).not.toContain('internal error');
    expect([0, 1]).toContain(result.code);
    const db = join(dir, 'out-squat/run.db');
    const rows = JSON.parse((await runCli(['inspect', db, 'sql', 'SELECT sample_key, status, code FROM export_records ORDER BY sample_key', '--json'])).stdout);
    expect(rows.map((r: { sample_key: string; status: string; code: string | null }) => [r.sample_key.length > 255, r.status, r.code])).toEqual([
      [true, 'ok', null],
      [false, 'failed', 'image_write_failed'],
    ]);
    const runs = JSON.parse((await runCli(['inspect', db, 'sql', 'SELECT status FROM runs', '--json'])).stdout);
    expect(runs).toEqual([{ status: 'finished' }]);
    const records = JSON.parse(readFileSync(join(dir, 'out-squat/llava/llava-stage1.json'), 'utf8')) as unknown[];
    expect(records).toHaveLength(1);
  });

  it('a build that dies of an error leaves its run row failed, not running', async () => {
    writeFileSync(
      join(dir, 'dies.yaml'),
      stringify({
        run: { db: 'out-dies/run.db' },
        sources: [{ type: 'webdataset', paths: 'long.tar' }],
        synth: { tasks: ['stage1'] },
        export: [{ type: 'llava', out: 'out-dies/llava' }],
      }),
    );
    // The export's images folder is a file: the export cannot write there and the build stops.
    mkdirSync(join(dir, 'out-dies/llava'), { recursive: true });
    writeFileSync(join(dir, 'out-dies/llava/images'), 'not a folder');
    const result = await runCli(['build', join(dir, 'dies.yaml'), '--progress', 'plain']);
    expect(result.code).not.toBe(0);
    const runs = JSON.parse((await runCli(['inspect', join(dir, 'out-dies/run.db'), 'sql', 'SELECT status FROM runs', '--json'])).stdout);
    expect(runs).toEqual([{ status: 'failed' }]);
  });
});
