/**
 * Issue 6: export throughput for 10k samples with 2-4 turn conversations and small images, with and without
 * tokenization (loss masks + verifier): LLaVA JSON (vicuna_v1 / plain, Llama 2 tokenizer) and WebDataset
 * with conversations (qwen2_vl, Qwen2 tokenizer). Samples are synthetic and in memory; the run database
 * holding them is written before timing starts, and the tokenizer is loaded before it too (its load time is
 * reported apart). Each case has a warm-up export, then the best of two timed runs is kept (the machine may
 * be shared). MB/s counts every byte the export writes (JSON, images, shards, .npy members).
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import sharp from 'sharp';
import type { InstructionSample, Turn } from '../src/core/conversation.js';
import { OPEN } from '../src/core/sample.js';
import type { Stage } from '../src/core/stage.js';
import { loadTokenizerCached } from '../src/export/conversation-options.js';
import type { ExportStats } from '../src/export/export-stats.js';
import type { InstructionExportable } from '../src/export/instruction-records.js';
import { createExport, exportSchema } from '../src/export/registry.js';
import { openDatabase } from '../src/store/database.js';
import { RunStore } from '../src/store/run-store.js';
import { CACHE, ROOT, round } from './util.js';

const COUNT = 10_000;
const WARMUP = 1_000;
const DISTINCT_IMAGES = 64;
const TOKENIZERS = resolve(ROOT, '..', 'shared', 'tokenizers');

const WORDS = (
  'the a small large red green blue teal purple circle square triangle shape left right top bottom corner ' +
  'near next to above below image picture shows there is are one two three with without background white black ' +
  'bright dark object colour color size edge center middle of in on and but it its appears looks like'
).split(' ');

/** Deterministic PRNG (mulberry32). */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function sentence(next: () => number, min: number, max: number): string {
  const n = min + Math.floor(next() * (max - min + 1));
  const words = Array.from({ length: n }, () => WORDS[Math.floor(next() * WORDS.length)]!);
  const text = words.join(' ');
  return `${text[0]!.toUpperCase()}${text.slice(1)}.`;
}

async function makeSamples(): Promise<InstructionExportable[]> {
  const images: { bytes: Buffer; sha256: string }[] = [];
  for (let i = 0; i < DISTINCT_IMAGES; i++) {
    const bytes = await sharp({ create: { width: 64, height: 48, channels: 3, background: '#000', noise: { type: 'gaussian', mean: 128, sigma: 40 } } })
      .jpeg({ quality: 80 })
      .toBuffer();
    images.push({ bytes, sha256: createHash('sha256').update(bytes).digest('hex') });
  }
  const next = rng(6);
  const samples: InstructionExportable[] = [];
  for (let i = 0; i < COUNT; i++) {
    const key = `b${String(i).padStart(6, '0')}`;
    const image = images[i % DISTINCT_IMAGES]!;
    const rounds = 1 + Math.floor(next() * 2); // 2 or 4 turns
    const turns: Turn[] = [];
    for (let r = 0; r < rounds; r++) {
      turns.push({ from: 'human', value: `${r === 0 ? '<image>\n' : ''}${sentence(next, 5, 12).replace(/\.$/, '?')}` });
      turns.push({ from: 'gpt', value: `${sentence(next, 10, 40)} ${sentence(next, 5, 20)}` });
    }
    const instruction: InstructionSample = { sampleKey: key, task: 'conversation', variant: 0, conversations: turns };
    samples.push({
      key,
      source: 'bench',
      imageRef: `file:/bench/${key}.jpg`,
      imageBytes: image.bytes,
      captions: [{ text: sentence(next, 6, 14), origin: 'web', issue: null, usable: true }],
      boxes: [],
      meta: {},
      fate: OPEN,
      image: { width: 64, height: 48, format: 'jpeg', byteLength: image.bytes.length, sha256: image.sha256, orientation: 1 },
      instructions: [instruction],
    });
  }
  return samples;
}

function folderBytes(dir: string): number {
  let total = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    total += entry.isDirectory() ? folderBytes(path) : statSync(path).size;
  }
  return total;
}

