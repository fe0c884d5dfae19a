import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { OPEN, type Caption, type DecodedPair } from '../src/core/sample.js';
import { refilterRun } from '../src/filter/refilter.js';
import { resolvePolicy } from '../src/filter/resolve-policy.js';
import { filterOptionsSchema } from '../src/filter/filter-options.js';
import { openDatabase } from '../src/store/database.js';
import { RunStore } from '../src/store/run-store.js';
import { CACHE, round } from './util.js';

/** Deterministic scores without a model: a small LCG. */
function scores(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
}

/**
 * Issue 4: `refilter` re-decides a 100k-sample run (one web + five synthetic captions each) from stored
 * scores, with a fixed threshold and with a run-level percentile cut.
 */
export async function benchRefilter(samples = 100_000): Promise<Record<string, unknown>> {
  const dir = join(CACHE, 'refilter');
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const db = openDatabase(join(dir, 'run.db'));
  const store = new RunStore(db);
  const run = store.startRun('{}', 'bench', '0/1');
  const random = scores(7);
  const started = performance.now();
  for (let start = 0; start < samples; start += 1000) {
    const batch: DecodedPair[] = [];
    for (let i = start; i < Math.min(samples, start + 1000); i++) {
      const captions: Caption[] = Array.from({ length: 6 }, (_, j) => ({
        text: `caption ${j} of sample ${i}`,
        origin: j === 0 ? 'web' : 'synthetic',
        issue: null,
        usable: true,
        itc: random() * 0.5,
        itm: random(),
      }));
      batch.push({
        key: `s${String(i).padStart(7, '0')}`,
        source: 'bench',
        imageRef: `file:/bench/${i}.jpg`,
        imageBytes: null,
        captions,
        boxes: [],
        meta: {},
        fate: OPEN,
        image: { width: 128, height: 128, format: 'jpeg', byteLength: 5000, sha256: 'x', orientation: 1 },
      });
    }
    store.writeSamples(run, batch);
  }
  const writeSeconds = (performance.now() - started) / 1000;
  const time = (fn: () => unknown) => {
    const t = performance.now();
    const result = fn();
    return { seconds: round((performance.now() - t) / 1000, 2), result };
  };
  const fixed = time(() => refilterRun(db, resolvePolicy(filterOptionsSchema.parse({ itc: { model: 'x' }, itm: { model: 'y' }, topK: 2 }), db)));
  const percentile = time(() => refilterRun(db, resolvePolicy(filterOptionsSchema.parse({ itm: { model: 'y', percentile: 80 } }), db)));
  db.close();
  rmSync(dir, { recursive: true, force: true });
  return {
    samples,
    captions: samples * 6,
    writeSeconds: round(writeSeconds, 1),
    refilterThresholdSeconds: fixed.seconds,
    refilterPercentileSeconds: percentile.seconds,
    keptWithThreshold: (fixed.result as { kept: number }).kept,
    keptWithPercentile: (percentile.result as { kept: number }).kept,
  };
}
