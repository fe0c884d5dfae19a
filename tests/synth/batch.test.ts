import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { LlmCache } from '../../src/store/llm-cache.js';
import { BATCH_URL, parseBatchOutput, parseBatchRequests, writeBatchJsonl, batchRequestLine } from '../../src/synth/batch/batch-file.js';
import { createSynthStage, synthOptionsSchema } from '../../src/synth/synth-stage.js';
import { FakeLlmServer, type Behaviour } from '../llm-server/server.js';
import { cocoPair, shapesPair } from './fixtures.js';
import { createRun, drain, expectEveryRowAccountedFor, instructionRows, type TestRun, synthDeps } from './helpers.js';
import { expectEvery } from '../expect-every.js';

const cleanups: (() => void | Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function server(script?: (r: import('../llm-server/server.js').ReceivedRequest) => Behaviour | undefined): Promise<FakeLlmServer> {
  const s = await FakeLlmServer.start({ script, batchPollsBeforeDone: 2 });
  cleanups.push(() => s.close());
  return s;
}

function run(samples: Parameters<typeof createRun>[0]): TestRun {
  const r = createRun(samples);
  cleanups.push(r.cleanup);
  return r;
}

const options = (baseURL: string, extra: Record<string, unknown> = {}) =>
  synthOptionsSchema.parse({
    tasks: ['conversation', 'detail', 'stage1'],
    llm: { baseURL, model: 'batch-model', rpm: 10_000, tpm: 100_000_000 },
    batch: { enabled: true, size: 10, pollIntervalMs: 5 },
    ...extra,
  });

describe('batch file format', () => {
  it('writes OpenAI batch request lines and reads output lines', () => {
    const text = writeBatchJsonl([batchRequestLine('abc', { model: 'm', messages: [{ role: 'user', content: 'hi' }], temperature: 0.5 })]);
    expect(text).toBe('{"custom_id":"abc","method":"POST","url":"/v1/chat/completions","body":{"model":"m","messages":[{"role":"user","content":"hi"}],"temperature":0.5}}\n');
    expect(parseBatchRequests(text)[0]).toMatchObject({ custom_id: 'abc', url: BATCH_URL });
    const output = parseBatchOutput('{"id":"r1","custom_id":"abc","response":{"status_code":200,"body":{"choices":[]}},"error":null}\nnot json\n\n');
    expect(output.lines).toHaveLength(1);
    expect(output.invalid).toBe(1);
  });
});

describe('batch mode', () => {
  it('submits one request file per round, ingests answers by custom_id, and re-runs from the cache', async () => {
    const s = await server();
    const samples = [shapesPair('a'), cocoPair('b'), shapesPair('c')];
    const r = run(samples);
    const { out, events } = await drain(createSynthStage(options(s.baseURL), { ...synthDeps(r.db), runId: r.runId }), samples);
    expect(out).toHaveLength(3);
    expect(s.liveRequests()).toEqual([]);
    expect(s.requests.filter((q) => q.viaBatch)).toHaveLength(6);
    const rows = instructionRows(r.db);
    expectEveryRowAccountedFor(rows);
    expect(rows.filter((row) => row.status === 'ok')).toHaveLength(9);

    // The uploaded file is the OpenAI batch format, with the same bodies live mode would send.
    const uploads = s.uploadedFiles().filter((f) => f.purpose === 'batch');
    expect(uploads).toHaveLength(1);
    const lines = parseBatchRequests(uploads[0]!.content);
    expect(lines).toHaveLength(6);
    for (const line of lines) {
      expect(line).toMatchObject({ method: 'POST', url: '/v1/chat/completions' });
      expect(line.custom_id).toMatch(/^[0-9a-f]{64}$/);
      expect(Object.keys(line.body)).toEqual(['model', 'messages', 'temperature', 'max_tokens', 'seed']);
    }
    // custom_id is the cache key: every answer sits in llm_cache under it.
    const cache = new LlmCache(r.db);
    expect(cache.has(lines.map((l) => l.custom_id)).size).toBe(6);
    // The request file and the ledger are kept beside the database.
    const batchDir = join(r.dir, 'batches');
    expect(readdirSync(batchDir).some((f) => f.startsWith('requests-') && f.endsWith('.jsonl'))).toBe(true);
    const ledger = readdirSync(batchDir).filter((f) => f.startsWith('batch_'));
    expect(ledger).toHaveLength(1);
    expect(JSON.parse(readFileSync(join(batchDir, ledger[0]!), 'utf8'))).toMatchObject({ ingested: true, finalStatus: 'completed' });
    expect(events.some((e) => e.type === 'log' && e.message.includes('6 requests submitted'))).toBe(true);

    // Again: everything is cached, no new batch.
    await drain(createSynthStage(options(s.baseURL), { ...synthDeps(r.db), runId: r.runId }), samples);
    expect(s.uploadedFiles().filter((f) => f.purpose === 'batch')).toHaveLength(1);
  });

  it('re-asks rejected answers in a second round and records batch errors per request', async () => {
    const seen = new Set<string>();
    const s = await server((request) => {
      const scene = JSON.stringify(request.body.messages.at(-1));
      if (scene.includes('frisbee')) return { kind: 'status', status: 400, body: { error: { message: 'invalid request' } } };
      if (scene.includes('yellow square') && !seen.has(scene)) {
        seen.add(scene);
        return { kind: 'answer', content: 'The caption says there is a square.' };
      }
      return undefined;
    });
    const samples = [shapesPair('a'), cocoPair('b')];
    const r = run(samples);
    await drain(createSynthStage(options(s.baseURL, { tasks: ['detail'] }), { ...synthDeps(r.db), runId: r.runId }), samples);
    const rows = instructionRows(r.db);
    expectEveryRowAccountedFor(rows);
    expect(rows.find((row) => row.sample_key === 'a')).toMatchObject({ status: 'ok', attempts: 2 });
    expect(rows.find((row) => row.sample_key === 'b')!.reason).toMatch(/^http_400: batch: HTTP 400: invalid request/);
    expect(s.uploadedFiles().filter((f) => f.purpose === 'batch')).toHaveLength(2);
  });

  for (const status of [401, 403]) {
    it(`a rejected key (${status}) stops batch mode at the first call: samples held back with key_rejected, one line`, async () => {
      const s = await FakeLlmServer.start({ refuseAll: status });
      cleanups.push(() => s.close());
      const samples = [shapesPair('a'), cocoPair('b'), shapesPair('c')];
      const r = run(samples);
      // One sample per batch: without the stop, each group would upload again.
      const stage = createSynthStage(options(s.baseURL, { batch: { enabled: true, size: 1, pollIntervalMs: 5 } }), { ...synthDeps(r.db), runId: r.runId });
      const { out, events } = await drain(stage, samples);
      expect(out.map((o) => o.fate)).toEqual(Array(3).fill({ kind: 'deferred', reason: 'llm_unfinished: key_rejected', stage: 'synth' }));
      expect(s.rawRequests).toHaveLength(1);
      const rows = instructionRows(r.db);
      expectEveryRowAccountedFor(rows);
      expect(rows.filter((row) => row.task !== 'stage1').map((row) => row.reason?.split(':')[0])).toEqual(Array(6).fill('key_rejected'));
      const logs = events.filter((e) => e.type === 'log').map((e) => (e as { message: string }).message);
      expect(logs.filter((m) => m.startsWith('synth: '))).toEqual([
        `synth: LLM synthesis stopped: batch file upload: API key rejected by ${s.baseURL} (HTTP ${status}: Incorrect API key provided; no key was sent: name the variable that holds it in apiKeyEnv); the samples wait for the next run`,
      ]);
    });
  }

  it('a closed port stops batch mode at the first call the same way', async () => {
    const gone = await FakeLlmServer.start();
    await gone.close();
    const samples = [shapesPair('a'), cocoPair('b')];
    const r = run(samples);
    const { out, events } = await drain(createSynthStage(options(gone.baseURL), { ...synthDeps(r.db), runId: r.runId }), samples);
    expect(out.map((o) => o.fate)).toEqual(Array(2).fill({ kind: 'deferred', reason: 'llm_unfinished: server_unreachable', stage: 'synth' }));
    const logs = events.filter((e) => e.type === 'log').map((e) => (e as { message: string }).message);
    expect(logs.filter((m) => m.startsWith('synth: '))).toEqual([
      `synth: LLM synthesis stopped: batch file upload: cannot reach ${gone.baseURL}: connection refused (ECONNREFUSED); the samples wait for the next run`,
    ]);
  });

  it('collects a batch an interrupted run left running instead of submitting it again', async () => {
    const s = await FakeLlmServer.start({ batchPollsBeforeDone: 1_000_000 });
    cleanups.push(() => s.close());
    const samples = [shapesPair('a'), cocoPair('b')];
    const r = run(samples);
    const controller = new AbortController();
    // Interrupt while the batch is being polled.
    const timer = setInterval(() => {
      if (s.uploadedFiles().length > 0) setTimeout(() => controller.abort(), 30);
    }, 5);
    await drain(createSynthStage(options(s.baseURL, { tasks: ['detail'] }), { ...synthDeps(r.db), runId: r.runId }), samples, controller.signal);
    clearInterval(timer);
    expectEvery(instructionRows(r.db), (row) => row.reason?.startsWith('aborted:'));
    const ledger = readdirSync(join(r.dir, 'batches')).filter((f) => f.startsWith('batch_'));
    expect(ledger).toHaveLength(1);
    expect(JSON.parse(readFileSync(join(r.dir, 'batches', ledger[0]!), 'utf8'))).toMatchObject({ ingested: false });

    // The provider finishes the batch; the next run collects it and submits nothing new.
    (s as unknown as { batchPollsBeforeDone: number }).batchPollsBeforeDone = 0;
    await drain(createSynthStage(options(s.baseURL, { tasks: ['detail'] }), { ...synthDeps(r.db), runId: r.runId }), samples);
    expect(s.uploadedFiles().filter((f) => f.purpose === 'batch')).toHaveLength(1);
    expectEvery(instructionRows(r.db), (row) => row.status === 'ok');
    expect(existsSync(join(r.dir, 'batches'))).toBe(true);
  });
});