async function drain(stage: Stage<InstructionExportable, InstructionExportable>, samples: readonly InstructionExportable[]): Promise<void> {
  async function* input() {
    yield* samples;
  }
  for await (const _ of stage.run(input(), { signal: new AbortController().signal, emit: () => undefined })) {
    // pull everything through
  }
}

interface Case {
  name: string;
  options: Record<string, unknown>;
  tokenizer?: string;
}

export async function benchExport(): Promise<Record<string, unknown>> {
  const work = join(CACHE, 'export');
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  const samples = await makeSamples();
  const db = openDatabase(join(work, 'run.db'));
  const store = new RunStore(db);
  const runId = store.startRun('{}', 'bench', '0/1');
  for (let i = 0; i < samples.length; i += 1000) store.writeSamples(runId, samples.slice(i, i + 1000));

  const llama = join(TOKENIZERS, 'llama2');
  const qwen = join(TOKENIZERS, 'qwen2');
  const cases: Case[] = [
    { name: 'llavaJson', options: { type: 'llava', tasks: ['conversation', 'stage1'] } },
    { name: 'llavaJsonTokenized', options: { type: 'llava', tasks: ['conversation', 'stage1'], tokenizer: llama }, tokenizer: llama },
    { name: 'webdataset', options: { type: 'webdataset', tasks: ['conversation'] } },
    { name: 'webdatasetTokenized', options: { type: 'webdataset', tasks: ['conversation'], tokenizer: qwen }, tokenizer: qwen },
  ];
  const results: Record<string, unknown> = { samples: COUNT };
  try {
    for (const c of cases) {
      if (c.tokenizer && !existsSync(c.tokenizer)) {
        results[c.name] = { skipped: `no tokenizer at ${c.tokenizer}` };
        continue;
      }
      let loadSeconds: number | null = null;
      if (c.tokenizer) {
        // Loading (and for Qwen2, assembling) the tokenizer happens once per export; reported apart.
        const loading = performance.now();
        await loadTokenizerCached(c.tokenizer, undefined);
        loadSeconds = round((performance.now() - loading) / 1000, 2);
      }
      const run = async (name: string, input: readonly InstructionExportable[]) => {
        const out = join(work, name);
        const options = exportSchema.parse({ ...c.options, name, out });
        const stage = createExport<InstructionExportable>(options, { store, baseDir: work, shard: { index: 0, count: 1 } });
        const started = performance.now();
        await drain(stage, input);
        return { out, seconds: (performance.now() - started) / 1000 };
      };
      await run(`${c.name}-warmup`, samples.slice(0, WARMUP));
      const first = await run(`${c.name}-1`, samples);
      const second = await run(`${c.name}-2`, samples);
      const { out, seconds } = first.seconds <= second.seconds ? first : second;
      const bytes = folderBytes(out);
      const stats = existsSync(join(out, 'stats.json')) ? (JSON.parse(readFileSync(join(out, 'stats.json'), 'utf8')) as ExportStats) : null;
      results[c.name] = {
        seconds: round(seconds, 2),
        samplesPerSecond: round(COUNT / seconds),
        mbPerSecond: round(bytes / 1e6 / seconds, 2),
        outputMb: round(bytes / 1e6, 1),
        tokenizerLoadSeconds: loadSeconds,
        records: stats?.records ?? null,
        verified: stats?.verified ?? null,
        failed: stats?.failed ?? null,
        tokensP50: stats?.tokens?.p50 ?? null,
        tokensMax: stats?.tokens?.max ?? null,
      };
    }
    const rate = (name: string) => (results[name] as { samplesPerSecond?: number }).samplesPerSecond;
    const json = rate('llavaJson');
    const jsonTok = rate('llavaJsonTokenized');
    const wds = rate('webdataset');
    const wdsTok = rate('webdatasetTokenized');
    if (json && jsonTok) results.llavaTokenizedToPlainRatio = round(jsonTok / json, 3);
    if (wds && wdsTok) results.webdatasetTokenizedToPlainRatio = round(wdsTok / wds, 3);
  } finally {
    db.close();
    rmSync(work, { recursive: true, force: true });
  }
  return results;
}
