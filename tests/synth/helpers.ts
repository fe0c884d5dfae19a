import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { expect } from 'vitest';
import { IMAGE_TOKEN, type Turn } from '../../src/core/conversation.js';
import type { StageEvent } from '../../src/core/events.js';
import type { DecodedPair } from '../../src/core/sample.js';
import type { Stage } from '../../src/core/stage.js';
import { openDatabase, type Db } from '../../src/store/database.js';
import { RunStore } from '../../src/store/run-store.js';
import { InstructionStore } from '../../src/store/instruction-store.js';
import { LlmCache } from '../../src/store/llm-cache.js';
import type { SynthStageDeps } from '../../src/synth/synth-stage.js';

/** The synthesis stage's ports over a run database, as the build gives them. */
export function synthDeps(db: Db): Pick<SynthStageDeps, 'instructions' | 'llmCache' | 'runFolder'> {
  return { instructions: new InstructionStore(db), llmCache: new LlmCache(db), runFolder: dirname(db.name) };
}

export interface TestRun {
  dir: string;
  dbPath: string;
  db: Db;
  runId: number;
  cleanup(): void;
}

/** A run database holding `samples` (as the record stage leaves them before synthesis). */
export function createRun(samples: readonly DecodedPair[]): TestRun {
  const dir = mkdtempSync(join(tmpdir(), 'vlc-synth-'));
  const dbPath = join(dir, 'run.db');
  const db = openDatabase(dbPath);
  const store = new RunStore(db);
  const runId = store.startRun('{}', 'test', '0/1');
  store.writeSamples(runId, samples);
  return {
    dir,
    dbPath,
    db,
    runId,
    cleanup: () => {
      if (db.open) db.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export async function* fromArray<T>(items: readonly T[]): AsyncGenerator<T> {
  for (const item of items) yield item;
}

export async function drain<I, O>(stage: Stage<I, O>, input: readonly I[], signal: AbortSignal = new AbortController().signal): Promise<{ out: O[]; events: StageEvent[] }> {
  const out: O[] = [];
  const events: StageEvent[] = [];
  for await (const item of stage.run(fromArray(input), { signal, emit: (event) => events.push(event) })) out.push(item);
  return { out, events };
}

export interface InstructionDbRow {
  sample_key: string;
  task: string;
  variant: number;
  status: 'ok' | 'rejected' | 'failed' | 'not_applicable';
  reason: string | null;
  conversations_json: string | null;
  request_hash: string | null;
  attempts: number;
}

export function instructionRows(db: Db): InstructionDbRow[] {
  return db.prepare('SELECT sample_key, task, variant, status, reason, conversations_json, request_hash, attempts FROM instructions ORDER BY sample_key, task, variant').all() as InstructionDbRow[];
}

/** LLaVA's record rules: `<image>\n` once, at the start of the first human turn; human and gpt alternate; no empty turn. */
export function expectValidConversation(turns: readonly Turn[]): void {
  expect(turns.length).toBeGreaterThanOrEqual(2);
  expect(turns.length % 2).toBe(0);
  turns.forEach((turn, i) => {
    expect(turn.from).toBe(i % 2 === 0 ? 'human' : 'gpt');
    expect(turn.value.replace(IMAGE_TOKEN, '').trim().length).toBeGreaterThan(0);
  });
  expect(turns[0]!.value.startsWith(`${IMAGE_TOKEN}\n`)).toBe(true);
  expect(turns.map((t) => t.value).join('\n').split(IMAGE_TOKEN).length - 1).toBe(1);
}

/** Every row is a valid sample (ok) or a failure with a reason that starts with a code. */
export function expectEveryRowAccountedFor(rows: readonly InstructionDbRow[]): void {
  for (const row of rows) {
    if (row.status === 'ok') {
      expect(row.conversations_json, `${row.sample_key}/${row.task}`).not.toBeNull();
      expectValidConversation(JSON.parse(row.conversations_json!) as Turn[]);
    } else {
      expect(row.reason, `${row.sample_key}/${row.task}`).toMatch(/^[a-z0-9_]+: ./);
      expect(row.conversations_json).toBeNull();
    }
  }
}
