/**
 * A build after `vlcurate refilter` (issue 11): the samples the refilter revived never got their
 * instruction samples, even after another build. The build decided them again with the recipe's policy
 * (dropping them once more and undoing the refilter), and a recipe without exports counted every ok
 * sample as done, so synthesis never saw them. Now the build decides with the policy in force, and a
 * sample is done only once it has every instruction row the recipe asks for: template tasks are made at
 * once, LLM tasks asked (answers already paid for come from the cache). Real CLI processes, the real
 * shapes ITC model, a local OpenAI-compatible server.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { generateShapes } from '../../datasets/shapes/index.js';
import { FakeLlmServer } from '../llm-server/server.js';
import { keysOf, readShardMembers, runCli } from './helpers.js';
import { expectEvery } from '../expect-every.js';

const MODELS = join(import.meta.dirname, '../../models');
let dir: string;
let server: FakeLlmServer;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'vlc-refilter-build-'));
  server = await FakeLlmServer.start({ latencyMs: 5 });
  await generateShapes({ out: join(dir, 'data'), count: 60, noise: 0.4, seed: 4, shardSize: 60 });
});

afterAll(async () => {
  await server.close();
  rmSync(dir, { recursive: true, force: true });
});

function recipe(name: string, exports: unknown[]): string {
  const path = join(dir, `${name}.yaml`);
  writeFileSync(
    path,
    stringify({
      run: { db: `out/${name}.db`, commitEvery: 8 },
      sources: [{ type: 'webdataset', name: 'web', paths: 'data/webdataset/shapes-000000.tar' }],
      filter: { itc: { model: join(MODELS, 'shapes-clip'), threshold: 0.3 } },
      synth: { tasks: ['conversation', 'stage1'], llm: { baseURL: server.baseURL, model: 'test-model', concurrency: 4 } },
      export: exports,
    }),
  );
  return path;
}

function statuses(db: string): Map<string, string> {
  const handle = new Database(db, { readonly: true });
  try {
    return new Map((handle.prepare('SELECT key, status FROM samples').all() as { key: string; status: string }[]).map((r) => [r.key, r.status]));
  } finally {
    handle.close();
  }
}

/** Per key, the instruction rows as `task:status`. */
function instructionRows(db: string): Map<string, string[]> {
  const handle = new Database(db, { readonly: true });
  try {
    const out = new Map<string, string[]>();
    for (const r of handle.prepare('SELECT sample_key AS key, task, status FROM instructions ORDER BY key, task').all() as { key: string; task: string; status: string }[]) {
      out.set(r.key, [...(out.get(r.key) ?? []), `${r.task}:${r.status}`]);
    }
    return out;
  } finally {
    handle.close();
  }
}

const okKeys = (s: Map<string, string>) => [...s].filter(([, v]) => v === 'ok').map(([k]) => k).sort();

/** Build, refilter to a lower cut (0), build again; returns what each step left. */
async function buildRefilterBuild(path: string, db: string) {
  const first = await runCli(['build', path, '--progress', 'plain']);
  expect(first.code, first.stderr).toBe(0);
  const before = statuses(db);
  const sentFirst = server.requests.length;
  const refilter = await runCli(['refilter', db, '--itc-threshold', '0']);
  expect(refilter.code, refilter.stderr).toBe(0);
  const refiltered = statuses(db);
  const revived = okKeys(refiltered).filter((k) => before.get(k) === 'dropped');
  // The test means nothing unless the refilter revived samples the first build had dropped.
  expect(revived.length).toBeGreaterThanOrEqual(3);
  expectEvery(revived, (k) => !instructionRows(db).has(k));
  const firstHashes = new Set(server.requests.map((r) => r.hash));
  const second = await runCli(['build', path, '--progress', 'plain']);
  expect(second.code, second.stderr).toBe(0);
  const secondRequests = server.requests.slice(sentFirst);
  return { second, refiltered, revived, after: statuses(db), rows: instructionRows(db), secondRequests, firstHashes };
}

describe('build after refilter', () => {
  it('keeps the refilter\'s decisions and synthesizes the revived samples; the export holds every kept sample once', async () => {
    const path = recipe('with-export', [{ type: 'webdataset', name: 'wds', out: 'out/wds', maxCount: 16 }]);
    const db = join(dir, 'out/with-export.db');
    const { second, refiltered, revived, after, rows, secondRequests, firstHashes } = await buildRefilterBuild(path, db);

    // The build decided with the refilter's policy: nothing it revived is dropped again.
    expect(after).toEqual(refiltered);
    expect(second.stderr).toContain('the decisions of `vlcurate refilter --itc-threshold 0`');
    for (const key of revived) expect(rows.get(key), key).toEqual(['conversation:ok', 'stage1:ok']);
    // LLM answers: only new requests went out (nothing paid twice), at most one per revived sample.
    expect(secondRequests.length).toBeGreaterThan(0);
    expect(secondRequests.length).toBeLessThanOrEqual(revived.length);
    expect(secondRequests.filter((r) => firstHashes.has(r.hash))).toEqual([]);

    const keys = keysOf(await readShardMembers(join(dir, 'out/wds')));
    expect([...keys].sort()).toEqual(okKeys(after));
    expect(new Set(keys).size).toBe(keys.length);
  });

  it('a recipe without exports synthesizes the revived samples too (an ok sample without its rows is not done)', async () => {
    const path = recipe('no-export', []);
    const db = join(dir, 'out/no-export.db');
    const { after, refiltered, revived, rows } = await buildRefilterBuild(path, db);
    expect(after).toEqual(refiltered);
    for (const key of revived) expect(rows.get(key), key).toEqual(['conversation:ok', 'stage1:ok']);
    // Every ok sample has its rows; a further build finds nothing to do.
    expect(okKeys(after).filter((k) => !rows.has(k))).toEqual([]);
    const again = await runCli(['build', path, '--progress', 'json']);
    const end = JSON.parse(again.stdout.trim().split('\n').at(-1)!);
    expect(end.stages.find((s: { stage: string }) => s.stage === 'decode').in).toBe(0);
  });
});
