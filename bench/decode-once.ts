/**
 * Issue 15, decode once: a CapFilt build (ITC + ITM, ONNX captioner on every image, the filter again on
 * its captions; the shapes demo models, `decode.concurrency` 4) over the web-size JPEGs of
 * `web-images.ts` (default 300, `VLCURATE_BENCH_DECODE_ONCE_COUNT`), once with the decode stage's
 * prepared pixels (one decode per image) and once with every model decoding the bytes itself (six decodes
 * per image: the check, ITC, ITM, captioner, ITC and ITM again), alternating for
 * `VLCURATE_BENCH_ROUNDS` rounds (default 3). Reports medians of wall time, process CPU (all threads)
 * and peak RSS. `node dist/bench/decode-once.js` after `npm run build` (not part of `npm run bench`).
 */
import { rmSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { freshRecipe, ROOT, round, runChild } from './util.js';
import { cachedWebImages } from './web-images.js';

interface Child {
  elapsedMs: number;
  cpuMs: number;
  maxRssMb: number;
  samples: { total: number; failed: number };
}

const count = Number(process.env.VLCURATE_BENCH_DECODE_ONCE_COUNT ?? 300);
const rounds = Number(process.env.VLCURATE_BENCH_ROUNDS ?? 3);
const { shards } = await cachedWebImages(count);
const models = join(ROOT, 'models');
const run = (mode: 'once' | 'bytes'): Child => {
  const { work, recipe } = freshRecipe('decode-once', () => ({
    sources: [{ type: 'webdataset', name: 'web', paths: shards }],
    decode: { concurrency: 4 },
    filter: { itc: { model: join(models, 'shapes-clip'), threshold: 0.3 }, itm: { model: join(models, 'shapes-itm') }, batchSize: 16 },
    captioner: { type: 'onnx', model: join(models, 'shapes-captioner'), samples: 1, minLength: 3, maxLength: 12, batchSize: 8 },
  }));
  const result = runChild<Child>('decode-once-child.js', mode === 'bytes' ? [recipe, 'bytes'] : [recipe]);
  rmSync(work, { recursive: true, force: true });
  if (result.samples.total !== count || result.samples.failed !== 0) throw new Error(`unexpected samples: ${JSON.stringify(result.samples)}`);
  return result;
};
const per: { load: number; once: Child; bytes: Child }[] = [];
for (let i = 0; i < rounds; i++) {
  const load = loadavg()[0]!;
  const first = i % 2 === 0 ? 'once' : 'bytes';
  const a = run(first);
  const b = run(first === 'once' ? 'bytes' : 'once');
  per.push({ load: round(load, 1), once: first === 'once' ? a : b, bytes: first === 'once' ? b : a });
}
const median = (values: number[]) => values.slice().sort((x, y) => x - y)[Math.floor(values.length / 2)]!;
const summary = (pick: (c: Child) => number) => ({ once: round(median(per.map((r) => pick(r.once)))), bytes: round(median(per.map((r) => pick(r.bytes)))) });
process.stdout.write(
  `${JSON.stringify({
    images: count,
    rounds: per.map((r) => ({ load: r.load, once: { s: round(r.once.elapsedMs / 1000, 2), cpuS: round(r.once.cpuMs / 1000, 2), rssMb: round(r.once.maxRssMb) }, bytes: { s: round(r.bytes.elapsedMs / 1000, 2), cpuS: round(r.bytes.cpuMs / 1000, 2), rssMb: round(r.bytes.maxRssMb) } })),
    wallSeconds: summary((c) => c.elapsedMs / 1000),
    cpuSeconds: summary((c) => c.cpuMs / 1000),
    peakRssMb: summary((c) => c.maxRssMb),
    cpuRatioOnceToBytes: round(median(per.map((r) => r.once.cpuMs / r.bytes.cpuMs)), 2),
  })}\n`,
);
