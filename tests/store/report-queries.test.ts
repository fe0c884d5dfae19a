/**
 * The report's repository (`store/report-queries.ts`) on a real run database written by the real RunStore
 * and InstructionStore, opened read-only as `vlcurate report` opens it: every count is checked against
 * numbers worked out by hand from the samples written here.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OPEN, type Caption, type DecodedPair } from '../../src/core/sample.js';
import { stableHash } from '../../src/core/shard.js';
import { openDatabase, type Db } from '../../src/store/database.js';
import { InstructionStore } from '../../src/store/instruction-store.js';
import { ReportQueries } from '../../src/store/report-queries.js';
import { RunStore } from '../../src/store/run-store.js';

const IMAGE = { width: 64, height: 48, format: 'jpeg', byteLength: 10, sha256: 'ab', orientation: 1 };

function caption(text: string, itc: number | null, itm: number | null, kept: boolean | null, extra: Partial<Caption> = {}): Caption {
  return { text, origin: 'web', issue: null, usable: true, itc, itm, kept, reason: kept === null ? null : kept ? 'passed' : 'failed', ...extra };
}

function sample(key: string, captions: Caption[], extra: Partial<DecodedPair> = {}): DecodedPair {
  return { key, source: 'src-0', imageRef: `file:/x/${key}.jpg`, imageBytes: null, captions, boxes: [], meta: {}, fate: OPEN, image: IMAGE, ...extra };
}

const synthetic = (text: string, itc: number, itm: number, kept: boolean) => caption(text, itc, itm, kept, { origin: 'synthetic', model: 'cap' });

const SAMPLES: DecodedPair[] = [
  // ok: a web caption kept, a synthetic one rejected.
  sample('k1', [caption('one', 0.3, 0.9, true), synthetic('one b', 0.1, 0.2, false)], {
    boxes: [{ label: 'red circle', box: [1, 2, 11, 22], original: { frame: 'coco_xywh', values: [1, 2, 10, 20] } }],
  }),
  // ok: recaptioning rescued it (the synthetic caption kept).
  sample('k2', [caption('two', 0.05, 0.1, false), synthetic('two b', 0.35, 0.8, true)]),
  // ok, nothing decided yet; an unusable caption with a score (not counted by the sweep) and an empty one.
  sample('k3', [caption('three', 0.2, 0.5, null), caption('', 0.4, 0.95, null), caption('bad', 0.45, 0.97, null, { usable: false, issue: 'invalid_utf8' })]),
  // dropped: no caption passed; one synthetic caption.
  sample('d1', [caption('four', 0.1, 0.3, false), synthetic('four b', 0.12, 0.2, false)], { fate: { kind: 'dropped', reason: 'no_caption_passed', stage: 'select' } }),
  // failed: a synthetic caption does not put a failed sample in the recaptioned gallery.
  sample('f1', [synthetic('five b', 0.2, 0.2, false)], { fate: { kind: 'failed', code: 'image_truncated', message: 'cut at 10 bytes', stage: 'decode' }, image: null }),
  sample('f2', [], { fate: { kind: 'failed', code: 'image_truncated', message: 'cut at 12 bytes', stage: 'decode' }, image: null }),
  sample('f3', [], { fate: { kind: 'failed', code: 'timeout', message: 'no answer within 30000 ms', stage: 'source' }, image: null }),
];

let dir: string;
let path: string;
let db: Db;
let q: ReportQueries;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'vlc-report-queries-'));
  path = join(dir, 'run.db');
  const rw = openDatabase(path);
  const store = new RunStore(rw);
  store.startRun(JSON.stringify({ sources: [{ type: 'coco', name: 'first' }] }), 'h1', '0/1');
  const run = store.startRun(JSON.stringify({ sources: [{ type: 'coco', name: 'shapes' }], export: [{ type: 'webdataset' }] }), 'h2', '0/1');
  store.writeSamples(run, SAMPLES);
  store.finishRun(run, 'finished');
  const turns = [
    { from: 'human' as const, value: '<image>\nWhat is it?' },
    { from: 'gpt' as const, value: 'A circle.' },
  ];
  new InstructionStore(rw).write([
    { sampleKey: 'k1', task: 'conversation', variant: 0, status: 'ok', code: null, message: null, conversations: turns, requestHash: null, attempts: 1 },
    { sampleKey: 'k1', task: 'detail', variant: 0, status: 'failed', code: 'budget_exhausted', message: 'spent', conversations: null, requestHash: null, attempts: 1 },
    { sampleKey: 'k2', task: 'conversation', variant: 0, status: 'ok', code: null, message: null, conversations: turns, requestHash: null, attempts: 1 },
  ]);
  // A conversation whose JSON does not parse, and one with a turn that is no turn: the report shows what it can.
  rw.prepare(`UPDATE instructions SET conversations_json = '[{"from":"gpt"' WHERE sample_key = 'k2'`).run();
  rw.prepare(`INSERT INTO instructions (sample_key, task, variant, status, conversations_json, created_at) VALUES ('k3', 'detail', 0, 'ok', ?, 'now')`).run(
    JSON.stringify([{ from: 'human', value: 'Describe.' }, 7, { from: 'gpt' }]),
  );
  rw.close();
  db = openDatabase(path, { readonly: true });
  q = new ReportQueries(db);
});

afterAll(() => {
  db.close();
  rmSync(dir, { recursive: true, force: true });
});

const byHash = (keys: string[]) => [...keys].sort((a, b) => stableHash(a) - stableHash(b));

describe('report queries', () => {
  it('the latest run with its stored recipe, {} when the recipe does not parse', () => {
    const run = q.latestRun()!;
    expect(run).toMatchObject({ id: 2, status: 'finished', shard: '0/1' });
    expect(run.startedAt).toMatch(/^\d{4}-\d\d-\d\dT/);
    expect(run.finishedAt).toMatch(/^\d{4}-\d\d-\d\dT/);
    expect(run.recipe).toEqual({ sources: [{ type: 'coco', name: 'shapes' }], export: [{ type: 'webdataset' }] });

    const broken = openDatabase(join(dir, 'broken.db'));
    try {
      new RunStore(broken).startRun('{not json', 'h', '0/1');
      const latest = new ReportQueries(broken).latestRun()!;
      expect(latest).toMatchObject({ id: 1, status: 'running', finishedAt: null, recipe: {} });
    } finally {
      broken.close();
    }
  });

  it('no run and no caption: nothing to show', () => {
    const empty = openDatabase(join(dir, 'empty.db'));
    try {
      const e = new ReportQueries(empty);
      expect(e.latestRun()).toBeNull();
      expect(e.scoreRange('itc')).toBeNull();
      expect(e.scoreRange('itm')).toBeNull();
      expect(e.captionsAtLeast('itm', [0.5])).toEqual({ total: 0, atLeast: [0] });
      expect(e.imagesAtLeast('itm', [0.5])).toEqual({ total: 0, atLeast: [0] });
      expect(e.recaptioned(5)).toEqual({ keys: [], total: 0 });
      expect(e.failureCounts()).toEqual([]);
    } finally {
      empty.close();
    }
  });

  it('score ranges over every caption with the score', () => {
    expect(q.scoreRange('itc')).toEqual({ count: 10, lo: 0.05, hi: 0.45 });
    expect(q.scoreRange('itm')).toEqual({ count: 10, lo: 0.1, hi: 0.97 });
  });

  it('bins count captions by verdict; scores outside the bins fall into the first or last', () => {
    // ITM in 4 bins of 0.25 from 0: [0.1 0.2 0.2 0.2] [0.3] [0.5] [0.8 0.9 0.95 0.97]; verdicts by bin.
    expect(q.scoreBins('itm', 0, 0.25, 4)).toEqual([
      { bin: 0, kept: 0, dropped: 4, undecided: 0 },
      { bin: 1, kept: 0, dropped: 1, undecided: 0 },
      { bin: 2, kept: 0, dropped: 0, undecided: 1 },
      { bin: 3, kept: 2, dropped: 0, undecided: 2 },
    ]);
    // Two bins from 0.5: everything below counts in the first, 0.97 in the last.
    expect(q.scoreBins('itm', 0.5, 0.1, 2)).toEqual([
      { bin: 0, kept: 0, dropped: 5, undecided: 1 },
      { bin: 1, kept: 2, dropped: 0, undecided: 2 },
    ]);
  });

  it('sweeps count usable, non-empty captions, and samples by their best such caption', () => {
    // Usable and non-empty itm: 0.9 0.2 | 0.1 0.8 | 0.5 | 0.3 0.2 | 0.2 (the failed sample's caption counts too).
    expect(q.captionsAtLeast('itm', [0.15, 0.5, 0.85, 2])).toEqual({ total: 8, atLeast: [7, 3, 1, 0] });
    // Best per sample: k1 0.9, k2 0.8, k3 0.5, d1 0.3, f1 0.2.
    expect(q.imagesAtLeast('itm', [0.15, 0.5, 0.85, 2])).toEqual({ total: 5, atLeast: [5, 3, 1, 0] });
    expect(q.captionsAtLeast('itc', [])).toEqual({ total: 8, atLeast: [] });
  });

  it('samples by status: counts, and keys picked by key hash', () => {
    expect(q.countWithStatus('ok')).toBe(3);
    expect(q.countWithStatus('failed')).toBe(3);
    expect(q.countWithStatus('nothing')).toBe(0);
    expect(q.keysWithStatus('ok', 10)).toEqual(byHash(['k1', 'k2', 'k3']));
    expect(q.keysWithStatus('failed', 2)).toEqual(byHash(['f1', 'f2', 'f3']).slice(0, 2));
  });

  it('recaptioned: samples not failed with a synthetic caption, the rescued ones first', () => {
    expect(q.recaptioned(10)).toEqual({ keys: ['k2', ...byHash(['k1', 'd1'])], total: 3 });
    expect(q.recaptioned(1)).toEqual({ keys: ['k2'], total: 3 });
    expect(q.recaptioned(0)).toEqual({ keys: [], total: 3 });
  });

  it('failures per code and stage, most first, with a hashed sample of their messages', () => {
    expect(q.failureCounts()).toEqual([
      { code: 'image_truncated', stage: 'decode', count: 2 },
      { code: 'timeout', stage: 'source', count: 1 },
    ]);
    expect(q.failureCounts(1)).toHaveLength(1);
    const truncated = byHash(['f1', 'f2']).map((key) => ({ key, message: key === 'f1' ? 'cut at 10 bytes' : 'cut at 12 bytes' }));
    expect(q.failureExamples('image_truncated', 'decode', 5)).toEqual(truncated);
    expect(q.failureExamples('image_truncated', 'source', 5)).toEqual([]);
    expect(q.failureExamples(null, null, 5)).toEqual([]);
  });

  it('instruction picks: ok rows with a conversation', () => {
    const picks = q.instructionPicks(10);
    const expected = [
      { key: 'k1', task: 'conversation', variant: 0 },
      { key: 'k2', task: 'conversation', variant: 0 },
      { key: 'k3', task: 'detail', variant: 0 },
    ].sort((a, b) => stableHash(`${a.key}/${a.task}/${a.variant}`) - stableHash(`${b.key}/${b.task}/${b.variant}`));
    expect(picks).toEqual(expected);
    expect(q.instructionPicks(1)).toEqual(expected.slice(0, 1));
  });

  it('one sample decoded: its facts, captions, boxes and instructions', () => {
    expect(q.sample('missing')).toBeNull();
    expect(q.sample('f1')).toEqual({
      key: 'f1',
      source: 'src-0',
      status: 'failed',
      errorCode: 'image_truncated',
      errorMessage: 'cut at 10 bytes',
      dropReason: null,
      imageRef: 'file:/x/f1.jpg',
      width: null,
      height: null,
      format: null,
      byteLength: null,
      sha256: null,
      orientation: null,
    });
    expect(q.sample('d1')).toMatchObject({ status: 'dropped', dropReason: 'no_caption_passed', width: 64, height: 48, format: 'jpeg', byteLength: 10, sha256: 'ab', orientation: 1 });
    expect(q.captions('k1')).toEqual([
      { idx: 0, text: 'one', origin: 'web', issue: null, usable: true, model: null, itc: 0.3, itm: 0.9, kept: true, reason: 'passed' },
      { idx: 1, text: 'one b', origin: 'synthetic', issue: null, usable: true, model: 'cap', itc: 0.1, itm: 0.2, kept: false, reason: 'failed' },
    ]);
    expect(q.captions('f2')).toEqual([]);
    expect(q.boxes('k1')).toEqual([{ label: 'red circle', box: [1, 2, 11, 22] }]);
    expect(q.boxes('k2')).toEqual([]);
    expect(q.instructions('k1')).toEqual([
      { task: 'conversation', variant: 0, status: 'ok', reason: null, turns: [{ from: 'human', value: '<image>\nWhat is it?' }, { from: 'gpt', value: 'A circle.' }] },
      { task: 'detail', variant: 0, status: 'failed', reason: 'budget_exhausted: spent', turns: [] },
    ]);
    expect(q.instructions('k2')).toEqual([{ task: 'conversation', variant: 0, status: 'ok', reason: null, turns: [] }]);
    expect(q.instructions('k3')).toEqual([{ task: 'detail', variant: 0, status: 'ok', reason: null, turns: [{ from: 'human', value: 'Describe.' }] }]);
  });
});
