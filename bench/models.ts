/**
 * Issue 3: model benchmarks. For each ITC (dual-encoder) model folder at batch sizes 1, 16 and 64:
 *
 * - **bare**: images/s of `OnnxSession.run()` on the vision graph alone, fed ready float32 pixel batches
 *   (made beforehand from the same JPEGs, moved to the worker without copying, one batch always queued),
 *   with the session options the real path uses: the model-bound ceiling.
 * - **preprocess**: images/s of `ImagePreprocessor.preprocessBatch` alone (decode + orient + resize + crop +
 *   normalise into the batch), no model running.
 * - **sequential**: the real score path, `ItcModel.encodeImages(jpegBytes)` (preprocess, run, L2-normalise),
 *   one batch after another.
 * - **overlapped**: the same work as a double-buffer loop (`preprocessBatch` into one of two preallocated
 *   arrays, then `encodePixels`), so batch n+1 is preprocessed on the main thread and libuv's pool while
 *   batch n runs in the session's worker thread.
 *
 * Ratios are full path / bare. Plus texts/s of `ItcModel.encodeTexts` at batch 64 (tokenize, run,
 * normalise) and of tokenization alone.
 *
 * Models: the tiny test fixture (tests/fixtures/models/clip-split), the shapes demo model
 * (models/shapes-clip) when present, and a CLIP ViT-B/32-shaped random-weight model in
 * bench/.cache/clip-b32 when present; with VLCURATE_BENCH_B32=1 a missing one is generated first with
 * `/usr/bin/python3 tools/make_clip_b32.py` (VLCURATE_PYTHON overrides the interpreter). Without Python
 * (CI) the B/32 part is skipped with a note.
 *
 * Each batch size is measured in rounds (bare, overlapped, sequential, preprocess, then the reverse order);
 * rates are the best round, ratios the median of the rounds' own ratios. Knobs:
 * VLCURATE_BENCH_MODEL_SECONDS (target seconds per measurement, default 2; at least 2 batches),
 * VLCURATE_BENCH_ROUNDS (default 3; at most 2 where one measurement takes over 4x the target, i.e. B/32
 * at batch 64), VLCURATE_BENCH_THREADS (intraOpThreads, default 1 as loadItcModel uses), VLCURATE_BENCH_MODELS
 * (comma-separated subset of fixture-clip-split, shapes-clip, clip-b32).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';

import { OnnxSession, type OnnxSessionOptions } from '../src/backends/onnx-session.js';
import { loadItcModel, type Embeddings, type ItcModel } from '../src/models/index.js';
import { CACHE, ROOT, cachedShapes, round } from './util.js';

const BATCH_SIZES = [1, 16, 64] as const;
const TEXT_BATCH = 64;
/** The shapes images the full path decodes (distinct JPEGs; a measurement cycles through them). */
const IMAGE_POOL = 1000;
/** Most images one measurement uses, and most bytes of ready pixel batches it holds. */
const MAX_IMAGES = 4096;
const MAX_PIXEL_BYTES = 256 * 2 ** 20;

const envNumber = (name: string, fallback: number): number => {
  const raw = process.env[name];
  const value = raw === undefined || raw === '' ? NaN : Number(raw);
  return Number.isFinite(value) && value > 0 ? value : fallback;
};

const TARGET_SECONDS = envNumber('VLCURATE_BENCH_MODEL_SECONDS', 2);
const ROUNDS = Math.round(envNumber('VLCURATE_BENCH_ROUNDS', 3));
/** What loadItcModel uses when given nothing: one worker, one intra-op thread. */
const SESSION: OnnxSessionOptions = { workers: 1, intraOpThreads: Math.round(envNumber('VLCURATE_BENCH_THREADS', 1)) };

export const B32_DIR = join(CACHE, 'clip-b32');

type Mode = 'bare' | 'preprocess' | 'sequential' | 'overlapped';
const MODES: readonly Mode[] = ['bare', 'overlapped', 'sequential', 'preprocess'];

/** Run `count` jobs with at most `depth` in flight, in order. */
async function pipelined(count: number, depth: number, start: (i: number) => Promise<unknown>): Promise<void> {
  const inflight: Array<Promise<unknown>> = [];
  for (let i = 0; i < count; i++) {
    inflight.push(start(i));
    if (inflight.length >= depth) await inflight.shift();
  }
  await Promise.all(inflight);
}

/**
 * The overlapped score path: a double-buffer loop over the public API. Batch n is preprocessed into one of
 * two preallocated arrays and handed to the session (`encodePixels` copies it to the worker when called);
 * then batch n+1 is preprocessed while batch n runs, and so on, with at most two runs queued.
 */
