/**
 * Keys in any script, through `vlcurate build` to both kinds of output: WebDataset members named
 * `KEY.ext` (read back by node-tar, whose names are UTF-8 from the pax headers) and the LLaVA export's
 * `images/KEY.ext` files. Two inputs that clean to one key are told apart from a repeated key.
 */
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { makeImage } from '../fixtures/make-webdataset.js';
import { keysOf, readShardMembers, runCli } from './helpers.js';

let dir: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'vlc-unicode-keys-'));
  mkdirSync(join(dir, 'imgs'));
  const rows: string[] = [];
  for (const [i, id] of ['ünïcødé', '猫の写真', 'हिन्दी', 'a b', 'a_b', 'a b'].entries()) {
    writeFileSync(join(dir, 'imgs', `${i}.png`), await makeImage(16, 12, 'png', i + 1));
    rows.push(JSON.stringify({ id, image: `imgs/${i}.png`, caption: `picture ${i}` }));
  }
  writeFileSync(join(dir, 'm.jsonl'), `${rows.join('\n')}\n`);
  writeFileSync(
    join(dir, 'recipe.yaml'),
    stringify({
      run: { db: 'out/run.db' },
      sources: [{ type: 'jsonl', path: 'm.jsonl', image: 'image', caption: 'caption', key: 'id', order: 'input' }],
      export: [
        { type: 'webdataset', out: 'out/wds' },
        { type: 'llava', out: 'out/llava' },
      ],
    }),
  );
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('Unicode keys', () => {
  it('reach the shards and the LLaVA images as they are; a cleaning collision and a repeat get their own codes', async () => {
    const result = await runCli(['build', join(dir, 'recipe.yaml'), '--progress', 'plain']);
    expect(result.stderr).toContain('samples: 6 total, 4 ok, 2 failed, 0 dropped');
    expect(result.stderr).toMatch(/failures: (key_collision 1, key_duplicate 1|key_duplicate 1, key_collision 1)/);
    expect(result.stderr).toContain('"a_b" and the earlier "a b" both become key "a_b"');
    expect(result.code).toBe(1);

    const expected = ['ünïcødé', '猫の写真', 'हिन्दी', 'a_b'];
    expect(keysOf(await readShardMembers(join(dir, 'out/wds')))).toEqual(expected);
    expect(readdirSync(join(dir, 'out/llava/images')).sort()).toEqual(expected.map((k) => `${k}.png`).sort());
    const records = JSON.parse(readFileSync(join(dir, 'out/llava/llava-stage1.json'), 'utf8')) as { id: string; image: string }[];
    expect(records.map((r) => r.image).sort()).toEqual(expected.map((k) => `${k}.png`).sort());

    const failed = await runCli(['inspect', join(dir, 'out/run.db'), 'samples', '--status', 'failed', '--json']);
    expect((JSON.parse(failed.stdout) as { key: string; error_code: string }[]).map((r) => [r.key, r.error_code])).toEqual([
      ['a_b__dup2', 'key_collision'],
      ['a_b__dup3', 'key_duplicate'],
    ]);
  });
});
