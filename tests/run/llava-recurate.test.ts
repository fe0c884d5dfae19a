/**
 * Re-curating an existing LLaVA file: its conversations are recorded (task `imported`) and written again
 * by the build's exports and by `vlcurate export`, checked like any other instruction sample; a brief
 * description becomes the caption (and stage 1) instead.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { runBuild } from '../../src/run/run-build.js';
import { runExport } from '../../src/cli/commands/export.js';
import { parseRecipe } from '../../src/config/recipe.js';
import { openDatabase } from '../../src/store/database.js';
import { makeImage } from '../fixtures/make-webdataset.js';
import { cleanup, extractWithNodeTar, listWithNodeTar, tempDir } from '../export/fixtures.js';

afterEach(cleanup);

const human = (value: string) => ({ from: 'human', value });
const gpt = (value: string) => ({ from: 'gpt', value });

const RECORDS = [
  { id: 'chat', image: 'a.jpg', conversations: [human('<image>\nWhat colour is the bus?'), gpt('Red.'), human('How many wheels?'), gpt('Four.')] },
  { id: 'brief', image: 'b.jpg', conversations: [human('<image>\nGive a brief description of the image.'), gpt('a bus on a street')] },
  { id: 'late-image', image: 'a.jpg', conversations: [human('Hello?'), gpt('Hi.'), human('<image>\nAnd this?'), gpt('A bus.')] },
  { id: 'no-token', image: 'b.jpg', conversations: [human('How many wheels?'), gpt('Four.')] },
];

interface LlavaRecord {
  id: string;
  image?: string;
  conversations: { from: string; value: string }[];
}

describe('a llava source', () => {
  it('keeps each record`s conversation through the build`s exports and a re-export', async () => {
    const dir = tempDir();
    await mkdir(join(dir, 'imgs'));
    await writeFile(join(dir, 'imgs', 'a.jpg'), await makeImage(24, 16, 'jpeg', 1));
    await writeFile(join(dir, 'imgs', 'b.jpg'), await makeImage(20, 20, 'jpeg', 2));
    await writeFile(join(dir, 'in.json'), JSON.stringify(RECORDS));
    const recipe = {
      run: { db: 'run.db' },
      sources: [{ type: 'llava', path: 'in.json', images: 'imgs' }],
      export: [
        { type: 'llava', name: 'llava', out: 'llava' },
        // A conversation WebDataset (a caption export would leave out samples without a caption).
        { type: 'webdataset', name: 'wds', out: 'wds', tasks: ['imported'] },
      ],
    };
    for await (const _ of runBuild(parseRecipe(recipe, 'test', dir), { shard: { index: 0, count: 1 }, signal: new AbortController().signal })) {
      // drain
    }
    const db = openDatabase(join(dir, 'run.db'), { readonly: true });
    expect(db.prepare(`SELECT sample_key, task, status FROM instructions WHERE task = 'imported' ORDER BY sample_key`).all()).toEqual([
      { sample_key: 'chat', task: 'imported', status: 'ok' },
      { sample_key: 'late-image', task: 'imported', status: 'ok' },
      { sample_key: 'no-token', task: 'imported', status: 'ok' },
    ]);
    db.close();

    const built = JSON.parse(readFileSync(join(dir, 'llava', 'llava-mixed.json'), 'utf8')) as LlavaRecord[];
    expect(built.map((r) => r.id)).toEqual(['chat-imported-0', 'no-token-imported-0']);
    // A record with an image but no <image> in its text gets the token where LLaVA puts it.
    expect(built[1]).toMatchObject({ image: 'no-token.jpg', conversations: [human('<image>\nHow many wheels?'), gpt('Four.')] });
    expect(built[0]!.conversations).toEqual(RECORDS[0]!.conversations);
    expect(built[0]!.image).toBe('chat.jpg');
    expect(readFileSync(join(dir, 'llava', 'images', 'chat.jpg')).length).toBeGreaterThan(0);
    // The brief description is the caption: stage 1 carries it.
    const stage1 = JSON.parse(readFileSync(join(dir, 'llava', 'llava-stage1.json'), 'utf8')) as LlavaRecord[];
    expect(stage1.find((r) => r.id.startsWith('brief'))!.conversations[1]!.value).toBe('a bus on a street');
    // <image> outside the first turn is refused with its reason, not written.
    const stats = JSON.parse(readFileSync(join(dir, 'llava', 'stats.json'), 'utf8')) as { reasons: Record<string, number> };
    expect(stats.reasons).toMatchObject({ image_token_position: 1 });
    // The WebDataset sample's json carries the conversation too.
    const shard = readdirSync(join(dir, 'wds')).find((f) => f.endsWith('.tar'))!;
    expect(listWithNodeTar(join(dir, 'wds', shard)).map((m) => m.path)).toContain('chat.json');
    const extracted = extractWithNodeTar(join(dir, 'wds', shard));
    expect(JSON.parse(readFileSync(join(extracted, 'chat.json'), 'utf8')).conversations).toEqual(RECORDS[0]!.conversations);

    const out = join(dir, 'again');
    const { report } = await runExport(join(dir, 'run.db'), { format: 'llava', name: 'again', out }, { log: () => undefined });
    expect(report.samplesExported).toBe(3); // late-image has no record that passes the checks
    const again = JSON.parse(readFileSync(join(out, 'again-mixed.json'), 'utf8')) as LlavaRecord[];
    expect(again).toEqual(built);
  });
});