async function doubleBuffered(
  itc: ItcModel,
  batches: number,
  imagesOf: (i: number) => Buffer[],
  buffers: [Float32Array, Float32Array],
): Promise<void> {
  let previous: Promise<Embeddings> | undefined;
  for (let i = 0; i < batches; i++) {
    const images = imagesOf(i);
    const pixels = await itc.preprocessor.preprocessBatch(images, { out: buffers[i % 2]! });
    if (pixels.errors.some((e) => e !== undefined)) throw new Error(`batch ${i}: an image failed to preprocess`);
    const running = itc.encodePixels(pixels.data, images.length);
    if (previous) await previous;
    previous = running;
  }
  await previous;
}

async function seconds(work: () => Promise<unknown>): Promise<number> {
  const t = performance.now();
  await work();
  return (performance.now() - t) / 1000;
}

/** Wall seconds and CPU seconds of this process (all its threads: main, workers, libuv pool). */
async function measure(work: () => Promise<unknown>): Promise<{ wall: number; cpu: number }> {
  const cpu0 = process.cpuUsage();
  const wall = await seconds(work);
  const cpu = process.cpuUsage(cpu0);
  return { wall, cpu: (cpu.user + cpu.system) / 1e6 };
}

function loadJpegs(dir: string): Buffer[] {
  const images = join(dir, 'coco', 'images');
  return readdirSync(images)
    .filter((f) => f.endsWith('.jpg'))
    .sort()
    .slice(0, IMAGE_POOL)
    .map((f) => readFileSync(join(images, f)));
}

function loadCaptions(dir: string, count: number): string[] {
  const out: string[] = [];
  for (const line of readFileSync(join(dir, 'ground_truth.jsonl'), 'utf8').split('\n')) {
    if (!line.trim()) continue;
    const rec = JSON.parse(line) as { captions: string[] };
    out.push(...rec.captions);
    if (out.length >= count) break;
  }
  return out.slice(0, count);
}

/** Megabytes of the ONNX files in use. */
function onnxMb(files: readonly string[]): number {
  return round(files.reduce((sum, f) => sum + statSync(f).size, 0) / 1e6, 1);
}

interface BatchFigures {
  batches: number;
  images: number;
  rounds: number;
  /** Best of the rounds, per mode. */
  imagesPerSecond: Record<Mode, number>;
  /**
   * Full path over bare (1.0 = the model alone is the limit): the median over rounds of each round's
   * ratio (bare and full measured next to each other, so that load from other processes cancels out
   * better than in a ratio of bests).
   */
  ratioSequential: number;
  ratioOverlapped: number;
  /** Per image, from the best rates: model alone, preprocessing alone. */
  msPerImage: { bare: number; preprocess: number };
  /**
   * CPU milliseconds per image of this process (all threads), lowest of the rounds. Much less sensitive to
   * other processes than wall time: on a machine whose cores are all busy, throughput follows CPU cost.
   */
  cpuMsPerImage: Record<Mode, number>;
  /** Bare CPU cost over the overlapped full path's: the full/bare ratio when CPU is the limit. */
  cpuRatio: number;
}

const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};

