/**
 * The runtime settings reach onnxruntime: a session opened with `intraOpThreads: N` starts N threads in
 * this process (its worker thread, whose thread runs operators too, and onnxruntime's intra-op pool of
 * N - 1), and `workers: W` starts W such sessions. Counted from /proc/self/status, so Linux only.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { beforeAll, describe, expect, it } from 'vitest';

import { OnnxSession, sessionOptionsFor } from '../../src/backends/onnx-session.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const model = path.join(here, '..', '..', 'models', 'shapes-clip', 'onnx', 'vision_model.onnx');

function threadCount(): number {
  return Number(/^Threads:\s+(\d+)$/m.exec(readFileSync('/proc/self/status', 'utf8'))![1]);
}

/** Threads the process gained while `open()` ran (the session stays open until after the count). */
async function threadsStartedBy(options: Parameters<typeof OnnxSession.open>[1]): Promise<number> {
  const before = threadCount();
  const session = await OnnxSession.open(model, options);
  const started = threadCount() - before;
  await session.close();
  return started;
}

describe.skipIf(!existsSync('/proc/self/status'))('runtime settings reach onnxruntime', () => {
  beforeAll(async () => {
    // The first worker of a process also starts Node's shared helper threads; count from after it.
    await threadsStartedBy({});
  });

  it('intraOpThreads sets the size of the thread pool of each worker', async () => {
    expect(await threadsStartedBy({ intraOpThreads: 1 })).toBe(1);
    expect(await threadsStartedBy({ intraOpThreads: 4 })).toBe(4);
    expect(await threadsStartedBy({ intraOpThreads: 3, workers: 2 })).toBe(6);
  });

  it('a resolved recipe runtime becomes those session options', async () => {
    expect(sessionOptionsFor({ device: 'cpu', threads: 3, workers: 2, fromAuto: [] })).toEqual({ executionProvider: 'cpu', intraOpThreads: 3, workers: 2 });
    expect(sessionOptionsFor({ device: 'cuda:2', threads: 1, workers: 1, fromAuto: ['threads'] })).toEqual({
      executionProvider: 'cuda',
      deviceId: 2,
      intraOpThreads: 1,
      workers: 1,
    });
    expect(await threadsStartedBy(sessionOptionsFor({ device: 'cpu', threads: 2, workers: 2, fromAuto: [] }))).toBe(4);
  });
});
