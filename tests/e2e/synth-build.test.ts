/**
 * Synthesis inside `vlcurate build`, against the local OpenAI-compatible server: a budget stops new
 * requests, the unfinished samples are held back from the shards, and the next run finishes and exports
 * them once, without paying again for any answer it already has.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { generateShapes } from '../../datasets/shapes/index.js';
import { makeImage } from '../fixtures/make-webdataset.js';
import { bodyHash, FakeLlmServer } from '../llm-server/server.js';
import { readShardMembers, runCli } from './helpers.js';

let dir: string;
let server: FakeLlmServer;
const COUNT = 24;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'vlc-synth-build-'));
  server = await FakeLlmServer.start({ latencyMs: 20 });
  await generateShapes({ out: join(dir, 'data'), count: COUNT, noise: 0, seed: 5 });
  writeFileSync(
    join(dir, 'recipe.yaml'),
    stringify({
      run: { db: 'out/run.db', commitEvery: 4 },
      sources: [{ type: 'webdataset', paths: 'data/webdataset/shapes-000000.tar' }],
      synth: {
        tasks: ['conversation', 'stage1', 'grounding'],
        concurrency: 4,
        commitEvery: 2,
        // A steep price, so a few cents of budget run out part-way.
        llm: { baseURL: server.baseURL, model: 'test-model', concurrency: 2, price: { inputPerMTok: 1000, outputPerMTok: 1000 } },
      },
      export: [{ type: 'webdataset', out: 'out/wds', maxCount: 10 }],
    }),
  );
});

afterAll(async () => {
  await server.close();
  rmSync(dir, { recursive: true, force: true });
});

function jsonMembers(members: { member: string }[]): string[] {
  return members.filter((m) => m.member.endsWith('.json')).map((m) => m.member);
}

describe('build with synthesis', () => {
  it('--max-cost holds unfinished samples back; the next run completes them without paying twice', async () => {
    const first = await runCli(['build', join(dir, 'recipe.yaml'), '--progress', 'plain', '--max-cost', '2']);
    expect(first.code).toBe(0);
    const sentFirst = server.requests.length;
    expect(sentFirst).toBeGreaterThan(0);
    expect(sentFirst).toBeLessThan(COUNT);

    const db = new Database(join(dir, 'out/run.db'), { readonly: true });
    const budget = db.prepare(`SELECT COUNT(*) AS n FROM instructions WHERE reason LIKE 'budget_exhausted%'`).get() as { n: number };
    const exportedFirst = (db.prepare('SELECT COUNT(*) AS n FROM exports').get() as { n: number }).n;
    db.close();
    expect(budget.n).toBeGreaterThan(0);
    // Held back: exactly the samples whose conversation task did not finish.
    expect(exportedFirst).toBe(COUNT - budget.n);
    expect(jsonMembers(await readShardMembers(join(dir, 'out/wds')))).toHaveLength(exportedFirst);

    const second = await runCli(['build', join(dir, 'recipe.yaml'), '--progress', 'plain']);
    expect(second.code).toBe(0);
    const members = jsonMembers(await readShardMembers(join(dir, 'out/wds')));
    expect(members).toHaveLength(COUNT);
    expect(new Set(members).size).toBe(COUNT);
    // No request body was sent twice: answers from the first run came from the cache.
    const hashes = server.requests.map((r) => bodyHash(r.body));
    expect(new Set(hashes).size).toBe(hashes.length);

    const after = new Database(join(dir, 'out/run.db'), { readonly: true });
    const tasks = after.prepare(`SELECT task, status, COUNT(*) AS n FROM instructions GROUP BY task, status ORDER BY task`).all();
    after.close();
    expect(tasks).toEqual([
      { task: 'conversation', status: 'ok', n: COUNT },
      { task: 'grounding', status: 'ok', n: COUNT },
      { task: 'stage1', status: 'ok', n: COUNT },
    ]);
  });
});

describe('build with an LLM that never answers', () => {
  it('says so in the summary and exits 1; the samples are held back for a later run', async () => {
    // A port that was listening a moment ago and is closed now: every request is refused.
    const gone = await FakeLlmServer.start();
    const baseURL = gone.baseURL;
    await gone.close();
    const recipe = join(dir, 'dead.yaml');
    writeFileSync(
      recipe,
      stringify({
        run: { db: 'dead/run.db' },
        sources: [{ type: 'webdataset', paths: 'data/webdataset/shapes-000000.tar' }],
        synth: { tasks: ['detail', 'stage1'], llm: { baseURL, model: 'test-model', maxRetries: 1, timeoutMs: 2000 } },
        export: [{ type: 'webdataset', out: 'dead/wds' }],
      }),
    );
    const r = await runCli(['build', recipe, '--progress', 'plain']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`samples: ${COUNT} total, ${COUNT} ok, 0 failed, 0 dropped`);
    expect(r.stderr).toContain(`instructions: ${COUNT} ok, 0 rejected, ${COUNT} failed (connection_error ${COUNT}); a later run asks ${COUNT} again`);
    // The first failures are said while the run goes on, not only in the summary.
    expect(r.stderr.match(/^warning: synth: detail of \w+ failed: connection_error: /gm)).toHaveLength(3);
    expect(r.stderr.indexOf('warning: synth: detail of')).toBeLessThan(r.stderr.indexOf('instructions:'));
  });
});

describe('build with tasks that cannot apply to some samples', () => {
  it('counts them as not applicable, not failed: the run and a no-op resume exit 0, and the summary and inspect stats say how many', async () => {
    const folder = join(dir, 'na');
    mkdirSync(folder, { recursive: true });
    const rows: string[] = [];
    for (let i = 0; i < 6; i++) {
      writeFileSync(join(folder, `${i}.png`), await makeImage(32, 24, 'png', i + 1));
      // 0-1: caption and a box; 2-3: a caption, no box; 4-5: neither.
      const caption = i < 4 ? `a shape number ${i}` : '';
      const boxes = i < 2 ? [{ label: 'square', box: [2, 2, 20, 20] }] : [];
      rows.push(JSON.stringify({ image: `${i}.png`, caption, boxes }));
    }
    writeFileSync(join(folder, 'm.jsonl'), `${rows.join('\n')}\n`);
    const na = await FakeLlmServer.start();
    const recipe = join(folder, 'recipe.yaml');
    writeFileSync(
      recipe,
      stringify({
        run: { db: 'out/run.db' },
        sources: [{ type: 'jsonl', path: 'm.jsonl', image: 'image', caption: 'caption', boxes: 'boxes' }],
        synth: { tasks: ['conversation', 'stage1', 'grounding'], llm: { baseURL: na.baseURL, model: 'test-model' } },
        export: [{ type: 'webdataset', out: 'out/wds' }],
      }),
    );
    try {
      const expected = 'instructions: 10 ok, 0 rejected, 0 failed, 8 not applicable (no_boxes 4, no_caption 2, no_context 2)';
      const first = await runCli(['build', recipe, '--progress', 'plain']);
      expect(first.stderr).toContain('samples: 6 total, 6 ok, 0 failed, 0 dropped');
      expect(first.stderr).toContain(expected);
      expect(first.stderr).not.toMatch(/warning: synth: .* failed/);
      expect(first.code).toBe(0);
      expect(na.requests).toHaveLength(4);

      const again = await runCli(['build', recipe, '--progress', 'plain']);
      expect(again.stderr).toContain(expected);
      expect(again.code).toBe(0);
      expect(na.requests).toHaveLength(4);

      const stats = await runCli(['inspect', join(folder, 'out/run.db'), 'stats', '--json']);
      const parsed = JSON.parse(stats.stdout) as { synthesis: Record<string, unknown>; instructions: Record<string, Record<string, number>> };
      expect(parsed.synthesis).toEqual({
        ok: 10,
        rejected: 0,
        failed: 0,
        retriable: 0,
        reasons: {},
        notApplicable: 8,
        notApplicableReasons: { no_boxes: 4, no_caption: 2, no_context: 2 },
      });
      expect(parsed.instructions).toEqual({
        conversation: { ok: 4, not_applicable: 2 },
        grounding: { ok: 2, not_applicable: 4 },
        stage1: { ok: 4, not_applicable: 2 },
      });
      const table = await runCli(['inspect', join(folder, 'out/run.db'), 'stats']);
      expect(table.stdout).toMatch(/instructions\ntask\s+not_applicable\s+ok\n[- ]+\nconversation\s+2\s+4\ngrounding\s+4\s+2\nstage1\s+2\s+4/);
    } finally {
      await na.close();
    }
  });
});