async function benchBatchSize(itc: ItcModel, bare: OnnxSession, output: string, jpegs: Buffer[], batch: number): Promise<BatchFigures> {
  const pre = itc.preprocessor;
  const imageBytes = pre.imageSize * 4;
  const imagesOf = (i: number): Buffer[] => Array.from({ length: batch }, (_, j) => jpegs[(i * batch + j) % jpegs.length]!);
  const dims = [batch, 3, pre.height, pre.width];

  // Warm up both sessions at this shape (first runs allocate) and time one batch to size the measurement.
  const warmPixels = (await pre.preprocessBatch(imagesOf(0))).data;
  await bare.run({ pixel_values: { type: 'float32', dims, data: warmPixels.slice() } }, { outputs: [output] });
  const tFull = await seconds(() => itc.encodeImages(imagesOf(1)));
  const cap = Math.max(1, Math.min(Math.floor(MAX_IMAGES / batch), Math.floor(MAX_PIXEL_BYTES / (batch * imageBytes))));
  const batches = Math.max(Math.min(2, cap), Math.min(cap, Math.round(TARGET_SECONDS / tFull)));
  const rounds = batches * tFull > 4 * TARGET_SECONDS ? Math.min(ROUNDS, 2) : ROUNDS;

  // Ready pixel batches for the bare runs: preprocessed from the same images outside the timing (a few
  // distinct ones, copied for every run since run() moves its input to the worker).
  const ready: Float32Array[] = [];
  for (let i = 0; i < Math.min(batches, 8); i++) ready.push((await pre.preprocessBatch(imagesOf(i))).data);

  const buffers: [Float32Array, Float32Array] = [new Float32Array(batch * pre.imageSize), new Float32Array(batch * pre.imageSize)];
  const rates: Record<Mode, number[]> = { bare: [], preprocess: [], sequential: [], overlapped: [] };
  const cpuMs: Record<Mode, number[]> = { bare: [], preprocess: [], sequential: [], overlapped: [] };
  for (let r = 0; r < rounds; r++) {
    // Alternate the order so that a drift in machine load does not always favour the same mode.
    const order = r % 2 === 0 ? MODES : [...MODES].reverse();
    for (const mode of order) {
      let s: { wall: number; cpu: number };
      if (mode === 'bare') {
        const copies = Array.from({ length: batches }, (_, i) => ready[i % ready.length]!.slice());
        s = await measure(() => pipelined(batches, 2, (i) => bare.run({ pixel_values: { type: 'float32', dims, data: copies[i]! } }, { outputs: [output] })));
      } else if (mode === 'preprocess') {
        s = await measure(() => pipelined(batches, 1, (i) => pre.preprocessBatch(imagesOf(i))));
      } else if (mode === 'sequential') {
        s = await measure(() => pipelined(batches, 1, (i) => itc.encodeImages(imagesOf(i))));
      } else {
        s = await measure(() => doubleBuffered(itc, batches, imagesOf, buffers));
      }
      rates[mode].push((batches * batch) / s.wall);
      cpuMs[mode].push((1000 * s.cpu) / (batches * batch));
    }
  }
  const best = (mode: Mode): number => Math.max(...rates[mode]);
  const ratio = (mode: Mode): number => round(median(rates[mode].map((v, r) => v / rates.bare[r]!)), 2);
  return {
    batches,
    images: batches * batch,
    rounds,
    imagesPerSecond: { bare: round(best('bare')), preprocess: round(best('preprocess')), sequential: round(best('sequential')), overlapped: round(best('overlapped')) },
    ratioSequential: ratio('sequential'),
    ratioOverlapped: ratio('overlapped'),
    msPerImage: { bare: round(1000 / best('bare'), 2), preprocess: round(1000 / best('preprocess'), 2) },
    cpuMsPerImage: {
      bare: round(Math.min(...cpuMs.bare), 2),
      preprocess: round(Math.min(...cpuMs.preprocess), 2),
      sequential: round(Math.min(...cpuMs.sequential), 2),
      overlapped: round(Math.min(...cpuMs.overlapped), 2),
    },
    cpuRatio: round(Math.min(...cpuMs.bare) / Math.min(...cpuMs.overlapped), 2),
  };
}

async function benchTexts(itc: ItcModel, captions: string[]): Promise<Record<string, unknown>> {
  const batchOf = (i: number): string[] => Array.from({ length: TEXT_BATCH }, (_, j) => captions[(i * TEXT_BATCH + j) % captions.length]!);
  await itc.encodeTexts(batchOf(0));
  const t = await seconds(() => itc.encodeTexts(batchOf(1)));
  const batches = Math.max(3, Math.min(200, Math.round(TARGET_SECONDS / t)));
  let encode = 0;
  let tokenize = 0;
  let tokens = 0;
  for (let r = 0; r < ROUNDS; r++) {
    const s = await seconds(() => pipelined(batches, 1, (i) => itc.encodeTexts(batchOf(i))));
    encode = Math.max(encode, (batches * TEXT_BATCH) / s);
    tokens = 0;
    const st = await seconds(async () => {
      for (let i = 0; i < batches; i++) {
        const b = itc.tokenizer.encodeBatch(batchOf(i), { maxLength: itc.maxTextLength, padding: itc.padding });
        tokens += b.dims[1];
      }
    });
    tokenize = Math.max(tokenize, (batches * TEXT_BATCH) / st);
  }
  return {
    batch: TEXT_BATCH,
    batches,
    textsPerSecond: round(encode),
    tokenizeTextsPerSecond: round(tokenize),
    paddedTokensPerText: round(tokens / batches, 1),
  };
}

