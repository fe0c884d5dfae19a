/**
 * The caption row codec (`store/caption-row.ts`) on a real run database written by the real RunStore: what
 * a stage set comes back as written, what it did not set comes back as null, and every reader of caption
 * rows (resume's reuse, the re-export reader, the report, refilter) sees the same captions.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { OPEN, type Caption, type DecodedPair } from '../../src/core/sample.js';
import { refilterRun } from '../../src/filter/refilter.js';
import type { ResolvedPolicy } from '../../src/filter/policy.js';
import { CAPTION_COLUMNS, captionFromRow, captionToRow, type CaptionRow } from '../../src/store/caption-row.js';
import { openDatabase, type Db } from '../../src/store/database.js';
import { readExportSamples } from '../../src/store/export-reader.js';
import { ReportQueries } from '../../src/store/report-queries.js';
import { RunStore } from '../../src/store/run-store.js';

/** One caption of each shape a run records. */
const CAPTIONS: Caption[] = [
  // From a source, before any filter.
  { text: 'a red circle', origin: 'web', issue: null, usable: true },
  // Cleaned text, scored, kept.
  { text: 'a blue square', origin: 'annotation', issue: 'control_chars_removed', usable: true, itc: 0.31, itm: 0.92, kept: true, reason: 'itm 0.92 >= 0.5' },
  // Written by a captioner, scored, rejected.
  { text: 'a green star', origin: 'synthetic', issue: null, usable: true, model: 'models/shapes-captioner', itc: 0.12, itm: 0.03, kept: false, reason: 'itm 0.03 < 0.5' },
  // Unusable bytes: scored null by the filter stage, rejected.
  { text: '', origin: 'web', issue: 'invalid_utf8', usable: false, itc: null, itm: null, kept: false, reason: 'unusable text' },
];

/** What reading a caption back gives: every field present, null where a stage set nothing. */
const AS_READ: Caption[] = CAPTIONS.map((c) => ({
  text: c.text,
  origin: c.origin,
  issue: c.issue,
  usable: c.usable,
  model: c.model ?? null,
  itc: c.itc ?? null,
  itm: c.itm ?? null,
  kept: c.kept ?? null,
  reason: c.reason ?? null,
}));

function sample(key: string, captions: Caption[]): DecodedPair {
  return {
    key,
    source: 'src-0',
    imageRef: `file:/x/${key}.jpg`,
    imageBytes: Buffer.from('x'),
    captions,
    boxes: [],
    meta: {},
    fate: OPEN,
    image: { width: 64, height: 48, format: 'jpeg', byteLength: 1, sha256: `sha-${key}`, orientation: 1 },
  };
}

let dir: string;
let path: string;
let db: Db;
let runId: number;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'vlc-caption-row-'));
  path = join(dir, 'run.db');
  db = openDatabase(path);
  const store = new RunStore(db);
  runId = store.startRun('{}', 'h', '0/1');
  store.writeSamples(runId, [sample('a', CAPTIONS)]);
});
afterEach(() => {
  db.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('caption row codec', () => {
  it('RunStore stores booleans as 0/1 and what no stage set as NULL', () => {
    const rows = db.prepare(`SELECT ${CAPTION_COLUMNS} FROM captions WHERE sample_key = 'a' ORDER BY idx`).all() as CaptionRow[];
    expect(rows).toEqual([
      { origin: 'web', text: 'a red circle', issue: null, usable: 1, model: null, itc: null, itm: null, kept: null, reason: null },
      { origin: 'annotation', text: 'a blue square', issue: 'control_chars_removed', usable: 1, model: null, itc: 0.31, itm: 0.92, kept: 1, reason: 'itm 0.92 >= 0.5' },
      { origin: 'synthetic', text: 'a green star', issue: null, usable: 1, model: 'models/shapes-captioner', itc: 0.12, itm: 0.03, kept: 0, reason: 'itm 0.03 < 0.5' },
      { origin: 'web', text: '', issue: 'invalid_utf8', usable: 0, model: null, itc: null, itm: null, kept: 0, reason: 'unusable text' },
    ]);
    expect(rows.map(captionFromRow)).toEqual(AS_READ);
    // Encoding what was decoded gives the same row back.
    expect(rows.map(captionFromRow).map(captionToRow)).toEqual(rows);
  });

  it('the report reads the same captions, with their position', () => {
    db.close();
    db = openDatabase(path, { readonly: true });
    expect(new ReportQueries(db).captions('a')).toEqual(AS_READ.map((c, idx) => ({ idx, ...c })));
  });

  it('the re-export reader reads the same captions (the captioner model included)', async () => {
    const read: DecodedPair[] = [];
    for await (const s of readExportSamples(path)) read.push(s);
    expect(read.map((s) => s.key)).toEqual(['a']);
    expect(read[0]!.captions).toEqual(AS_READ);
  });

  it('resume reuses scores but not verdicts: the filter decides reused captions again', () => {
    const work = new RunStore(db).recordedWork(['a'], 'src-0', [runId]);
    expect([...work.keys()]).toEqual(['a']);
    expect(work.get('a')!.sha256).toBe('sha-a');
    expect(work.get('a')!.captions).toEqual(AS_READ.map(({ kept: _kept, reason: _reason, ...scored }) => scored));
  });

  it('refilter decides from the decoded captions and writes only the verdicts that change', () => {
    // The stored verdicts are those of this policy already, except caption 0 (never decided).
    const policy: ResolvedPolicy = { policy: 'itm', itcThreshold: 0.28, itmThreshold: 0.5, topK: null, topKBy: 'itm', preferWeb: false };
    const changes = () => db.prepare('SELECT total_changes() AS n').pluck().get() as number;
    const before = changes();
    const summary = refilterRun(db, policy);
    expect(summary).toMatchObject({ samples: 1, kept: 1, dropped: 0, changed: 0, captionsKept: 1, captionsRejected: 3 });
    // One caption row updated (the undecided one) and the refilter's own log row.
    expect(changes() - before).toBe(2);
    const rows = (db.prepare(`SELECT ${CAPTION_COLUMNS} FROM captions WHERE sample_key = 'a' ORDER BY idx`).all() as CaptionRow[]).map(captionFromRow);
    expect(rows.map((c) => c.kept)).toEqual([false, true, false, false]);
    expect(rows[0]!.reason).toBe('no itm score');
  });
});
