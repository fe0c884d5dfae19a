/**
 * Issue 5: LLM synthesis throughput against the local OpenAI-compatible server with 200 ms latency and
 * a provider-style limit of 600 requests per minute, while 10% of requests fail (5% 429 with
 * Retry-After: 1, 5% 500). Reports the requests per minute the server received in the first 60 s as a
 * share of the limit (target >= 0.95), how many samples came out (none may be lost), and how often the
 * server's own limit had to refuse a request.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { OPEN, type DecodedPair } from '../src/core/sample.js';
import { openDatabase } from '../src/store/database.js';
import { RunStore } from '../src/store/run-store.js';
import { InstructionStore } from '../src/store/instruction-store.js';
import { LlmCache } from '../src/store/llm-cache.js';
import { createSynthStage, synthOptionsSchema } from '../src/synth/synth-stage.js';
import { FakeLlmServer } from '../tests/llm-server/server.js';
import { round } from './util.js';

const LIMIT_RPM = 600;
const LATENCY_MS = 200;
/** About 1.1 requests per sample with the injected errors: roughly 80 s at 600 per minute. */
const SAMPLES = 720;
const MEASURE_MS = 60_000;

const COLORS = ['red', 'green', 'blue', 'yellow', 'purple', 'orange'];
const SHAPES = ['circle', 'square', 'triangle', 'star', 'hexagon'];

function sample(i: number): DecodedPair {
  const a = `${COLORS[i % 6]} ${SHAPES[i % 5]}`;
  const b = `${COLORS[(i + 2) % 6]} ${SHAPES[(i + 3) % 5]}`;
  return {
    key: `bench_${String(i).padStart(5, '0')}`,
    source: 'bench',
    imageRef: `file:bench-${i}`,
    imageBytes: null,
    captions: [
      { text: `a large ${a} to the left of a small ${b}`, origin: 'annotation', issue: null, usable: true },
      { text: `a picture of a large ${a} and a small ${b}`, origin: 'annotation', issue: null, usable: true },
    ],
    boxes: [
      { label: a, box: [10, 30, 60, 80] },
      { label: b, box: [80, 50, 100, 70] },
    ],
    meta: {},
    fate: OPEN,
    image: { width: 128, height: 128, format: 'png', byteLength: 0, sha256: '', orientation: 1 },
  };
}

export async function benchLlm(): Promise<Record<string, unknown>> {
  let injected = 0;
  const server = await FakeLlmServer.start({
    latencyMs: LATENCY_MS,
    limit: { requests: LIMIT_RPM, windowMs: 60_000 },
    script: (request) => {
      if (request.index % 20 === 3) {
        injected++;
        return { kind: 'status', status: 429, headers: { 'retry-after': '1' } };
      }
      if (request.index % 20 === 13) {
        injected++;
        return { kind: 'status', status: 500 };
      }
      return undefined;
    },
  });
  const dir = mkdtempSync(join(tmpdir(), 'vlc-bench-llm-'));
  try {
    const db = openDatabase(join(dir, 'run.db'));
    const store = new RunStore(db);
    const runId = store.startRun('{}', 'bench', '0/1');
    const samples = Array.from({ length: SAMPLES }, (_, i) => sample(i));
    store.writeSamples(runId, samples);
    const options = synthOptionsSchema.parse({
      tasks: ['conversation'],
      concurrency: 64,
      llm: { baseURL: server.baseURL, model: 'bench-model', rpm: LIMIT_RPM, tpm: 10_000_000, concurrency: 16, retryBaseMs: 500, retryMaxMs: 8000 },
    });
    const stage = createSynthStage(options, { instructions: new InstructionStore(db), llmCache: new LlmCache(db), runFolder: dirname(db.name), runId });
    async function* input() {
      yield* samples;
    }
    const started = performance.now();
    let out = 0;
    for await (const _ of stage.run(input(), { signal: new AbortController().signal, emit: () => undefined })) out++;
    const elapsedMs = performance.now() - started;
    const rows = db.prepare(`SELECT status, COUNT(*) AS n FROM instructions GROUP BY status`).all() as { status: string; n: number }[];
    db.close();

    const times = server.requests.map((r) => r.at).sort((a, b) => a - b);
    const t0 = times[0]!;
    const inWindow = times.filter((t) => t - t0 < MEASURE_MS).length;
    const span = times.at(-1)! - t0;
    const ok = rows.find((r) => r.status === 'ok')?.n ?? 0;
    return {
      limitRpm: LIMIT_RPM,
      latencyMs: LATENCY_MS,
      samples: SAMPLES,
      requests: times.length,
      injectedErrors: injected,
      refusedByServerLimit: server.limited,
      measuredOverS: round(Math.min(MEASURE_MS, span) / 1000, 1),
      achievedRpm: round(span >= MEASURE_MS ? inWindow : (inWindow * 60_000) / span, 1),
      shareOfLimit: round((span >= MEASURE_MS ? inWindow : (inWindow * 60_000) / span) / LIMIT_RPM, 3),
      wholeRunRpm: round(((times.length - 1) * 60_000) / span, 1),
      samplesOut: out,
      lostSamples: SAMPLES - out,
      instructionsOk: ok,
      instructionsNotOk: rows.filter((r) => r.status !== 'ok').reduce((n, r) => n + r.n, 0),
      elapsedS: round(elapsedMs / 1000, 1),
    };
  } finally {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

// Run directly: node dist/bench/llm.js
if (process.argv[1] && import.meta.url.endsWith(process.argv[1].replace(/\\/g, '/'))) {
  process.stdout.write(`${JSON.stringify(await benchLlm(), null, 2)}\n`);
}
