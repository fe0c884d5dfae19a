/**
 * The built CLI in a real pseudo-terminal (tmux): `--progress auto` picks the ink UI on a terminal, the
 * screen shows the stage rows and the final summary, and Ctrl-C finishes in-flight work and exits
 * resumable. Needs `npm test` (or `npx tsc -p tsconfig.build.json`) to have built `dist/` first.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createWriteStream } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { pack } from 'tar-stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { generateShapes } from '../../datasets/shapes/index.js';
import { makeImage } from '../fixtures/make-webdataset.js';
import { CLI, runCli } from '../e2e/helpers.js';
import { hasTmux, TmuxSession } from './tmux.js';

let dir: string;
const sessions: TmuxSession[] = [];
const BIG = 6000;

/** A shard of `count` tiny samples after two bad ones (so errors show), written with tar-stream. */
async function writeShard(path: string, count: number): Promise<void> {
  const jpeg = await makeImage(24, 16, 'jpeg', 3);
  const tar = pack();
  const done = pipeline(tar, createWriteStream(path));
  const add = (name: string, data: Buffer | string) =>
    new Promise<void>((resolve, reject) => tar.entry({ name, mtime: new Date(0) }, data, (err) => (err ? reject(err) : resolve())));
  await add('bad_truncated.jpg', jpeg.subarray(0, Math.floor(jpeg.length / 2)));
  await add('bad_text.jpg', 'this is not an image');
  for (let i = 0; i < count; i++) {
    const key = `s${String(i).padStart(6, '0')}`;
    await add(`${key}.jpg`, jpeg);
    await add(`${key}.txt`, `a small test image number ${i}`);
  }
  tar.finalize();
  await done;
}

function recipe(folder: string, shard: string): string {
  const path = join(folder, 'recipe.yaml');
  writeFileSync(
    path,
    stringify({
      run: { db: 'out/run.db', commitEvery: 32 },
      sources: [{ type: 'webdataset', paths: shard }],
      decode: { concurrency: 2 },
      export: [{ type: 'webdataset', out: 'out/wds', maxCount: 500 }],
    }),
  );
  return path;
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'vlc-tty-'));
  await writeShard(join(dir, 'big.tar'), BIG);
});

afterAll(() => {
  for (const s of sessions) s.kill();
  rmSync(dir, { recursive: true, force: true });
});

function session(argv: string[], columns = 120, rows = 40): TmuxSession {
  // CI=true makes ink draw only the last frame; a person at a terminal has no CI variable.
  const s = new TmuxSession(argv, { cwd: dir, columns, rows, env: { CI: undefined, TERM: 'xterm-256color' } });
  sessions.push(s);
  return s;
}

if (!hasTmux && process.env.CI) throw new Error('tmux is missing: .ci/run installs it for this test');

describe.skipIf(!hasTmux)('progress UI in a terminal', () => {
  it('vlcurate build on a terminal shows the stage rows and the final summary', async () => {
    const shapes = await generateShapes({ out: join(dir, 'shapes'), count: 200, noise: 0.4, seed: 5 });
    const path = join(dir, 'shapes.yaml');
    writeFileSync(path, stringify({ run: { db: 'shapes-out/run.db' }, sources: [{ type: 'webdataset', paths: shapes.shards }], export: [{ type: 'webdataset', out: 'shapes-out/wds' }] }));
    const s = session([process.execPath, CLI, 'build', path]);
    const { code, screen } = await s.exit();
    expect(code).toBe(0);
    // The ink UI, not plain lines (`auto` on a terminal).
    expect(screen).not.toMatch(/^run 1: read -> /m);
    expect(screen).toMatch(/^vlcurate build {2}run 1 · \d+s$/m);
    // The final frame: rows with average rates.
    expect(screen).toMatch(/^stage\s+in\s+out\s+failed\s+dropped\s+avg\/s$/m);
    expect(screen).toMatch(/^read\s+200\s+0\s+0\s/m);
    for (const stage of ['resume', 'decode', 'record', 'export:wds']) {
      expect(screen).toMatch(new RegExp(`^${stage}\\s+200\\s+200\\s+0\\s+0\\s`, 'm'));
    }
    expect(screen).toMatch(/^finished in \d+s · samples: 200 total, 200 ok, 0 failed, 0 dropped$/m);
    // The 12 samples whose web caption is empty have nothing to train on in a caption export.
    expect(screen).toMatch(/^warning: export wds: 12 sample\(s\) left out \(no_caption 12\)/m);
    expect(screen).toMatch(/^exported: wds 188$/m);
  });

  it('shows live rows and errors, survives a resize, and Ctrl-C stops resumably', async () => {
    const path = recipe(dir, 'big.tar');
    const s = session([process.execPath, CLI, 'build', path, '--progress', 'tty'], 110, 36);
    // Running: rows with counts going up, and the two bad samples among the recent errors.
    const live = await s.waitFor((screen) => /^decode\s+[\d,]+\s+[\d,]*[1-9][\d,]*\s/m.test(screen) && /errors: 2/.test(screen));
    expect(live).toMatch(/bad_truncated image_truncated/);
    expect(live).toMatch(/bad_text image_unsupported/);
    // Narrower than the full table: the rate columns go, every line still fits.
    s.resize(52, 30);
    const narrow = await s.waitFor((screen) => /^stage\s+in\s+out\s+failed\s+dropped$/m.test(screen));
    for (const line of narrow.split('\n')) expect(line.length).toBeLessThanOrEqual(52);
    s.sendKeys('C-c');
    const { code, screen } = await s.exit();
    expect(code).toBe(130);
    expect(screen).toMatch(/^stopped in \d+s · samples: [\d,]+ total/m);
    expect(screen).toContain('interrupted: run the same command again to resume');
    const stopped = Number(/samples: ([\d,]+) total/.exec(screen)![1]!.replace(/,/g, ''));
    expect(stopped).toBeGreaterThan(2);
    expect(stopped).toBeLessThan(BIG + 2);

    // Resumable: the same command finishes the rest, without redoing what was done.
    const again = await runCli(['build', path, '--progress', 'plain']);
    expect(again.stderr).toMatch(/resuming \(\d+ already done\)/);
    expect(again.stderr).toContain(`samples: ${BIG + 2} total, ${BIG} ok, 2 failed, 0 dropped`);
    expect(again.code).toBe(1);
  });
});
