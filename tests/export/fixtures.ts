import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import * as tar from 'tar';
import { escapeRegExp } from '../../src/core/escape-regexp.js';
import type { StageEvent } from '../../src/core/events.js';
import { OPEN, type Caption, type DecodedPair } from '../../src/core/sample.js';
import type { Stage, StageContext } from '../../src/core/stage.js';
import { openDatabase, type Db } from '../../src/store/database.js';
import { RunStore } from '../../src/store/run-store.js';
import type { ExportableSample } from '../../src/export/webdataset-sample.js';

/** A fresh temp folder; `cleanup()` removes every folder made so far. */
const made: string[] = [];
export function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'vlcurate-export-'));
  made.push(dir);
  return dir;
}
export function cleanup(): void {
  while (made.length > 0) rmSync(made.pop()!, { recursive: true, force: true });
}

/** A small real image whose pixels depend on `seed`, so every seed gives different bytes. */
export async function makeImage(seed: number, format: 'png' | 'jpeg' = 'png', size = 12): Promise<Buffer> {
  const image = sharp({
    create: {
      width: size + (seed % 5),
      height: size,
      channels: 3,
      background: { r: (seed * 37) % 256, g: (seed * 91) % 256, b: (seed * 13 + 7) % 256 },
    },
  });
  return format === 'png' ? image.png().toBuffer() : image.jpeg({ quality: 80 }).toBuffer();
}

export function sha256(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

export function sha256File(path: string): string {
  return sha256(readFileSync(path));
}

export function caption(text: string, extra: Partial<Caption> = {}): Caption {
  return { text, origin: 'web', issue: null, usable: true, ...extra };
}

/** A decoded pair built from a real image, with facts read back by sharp. */
export async function makePair(
  key: string,
  seed: number,
  options: { format?: 'png' | 'jpeg'; captions?: Caption[]; meta?: Record<string, unknown>; size?: number } = {},
): Promise<ExportableSample> {
  const bytes = await makeImage(seed, options.format ?? 'png', options.size);
  const info = await sharp(bytes).metadata();
  const pair: DecodedPair = {
    key,
    source: 'test-0',
    imageRef: `file:/images/${key}.png`,
    imageBytes: bytes,
    captions: options.captions ?? [caption(`a picture number ${seed}`)],
    boxes: [{ label: 'square', box: [1, 2, 5, 6] }],
    meta: options.meta ?? { seed },
    fate: OPEN,
    image: {
      width: info.width,
      height: info.height,
      format: info.format,
      byteLength: bytes.length,
      sha256: sha256(bytes),
      orientation: 1,
    },
  };
  return pair;
}

/** `count` distinct ok samples keyed `s000`, `s001`, … */
export async function makePairs(count: number, firstSeed = 0): Promise<ExportableSample[]> {
  const pairs: ExportableSample[] = [];
  for (let i = 0; i < count; i++) pairs.push(await makePair(`s${String(firstSeed + i).padStart(3, '0')}`, firstSeed + i));
  return pairs;
}

export function failedPair(key: string): ExportableSample {
  return {
    key,
    source: 'test-0',
    imageRef: `file:/images/${key}.png`,
    imageBytes: null,
    captions: [caption('broken')],
    boxes: [],
    meta: {},
    fate: { kind: 'failed', code: 'image_truncated', message: 'truncated', stage: 'decode' },
    image: null,
  };
}

export interface TestStore {
  db: Db;
  store: RunStore;
  runId: number;
  path: string;
}

/** A real run database file with `samples` written to it (export rows reference samples). */
export function openTestStore(dir: string, samples: readonly ExportableSample[] = []): TestStore {
  const path = join(dir, 'run.db');
  const db = openDatabase(path);
  const store = new RunStore(db);
  const runId = store.startRun('{}', 'hash', '0/1');
  if (samples.length > 0) store.writeSamples(runId, samples);
  return { db, store, runId, path };
}

export function stageContext(events: StageEvent[] = []): StageContext {
  return { signal: new AbortController().signal, emit: (event) => events.push(event) };
}

export async function* fromArray<T>(items: readonly T[]): AsyncGenerator<T> {
  for (const item of items) yield item;
}

/** Run a stage over `items` and collect what it passes on. */
export async function runStage<T>(stage: Stage<T, T>, items: readonly T[], events: StageEvent[] = []): Promise<T[]> {
  const out: T[] = [];
  for await (const item of stage.run(fromArray(items), stageContext(events))) out.push(item);
  return out;
}

export interface ListedMember {
  path: string;
  size: number;
  mtime: Date | undefined;
  mode: number | undefined;
  uid: number | undefined;
  gid: number | undefined;
  uname: string | undefined;
  gname: string | undefined;
}

/** Members of a tar file as node-tar (an independent reader) lists them, in archive order. */
export function listWithNodeTar(file: string): ListedMember[] {
  const members: ListedMember[] = [];
  tar.t({
    file,
    sync: true,
    onReadEntry: (entry) => {
      members.push({
        path: entry.path,
        size: entry.size,
        mtime: entry.mtime,
        mode: entry.mode,
        uid: entry.uid,
        gid: entry.gid,
        uname: entry.uname,
        gname: entry.gname,
      });
    },
  });
  return members;
}

/** Extract with node-tar into a fresh folder and return it. */
export function extractWithNodeTar(file: string): string {
  const cwd = tempDir();
  tar.x({ file, cwd, sync: true });
  return cwd;
}

/** `tar -tvf` lines from GNU tar, in UTC, with a strict exit status. */
export function listWithGnuTar(file: string): string[] {
  const text = execFileSync('tar', ['--warning=all', '-tvf', file], {
    encoding: 'utf8',
    env: { ...process.env, TZ: 'UTC', LC_ALL: 'C' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return text.split('\n').filter((line) => line.length > 0);
}

/** Member names per GNU tar, checking its full listing parses into name + the fixed metadata. */
export function gnuNames(file: string): string[] {
  return listWithGnuTar(file).map((line) => {
    const match = /^(\S+) (\S+)\s+(\d+) (\S+ \S+) (.+)$/.exec(line);
    if (!match) throw new Error(`unexpected tar -tvf line: ${line}`);
    return match[5]!;
  });
}

/** Keys in archive order, one per run of consecutive members (a key seen in two runs appears twice). */
export function keyRuns(names: readonly string[]): string[] {
  const keys: string[] = [];
  for (const name of names) {
    const key = name.slice(0, name.indexOf('.'));
    if (keys[keys.length - 1] !== key) keys.push(key);
  }
  return keys;
}

/** The temporary name this process writes `name` under (`core/temp-file.ts`): `NAME.PID.RANDOM.tmp`. */
export function tmpOf(name: string): RegExp {
  return new RegExp(`^${escapeRegExp(name)}\\.${process.pid}\\.[0-9a-f]{8}\\.tmp$`);
}
