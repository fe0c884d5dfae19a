/**
 * A synthesis run killed with SIGKILL mid-flight, then resumed: answers that reached the cache before
 * the kill are never requested again; requests that were in flight (sent, answer lost) and those never
 * sent go out once on resume. The child runs the built code (`npm test` builds first).
 */
import { spawn } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { createSynthStage, synthOptionsSchema } from '../../src/synth/synth-stage.js';
import { bodyHash, FakeLlmServer } from '../llm-server/server.js';
import { shapesPair } from './fixtures.js';
import { createRun, drain, expectEveryRowAccountedFor, instructionRows, type TestRun, synthDeps } from './helpers.js';
import { expectEvery } from '../expect-every.js';

const DIST = resolve(import.meta.dirname, '../../dist/src');

const cleanups: (() => void | Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

const CHILD = `
import { openDatabase } from ${JSON.stringify(pathToFileURL(join(DIST, 'store/database.js')).href)};
import { createSynthStage, synthOptionsSchema } from ${JSON.stringify(pathToFileURL(join(DIST, 'synth/synth-stage.js')).href)};
import { InstructionStore } from ${JSON.stringify(pathToFileURL(join(DIST, 'store/instruction-store.js')).href)};
import { LlmCache } from ${JSON.stringify(pathToFileURL(join(DIST, 'store/llm-cache.js')).href)};
import { readFileSync } from 'node:fs';
import { dirname } from 'node:path';
const [dbPath, samplesPath, optionsJson] = process.argv.slice(2);
const samples = JSON.parse(readFileSync(samplesPath, 'utf8')).map((s) => ({ ...s, imageBytes: null }));
const db = openDatabase(dbPath);
const stage = createSynthStage(synthOptionsSchema.parse(JSON.parse(optionsJson)), { instructions: new InstructionStore(db), llmCache: new LlmCache(db), runFolder: dirname(dbPath), runId: 1 });
async function* input() { yield* samples; }
for await (const _ of stage.run(input(), { signal: new AbortController().signal, emit() {} })) {}
process.stdout.write('finished\\n');
`;

describe('kill -9 during synthesis, then resume', () => {
  it('re-sends only the requests whose answers never reached the cache', async () => {
    expect(existsSync(join(DIST, 'synth/synth-stage.js')), 'run `npm run build` first (npm test does)').toBe(true);
    const s = await FakeLlmServer.start({ latencyMs: 40 });
    cleanups.push(() => s.close());
    const samples = Array.from({ length: 40 }, (_, i) => shapesPair(`k${String(i).padStart(2, '0')}`));
    const r: TestRun = createRun(samples);
    cleanups.push(r.cleanup);
    const optionsInput = {
      tasks: ['conversation', 'detail'],
      concurrency: 40,
      commitEvery: 4,
      llm: { baseURL: s.baseURL, model: 'kill-model', rpm: 100_000, tpm: 100_000_000, concurrency: 4 },
    };
    const samplesPath = join(r.dir, 'samples.json');
    writeFileSync(samplesPath, JSON.stringify(samples));
    const childPath = join(r.dir, 'child.mjs');
    writeFileSync(childPath, CHILD);

    const child = spawn(process.execPath, [childPath, r.dbPath, samplesPath, JSON.stringify(optionsInput)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const watcher = setInterval(() => {
      if (s.requests.length >= 30 && child.exitCode === null) child.kill('SIGKILL');
    }, 2);
    const exit = await new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((done) => child.on('close', (code, signal) => done({ code, signal })));
    clearInterval(watcher);
    expect(exit.signal, stderr).toBe('SIGKILL');

    const sentBeforeKill = s.requests.length;
    const sentHashes = new Set(s.requests.map((q) => q.hash));
    // What the killed process got to keep: answers committed to llm_cache, as request bodies.
    const cachedHashes = new Set(
      (r.db.prepare('SELECT request_json FROM llm_cache').all() as { request_json: string }[]).map(({ request_json }) => {
        const identity = JSON.parse(request_json) as { model: string; messages: unknown; parameters: Record<string, unknown> };
        return bodyHash({ model: identity.model, messages: identity.messages, ...identity.parameters });
      }),
    );
    expect(cachedHashes.size).toBeGreaterThan(0);
    expect(cachedHashes.size).toBeLessThan(80);
    for (const hash of cachedHashes) expect(sentHashes.has(hash)).toBe(true);

    await drain(createSynthStage(synthOptionsSchema.parse(optionsInput), { ...synthDeps(r.db), runId: r.runId }), samples);
    const resent = s.requests.slice(sentBeforeKill).map((q) => q.hash);
    // Nothing cached was asked again; nothing was asked twice; every task now has its answer.
    expect(resent.filter((hash) => cachedHashes.has(hash))).toEqual([]);
    expect(new Set(resent).size).toBe(resent.length);
    expect(resent.length).toBe(80 - cachedHashes.size);
    // Requests in flight at the kill (sent, answer lost) went out again.
    const lostInFlight = [...sentHashes].filter((hash) => !cachedHashes.has(hash));
    expect(lostInFlight.length).toBeGreaterThan(0);
    // Paid twice: at most what was in flight at the kill, `llm.concurrency` (README says so).
    expect(lostInFlight.length).toBeLessThanOrEqual(4);
    expectEvery(lostInFlight, (hash) => resent.includes(hash));
    const rows = instructionRows(r.db);
    expect(rows).toHaveLength(80);
    expectEveryRowAccountedFor(rows);
    expectEvery(rows, (row) => row.status === 'ok');
  });
});
