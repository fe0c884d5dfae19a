/**
 * LLM limits across the parts of a split build (issue 16 item 5), through the CLI: 4 `vlcurate build
 * --shard I/4` processes synthesizing against one local OpenAI-compatible server (one "account") keep at
 * most the recipe's `concurrency` in flight together, each saying what share it takes; with
 * `limitsPer: part` each uses the limits as given and together they go over. Rates and tokens across
 * parts are measured with the real client in tests/backends/llm-part-share.test.ts.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { generateShapes } from '../../datasets/shapes/index.js';
import { FakeLlmServer } from '../llm-server/server.js';
import { runCli } from './helpers.js';

const PARTS = 4;
const CONCURRENCY = 4;
let dir: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'vlc-llm-parts-'));
  await generateShapes({ out: join(dir, 'data'), count: 32, noise: 0, seed: 7 });
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Build all parts at once against a fresh server; the server's most requests in flight, and the parts' output. */
async function buildParts(name: string, limitsPer: 'account' | 'part' | undefined): Promise<{ maxInFlight: number; requests: number; stderr: string[] }> {
  // Slow answers, so that each part keeps requests in flight as long as it may.
  const server = await FakeLlmServer.start({ latencyMs: 600 });
  try {
    const recipe = join(dir, `${name}.yaml`);
    writeFileSync(
      recipe,
      stringify({
        run: { db: `${name}/run.db`, commitEvery: 4 },
        sources: [{ type: 'webdataset', paths: 'data/webdataset/shapes-000000.tar' }],
        synth: {
          tasks: ['conversation'],
          concurrency: 16,
          llm: { baseURL: server.baseURL, model: 'test-model', concurrency: CONCURRENCY, rpm: 1_000_000, tpm: 100_000_000, ...(limitsPer ? { limitsPer } : {}) },
        },
      }),
    );
    const results = await Promise.all(Array.from({ length: PARTS }, (_, i) => runCli(['build', recipe, '--shard', `${i}/${PARTS}`, '--progress', 'plain'])));
    for (const r of results) expect(r.code, r.stderr).toBe(0);
    return { maxInFlight: server.maxInFlight, requests: server.requests.length, stderr: results.map((r) => r.stderr) };
  } finally {
    await server.close();
  }
}

describe('LLM limits across --shard parts', () => {
  it('by default the parts share the account concurrency; limitsPer: part gives each the whole', async () => {
    const shared = await buildParts('shared', undefined);
    expect(shared.requests).toBe(32);
    expect(shared.maxInFlight).toBeLessThanOrEqual(CONCURRENCY);
    shared.stderr.forEach((stderr, i) => {
      expect(stderr).toContain(`synth.llm: part ${i}/${PARTS} takes 1/${PARTS} of the account's limits: rpm 250000, tpm 25000000, concurrency 1`);
    });

    const perPart = await buildParts('per-part', 'part');
    expect(perPart.requests).toBe(32);
    expect(perPart.maxInFlight).toBeGreaterThan(CONCURRENCY);
    expect(perPart.stderr[0]).toContain(`synth.llm: limitsPer: part — part 0/${PARTS} uses rpm 1000000, tpm 100000000, concurrency ${CONCURRENCY} as given`);
  }, 120_000);
});
