import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openDatabase, type Db } from '../../src/store/database.js';
import { MIGRATIONS } from '../../src/store/migrations.js';
import { RunStore } from '../../src/store/run-store.js';
import { InstructionStore } from '../../src/store/instruction-store.js';
import { runSummary, runStats, listSamples, showSample } from '../../src/store/queries.js';
import { failureOf, OPEN, type DecodedPair } from '../../src/core/sample.js';
import type { FailureCode } from '../../src/core/failure-codes.js';

function sample(key: string, extra: Partial<DecodedPair> = {}): DecodedPair {
  return {
    key,
    source: 'src-0',
    imageRef: `file:/x/${key}.jpg`,
    imageBytes: Buffer.from('x'),
    captions: [{ text: `caption of ${key}`, origin: 'web', issue: null, usable: true }],
    boxes: [{ label: 'red circle', box: [1, 2, 11, 22], original: { frame: 'coco_xywh', values: [1, 2, 10, 20] } }],
    meta: { url: `https://example.invalid/${key}` },
    fate: OPEN,
    image: { width: 64, height: 48, format: 'jpeg', byteLength: 1, sha256: 'ab', orientation: 1 },
    ...extra,
  };
}

let dir: string;
let db: Db;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'vlc-store-'));
  db = openDatabase(join(dir, 'nested', 'run.db'));
});
afterEach(() => {
  db.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('run database', () => {
  it('creates the schema at the current version in WAL mode', () => {
    expect(db.pragma('user_version', { simple: true })).toBe(MIGRATIONS.length);
    expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
    const tables = (db.prepare(`SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name`).all() as { name: string }[]).map((t) => t.name);
    expect(tables).toEqual(['boxes', 'captions', 'export_configs', 'export_left_out', 'export_records', 'export_shards', 'exports', 'instructions', 'llm_cache', 'merged_parts', 'refilters', 'runs', 'samples']);
  });

  it('reopening does not re-run migrations and keeps data', () => {
    const store = new RunStore(db);
    const run = store.startRun('{}', 'h', '0/1');
    store.writeSamples(run, [sample('a')]);
    db.close();
    db = openDatabase(join(dir, 'nested', 'run.db'));
    expect(runSummary(db).samples.total).toBe(1);
  });

  it('a migration re-labels tasks recorded as failed because they could not apply become not_applicable; real failures stay', () => {
    const path = join(dir, 'old.db');
    const old = new Database(path);
    for (const migration of MIGRATIONS.slice(0, 3)) old.exec(migration);
    old.pragma('user_version = 3');
    old.prepare(`INSERT INTO runs (id, recipe_json, recipe_hash, started_at) VALUES (1, '{}', 'h', 'now')`).run();
    old.prepare(`INSERT INTO samples (key, source, image_ref, status, run_id, updated_at) VALUES ('s', 'src', 'file:x', 'ok', 1, 'now')`).run();
    const insert = old.prepare(`INSERT INTO instructions (sample_key, task, variant, status, reason, created_at) VALUES ('s', ?, ?, ?, ?, 'now')`);
    insert.run('grounding', 0, 'failed', 'no_boxes: the sample has no boxes to ground');
    insert.run('stage1', 0, 'failed', 'no_caption: the sample has no published caption');
    insert.run('detail', 0, 'failed', 'no_context: no usable caption or box to write about');
    insert.run('detail', 1, 'failed', 'connection_error: refused (no_boxes: in the message)');
    insert.run('conversation', 0, 'rejected', 'no_boxes: not a real code here');
    old.close();
    const migrated = openDatabase(path);
    const rows = migrated.prepare('SELECT task, variant, status FROM instructions ORDER BY task, variant').all();
    expect(runSummary(migrated).synthesis).toMatchObject({ failed: 1, notApplicable: 3, notApplicableReasons: { no_boxes: 1, no_caption: 1, no_context: 1 } });
    migrated.close();
    expect(rows).toEqual([
      { task: 'conversation', variant: 0, status: 'rejected' },
      { task: 'detail', variant: 0, status: 'not_applicable' },
      { task: 'detail', variant: 1, status: 'failed' },
      { task: 'grounding', variant: 0, status: 'not_applicable' },
      { task: 'stage1', variant: 0, status: 'not_applicable' },
    ]);
  });

  it('refuses a database from a newer vlcurate, naming both versions', () => {
    db.pragma(`user_version = ${MIGRATIONS.length + 5}`);
    db.close();
    expect(() => (db = openDatabase(join(dir, 'nested', 'run.db')))).toThrow(/schema version \d+ is newer/);
    db = new Database(':memory:');
  });

  it('writes samples with captions and boxes; rewriting a sample replaces them (resume is idempotent)', () => {
    const store = new RunStore(db);
    const run = store.startRun('{}', 'h', '0/1');
    store.writeSamples(run, [sample('a'), sample('b', { fate: { kind: 'failed', code: 'image_truncated', message: 'cut', stage: 'decode' }, image: null })]);
    store.writeSamples(run, [sample('a', { captions: [{ text: 'new', origin: 'web', issue: 'control_chars_removed', usable: true }] })]);
    expect(runSummary(db)).toEqual({ samples: { total: 2, ok: 1, failed: 1, dropped: 0 }, failures: { image_truncated: 1 }, exported: {} });
    const detail = showSample(db, 'a')!;
    expect(detail.captions).toHaveLength(1);
    expect(detail.captions[0]).toMatchObject({ text: 'new', issue: 'control_chars_removed' });
    expect(detail.boxes[0]).toMatchObject({ label: 'red circle', x1: 1, y2: 22, original: { frame: 'coco_xywh', values: [1, 2, 10, 20] } });
    expect(detail.sample.meta).toEqual({ url: 'https://example.invalid/a' });
    expect(listSamples(db, { status: 'failed' })).toEqual([
      expect.objectContaining({ key: 'b', status: 'failed', error_code: 'image_truncated', error_message: 'cut' }),
    ]);
  });

  it('doneKeys: failed samples and samples exported everywhere are done; others are not', () => {
    const store = new RunStore(db);
    const run = store.startRun('{}', 'h', '0/1');
    store.writeSamples(run, [sample('ok1'), sample('ok2'), sample('bad', { fate: { kind: 'failed', code: 'image_corrupt', message: 'y', stage: 'decode' }, image: null })]);
    store.recordShard({ exportName: 'wds', shardIndex: 0, path: 'wds-000000.tar', sampleCount: 1, byteLength: 10, sha256: 'cafe' }, ['ok1']);
    const exportsOnly = (...exports: string[]) => ({ exports, synth: [] });
    expect([...store.doneKeys(['ok1', 'ok2', 'bad', 'unknown'], exportsOnly('wds'))].sort()).toEqual(['bad', 'ok1']);
    // With a second export, ok1 is not done until that export has it too.
    expect([...store.doneKeys(['ok1', 'ok2', 'bad'], exportsOnly('wds', 'llava'))].sort()).toEqual(['bad']);
    // Without exports or synthesis, an ingested ok sample is done.
    expect([...store.doneKeys(['ok1', 'ok2'], exportsOnly())].sort()).toEqual(['ok1', 'ok2']);
    expect(store.countDone(exportsOnly('wds'))).toBe(2);
    expect(runSummary(db).exported).toEqual({ wds: 1 });
    expect(store.shards('wds')).toEqual([{ exportName: 'wds', shardIndex: 0, path: 'wds-000000.tar', sampleCount: 1, byteLength: 10, sha256: 'cafe' }]);
  });

  it('doneKeys: a sample the captioner held back (a code a later run can fix) is not done, with or without exports; the summary counts it', () => {
    const store = new RunStore(db);
    const run = store.startRun('{}', 'h', '0/1');
    const failed = (key: string, stage: string, code: FailureCode, message = 'm') => sample(key, { fate: { kind: 'failed', code, message, stage } });
    store.writeSamples(run, [
      failed('held', 'captioner', 'server_unreachable', 'cannot reach http://127.0.0.1:1/v1: connection refused (ECONNREFUSED)'),
      failed('slow', 'captioner', 'timeout'),
      failed('broken', 'captioner', 'caption_failed'),
      // The same code from another stage (a URL download) is that stage's final failure.
      failed('download', 'read', 'timeout'),
    ]);
    const keys = ['held', 'slow', 'broken', 'download'];
    for (const exports of [[], ['wds']]) {
      expect([...store.doneKeys(keys, { exports, synth: [] })].sort()).toEqual(['broken', 'download']);
      expect(store.countDone({ exports, synth: [] })).toBe(2);
    }
    expect(runSummary(db).captioning).toEqual({
      heldBack: 2,
      reasons: { server_unreachable: 1, timeout: 1 },
      stopped: 'cannot reach http://127.0.0.1:1/v1: connection refused (ECONNREFUSED)',
    });
  });

  it('doneKeys with synthesis: an ok sample is done once every task and variant has a final row (a resumable failure is not final)', () => {
    const store = new RunStore(db);
    const run = store.startRun('{}', 'h', '0/1');
    store.writeSamples(run, [sample('none'), sample('all'), sample('budget'), sample('rejected'), sample('half')]);
    const rows = new InstructionStore(db);
    const row = (sampleKey: string, task: 'stage1' | 'detail', variant: number, status: 'ok' | 'rejected' | 'failed', code: string | null = null, message: string | null = null) => ({
      sampleKey, task, variant, status, code, message, conversations: null, requestHash: null, attempts: 1,
    });
    rows.write([
      row('all', 'stage1', 0, 'ok'), row('all', 'detail', 0, 'ok'), row('all', 'detail', 1, 'failed', 'bad_format', 'no answer block'),
      row('budget', 'stage1', 0, 'ok'), row('budget', 'detail', 0, 'ok'), row('budget', 'detail', 1, 'failed', 'budget_exhausted', '--max-cost reached'),
      row('rejected', 'stage1', 0, 'failed', 'no_caption', 'nothing to say'), row('rejected', 'detail', 0, 'rejected', 'leak_caption', 'x'), row('rejected', 'detail', 1, 'ok'),
      row('half', 'stage1', 0, 'ok'),
    ]);
    const rule = { exports: [], synth: [{ task: 'stage1', variants: 1 }, { task: 'detail', variants: 2 }] };
    expect([...store.doneKeys(['none', 'all', 'budget', 'rejected', 'half'], rule)].sort()).toEqual(['all', 'rejected']);
    expect(store.countDone(rule)).toBe(2);
    // A task the recipe no longer asks for does not count; one it adds makes every sample not done.
    expect([...store.doneKeys(['all', 'half'], { exports: [], synth: [{ task: 'stage1', variants: 1 }] })].sort()).toEqual(['all', 'half']);
    expect([...store.doneKeys(['all'], { exports: [], synth: [{ task: 'grounding', variants: 1 }] })]).toEqual([]);
  });

  it('a key another source owns: the sample is recorded as key_duplicate under a key of its own, never over the owner', () => {
    const store = new RunStore(db);
    const run = store.startRun('{}', 'h', '0/1');
    // Source a owns "k", and also a real key that looks like b's collision key.
    store.writeSamples(run, [sample('k', { source: 'a' }), sample('k__b', { source: 'a' })]);
    const [recorded] = store.writeSamples(run, [sample('k', { source: 'b', captions: [{ text: 'from b', origin: 'web', issue: null, usable: true }] })]);
    expect(recorded!.key).toBe('k__b__2');
    expect(failureOf(recorded!)).toEqual({
      code: 'key_duplicate',
      message: 'key "k" of source "b" is already used by source "a"; give the sources distinct `keyPrefix` to keep both',
      stage: 'record',
    });
    const rows = db.prepare('SELECT key, source, status FROM samples ORDER BY key').all();
    expect(rows).toEqual([
      { key: 'k', source: 'a', status: 'ok' },
      { key: 'k__b', source: 'a', status: 'ok' },
      { key: 'k__b__2', source: 'b', status: 'failed' },
    ]);
    // The owner's captions are untouched; the duplicate's are kept under its own key.
    expect(db.prepare('SELECT sample_key, text FROM captions ORDER BY sample_key').all()).toEqual([
      { sample_key: 'k', text: 'caption of k' },
      { sample_key: 'k__b', text: 'caption of k__b' },
      { sample_key: 'k__b__2', text: 'from b' },
    ]);
    // Writing it again (a resumed run) lands on the same rows.
    store.writeSamples(run, [sample('k', { source: 'b' })]);
    expect(db.prepare('SELECT COUNT(*) FROM samples').pluck().get()).toBe(3);
  });

  it('recordShard is all-or-nothing', () => {
    const store = new RunStore(db);
    const run = store.startRun('{}', 'h', '0/1');
    store.writeSamples(run, [sample('a')]);
    // 'ghost' is not a sample: the foreign key fails and the shard row must not stay behind.
    expect(() => store.recordShard({ exportName: 'wds', shardIndex: 0, path: 'p', sampleCount: 2, byteLength: 1, sha256: 's' }, ['a', 'ghost'])).toThrow();
    expect(store.shards('wds')).toEqual([]);
    expect(store.handledKeys('wds', ['a'])).toEqual(new Set());
  });

  it('marks runs left running by a dead process as crashed', () => {
    const store = new RunStore(db);
    const first = store.startRun('{}', 'h', '0/1');
    const second = store.startRun('{}', 'h', '0/1');
    store.finishRun(second, 'finished');
    const runs = runStats(db).runs;
    expect(runs.find((r) => r.id === first)!.status).toBe('crashed');
    expect(runs.find((r) => r.id === second)!.status).toBe('finished');
  });

  it('stats give score quantiles from stored scores', () => {
    const store = new RunStore(db);
    const run = store.startRun('{}', 'h', '0/1');
    store.writeSamples(run, Array.from({ length: 11 }, (_, i) => sample(`s${i}`)));
    db.prepare('UPDATE captions SET itc = CAST(substr(sample_key, 2) AS REAL) / 10').run();
    const stats = runStats(db);
    expect(stats.scores.itc).toMatchObject({ count: 11, min: 0, p50: 0.5, max: 1 });
    expect(stats.scores.itm).toBeNull();
    expect(listSamples(db, { order: '-itc', limit: 2 }).map((r) => r.key)).toEqual(['s10', 's9']);
    expect(listSamples(db, { maxItc: 0.15 }).map((r) => r.key).sort()).toEqual(['s0', 's1']);
  });
});
