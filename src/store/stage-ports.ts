/**
 * What each pipeline stage may ask of the run database: one narrow interface per stage, so a stage gets
 * the port it needs rather than the whole `RunStore` (which implements them all), and a test can hand it
 * a plain object (or a fake). The LLM client's port (`LlmResponseStore`) is declared beside the client in `backends/`.
 */
import type { Caption, DedupedPair } from '../core/sample.js';
import type { DoneRule } from './done-rule.js';
import type { ExportRecords } from './export-records.js';
import type { InstructionRow } from './instruction-store.js';

/** A batch of keys of one source, as resume sees them. */
export interface ResumeState {
  /** Keys that need no more work under the rule (`done-rule.ts`): resume skips them. */
  done: Set<string>;
  /** Keys another source recorded, with that source: this source's sample becomes a `key_duplicate`. */
  owners: Map<string, string>;
  /** Keys every export holds that are not done (synthesis will add instruction samples the exports lack). */
  reopened: Set<string>;
}

/** The resume stage's port. */
export interface DoneKeys {
  resumeState(keys: readonly string[], rule: DoneRule, source?: string): ResumeState;
}

/** The dedup stage's port: which recorded samples own these image bytes. */
export interface ContentIndex {
  /** Per sha256, the keys of recorded samples with those bytes that own them (not failed or duplicates), oldest first. */
  imageOwners(sha256s: readonly string[]): Map<string, string[]>;
}

/** What an earlier run recorded for an ok sample: its image's sha256 and its captions with scores. */
export interface RecordedWork {
  sha256: string | null;
  captions: Caption[];
}

/** The reuse stage's port. */
export interface RecordedWorkLookup {
  /** The work runs `runIds` recorded for ok samples of `source` among `keys`. */
  recordedWork(keys: readonly string[], source: string, runIds: readonly number[]): Map<string, RecordedWork>;
}

/** The record stage's port. */
export interface SampleRecorder {
  /** Commit a batch in one transaction; returns the samples as recorded (a lost key comes back as `key_duplicate`). */
  writeSamples<T extends DedupedPair>(runId: number, samples: readonly T[]): T[];
}

/** The synthesis stage's port for its results. */
export interface InstructionWriter {
  /** Write rows in one transaction, replacing earlier rows of the same sample, task and variant. */
  write(rows: readonly InstructionRow[]): void;
}

export interface ShardRecord {
  exportName: string;
  shardIndex: number;
  path: string;
  sampleCount: number;
  byteLength: number;
  sha256: string;
}

/** The export stages' port: their shards, the samples they hold or left out, their records. */
export interface ExportLedger {
  shards(exportName: string): ShardRecord[];
  /** Keys the export already holds or left out on purpose, of those given. */
  handledKeys(exportName: string, keys: readonly string[]): Set<string>;
  /** Remember samples the export left out on purpose, with the reason's code. */
  leaveOut(exportName: string, samples: readonly { key: string; code: string }[]): void;
  /** Record a finished shard under the next free index and file name (see `RunStore.recordNextShard`). */
  recordNextShard(
    shard: Omit<ShardRecord, 'shardIndex' | 'path'>,
    file: { from: number; pathOf: (index: number) => string; taken: (path: string) => boolean },
    keys: readonly string[],
  ): number;
  keptPerShard(exportName: string): Map<number, number>;
  keptInShard(exportName: string, shardIndex: number): string[];
  replaceShard(exportName: string, oldIndex: number, replacement: Omit<ShardRecord, 'exportName' | 'shardIndex'> | null, keys: readonly string[]): void;
  exportRecords(): ExportRecords;
  otherExports(exportName: string): { shards: { name: string; path: string }[]; settings: { name: string; settingsJson: string }[] };
}
