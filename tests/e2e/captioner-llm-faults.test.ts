/**
 * The OpenAI-compatible captioner inside `vlcurate build`, against a server that is not there or that
 * refuses the key: captioning stops at once with one line naming the base URL and the cause, the samples
 * that needed captions are held back (not decided, dropped or exported), the run exits 1, and the next run
 * with a working server finishes them without asking again for anything already answered.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { generateShapes } from '../../datasets/shapes/index.js';
import { bodyHash, FakeLlmServer } from '../llm-server/server.js';
import { keysOf, readShardMembers, runCli } from './helpers.js';

const MODELS = resolve(import.meta.dirname, '../../models');
const COUNT = 24;
let dir: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'vlc-captioner-faults-'));
  // Noisy web captions: some fail the filter and need the captioner, the others do not.
  await generateShapes({ out: join(dir, 'data'), count: COUNT, noise: 0.5, seed: 3 });
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

function capfiltRecipe(name: string, baseURL: string): string {
  return stringify({
    run: { db: `${name}/run.db`, commitEvery: 4 },
    sources: [{ type: 'webdataset', paths: 'data/webdataset/shapes-000000.tar' }],
    filter: { itc: { model: join(MODELS, 'shapes-clip'), threshold: 0.3 }, itm: { model: join(MODELS, 'shapes-itm') }, batchSize: 8, recaption: 'web-failed' },
    // The default retries (6, backoff from 1 s up to 60 s).
    captioner: { type: 'openai', baseURL, model: 'vlm', samples: 2 },
    export: [{ type: 'webdataset', out: `${name}/wds` }],
  });
}

function rows(db: string, sql: string): unknown[] {
  const conn = new Database(join(dir, db), { readonly: true });
  try {
    return conn.prepare(sql).all();
  } finally {
    conn.close();
  }
}

const count = (db: string, sql: string) => (rows(db, sql)[0] as { n: number }).n;

/** Every caption with its scores and verdict, and every sample's status: what a finished run decided. */
function decisions(db: string): unknown[] {
  return [
    ...rows(db, 'SELECT sample_key, idx, origin, text, round(itc, 4) AS itc, round(itm, 4) AS itm, kept, reason FROM captions ORDER BY sample_key, idx'),
    ...rows(db, 'SELECT key, status, error_code, drop_reason FROM samples ORDER BY key'),
  ];
}

describe('build with an OpenAI-compatible captioner that is not there', () => {
  it('stops captioning at once with one line, holds back the samples that needed captions, exits 1; the next run ends as an uninterrupted one', async () => {
    // The reference: one uninterrupted run against a working server.
    const once = await FakeLlmServer.start();
    try {
      writeFileSync(join(dir, 'once.yaml'), capfiltRecipe('once', once.baseURL));
      expect((await runCli(['build', join(dir, 'once.yaml'), '--progress', 'plain'])).code).toBe(0);
    } finally {
      await once.close();
    }
    const needed = count('once/run.db', `SELECT COUNT(DISTINCT sample_key) AS n FROM captions WHERE origin = 'synthetic'`);
    // Both kinds of sample are present, or the test proves nothing.
    expect(needed).toBeGreaterThan(0);
    expect(needed).toBeLessThan(COUNT);

    // A port that was listening a moment ago and is closed now: every connection is refused.
    const gone = await FakeLlmServer.start();
    await gone.close();
    writeFileSync(join(dir, 'dead.yaml'), capfiltRecipe('dead', gone.baseURL));
    const started = performance.now();
    const r = await runCli(['build', join(dir, 'dead.yaml'), '--progress', 'plain']);
    expect(performance.now() - started).toBeLessThan(60_000);
    expect(r.code).toBe(1);
    const why = `cannot reach ${gone.baseURL}: connection refused (ECONNREFUSED)`;
    // One line while the run goes on, none per sample or request.
    expect(r.stderr.match(/^warning: captioner: .*$/gm)).toEqual([`warning: captioner: captioning stopped: ${why}; the samples wait for the next run`]);
    expect(r.stderr).not.toMatch(/^ {2}captioner: /m);
    // The summary says why, and how many wait.
    expect(r.stderr.match(/^captioning stopped: .*$/gm)).toEqual([`captioning stopped: ${why}; ${needed} samples wait for the next run`]);
    expect(r.stderr).toContain(`failures: server_unreachable ${needed}`);
    // Held back: neither decided nor dropped nor exported, and no caption recorded for them.
    expect(count('dead/run.db', `SELECT COUNT(*) AS n FROM samples WHERE status = 'failed' AND error_code = 'server_unreachable' AND error_stage = 'captioner'`)).toBe(needed);
    expect(count('dead/run.db', `SELECT COUNT(*) AS n FROM samples WHERE status = 'dropped'`)).toBe(0);
    expect(count('dead/run.db', `SELECT COUNT(*) AS n FROM captions WHERE origin = 'synthetic'`)).toBe(0);
    expect(count('dead/run.db', 'SELECT COUNT(*) AS n FROM exports')).toBe(COUNT - needed);

    // The server is up now: the next run asks each image once per seed and ends as the uninterrupted run.
    const live = await FakeLlmServer.start();
    try {
      writeFileSync(join(dir, 'dead.yaml'), capfiltRecipe('dead', live.baseURL));
      const again = await runCli(['build', join(dir, 'dead.yaml'), '--progress', 'plain']);
      expect(again.stderr).not.toContain('stopped');
      expect(again.code).toBe(0);
      // Only the held-back samples came through again (`resuming (N already done)`).
      expect(again.stderr).toContain(`resuming (${COUNT - needed} already done)`);
      expect(live.requests).toHaveLength(needed * 2);
    } finally {
      await live.close();
    }
    expect(decisions('dead/run.db')).toEqual(decisions('once/run.db'));
    const members = keysOf(await readShardMembers(join(dir, 'dead/wds')));
    const reference = keysOf(await readShardMembers(join(dir, 'once/wds')));
    expect(members.length).toBe(reference.length);
    expect([...members].sort()).toEqual([...reference].sort());
    // Nothing exported twice.
    expect(count('dead/run.db', 'SELECT COUNT(*) AS n FROM exports')).toBe(reference.length);
  });
});

