import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Turn } from '../../src/core/conversation.js';
import { ConfigError } from '../../src/core/errors.js';
import { failureOf, OPEN, type DecodedPair } from '../../src/core/sample.js';
import { RESUMABLE_LLM_CODES } from '../../src/core/failure-codes.js';
import { InstructionStore } from '../../src/store/instruction-store.js';
import { createSynthStage, synthOptionsSchema, type SynthesizedPair } from '../../src/synth/synth-stage.js';
import { FakeLlmServer, type Behaviour, type FakeServerOptions } from '../llm-server/server.js';
import { cocoPair, droppedPair, emptyPair, failedPair, hostilePair, HOSTILE, shapesPair } from './fixtures.js';
import { createRun, drain, expectEveryRowAccountedFor, expectValidConversation, instructionRows, type TestRun, synthDeps } from './helpers.js';
import { expectEvery } from '../expect-every.js';

const cleanups: (() => void | Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function server(options: FakeServerOptions = {}): Promise<FakeLlmServer> {
  const s = await FakeLlmServer.start(options);
  cleanups.push(() => s.close());
  return s;
}

function run(samples: DecodedPair[]): TestRun {
  const r = createRun(samples);
  cleanups.push(r.cleanup);
  return r;
}

const LLM_TASKS = ['conversation', 'detail', 'reasoning'] as const;

function llmOptions(baseURL: string, extra: Record<string, unknown> = {}) {
  return { baseURL, model: 'test-model', rpm: 100_000, tpm: 100_000_000, concurrency: 8, retryBaseMs: 5, retryMaxMs: 20, ...extra };
}

function parse(options: Record<string, unknown>) {
  return synthOptionsSchema.parse(options);
}

describe('synth stage: template tasks', () => {
  it('makes stage1, grounding and referring samples without an LLM, records them, and passes failed samples through', async () => {
    const samples = [shapesPair('a'), cocoPair('b'), emptyPair('c'), failedPair('d'), droppedPair('e')];
    const r = run(samples);
    const stage = createSynthStage(parse({ tasks: ['stage1', 'grounding', 'referring'] }), { ...synthDeps(r.db), runId: r.runId });
    const { out } = await drain(stage, samples);
    expect(out.map((s) => s.key).sort()).toEqual(['a', 'b', 'c', 'd', 'e']);
    // Upstream failures and drops come out as they went in.
    expect(out.find((s) => s.key === 'd')).toBe(samples[3]);
    expect(out.find((s) => s.key === 'e')).toBe(samples[4]);
    const a = out.find((s) => s.key === 'a')!;
    expect(a.instructions!.map((i) => i.task)).toEqual(['stage1', 'grounding', 'referring']);
    for (const instruction of a.instructions!) expectValidConversation(instruction.conversations);
    const rows = instructionRows(r.db);
    expectEveryRowAccountedFor(rows);
    expect(rows.filter((row) => row.sample_key === 'c').map((row) => [row.task, row.status, row.reason!.split(':')[0]])).toEqual([
      ['grounding', 'not_applicable', 'no_boxes'],
      ['referring', 'not_applicable', 'no_boxes'],
      ['stage1', 'not_applicable', 'no_caption'],
    ]);
    expect(rows.filter((row) => row.sample_key === 'd' || row.sample_key === 'e')).toEqual([]);
    // The store reads back what the stage attached.
    expect(new InstructionStore(r.db).samplesFor('a')).toEqual(a.instructions);
  });

  it('defaults to stage1 and grounding, with placeholder regions each export renders', () => {
    const options = parse({});
    expect(options.tasks).toEqual(['stage1', 'grounding']);
    expect(options.regionFormat).toBe('placeholder');
    expect(() => synthOptionsSchema.parse({ tasks: ['stage1', 'stage1'] })).toThrow();
    expect(() => synthOptionsSchema.parse({ taks: [] })).toThrow();
  });
});

describe('synth stage: configuration errors', () => {
  it('LLM tasks without synth.llm name the option', () => {
    const r = run([]);
    expect(() => createSynthStage(parse({ tasks: ['conversation'] }), { ...synthDeps(r.db), runId: r.runId })).toThrow(ConfigError);
    expect(() => createSynthStage(parse({ tasks: ['stage1', 'detail'] }), { ...synthDeps(r.db), runId: r.runId })).toThrow(/synth\.llm/);
  });

  it('a missing API key variable is named', () => {
    const r = run([]);
    const options = parse({ tasks: ['conversation'], llm: llmOptions('http://127.0.0.1:9/v1', { apiKeyEnv: 'VLC_NOT_SET_ANYWHERE' }) });
    expect(() => createSynthStage(options, { ...synthDeps(r.db), runId: r.runId, env: {} })).toThrow(/VLC_NOT_SET_ANYWHERE/);
  });
});

describe('synth stage: LLM tasks', () => {
  it('writes conversation, detail and reasoning samples; a re-run answers from the cache and sends nothing', async () => {
    const s = await server({ latencyMs: 5 });
    const samples = [shapesPair('a'), cocoPair('b'), hostilePair('c'), emptyPair('d'), failedPair('e')];
    const r = run(samples);
    const options = parse({ tasks: [...LLM_TASKS, 'stage1'], llm: llmOptions(s.baseURL) });
    const { out, events } = await drain(createSynthStage(options, { ...synthDeps(r.db), runId: r.runId }), samples);
    expect(out).toHaveLength(5);
    // Three samples with context, three tasks each; the empty one has nothing to talk about.
    expect(s.requests).toHaveLength(9);
    for (const key of ['a', 'b', 'c']) {
      const sample = out.find((x) => x.key === key)!;
      expect(sample.instructions!.map((i) => i.task)).toEqual(['conversation', 'detail', 'reasoning', 'stage1']);
      for (const i of sample.instructions!) expectValidConversation(i.conversations);
    }
    const detail = out.find((x) => x.key === 'a')!.instructions!.find((i) => i.task === 'detail')!;
    expect(detail.conversations[1]!.value).toMatch(/^The picture shows a small yellow square/);
    const rows = instructionRows(r.db);
    expectEveryRowAccountedFor(rows);
    expect(rows.filter((row) => row.sample_key === 'd' && row.task === 'conversation')[0]).toMatchObject({ status: 'not_applicable', attempts: 0 });
    expect(rows.find((row) => row.sample_key === 'd' && row.task === 'conversation')!.reason).toMatch(/^no_context:/);
    expectEvery(rows.filter((row) => row.status === 'ok' && LLM_TASKS.includes(row.task as never)), (row) => /^[0-9a-f]{64}$/.test(row.request_hash!));
    const llmEvents = events.filter((e) => e.type === 'llm');
    expect(llmEvents.at(-1)).toMatchObject({ type: 'llm', counters: { requests: 9, inFlight: 0 } });

    // A second run over the same database: every answer is cached, nothing is sent, the rows are the same.
    const again = await drain(createSynthStage(options, { ...synthDeps(r.db), runId: r.runId }), samples);
    expect(s.requests).toHaveLength(9);
    expect(instructionRows(r.db).map(({ reason, status, conversations_json }) => ({ reason, status, conversations_json }))).toEqual(
      rows.map(({ reason, status, conversations_json }) => ({ reason, status, conversations_json })),
    );
    expect(again.events.filter((e) => e.type === 'llm').at(-1)).toMatchObject({ counters: { requests: 0, cached: 9 } });
    expect(again.out.find((x) => x.key === 'a')!.instructions).toEqual(out.find((x) => x.key === 'a')!.instructions);
  });

  it('keeps a hostile caption inside the delimited data of the user message', async () => {
    const s = await server();
    const samples = [hostilePair('h')];
    const r = run(samples);
    await drain(createSynthStage(parse({ tasks: ['conversation', 'detail'], llm: llmOptions(s.baseURL) }), { ...synthDeps(r.db), runId: r.runId }), samples);
    expect(s.requests).toHaveLength(2);
    for (const request of s.requests) {
      const messages = request.body.messages;
      const system = messages[0]!;
      expect(system.role).toBe('system');
      expect(system.content).toMatch(/between <scene> and <\/scene> is data/);
      expect(system.content).not.toContain(HOSTILE);
      const last = messages.at(-1)!;
      expect(last.role).toBe('user');
      const text = last.content as string;
      expect(text.startsWith('<scene>\n')).toBe(true);
      expect(text.endsWith('\n</scene>')).toBe(true);
      const inner = text.slice('<scene>\n'.length, -'\n</scene>'.length);
      expect(inner.split('\n')[0]).toBe(HOSTILE);
      // Only the final user message carries it, and only once.
      expect(messages.filter((m) => JSON.stringify(m.content).includes(HOSTILE))).toHaveLength(1);
      expect(text.split(HOSTILE)).toHaveLength(2);
    }
  });

  it('retries rejected answers with fresh samples up to maxAttempts, recording every reason', async () => {
    const seen = new Map<string, number>();
    const s = await server({
      script: (request): Behaviour | undefined => {
        const scene = JSON.stringify(request.body.messages.at(-1));
        const n = (seen.get(scene) ?? 0) + 1;
        seen.set(scene, n);
        // Sample "a": the first answer leaks, the second is fine. Sample "b": every answer leaks.
        if (scene.includes('yellow square') && n === 1) return { kind: 'answer', content: 'Question:\nWhat is there?\n===\nAnswer:\nThe captions mention a yellow square.' };
        if (scene.includes('frisbee')) return { kind: 'answer', content: 'Question:\nWhere is the dog?\n===\nAnswer:\nIts bounding box is [0.19, 0.42, 0.56, 0.88].' };
        return undefined;
      },
    });
    const samples = [shapesPair('a'), cocoPair('b')];
    const r = run(samples);
    const { out } = await drain(createSynthStage(parse({ tasks: ['conversation'], maxAttempts: 3, llm: llmOptions(s.baseURL) }), { ...synthDeps(r.db), runId: r.runId }), samples);
    const rows = instructionRows(r.db);
    expectEveryRowAccountedFor(rows);
    expect(rows.find((row) => row.sample_key === 'a')).toMatchObject({ status: 'ok', attempts: 2 });
    expect(rows.find((row) => row.sample_key === 'a')!.reason).toMatch(/^retried: leak_caption: mentions "captions"/);
    const b = rows.find((row) => row.sample_key === 'b')!;
    expect(b).toMatchObject({ status: 'rejected', attempts: 3 });
    expect(b.reason).toMatch(/^leak_box: mentions "bounding" \(3 attempts: leak_box, leak_box, leak_box\)$/);
    // Each attempt was a different request (a new seed), so a fresh sample and a new cache key.
    expect(new Set(s.requests.map((q) => q.body.seed)).size).toBe(s.requests.length);
    expect(s.requests).toHaveLength(5);
    // The sample itself is not failed by a rejected task.
    expect(out.find((x) => x.key === 'b')!.fate).toEqual(OPEN);
    expect(out.find((x) => x.key === 'b')!.instructions).toEqual([]);
  });

  it('records each kind of failure on its task; the sample stays ok; every sample ends valid or with a reason', async () => {
    const behaviours: Record<string, Behaviour> = {
      'length': { kind: 'answer', content: 'Question:\nWhat', finishReason: 'length' },
      'filter': { kind: 'answer', content: '', finishReason: 'content_filter' },
      'reject': { kind: 'status', status: 400, body: { error: { message: 'bad request: model not found' } } },
      'broken': { kind: 'malformed' },
      'hang': { kind: 'hang' },
      'unsupported': { kind: 'answer', content: 'The picture shows a square, a circle and a small dog.' },
    };
    const s = await server({
      script: (request) => {
        const scene = JSON.stringify(request.body.messages.at(-1));
        const which = Object.keys(behaviours).find((k) => scene.includes(`key-${k}`));
        return which ? behaviours[which] : undefined;
      },
    });
    const keyed = (name: string) => {
      const p = shapesPair(name);
      return { ...p, captions: [{ ...p.captions[0]!, text: `${p.captions[0]!.text} key-${name}` }] };
    };
    const samples = [...Object.keys(behaviours).map(keyed), shapesPair('fine')];
    const r = run(samples);
    const { out } = await drain(
      createSynthStage(parse({ tasks: ['detail'], llm: llmOptions(s.baseURL, { maxRetries: 1, timeoutMs: 800 }) }), { ...synthDeps(r.db), runId: r.runId }),
      samples,
    );
    expectEvery(out, (x) => failureOf(x) === null);
    const rows = instructionRows(r.db);
    expect(rows).toHaveLength(samples.length);
    expectEveryRowAccountedFor(rows);
    const codes = Object.fromEntries(rows.map((row) => [row.sample_key, row.status === 'ok' ? `ok ${row.reason ?? ''}`.trim() : row.reason!.split(':')[0]]));
    expect(codes).toEqual({
      length: 'finish_length',
      filter: 'content_filter',
      reject: 'http_400',
      broken: 'bad_response',
      hang: 'timeout',
      unsupported: 'ok unsupported_objects: dog',
      fine: 'ok',
    });
  });

  it('stops new requests at --max-cost, records budget_exhausted, and a later run finishes only those', async () => {
    const s = await server({ script: () => ({ kind: 'answer', content: `The picture shows shapes on a plain background. ${'It is a calm picture. '.repeat(18)}` }) });
    const samples = Array.from({ length: 12 }, (_, i) => shapesPair(`s${i}`));
    const r = run(samples);
    const llm = llmOptions(s.baseURL, { concurrency: 1, price: { inputPerMTok: 0, outputPerMTok: 10 } });
    const options = parse({ tasks: ['detail'], concurrency: 4, llm });
    // About 100 completion tokens at $10/M: $0.001 a request, so a $0.004 budget buys four.
    const first = await drain(createSynthStage(options, { ...synthDeps(r.db), runId: r.runId, maxCostUsd: 0.004 }), samples);
    expect(first.out).toHaveLength(12);
    const rows = instructionRows(r.db);
    expectEveryRowAccountedFor(rows);
    const ok = rows.filter((row) => row.status === 'ok');
    const exhausted = rows.filter((row) => row.reason?.startsWith('budget_exhausted:'));
    expect(ok.length).toBeGreaterThanOrEqual(4);
    expect(ok.length).toBeLessThanOrEqual(5);
    expect(ok.length + exhausted.length).toBe(12);
    expect(s.requests).toHaveLength(ok.length);
    expect(first.events.some((e) => e.type === 'log' && e.level === 'warn' && e.message.includes('--max-cost'))).toBe(true);
    // The store can tell resume which samples still have work.
    expect(new InstructionStore(r.db).unfinishedKeys(samples.map((x) => x.key), RESUMABLE_LLM_CODES).size).toBe(exhausted.length);

    const before = s.requests.length;
    await drain(createSynthStage(options, { ...synthDeps(r.db), runId: r.runId, maxCostUsd: 1 }), samples);
    expect(s.requests.length - before).toBe(exhausted.length);
    expectEvery(instructionRows(r.db), (row) => row.status === 'ok');
  });

  it('an interrupted run leaves unsent requests as aborted; resuming sends only those', async () => {
    const s = await server({ latencyMs: 20 });
    const samples = Array.from({ length: 30 }, (_, i) => shapesPair(`s${String(i).padStart(2, '0')}`));
    const r = run(samples);
    const options = parse({ tasks: ['conversation', 'detail'], concurrency: 30, llm: llmOptions(s.baseURL, { concurrency: 2 }) });
    const controller = new AbortController();
    const timer = setInterval(() => {
      if (s.requests.length >= 12) controller.abort();
    }, 2);
    const first = await drain(createSynthStage(options, { ...synthDeps(r.db), runId: r.runId }), samples, controller.signal);
    clearInterval(timer);
    expect(first.out).toHaveLength(30);
    const firstRequests = new Set(s.requests.map((q) => q.hash));
    const rows = instructionRows(r.db);
    expectEveryRowAccountedFor(rows);
    const aborted = rows.filter((row) => row.reason?.startsWith('aborted:'));
    expect(aborted.length).toBeGreaterThan(0);
    expect(rows.filter((row) => row.status === 'ok').length).toBe(firstRequests.size);

    const firstCount = s.requests.length;
    await drain(createSynthStage(options, { ...synthDeps(r.db), runId: r.runId }), samples);
    const resumed = s.requests.slice(firstCount);
    expect(resumed).toHaveLength(aborted.length);
    expect(resumed.filter((q) => firstRequests.has(q.hash))).toEqual([]);
    expectEvery(instructionRows(r.db), (row) => row.status === 'ok');
  });

  it('never stores or logs the API key', async () => {
    const secret = 'sk-test-0123456789-SECRET-abcdef';
    const s = await server({
      script: (request): Behaviour | undefined => {
        // A careless server that echoes the Authorization header in its error message.
        if (request.index % 3 === 0) return { kind: 'status', status: 400, body: { error: { message: `bad key ${request.authorization}` } } };
        return undefined;
      },
    });
    const samples = [shapesPair('a'), cocoPair('b'), hostilePair('c')];
    const r = run(samples);
    const options = parse({ tasks: ['conversation', 'detail'], llm: llmOptions(s.baseURL, { apiKeyEnv: 'VLC_TEST_API_KEY' }) });
    const { out, events } = await drain(createSynthStage(options, { ...synthDeps(r.db), runId: r.runId, env: { VLC_TEST_API_KEY: secret } }), samples);
    expect(s.requests[0]!.authorization).toBe(`Bearer ${secret}`);
    const rows = instructionRows(r.db);
    expect(rows.some((row) => row.reason?.startsWith('http_400: HTTP 400: bad key Bearer ***'))).toBe(true);
    expect(JSON.stringify(events)).not.toContain(secret);
    expect(JSON.stringify(out, (_k, v) => (Buffer.isBuffer(v) ? undefined : v))).not.toContain(secret);
    // Checkpoint, then grep every file of the database byte for byte.
    r.db.pragma('wal_checkpoint(TRUNCATE)');
    r.db.close();
    const files = readdirSync(r.dir).filter((f) => f.startsWith('run.db'));
    expect(files).toContain('run.db');
    for (const file of files) expect(readFileSync(join(r.dir, file)).includes(Buffer.from(secret)), file).toBe(false);
    expect(readFileSync(join(r.dir, 'run.db')).includes(Buffer.from('test-model'))).toBe(true);
  });

  it('attaches instructions in task order and numbers variants', async () => {
    const s = await server();
    const samples = [shapesPair('a')];
    const r = run(samples);
    const { out } = await drain(
      createSynthStage(parse({ tasks: ['grounding', 'detail'], samplesPerTask: 2, llm: llmOptions(s.baseURL) }), { ...synthDeps(r.db), runId: r.runId }),
      samples,
    );
    const instructions = (out[0] as SynthesizedPair).instructions!;
    expect(instructions.map((i) => `${i.task}/${i.variant}`)).toEqual(['detail/0', 'detail/1', 'grounding/0']);
    // Two variants are two different requests (and may get different detail instructions).
    expect(new Set(s.requests.map((q) => q.hash)).size).toBe(2);
    const turns: Turn[] = instructions[0]!.conversations;
    expect(turns[0]!.value).toMatch(/^<image>\n/);
  });
});
