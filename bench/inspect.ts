import { mkdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { OPEN, type Caption, type DecodedPair } from '../src/core/sample.js';
import { openDatabase, type Db } from '../src/store/database.js';
import { InstructionStore } from '../src/store/instruction-store.js';
import { listSamples, runStats, showSample, type SampleFilter } from '../src/store/queries.js';
import { RunStore } from '../src/store/run-store.js';
import { buildReport } from '../src/report/build-report.js';
import { collectReportData } from '../src/report/report-data.js';
import { CACHE, round } from './util.js';

/** Deterministic numbers without a model: a small LCG. */
function lcg(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
}

const FAILURES = ['image_truncated', 'image_corrupt', 'image_unsupported', 'image_missing'] as const;

/**
 * Photo-like JPEGs (640x480: blurred colour noise, about as hard to compress as a photo) that the 100k
 * samples point at, so the report's thumbnails are of realistic size.
 */
async function makeImages(dir: string, count: number): Promise<string[]> {
  const out: string[] = [];
  for (let i = 0; i < count; i++) {
    const path = join(dir, `photo-${i}.jpg`);
    const noise = await sharp({ create: { width: 640, height: 480, channels: 3, background: '#000', noise: { type: 'gaussian', mean: 128, sigma: 60 } } })
      .blur(1.2 + (i % 4))
      .raw()
      .toBuffer();
    await sharp(noise, { raw: { width: 640, height: 480, channels: 3 } }).jpeg({ quality: 85 }).toFile(path);
    out.push(path);
  }
  return out;
}

/**
 * A 100k-sample run database as a CapFilt run leaves it: one web and five synthetic captions per sample
 * with ITC/ITM scores and verdicts, 0-3 boxes, 5% failed and the rest ok or dropped by the filter, and
 * instruction samples for every 20th sample.
 */
export async function buildInspectDb(dir: string, samples: number): Promise<{ db: Db; path: string; writeSeconds: number }> {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const images = await makeImages(dir, 16);
  const path = join(dir, 'run.db');
  const db = openDatabase(path);
  const store = new RunStore(db);
  const run = store.startRun(
    JSON.stringify({ filter: { itc: { model: 'x', threshold: 0.28 }, itm: { model: 'y', threshold: 0.5 }, policy: 'both' } }),
    'bench',
    '0/1',
  );
  const random = lcg(7);
  const instructions = new InstructionStore(db);
  const started = performance.now();
  for (let start = 0; start < samples; start += 1000) {
    const batch: DecodedPair[] = [];
    const rows: Parameters<InstructionStore['write']>[0][number][] = [];
    for (let i = start; i < Math.min(samples, start + 1000); i++) {
      const key = `s${String(i).padStart(7, '0')}`;
      const failed = random() < 0.05;
      const captions: Caption[] = failed
        ? [{ text: `caption of sample ${i}`, origin: 'web', issue: null, usable: true }]
        : Array.from({ length: 6 }, (_, j) => {
            const itc = random() * 0.5;
            const itm = random();
            const kept = itc >= 0.28 && itm >= 0.5;
            return {
              text: `caption ${j} of sample ${i}: a ${['red', 'blue', 'green'][j % 3]} object`,
              origin: j === 0 ? ('web' as const) : ('synthetic' as const),
              issue: null,
              usable: true,
              model: j === 0 ? null : 'bench-captioner',
              itc,
              itm,
              kept,
              reason: kept ? `itc ${itc.toFixed(3)} >= 0.28, itm ${itm.toFixed(3)} >= 0.5` : 'below the cut',
            };
          });
      const anyKept = captions.some((c) => c.kept);
      const image = images[i % images.length]!;
      batch.push({
        key,
        source: i % 2 ? 'web-a' : 'web-b',
        imageRef: `file:${image}`,
        imageBytes: null,
        captions,
        boxes: Array.from({ length: i % 4 }, (_, b) => ({ label: `object ${b}`, box: [40 + b * 100, 60, 200 + b * 100, 300] as [number, number, number, number] })),
        meta: { url: `https://example.invalid/${i}.jpg` },
        fate: failed
          ? { kind: 'failed', code: FAILURES[i % FAILURES.length]!, message: `sample ${i} could not be decoded`, stage: 'decode' }
          : !anyKept
            ? { kind: 'dropped', reason: 'no_caption_passed', stage: 'select' }
            : OPEN,
        image: failed ? null : { width: 640, height: 480, format: 'jpeg', byteLength: 50_000, sha256: '', orientation: 1 },
      });
      if (!failed && i % 20 === 0) {
        rows.push({
          sampleKey: key,
          task: 'conversation',
          variant: 0,
          status: i % 100 === 0 ? 'rejected' : 'ok',
          code: i % 100 === 0 ? 'leak_caption' : null,
          message: i % 100 === 0 ? 'mentions "caption"' : null,
          conversations: [
            { from: 'human', value: '<image>\nWhat is in the picture?' },
            { from: 'gpt', value: `A red object, sample ${i}.` },
          ],
          requestHash: null,
          attempts: 1,
        });
      }
    }
    store.writeSamples(run, batch);
    instructions.write(rows);
  }
  store.finishRun(run, 'finished');
  return { db, path, writeSeconds: (performance.now() - started) / 1000 };
}

function timeIt<T>(fn: () => T): { seconds: number; result: T } {
  const started = performance.now();
  const result = fn();
  return { seconds: round((performance.now() - started) / 1000, 3), result };
}

/**
 * Issue 7: every `vlcurate inspect` query (the functions the CLI calls) on a 100k-sample database, each
 * timed cold on a fresh read-only connection as the CLI opens it; and the HTML report of that run.
 */
export async function benchInspect(samples = 100_000): Promise<Record<string, unknown>> {
  const dir = join(CACHE, 'inspect');
  const built = await buildInspectDb(dir, samples);
  built.db.close();
  const queries: Record<string, (db: Db) => unknown> = {
    stats: (db) => runStats(db),
    samplesDefault: (db) => listSamples(db, { limit: 50 }),
    samplesFailed: (db) => listSamples(db, { status: 'failed', limit: 1000 }),
    samplesReason: (db) => listSamples(db, { reason: 'no_caption_passed', limit: 50 }),
    samplesMinItm: (db) => listSamples(db, { minItm: 0.9, order: '-itm', limit: 50 }),
    samplesMaxItc: (db) => listSamples(db, { maxItc: 0.1, order: 'itc', limit: 50 }),
    samplesOriginOrderItm: (db) => listSamples(db, { origin: 'synthetic', status: 'dropped', order: '-itm', limit: 50 }),
    samplesUpdated: (db) => listSamples(db, { order: 'updated', limit: 50 } satisfies SampleFilter),
    show: (db) => showSample(db, 's0054321'),
    sqlKeptByOrigin: (db) => db.prepare(`SELECT origin, SUM(kept = 1) AS kept FROM captions GROUP BY origin`).all(),
    reportData: (db) => collectReportData(db),
  };
  const seconds: Record<string, number> = {};
  for (const [name, query] of Object.entries(queries)) {
    const db = openDatabase(built.path, { readonly: true });
    try {
      seconds[name] = timeIt(() => query(db)).seconds;
    } finally {
      db.close();
    }
  }
  const report = await buildReport(built.path, join(dir, 'report.html'));
  const result = {
    samples,
    captions: (() => {
      const db = openDatabase(built.path, { readonly: true });
      const n = (db.prepare('SELECT COUNT(*) AS n FROM captions').get() as { n: number }).n;
      db.close();
      return n;
    })(),
    databaseMb: round(statSync(built.path).size / 2 ** 20, 1),
    writeSeconds: round(built.writeSeconds, 1),
    querySeconds: seconds,
    slowestQuerySeconds: Math.max(...Object.entries(seconds).filter(([k]) => k !== 'reportData').map(([, v]) => v)),
    report: {
      seconds: round(report.seconds.total, 2),
      dataSeconds: round(report.seconds.data, 2),
      thumbnailSeconds: round(report.seconds.thumbnails, 2),
      megabytes: round(report.bytes / 2 ** 20, 2),
      thumbnails: report.thumbnails.made,
      thumbnailKbAvg: round(report.thumbnails.bytes / Math.max(1, report.thumbnails.made) / 1024, 1),
    },
  };
  rmSync(dir, { recursive: true, force: true });
  return result;
}

// `node dist/bench/inspect.js [samples]` runs this section alone.
if (import.meta.url === `file://${process.argv[1]}`) {
  const n = Number(process.argv[2] ?? 100_000);
  process.stdout.write(`${JSON.stringify(await benchInspect(n), null, 2)}\n`);
}