describe('build with an OpenAI-compatible captioner whose key is refused', () => {
  const refusal = { error: { message: 'Incorrect API key provided: sk-bad', type: 'invalid_request_error', code: 'invalid_api_key' } };

  it('stops at the first 401 without retries; the next run with a good key finishes, never asking twice for an answer it has', async () => {
    // The key works for the first 6 requests, then is revoked: some images are captioned, the rest are not.
    let revoked = true;
    const server = await FakeLlmServer.start({
      latencyMs: 10,
      script: (q) => (revoked && q.index >= 6 ? { kind: 'status', status: 401, body: refusal } : undefined),
    });
    try {
      writeFileSync(
        join(dir, 'key.yaml'),
        stringify({
          run: { db: 'key/run.db', commitEvery: 4 },
          sources: [{ type: 'webdataset', paths: 'data/webdataset/shapes-000000.tar' }],
          captioner: { type: 'openai', baseURL: server.baseURL, model: 'vlm', samples: 2, apiKeyEnv: 'VLC_E2E_KEY', concurrency: 2 },
          export: [{ type: 'webdataset', out: 'key/wds' }],
        }),
      );
      const r = await runCli(['build', join(dir, 'key.yaml'), '--progress', 'plain'], { env: { VLC_E2E_KEY: 'sk-bad' } });
      expect(r.code).toBe(1);
      // Only the requests in flight (concurrency 2) when the first refusal came; none retried.
      const refused = server.requests.filter((q) => q.index >= 6).length;
      expect(refused).toBeGreaterThanOrEqual(1);
      expect(refused).toBeLessThanOrEqual(2);
      const why = `API key rejected by ${server.baseURL} (HTTP 401: Incorrect API key provided: ***)`;
      expect(r.stderr.match(/^warning: captioner: .*$/gm)).toEqual([`warning: captioner: captioning stopped: ${why}; the samples wait for the next run`]);
      expect(r.stderr).not.toContain('sk-bad');
      const held = count('key/run.db', `SELECT COUNT(*) AS n FROM samples WHERE status = 'failed' AND error_code = 'key_rejected'`);
      expect(held).toBeGreaterThanOrEqual(COUNT - 3);
      expect(r.stderr).toContain(`captioning stopped: ${why}; ${held} samples wait for the next run`);
      // Images with both captions are done and exported; the others are not exported without them.
      const exportedFirst = count('key/run.db', 'SELECT COUNT(*) AS n FROM exports');
      expect(exportedFirst).toBe(COUNT - held);
      expect(count('key/run.db', `SELECT COUNT(*) AS n FROM samples WHERE status = 'ok'`)).toBe(exportedFirst);
      expect(count('key/run.db', `SELECT COUNT(*) AS n FROM captions WHERE origin = 'synthetic'`)).toBe(exportedFirst * 2);

      revoked = false;
      const sentBefore = server.requests.length;
      const good = await runCli(['build', join(dir, 'key.yaml'), '--progress', 'plain'], { env: { VLC_E2E_KEY: 'sk-good' } });
      expect(good.code).toBe(0);
      // Every request answered in the first run came from the cache: exactly the rest was sent.
      expect(server.requests.length - sentBefore).toBe(COUNT * 2 - 6);
      const answered = server.requests.filter((q) => q.index < 6 || q.index >= sentBefore).map((q) => bodyHash(q.body));
      expect(answered).toHaveLength(COUNT * 2);
      expect(new Set(answered).size).toBe(COUNT * 2);
    } finally {
      await server.close();
    }
    expect(count('key/run.db', `SELECT COUNT(*) AS n FROM samples WHERE status = 'ok'`)).toBe(COUNT);
    expect(rows('key/run.db', `SELECT sample_key, COUNT(*) AS n FROM captions WHERE origin = 'synthetic' GROUP BY sample_key HAVING n != 2`)).toEqual([]);
    expect(count('key/run.db', `SELECT COUNT(DISTINCT sample_key) AS n FROM captions WHERE origin = 'synthetic'`)).toBe(COUNT);
    const members = keysOf(await readShardMembers(join(dir, 'key/wds')));
    expect(members).toHaveLength(COUNT);
    expect(count('key/run.db', 'SELECT COUNT(*) AS n FROM exports')).toBe(COUNT);
  });
});
