/**
 * Builds in a child process on inputs that once took the machine down or hung (issue 12): a manifest whose
 * rows name `/dev/zero` and a FIFO. The build must finish on its own (no timer here: a read of /dev/zero or
 * of a FIFO nobody writes to never ends, so finishing at all is the check) and record a code per row.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { makeImage } from '../fixtures/make-webdataset.js';
import { runCli } from './helpers.js';

let dir: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'vlc-hostile-'));
  writeFileSync(join(dir, 'ok.jpg'), await makeImage(32, 24, 'jpeg', 1));
  execFileSync('mkfifo', [join(dir, 'pipe.jpg')]);
  symlinkSync('/dev/zero', join(dir, 'zero-link.jpg'));
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function failures(db: string): Promise<Record<string, string>> {
  const failed = JSON.parse((await runCli(['inspect', db, 'samples', '--status', 'failed', '--json'])).stdout) as { key: string; error_code: string }[];
  return Object.fromEntries(failed.map((f) => [f.key, f.error_code]));
}

describe('a build on a manifest naming /dev/zero and a FIFO', () => {
  it('finishes, records image_unreadable for each, and exports the good row', async () => {
    const rows = [
      { key: 'ok', image: 'ok.jpg', caption: 'a photo' },
      { key: 'zero_abs', image: '/dev/zero', caption: 'zero' },
      { key: 'zero_url', image: 'file:///dev/zero', caption: 'zero url' },
      { key: 'zero_link', image: 'zero-link.jpg', caption: 'zero link' },
      { key: 'fifo', image: 'pipe.jpg', caption: 'fifo' },
    ];
    writeFileSync(join(dir, 'm.jsonl'), rows.map((r) => JSON.stringify(r)).join('\n'));
    writeFileSync(
      join(dir, 'recipe.yaml'),
      stringify({
        run: { db: 'out/run.db' },
        sources: [{ type: 'jsonl', path: 'm.jsonl', image: 'image', caption: 'caption', key: 'key', keyPrefix: '' }],
        export: [{ type: 'webdataset', out: 'out/wds' }],
      }),
    );
    const result = await runCli(['build', join(dir, 'recipe.yaml'), '--progress', 'plain']);
    expect(result.code).toBe(1);
    expect(await failures(join(dir, 'out/run.db'))).toEqual({
      zero_abs: 'image_unreadable',
      zero_url: 'image_unreadable',
      zero_link: 'image_unreadable',
      fifo: 'image_unreadable',
    });
    const stats = JSON.parse((await runCli(['inspect', join(dir, 'out/run.db'), 'stats', '--json'])).stdout);
    expect(stats.samples).toMatchObject({ total: 5, ok: 1, failed: 4 });
    expect(stats.exported).toEqual({ wds: 1 });
  });
});
