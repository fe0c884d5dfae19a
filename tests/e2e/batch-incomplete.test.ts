/**
 * A Batch API batch still running when `synth.batch.maxWaitMs` runs out: its requests are recorded as
 * `batch_incomplete` with "a later run collects it", and the batch stays in the ledger for the next run.
 * The next build collects it (spawned CLI, real fake server on 127.0.0.1). Before `batch_incomplete` was
 * resumable, the samples were exported without those instructions, counted done, and the next build
 * paid for the collected answers and left the rows failed.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { generateShapes } from '../../datasets/shapes/index.js';
import { FakeLlmServer } from '../llm-server/server.js';
import { runCli } from './helpers.js';

let dir: string;
let server: FakeLlmServer;
const COUNT = 6;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'vlc-batch-incomplete-'));
  server = await FakeLlmServer.start({ batchPollsBeforeDone: 1_000_000 });
  await generateShapes({ out: join(dir, 'data'), count: COUNT, noise: 0, seed: 5 });
  writeFileSync(
    join(dir, 'recipe.yaml'),
    stringify({
      run: { db: 'out/run.db' },
      sources: [{ type: 'webdataset', paths: 'data/webdataset/shapes-000000.tar' }],
      synth: {
        tasks: ['detail'],
        llm: { baseURL: server.baseURL, model: 'test-model' },
        batch: { enabled: true, pollIntervalMs: 20, maxWaitMs: 300 },
      },
      export: [{ type: 'webdataset', out: 'out/wds' }],
    }),
  );
});

afterAll(async () => {
  await server.close();
  rmSync(dir, { recursive: true, force: true });
});

function detailRows(): { status: string; n: number }[] {
  const db = new Database(join(dir, 'out/run.db'), { readonly: true });
  try {
    return db.prepare(`SELECT status || ':' || coalesce(code, '') AS status, COUNT(*) AS n FROM instructions WHERE task = 'detail' GROUP BY 1 ORDER BY 1`).all() as { status: string; n: number }[];
  } finally {
    db.close();
  }
}

describe('batch mode: a batch still running when maxWaitMs runs out', () => {
  it('records batch_incomplete, and the next build collects the batch', async () => {
    const first = await runCli(['build', join(dir, 'recipe.yaml'), '--progress', 'plain']);
    expect(first.stderr).toContain('a later run collects it');
    expect(detailRows()).toEqual([{ status: 'failed:batch_incomplete', n: COUNT }]);
    // Held back from the exports until their synthesis is finished, as after --max-cost.
    expect(first.stderr).toMatch(/exported: wds 0\b|exported: none/);

    // The provider finishes the batch; the next build should collect it.
    (server as unknown as { batchPollsBeforeDone: number }).batchPollsBeforeDone = 0;
    const second = await runCli(['build', join(dir, 'recipe.yaml'), '--progress', 'plain']);
    expect(second.code, second.stderr).toBe(0);
    expect(second.stderr).toContain('from an earlier run: collecting its answers');
    expect(detailRows()).toEqual([{ status: 'ok:', n: COUNT }]);
    expect(second.stderr).toContain(`exported: wds ${COUNT}`);
  });
});