async function benchModel(dir: string, jpegs: Buffer[], captions: string[]): Promise<Record<string, unknown>> {
  const started = performance.now();
  const itc = await loadItcModel(dir, SESSION);
  try {
    if (itc.layout !== 'split') return { skipped: `${dir} is not in the split layout (vision_model + text_model)` };
    const bare = await OnnxSession.open(itc.files[0]!, SESSION);
    try {
      const output = ['image_embeds', 'pooler_output'].find((n) => bare.output(n) !== undefined)!;
      const loadSeconds = round((performance.now() - started) / 1000, 1);
      const batches: Record<string, BatchFigures> = {};
      for (const b of BATCH_SIZES) {
        process.stderr.write(`  ${dir} batch ${b}\n`);
        batches[b] = await benchBatchSize(itc, bare, output, jpegs, b);
      }
      const text = await benchTexts(itc, captions);
      return {
        dir: dir.startsWith(ROOT) ? dir.slice(ROOT.length + 1) : dir,
        input: `${itc.preprocessor.width}x${itc.preprocessor.height}`,
        onnxMb: onnxMb(itc.files),
        loadSeconds,
        batches,
        text,
        seconds: round((performance.now() - started) / 1000, 1),
      };
    } finally {
      await bare.close();
    }
  } finally {
    await itc.close();
  }
}

/** The B/32 folder, generating it when VLCURATE_BENCH_B32=1; a note when it is not there. */
function b32Folder(): { dir: string; generatedSeconds?: number } | { skipped: string } {
  const complete = (): boolean => ['vision_model.onnx', 'text_model.onnx'].every((f) => existsSync(join(B32_DIR, 'onnx', f)));
  if (complete()) return { dir: B32_DIR };
  if (process.env.VLCURATE_BENCH_B32 !== '1') {
    return {
      skipped:
        'bench/.cache/clip-b32 is absent; generate it with `/usr/bin/python3 tools/make_clip_b32.py` ' +
        '(needs Python with torch and onnx) or run with VLCURATE_BENCH_B32=1',
    };
  }
  const python = process.env.VLCURATE_PYTHON ?? '/usr/bin/python3';
  process.stderr.write(`  generating ${B32_DIR} with ${python} tools/make_clip_b32.py\n`);
  const t = performance.now();
  const r = spawnSync(python, [join(ROOT, 'tools', 'make_clip_b32.py'), '--out', B32_DIR], { stdio: ['ignore', 'inherit', 'inherit'] });
  if (r.error || r.status !== 0 || !complete()) {
    return { skipped: `generating the B/32 model failed (${r.error?.message ?? `exit code ${r.status}`}); it needs ${python} with torch and onnx` };
  }
  return { dir: B32_DIR, generatedSeconds: round((performance.now() - t) / 1000, 1) };
}

export async function benchModels(): Promise<Record<string, unknown>> {
  const shapes = await cachedShapes(IMAGE_POOL);
  const jpegs = loadJpegs(shapes);
  const captions = loadCaptions(shapes, 2048);
  const results: Record<string, unknown> = {
    loadAverageAtStart: loadavg().map((x) => round(x, 2)),
    session: SESSION,
    images: `${jpegs.length} shapes demo JPEGs (128x128, ~5 KB), resized by each model's preprocessor`,
    targetSecondsPerMeasurement: TARGET_SECONDS,
  };
  const cases: Array<[string, () => { dir: string; generatedSeconds?: number } | { skipped: string }]> = [
    ['fixture-clip-split', () => ({ dir: join(ROOT, 'tests', 'fixtures', 'models', 'clip-split') })],
    [
      'shapes-clip',
      () => {
        const dir = join(ROOT, 'models', 'shapes-clip');
        return existsSync(join(dir, 'config.json')) ? { dir } : { skipped: 'models/shapes-clip is absent' };
      },
    ],
    ['clip-b32', b32Folder],
  ];
  const only = process.env.VLCURATE_BENCH_MODELS?.split(',').map((s) => s.trim()).filter(Boolean);
  for (const [name, locate] of cases) {
    if (only && only.length > 0 && !only.includes(name)) continue;
    const found = locate();
    if ('skipped' in found) {
      results[name] = found;
      continue;
    }
    process.stderr.write(`  model ${name}\n`);
    try {
      const figures = await benchModel(found.dir, jpegs, captions);
      results[name] = found.generatedSeconds === undefined ? figures : { generatedSeconds: found.generatedSeconds, ...figures };
    } catch (err) {
      results[name] = { skipped: `${name} failed: ${(err as Error).message}` };
    }
  }
  results.loadAverageAtEnd = loadavg().map((x) => round(x, 2));
  return results;
}
