import { escapeControlChars } from './control-chars.js';
import type { PipelineEvent, RunSummary, StageEvent } from './events.js';
import type { StageContext } from './stage.js';
import type { Countable, StageChain } from './stage-chain.js';
import { StageMeter } from './stage-meter.js';
import { Channel } from '../iter/channel.js';
import { takeUntilAborted } from '../iter/take.js';

export interface PipelineSpec<T extends Countable> {
  runId: number;
  source: AsyncIterable<T>;
  /** The stages, typed end to end by the chain; the runner only counts what flows through them. */
  stages: StageChain<T, Countable>;
  signal: AbortSignal;
  /** Samples expected in total, when known (for ETA). */
  total?: number | null;
  /** Samples an earlier run already finished (they will be skipped), reported in `run-start`. */
  resumed?: number;
  /** How often `progress` events are emitted. */
  tickMs?: number;
  /** Final counts, read from the store once everything is committed. */
  summarize: () => RunSummary;
}

/**
 * Run the stages over the source and stream events. Pulling drives the pipeline: the last stage's output
 * is drained here, so memory is bounded by what stages hold in flight. On abort the source stops
 * yielding; everything already pulled finishes and is committed by the stages; then `run-end` says
 * `aborted: true` and the run can be resumed.
 */
export async function* runPipeline<T extends Countable>(spec: PipelineSpec<T>): AsyncGenerator<PipelineEvent> {
  const events = new Channel<PipelineEvent>();
  const started = performance.now();
  // The source is metered as a pseudo-stage "read": what it yields, and what it could not read.
  const readMeter = new StageMeter('read');
  const meters = [readMeter, ...spec.stages.stages.map((stage) => new StageMeter(stage.name))];
  const snapshot = () => meters.map((m) => m.snapshot());
  const total = spec.total ?? null;

  let flowing: AsyncIterable<Countable> = countOut(takeUntilAborted(spec.source, spec.signal), readMeter, null, events);
  spec.stages.stages.forEach((stage, i) => {
    const meter = meters[i + 1]!;
    const ctx: StageContext = {
      signal: spec.signal,
      emit: (event: StageEvent) => {
        if (event.type === 'batch-latency') meter.recordLatency(event.ms);
        else if (event.type === 'llm') events.push({ type: 'llm', counters: { stage: stage.name, ...event.counters } });
        else events.push(event);
      },
    };
    flowing = countOut(stage.run(countIn(flowing, meter), ctx), meter, stage.name, events);
  });

  const onAbort = () => events.push({ type: 'aborting', reason: 'interrupted: finishing samples in flight' });
  spec.signal.addEventListener('abort', onAbort, { once: true });
  const ticker = setInterval(() => {
    // Counts are read when the event is delivered, so a slow consumer never sees stale numbers.
    events.push({ type: 'progress', elapsedMs: 0, total, stages: [] });
  }, spec.tickMs ?? 500);

  let failure: unknown = null;
  const drained = (async () => {
    try {
      for await (const _ of flowing) {
        // Draining pulls every sample through every stage.
      }
    } catch (err) {
      failure = err;
    } finally {
      clearInterval(ticker);
      spec.signal.removeEventListener('abort', onAbort);
      events.close();
    }
  })();

  yield { type: 'run-start', runId: spec.runId, stages: meters.map((m) => m.stage), total, resumed: spec.resumed ?? 0 };
  for await (const event of events) {
    if (event.type === 'progress') {
      event.stages = snapshot();
      event.elapsedMs = performance.now() - started;
    }
    yield event;
  }
  await drained;
  if (failure) throw failure;
  yield {
    type: 'run-end',
    elapsedMs: performance.now() - started,
    aborted: spec.signal.aborted,
    stages: snapshot(),
    summary: spec.summarize(),
  };
}

async function* countIn<T>(input: AsyncIterable<T>, meter: StageMeter): AsyncGenerator<T> {
  for await (const item of input) {
    meter.in++;
    yield item;
  }
}

/**
 * Every failure message passes here before it is reported or recorded: text from inputs in it (a bad line
 * quoted in a parse error) must reach neither a terminal nor the database as control characters.
 */
function withSafeFailureMessage<T extends Countable>(item: T): T {
  if (item.fate.kind !== 'failed') return item;
  const message = escapeControlChars(item.fate.message, { oneLine: true });
  return message === item.fate.message ? item : { ...item, fate: { ...item.fate, message } };
}

async function* countOut(
  output: AsyncIterable<Countable>,
  meter: StageMeter,
  /** Null for the source: every failure and drop it yields is its own. */
  stage: string | null,
  events: Channel<PipelineEvent>,
): AsyncGenerator<Countable> {
  for await (const produced of output) {
    meter.out++;
    const item = withSafeFailureMessage(produced);
    const { fate } = item;
    const ours = stage === null || (fate.kind !== 'open' && fate.stage === stage);
    if (fate.kind === 'failed' && ours) {
      meter.failed++;
      if (!fate.said) events.push({ type: 'sample-error', stage: meter.stage, key: item.key, code: fate.code, message: fate.message });
    } else if (fate.kind === 'dropped' && ours) {
      meter.dropped++;
    }
    yield item;
  }
}
