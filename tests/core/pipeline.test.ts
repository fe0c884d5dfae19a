import { describe, expect, it } from 'vitest';
import { runPipeline } from '../../src/core/pipeline.js';
import { StageChain } from '../../src/core/stage-chain.js';
import type { PipelineEvent } from '../../src/core/events.js';
import { OPEN, type Pair } from '../../src/core/sample.js';
import { failSample } from '../../src/core/sample.js';
import type { Stage } from '../../src/core/stage.js';
import { mapConcurrent } from '../../src/iter/index.js';

function pair(key: string): Pair {
  return { key, source: 'test', imageRef: `file:${key}`, imageBytes: null, captions: [], boxes: [], meta: {}, fate: OPEN };
}

async function* pairs(n: number, delayMs = 0): AsyncGenerator<Pair> {
  for (let i = 0; i < n; i++) {
    if (delayMs) await new Promise((r) => setTimeout(r, delayMs));
    yield pair(`k${i}`);
  }
}

const summary = () => ({ samples: { total: 0, ok: 0, failed: 0, dropped: 0 }, failures: {}, exported: {} });

async function collect(iter: AsyncIterable<PipelineEvent>): Promise<PipelineEvent[]> {
  const out: PipelineEvent[] = [];
  for await (const e of iter) out.push(e);
  return out;
}

/** Fails every key ending in 3, drops keys ending in 5, with a little latency per sample. */
const judge: Stage<Pair, Pair> = {
  name: 'judge',
  run(input, ctx) {
    return mapConcurrent(input, async (p) => {
      await new Promise((r) => setTimeout(r, 1));
      ctx.emit({ type: 'batch-latency', ms: 1 });
      if (p.key.endsWith('3')) return failSample(p, 'judge', 'score_failed', `${p.key} ends in 3`);
      if (p.key.endsWith('5')) return { ...p, fate: { kind: 'dropped', reason: 'five', stage: 'judge' } };
      return p;
    }, { concurrency: 4 });
  },
};

describe('runPipeline', () => {
  it('counts in/out/failed/dropped per stage and reports each sample error once', async () => {
    const seen: string[] = [];
    const sink: Stage<Pair, Pair> = {
      name: 'sink',
      async *run(input) {
        for await (const p of input) {
          seen.push(p.key);
          yield p;
        }
      },
    };
    const controller = new AbortController();
    const events = await collect(
      runPipeline({ runId: 1, source: pairs(100), stages: StageChain.from<Pair>().then(judge).then(sink), signal: controller.signal, total: 100, tickMs: 5, summarize: summary }),
    );
    expect(events[0]).toMatchObject({ type: 'run-start', stages: ['read', 'judge', 'sink'], total: 100 });
    const end = events.at(-1)!;
    expect(end.type).toBe('run-end');
    if (end.type !== 'run-end') throw new Error('unreachable');
    expect(end.aborted).toBe(false);
    const [read, judged, sunk] = end.stages;
    expect(read).toMatchObject({ out: 100, failed: 0 });
    expect(judged).toMatchObject({ in: 100, out: 100, failed: 10, dropped: 10 });
    expect(judged!.batchLatencyMs).toBeGreaterThan(0);
    // The sink sees failed samples too (they must be recorded) but does not count them as its own.
    expect(sunk).toMatchObject({ in: 100, out: 100, failed: 0, dropped: 0 });
    expect(seen).toHaveLength(100);
    const errors = events.filter((e) => e.type === 'sample-error');
    expect(errors).toHaveLength(10);
    expect(errors[0]).toMatchObject({ stage: 'judge', code: 'score_failed', key: 'k3' });
  });

  it('counts failures a source yields under "read"', async () => {
    async function* source() {
      yield pair('a');
      yield failSample(pair('b'), 'source', 'tar_truncated', 'cut off');
    }
    const events = await collect(runPipeline({ runId: 1, source: source(), stages: StageChain.from<Pair>(), signal: new AbortController().signal, summarize: summary }));
    const end = events.at(-1)!;
    expect(end.type === 'run-end' && end.stages[0]).toMatchObject({ stage: 'read', out: 2, failed: 1 });
    expect(events.some((e) => e.type === 'sample-error' && e.code === 'tar_truncated')).toBe(true);
  });

  it('on abort, stops reading but finishes every sample already in flight', async () => {
    const controller = new AbortController();
    const finished: string[] = [];
    const slow: Stage<Pair, Pair> = {
      name: 'slow',
      run(input) {
        return mapConcurrent(input, async (p) => {
          if (p.key === 'k5') controller.abort();
          await new Promise((r) => setTimeout(r, 5));
          finished.push(p.key);
          return p;
        }, { concurrency: 3 });
      },
    };
    const events = await collect(runPipeline({ runId: 1, source: pairs(1000, 1), stages: StageChain.from<Pair>().then(slow), signal: controller.signal, summarize: summary }));
    expect(events.some((e) => e.type === 'aborting')).toBe(true);
    const end = events.at(-1)!;
    if (end.type !== 'run-end') throw new Error('expected run-end last');
    expect(end.aborted).toBe(true);
    // Everything that was pulled came out the other end; nothing past the abort point was read.
    expect(end.stages[1]!.in).toBe(end.stages[1]!.out);
    expect(finished.length).toBe(end.stages[1]!.out);
    expect(finished).toContain('k5');
    expect(finished.length).toBeLessThan(20);
  });

  it('emits progress events with rates while running', async () => {
    const events = await collect(
      runPipeline({ runId: 1, source: pairs(60, 2), stages: StageChain.from<Pair>().then(judge), signal: new AbortController().signal, tickMs: 10, summarize: summary }),
    );
    const progress = events.filter((e) => e.type === 'progress');
    expect(progress.length).toBeGreaterThan(2);
    const last = progress.at(-1)!;
    if (last.type !== 'progress') throw new Error('unreachable');
    expect(last.stages[1]!.rateAvg).toBeGreaterThan(0);
    expect(last.elapsedMs).toBeGreaterThan(0);
  });

  it('rethrows a broken invariant from a stage after closing the stream', async () => {
    const broken: Stage<Pair, Pair> = {
      name: 'broken',
      async *run(input) {
        for await (const p of input) {
          if (p.key === 'k2') throw new Error('invariant broken');
          yield p;
        }
      },
    };
    await expect(collect(runPipeline({ runId: 1, source: pairs(5), stages: StageChain.from<Pair>().then(broken), signal: new AbortController().signal, summarize: summary }))).rejects.toThrow(
      'invariant broken',
    );
  });
});
