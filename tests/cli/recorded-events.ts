/**
 * Event streams for the progress UI tests.
 *
 * - {@link recordPipeline} records a real stream: `runPipeline` over fake stages that fail, drop, report
 *   batch latency and LLM counters, and an abort part-way, exactly as `--progress json` would print it.
 * - {@link scriptedRun} is a fixed stream shaped like a filter + synth build (what a recording of one looks
 *   like), with numbers chosen so the tests can check the UI's arithmetic (ETA, percentages, totals).
 */
import type { LlmCounters, PipelineEvent, StageCounts } from '../../src/core/events.js';
import { runPipeline } from '../../src/core/pipeline.js';
import { StageChain } from '../../src/core/stage-chain.js';
import { failureOf, OPEN, type Pair } from '../../src/core/sample.js';
import { failSample } from '../../src/core/sample.js';
import type { Stage } from '../../src/core/stage.js';
import { mapConcurrent } from '../../src/iter/index.js';

function pair(key: string): Pair {
  return { key, source: 'test', imageRef: `file:/nowhere/${key}.jpg`, imageBytes: null, captions: [], boxes: [], meta: {}, fate: OPEN };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Run a real pipeline and record its events: `n` samples, `decode` fails keys ending in 7, `judge` drops
 * keys ending in 5 and reports batch latency, `chat` reports cumulative LLM counters. With `abortAfter`,
 * the run is aborted once that many samples were read.
 */
export async function recordPipeline(n: number, options: { abortAfter?: number } = {}): Promise<PipelineEvent[]> {
  const controller = new AbortController();
  async function* source(): AsyncGenerator<Pair> {
    for (let i = 0; i < n; i++) {
      await sleep(1);
      if (options.abortAfter !== undefined && i === options.abortAfter) controller.abort();
      yield pair(`k${String(i).padStart(4, '0')}`);
    }
  }
  const decode: Stage<Pair, Pair> = {
    name: 'decode',
    run: (input) =>
      mapConcurrent(input, async (p) => (p.key.endsWith('7') ? failSample(p, 'decode', 'image_truncated', `${p.key}: the image ends early`) : p), {
        concurrency: 2,
      }),
  };
  const judge: Stage<Pair, Pair> = {
    name: 'judge',
    run(input, ctx) {
      return mapConcurrent(input, async (p) => {
        ctx.emit({ type: 'batch-latency', ms: 12 });
        return p.key.endsWith('5') && !failureOf(p) ? { ...p, fate: { kind: 'dropped', reason: 'no_caption_passed', stage: 'judge' } } : p;
      }, { concurrency: 2 });
    },
  };
  const counters: Omit<LlmCounters, 'stage'> = { inFlight: 0, requests: 0, retries: 0, cached: 0, promptTokens: 0, completionTokens: 0, costUsd: 0 };
  const chat: Stage<Pair, Pair> = {
    name: 'chat',
    run(input, ctx) {
      return mapConcurrent(input, async (p) => {
        counters.inFlight++;
        ctx.emit({ type: 'llm', counters: { ...counters } });
        await sleep(2);
        counters.inFlight--;
        counters.requests++;
        counters.promptTokens += 300;
        counters.completionTokens += 100;
        counters.costUsd += 0.0001;
        if (counters.requests % 10 === 0) counters.retries++;
        ctx.emit({ type: 'llm', counters: { ...counters } });
        return p;
      }, { concurrency: 4 });
    },
  };
  const events: PipelineEvent[] = [];
  let ok = 0;
  let failed = 0;
  let dropped = 0;
  const failures: Record<string, number> = {};
  const count: Stage<Pair, Pair> = {
    name: 'record',
    async *run(input) {
      for await (const p of input) {
        if (p.fate.kind === 'failed') {
          failed++;
          failures[p.fate.code] = (failures[p.fate.code] ?? 0) + 1;
        } else if (p.fate.kind === 'dropped') dropped++;
        else ok++;
        yield p;
      }
    },
  };
  for await (const event of runPipeline({
    runId: 1,
    source: source(),
    stages: StageChain.from<Pair>().thenAll([decode, judge, chat, count]),
    signal: controller.signal,
    total: n,
    tickMs: 20,
    summarize: () => ({ samples: { total: ok + failed + dropped, ok, failed, dropped }, failures, exported: { wds: ok } }),
  })) {
    // Through JSON, as `--progress json` prints and a recording stores them.
    events.push(JSON.parse(JSON.stringify(event)) as PipelineEvent);
  }
  return events;
}

const STAGES = ['read', 'resume', 'decode', 'filter', 'synth', 'record', 'export:wds'];

/** Counts after `n` samples in `seconds`: decode failed `failed`, filter dropped `dropped`. */
function counts(n: number, seconds: number, failed = 0, dropped = 0): StageCounts[] {
  return STAGES.map((stage) => {
    const c: StageCounts = { stage, in: stage === 'read' ? 0 : n, out: n, failed: 0, dropped: 0, rateNow: 100, rateAvg: n / seconds };
    if (stage === 'decode') c.failed = failed;
    if (stage === 'filter') {
      c.dropped = dropped;
      c.batchLatencyMs = 42.5;
    }
    return c;
  });
}

/**
 * A filter + synth build of 1,000 samples, 100 of them done by an earlier run. After the last progress
 * event 360 samples are read at 100/s now: ETA (1000 - 360) / 100 = 6.4 s.
 */
export function scriptedRun(): PipelineEvent[] {
  return [
    { type: 'run-start', runId: 3, stages: STAGES, total: 1000, resumed: 100 },
    { type: 'progress', elapsedMs: 500, total: 1000, stages: counts(0, 0.5) },
    { type: 'sample-error', stage: 'decode', key: 'web_000017', code: 'image_truncated', message: 'the image ends early (JPEG data stops before its end marker)' },
    { type: 'llm', counters: { stage: 'synth', inFlight: 2, requests: 10, retries: 0, cached: 4, promptTokens: 3000, completionTokens: 800, costUsd: 0.00093 } },
    { type: 'progress', elapsedMs: 2000, total: 1000, stages: counts(180, 2, 1, 12) },
    { type: 'sample-error', stage: 'decode', key: 'web_000211', code: 'image_too_large', message: '30000x30000 pixels is more than decode.maxPixels (89478485)' },
    { type: 'sample-error', stage: 'synth', key: 'web_000230', code: 'llm_timeout', message: 'no answer from the LLM within 60000 ms after 6 attempts' },
    { type: 'log', level: 'warn', message: 'synth: 429 from the API, waiting 2s (Retry-After)' },
    { type: 'llm', counters: { stage: 'synth', inFlight: 7, requests: 412, retries: 3, cached: 18, promptTokens: 98765, completionTokens: 23456, costUsd: 0.02889 } },
    { type: 'progress', elapsedMs: 4000, total: 1000, stages: counts(360, 4, 2, 25) },
  ];
}

export function scriptedAbortedRun(): PipelineEvent[] {
  return [
    ...scriptedRun(),
    { type: 'aborting', reason: 'interrupted: finishing samples in flight' },
    { type: 'progress', elapsedMs: 4600, total: 1000, stages: counts(370, 4.6, 2, 25) },
  ];
}

export function scriptedFinishedRun(aborted = false): PipelineEvent[] {
  const base = aborted ? scriptedAbortedRun() : scriptedRun();
  const end = aborted
    ? { elapsedMs: 4800, stages: counts(380, 4.8, 2, 26), samples: { total: 480, ok: 446, failed: 8, dropped: 26 } }
    : { elapsedMs: 9500, stages: counts(1000, 9.5, 2, 60), samples: { total: 1000, ok: 930, failed: 10, dropped: 60 } };
  return [
    ...base,
    {
      type: 'run-end',
      elapsedMs: end.elapsedMs,
      aborted,
      stages: end.stages,
      summary: { samples: end.samples, failures: { image_truncated: 7, image_too_large: 1, llm_timeout: 2 }, exported: { wds: end.samples.ok } },
    },
  ];
}
