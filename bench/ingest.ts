import { spawnSync } from 'node:child_process';
import { rmSync, statSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { loadavg } from 'node:os';
import { cachedShapes, freshRecipe, ROOT, round, runChild } from './util.js';
import { cachedWebImages, describeJpegs, readJpegs } from './web-images.js';
import type { RunSummary, StageCounts } from '../src/core/events.js';

interface ChildResult {
  elapsedMs: number;
  cpuMs: number;
  maxRssMb: number;
  summary: RunSummary;
  stages: StageCounts[];
}

/**
 * `npm run bench -- ingest`: web-like JPEGs against bare decoders (issue 15), then the 128x128 shapes
 * runs with peak RSS at 10k and 100k (issue 2; `VLCURATE_BENCH_INGEST_SHAPES=0` leaves them out) and,
 * with `VLCURATE_BENCH_INGEST_1M=1`, 1M (issue 15).
 */
export async function benchIngest(): Promise<Record<string, unknown>> {
  const web = await benchWebIngest();
  const shapes = process.env.VLCURATE_BENCH_INGEST_SHAPES === '0' ? { skipped: 'VLCURATE_BENCH_INGEST_SHAPES=0' } : await benchShapesIngest();
  return { webJpeg: web, shapes128: shapes };
}

/** Decode concurrency of the recipe default (`decode.concurrency`), used by the bare sharp baseline too. */
const DECODE_CONCURRENCY = 4;

/**
 * Issue 15: ingest (read + decode + record + WebDataset export, no models) of web-like JPEGs
 * (`web-images.ts`, default 1500, `VLCURATE_BENCH_WEB_COUNT`) against, in the same run and on the same
 * images: the same ingest with `decode.validate: decode` (every JPEG decoded, the check before issue
 * 15's structure walk), bare sharp full decode + sha256 at the decode stage's concurrency, the decode
 * stage's check alone (`decodeImage`), and one Python process decoding with Pillow + sha256
 * (`bench/pillow_decode.py` with `VLCURATE_PYTHON` or `/usr/bin/python3`; skipped with a note when Pillow
 * is not there). They alternate for `VLCURATE_BENCH_ROUNDS` rounds (default 3); each figure is the median
 * over the rounds, each ratio the median of the per-round ratios; every round's figures and the load
 * average at its start are in `rounds`.
 */
async function benchWebIngest(): Promise<Record<string, unknown>> {
  const count = Number(process.env.VLCURATE_BENCH_WEB_COUNT ?? 1500);
  const rounds = Number(process.env.VLCURATE_BENCH_ROUNDS ?? 3);
  const { shards } = await cachedWebImages(count);
  const images = describeJpegs(await readJpegs(shards));
  const python = process.env.VLCURATE_PYTHON ?? '/usr/bin/python3';
  const probe = spawnSync(python, ['-c', 'import PIL'], { encoding: 'utf8' });
  const pillowSkip = probe.status === 0 ? null : `${python} with Pillow not found (${(probe.error?.message ?? probe.stderr ?? '').trim().split('\n').at(-1)}); install Debian python3-pil or set VLCURATE_PYTHON`;
  type Figures = { ingest: number; ingestDecode: number; sharp: number; validate: number; pillow: number; loadAverage: number; ingestCpuMs: number; ingestDecodeCpuMs: number; pillowCpuMs: number };
  const perRound: (Figures & { peakRssMb: number; peakRssDecodeMb: number })[] = [];
  let pillowVersion: string | undefined;
  const build = (validate: 'structure' | 'decode'): ChildResult => {
    const { work, recipe } = freshRecipe('ingest-web', (work) => ({
      sources: [{ type: 'webdataset', name: 'web', paths: shards }],
      decode: { concurrency: DECODE_CONCURRENCY, validate },
      export: [{ type: 'webdataset', name: 'wds', out: join(work, 'wds'), maxCount: 5000 }],
    }));
    const result = runChild<ChildResult>('build-child.js', [recipe]);
    rmSync(work, { recursive: true, force: true });
    return result;
  };
  for (let i = 0; i < rounds; i++) {
    const loadAverage = loadavg()[0]!;
    // The default JPEG check (structure walk) and, in the same round, every JPEG decoded (the check before).
    const structure = build('structure');
    const decoded = build('decode');
    const bare = runChild<{ sharp: number; validate: number }>('decode-child.js', [String(DECODE_CONCURRENCY), ...shards]);
    let pillow = 0;
    let pillowCpuMs = 0;
    if (pillowSkip === null) {
      const out = spawnSync(python, [join(ROOT, 'bench', 'pillow_decode.py'), ...shards], { encoding: 'utf8', maxBuffer: 1 << 20 });
      if (out.status !== 0) throw new Error(`pillow_decode.py failed: ${out.stderr}`);
      const parsed = JSON.parse(out.stdout.trim().split('\n').at(-1)!) as { pillow: number; cpuMsPerImage: number; version: string };
      pillow = parsed.pillow;
      pillowCpuMs = parsed.cpuMsPerImage;
      pillowVersion = parsed.version;
    }
    perRound.push({
      ingest: round((structure.summary.samples.total * 1000) / structure.elapsedMs),
      ingestDecode: round((decoded.summary.samples.total * 1000) / decoded.elapsedMs),
      sharp: round(bare.sharp),
      validate: round(bare.validate),
      pillow: round(pillow),
      loadAverage: round(loadAverage, 1),
      // CPU per image (all threads): moves much less with other processes' load than the rates do.
      ingestCpuMs: round(structure.cpuMs / structure.summary.samples.total, 3),
      ingestDecodeCpuMs: round(decoded.cpuMs / decoded.summary.samples.total, 3),
      pillowCpuMs: round(pillowCpuMs, 3),
      peakRssMb: round(structure.maxRssMb),
      peakRssDecodeMb: round(decoded.maxRssMb),
    });
  }
  // Each figure's median over the rounds, and the median of the per-round ratios (both runs of a ratio
  // from the same round, so under the same load).
  const median = (values: number[]) => {
    const sorted = values.slice().sort((a, b) => a - b);
    const mid = Math.floor(sorted.length / 2);
    return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
  };
  const of = (pick: (r: Figures) => number) => round(median(perRound.map(pick)), 2);
  return {
    images,
    decodeConcurrency: DECODE_CONCURRENCY,
    medianOf: `${rounds} rounds`,
    ingestSamplesPerSecond: of((r) => r.ingest),
    ingestValidateDecodeSamplesPerSecond: of((r) => r.ingestDecode),
    sharpDecodeSha256PerSecond: of((r) => r.sharp),
    decodeStageCheckPerSecond: of((r) => r.validate),
    pillow: pillowSkip ?? { imagesPerSecond: of((r) => r.pillow), version: pillowVersion },
    ingestToSharp: of((r) => r.ingest / r.sharp),
    ingestToPillow: pillowSkip === null ? of((r) => r.ingest / r.pillow) : null,
    ingestValidateDecodeToPillow: pillowSkip === null ? of((r) => r.ingestDecode / r.pillow) : null,
    checkToSharp: of((r) => r.validate / r.sharp),
    cpuMsPerImage: { ingest: of((r) => r.ingestCpuMs), ingestValidateDecode: of((r) => r.ingestDecodeCpuMs), pillow: of((r) => r.pillowCpuMs) },
    rounds: perRound,
  };
}

/**
 * Issue 2: ingest + decode + record + WebDataset export of demo samples, and peak RSS at 10k and 100k
 * samples. The 100k run reads the 10k shards ten times under ten key prefixes (distinct samples to the
 * pipeline, no extra disk), so memory growth between the two is the pipeline's own.
 */
async function benchShapesIngest(): Promise<Record<string, unknown>> {
  const data = await cachedShapes(10_000);
  const shards = readdirSync(join(data, 'webdataset')).filter((f) => f.endsWith('.tar')).map((f) => join(data, 'webdataset', f));
  const results: Record<string, unknown> = {};
  // `decode.dedup: exact` on the 10k samples (no copies to find: the cost of looking), between two plain
  // 10k runs, so the ratio is against their mean rather than against one warm or cold run.
  const runs = [
    { label: '10000', copies: 1, dedup: false },
    { label: '10000-dedup', copies: 1, dedup: true },
    { label: '10000-again', copies: 1, dedup: false },
    { label: '100000', copies: 10, dedup: false },
    // The 10k shards 100 times over (1M samples, ~5 GB of exported tar): opt-in, it takes 15-60 minutes.
    ...(process.env.VLCURATE_BENCH_INGEST_1M === '1' ? [{ label: '1000000', copies: 100, dedup: false }] : []),
  ];
  for (const { label, copies, dedup } of runs) {
    const { work, recipe } = freshRecipe(`ingest-${label}`, (work) => ({
      sources: Array.from({ length: copies }, (_, i) => ({ type: 'webdataset', name: `copy${i}`, paths: shards, keyPrefix: copies > 1 ? `c${i}_` : undefined })),
      decode: { dedup: dedup ? 'exact' : 'off' },
      export: [{ type: 'webdataset', name: 'wds', out: join(work, 'wds'), maxCount: 5000 }],
    }));
    const r = runChild<ChildResult>('build-child.js', [recipe]);
    const samples = r.summary.samples.total;
    const bytes = readdirSync(join(work, 'wds')).reduce((sum, f) => sum + statSync(join(work, 'wds', f)).size, 0);
    results[label] = {
      samples,
      exported: r.summary.exported.wds,
      seconds: round(r.elapsedMs / 1000, 2),
      samplesPerSecond: round((samples * 1000) / r.elapsedMs),
      exportMBPerSecond: round(bytes / 1e6 / (r.elapsedMs / 1000), 2),
      peakRssMb: round(r.maxRssMb),
    };
    rmSync(work, { recursive: true, force: true });
  }
  const small = results['10000'] as { peakRssMb: number; samplesPerSecond: number };
  const large = results['100000'] as { peakRssMb: number };
  const dedup = results['10000-dedup'] as { samplesPerSecond: number };
  const again = results['10000-again'] as { samplesPerSecond: number };
  const million = results['1000000'] as { peakRssMb: number } | undefined;
  return {
    ...results,
    rssRatio100kTo10k: round(large.peakRssMb / small.peakRssMb, 2),
    rssRatio1MTo100k: million ? round(million.peakRssMb / large.peakRssMb, 2) : 'not run (VLCURATE_BENCH_INGEST_1M=1 runs it)',
    dedupThroughputRatio: round((2 * dedup.samplesPerSecond) / (small.samplesPerSecond + again.samplesPerSecond), 2),
  };
}
