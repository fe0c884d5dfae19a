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

describe('build with an LLM server that is not there', () => {
  it('stops synthesis at once with one line naming the URL and the cause, exits 1, and the next run finishes the samples', async () => {
    // A port that was listening a moment ago and is closed now: every connection is refused.
    const gone = await FakeLlmServer.start();
    const baseURL = gone.baseURL;
    await gone.close();
    const recipe = (url: string) =>
      stringify({
        run: { db: 'dead/run.db' },
        sources: [{ type: 'webdataset', paths: 'data/webdataset/shapes-000000.tar' }],
        // The default retries (6, backoff from 1 s up to 60 s): retrying every request took minutes.
        synth: { tasks: ['detail', 'stage1'], llm: { baseURL: url, model: 'test-model' } },
        export: [{ type: 'webdataset', out: 'dead/wds' }],
      });
    writeFileSync(join(dir, 'dead.yaml'), recipe(baseURL));
    const r = await runCli(['build', join(dir, 'dead.yaml'), '--progress', 'plain']);
    expect(r.code).toBe(1);
    const why = `cannot reach ${baseURL}: connection refused (ECONNREFUSED)`;
    // One line while the run goes on, none per request.
    expect(r.stderr.match(/^warning: synth: .*$/gm)).toEqual([`warning: synth: LLM synthesis stopped: ${why}; the samples wait for the next run`]);
    expect(r.stderr).toContain(`samples: ${COUNT} total, ${COUNT} ok, 0 failed, 0 dropped`);
    expect(r.stderr).toContain(`instructions: ${COUNT} ok, 0 rejected, ${COUNT} failed (server_unreachable ${COUNT}); a later run asks ${COUNT} again`);
    // The summary says why.
    expect(r.stderr.match(/^LLM synthesis stopped: .*$/gm)).toEqual([`LLM synthesis stopped: ${why}; the samples wait for the next run`]);
    const db = new Database(join(dir, 'dead/run.db'), { readonly: true });
    expect((db.prepare('SELECT COUNT(*) AS n FROM exports').get() as { n: number }).n).toBe(0);
    db.close();

    // The server is up now: the next run sends each held-back request once and exports every sample.
    const live = await FakeLlmServer.start();
    try {
      writeFileSync(join(dir, 'dead.yaml'), recipe(live.baseURL));
      const again = await runCli(['build', join(dir, 'dead.yaml'), '--progress', 'plain']);
      expect(again.stderr).not.toContain('stopped');
      expect(again.code).toBe(0);
      expect(live.requests).toHaveLength(COUNT);
      expect(jsonMembers(await readShardMembers(join(dir, 'dead/wds')))).toHaveLength(COUNT);
    } finally {
      await live.close();
    }
  });
});

describe('build with a rejected API key', () => {
  const refusal = { error: { message: 'Incorrect API key provided: sk-bad', type: 'invalid_request_error', code: 'invalid_api_key' } };
  let keyed: FakeLlmServer;
  beforeAll(async () => {
    keyed = await FakeLlmServer.start({ latencyMs: 20, script: (r) => (r.authorization === 'Bearer sk-good' ? undefined : { kind: 'status', status: 401, body: refusal }) });
    writeFileSync(
      join(dir, 'key.yaml'),
      stringify({
        run: { db: 'key/run.db' },
        sources: [{ type: 'webdataset', paths: 'data/webdataset/shapes-000000.tar' }],
        synth: { tasks: ['detail', 'stage1'], llm: { baseURL: keyed.baseURL, model: 'test-model', apiKeyEnv: 'VLC_E2E_KEY', concurrency: 2 } },
        export: [{ type: 'webdataset', out: 'key/wds' }],
      }),
    );
  });
  afterAll(() => keyed.close());

  const sentWith = (key: string) => keyed.requests.filter((r) => r.authorization === `Bearer ${key}`).length;

  it('stops at the first 401 without retries and holds every sample back; a run with a good key finishes them', async () => {
    const r = await runCli(['build', join(dir, 'key.yaml'), '--progress', 'plain'], { env: { VLC_E2E_KEY: 'sk-bad' } });
    expect(r.code).toBe(1);
    // Only the requests already in flight (llm.concurrency 2) when the first refusal came.
    expect(sentWith('sk-bad')).toBeGreaterThanOrEqual(1);
    expect(sentWith('sk-bad')).toBeLessThanOrEqual(2);
    // The server's message echoes the key; ours shows it masked.
    const why = `API key rejected by ${keyed.baseURL} (HTTP 401: Incorrect API key provided: ***)`;
    expect(r.stderr.match(/^warning: synth: .*$/gm)).toEqual([`warning: synth: LLM synthesis stopped: ${why}; the samples wait for the next run`]);
    expect(r.stderr).toContain(`instructions: ${COUNT} ok, 0 rejected, ${COUNT} failed (key_rejected ${COUNT}); a later run asks ${COUNT} again`);
    expect(r.stderr.match(/^LLM synthesis stopped: .*$/gm)).toEqual([`LLM synthesis stopped: ${why}; the samples wait for the next run`]);
    expect(r.stderr).not.toContain('sk-bad');
    const db = new Database(join(dir, 'key/run.db'), { readonly: true });
    // Not final failures, and no sample exported without its LLM samples.
    expect(db.prepare(`SELECT COUNT(*) AS n FROM instructions WHERE reason LIKE 'http_401%'`).get()).toEqual({ n: 0 });
    expect((db.prepare('SELECT COUNT(*) AS n FROM exports').get() as { n: number }).n).toBe(0);
    db.close();

    const good = await runCli(['build', join(dir, 'key.yaml'), '--progress', 'plain'], { env: { VLC_E2E_KEY: 'sk-good' } });
    expect(good.code).toBe(0);
    expect(sentWith('sk-good')).toBe(COUNT);
    const members = jsonMembers(await readShardMembers(join(dir, 'key/wds')));
    expect(members).toHaveLength(COUNT);
    expect(new Set(members).size).toBe(COUNT);
  });

  it('asks again for tasks an older version stored as a final http_401, and says the exports written earlier lack them', async () => {
    // What versions before key_rejected left: the failure stored as final (no cached answer), the
    // sample exported without its LLM sample.
    const db = new Database(join(dir, 'key/run.db'));
    const legacy = db.prepare(`SELECT sample_key AS key, request_hash AS hash FROM instructions WHERE task = 'detail' ORDER BY sample_key LIMIT 3`).all() as {
      key: string;
      hash: string;
    }[];
    expect(legacy).toHaveLength(3);
    for (const { key, hash } of legacy) {
      db.prepare(
        `UPDATE instructions SET status = 'failed', code = 'http_401', message = 'HTTP 401: Incorrect API key provided', conversations_json = NULL, request_hash = NULL
         WHERE sample_key = ? AND task = 'detail'`,
      ).run(key);
      db.prepare('DELETE FROM llm_cache WHERE request_hash = ?').run(hash);
    }
    db.close();
    const before = sentWith('sk-good');
    const r = await runCli(['build', join(dir, 'key.yaml'), '--progress', 'plain'], { env: { VLC_E2E_KEY: 'sk-good' } });
    expect(r.code).toBe(0);
    expect(sentWith('sk-good') - before).toBe(3);
    expect(r.stderr).toMatch(/^warning: resume: 3 samples the exports already hold lack LLM tasks .*vlcurate export RUN\.db --fresh/m);
    const after = new Database(join(dir, 'key/run.db'), { readonly: true });
    expect(after.prepare(`SELECT status, COUNT(*) AS n FROM instructions WHERE task = 'detail' GROUP BY status`).all()).toEqual([{ status: 'ok', n: COUNT }]);
    after.close();
    // Nothing written twice.
    const members = jsonMembers(await readShardMembers(join(dir, 'key/wds')));
    expect(members).toHaveLength(COUNT);
    expect(new Set(members).size).toBe(COUNT);
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
