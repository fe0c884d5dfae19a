import { describe, expect, it } from 'vitest';
import { OPEN, type Caption, type DecodedPair } from '../../src/core/sample.js';
import { decidedSamples, scorePercentile, writeVerdicts } from '../../src/store/caption-verdicts.js';
import { openDatabase, type Db } from '../../src/store/database.js';
import { describeFlags, latestRefilter } from '../../src/store/refilter-log.js';
import { latestRun, recordedRuns } from '../../src/store/run-history.js';
import { RunStore } from '../../src/store/run-store.js';
import { tempDatabasePath } from './store-fixtures.js';

const caption = (text: string, itc: number | null, itm: number | null, extra: Partial<Caption> = {}): Caption => ({
  text,
  origin: 'web',
  issue: null,
  usable: true,
  itc,
  itm,
  ...extra,
});

function pair(key: string, captions: Caption[], extra: Partial<DecodedPair> = {}): DecodedPair {
  return {
    key,
    source: 'src',
    imageRef: `file:/x/${key}.jpg`,
    imageBytes: null,
    captions,
    boxes: [],
    meta: {},
    fate: OPEN,
    image: { width: 8, height: 8, format: 'jpeg', byteLength: 1, sha256: key, orientation: 1 },
    ...extra,
  };
}

/** ok `a` (two captions), `b` dropped as none passed, `dup` dropped as a duplicate, `bad` failed. */
function recordedRun(): { db: Db; store: RunStore } {
  const db = openDatabase(tempDatabasePath());
  const store = new RunStore(db);
  const run = store.startRun('{"filter":{"policy":"itm"}}', 'h', '0/1');
  store.writeSamples(run, [
    pair('a', [caption('a web', 0.3, 0.9, { kept: true, reason: 'itm 0.9 >= 0.5' }), caption('a synthetic', 0.2, 0.1, { origin: 'synthetic', kept: false, reason: 'itm 0.1 < 0.5' })]),
    pair('b', [caption('b web', 0.1, 0.2, { kept: false, reason: 'itm 0.2 < 0.5' })], { fate: { kind: 'dropped', reason: 'no_caption_passed', stage: 'select' } }),
    pair('dup', [caption('dup web', 0.5, 0.99)], { fate: { kind: 'dropped', reason: 'duplicate_image', stage: 'dedup' } }),
    pair('bad', [caption('bad web', 0.9, 0.8, { usable: false })], { fate: { kind: 'failed', code: 'image_truncated', message: 'cut', stage: 'decode' }, image: null }),
  ]);
  return { db, store };
}

describe('caption verdicts (what refilter reads and writes)', () => {
  it('decidedSamples: ok samples and those dropped for the reason asked, with captions in order; not failed or otherwise dropped ones', () => {
    const { db } = recordedRun();
    const samples = decidedSamples(db, 'no_caption_passed');
    expect(samples.map((s) => [s.key, s.status, s.captions.map((c) => c.text)])).toEqual([
      ['a', 'ok', ['a web', 'a synthetic']],
      ['b', 'dropped', ['b web']],
    ]);
    expect(samples[0]!.captions[1]).toMatchObject({ origin: 'synthetic', usable: true, itc: 0.2, itm: 0.1, kept: false, reason: 'itm 0.1 < 0.5' });
    expect(typeof samples[0]!.captions[1]!.id).toBe('number');
    db.close();
  });

  it('writeVerdicts: new verdicts, statuses and the refilter record in one transaction, under the latest run', () => {
    const { db, store } = recordedRun();
    const second = store.startRun('{"filter":{"policy":"both"}}', 'h2', '0/1');
    const [a, b] = decidedSamples(db, 'no_caption_passed');
    const entry = writeVerdicts(
      db,
      { captions: [{ id: b!.captions[0]!.id, kept: true, reason: 'itm 0.2 >= 0.1' }], samples: [{ key: 'b', status: 'ok', dropReason: null }] },
      { flags: { '--itm-threshold': '0.1', '--prefer-web': false }, policy: { itmThreshold: 0.1, itcThreshold: Number.POSITIVE_INFINITY }, samples: 2, kept: 2, dropped: 0, changed: 1 },
    );
    expect(entry.runId).toBe(second);
    const after = decidedSamples(db, 'no_caption_passed');
    expect(after.map((s) => [s.key, s.status])).toEqual([
      ['a', 'ok'],
      ['b', 'ok'],
    ]);
    expect(after[1]!.captions[0]).toMatchObject({ kept: true, reason: 'itm 0.2 >= 0.1' });
    expect(after[0]!.captions).toEqual(a!.captions);
    // The policy comes back as recorded, Infinity included (JSON has none).
    expect(latestRefilter(db)).toEqual({ ...entry, policy: { itmThreshold: 0.1, itcThreshold: Number.POSITIVE_INFINITY } });
    expect(describeFlags(entry.flags)).toBe('--itm-threshold 0.1 --no-prefer-web');
    db.close();
  });

  it('writeVerdicts writes nothing when the refilter cannot be recorded', () => {
    const { db } = recordedRun();
    const [, b] = decidedSamples(db, 'no_caption_passed');
    db.exec('DROP TABLE refilters');
    expect(() =>
      writeVerdicts(
        db,
        { captions: [{ id: b!.captions[0]!.id, kept: true, reason: 'kept' }], samples: [{ key: 'b', status: 'ok', dropReason: null }] },
        { flags: {}, policy: {}, samples: 1, kept: 1, dropped: 0, changed: 1 },
      ),
    ).toThrow(/refilters/);
    const [, still] = decidedSamples(db, 'no_caption_passed');
    expect(still).toMatchObject({ key: 'b', status: 'dropped', captions: [{ kept: false, reason: 'itm 0.2 < 0.5' }] });
    db.close();
  });

  it('scorePercentile: over usable scored captions of samples that did not fail (the failed sample and the unusable caption are left out)', () => {
    const { db } = recordedRun();
    // itm of a, a, b, dup: 0.1 0.2 0.9 0.99 (bad's 0.8 is of a failed sample).
    expect(scorePercentile(db, 'itm', 0)).toBe(0.1);
    expect(scorePercentile(db, 'itm', 50)).toBe(0.2);
    expect(scorePercentile(db, 'itm', 75)).toBe(0.9);
    expect(scorePercentile(db, 'itm', 100)).toBe(0.99);
    db.exec('DELETE FROM captions');
    expect(scorePercentile(db, 'itc', 50)).toBeNull();
    db.close();
  });

  it('run history: every run oldest first, and the latest', () => {
    const db = openDatabase(tempDatabasePath());
    expect(latestRun(db)).toBeNull();
    expect(latestRefilter(db)).toBeNull();
    const store = new RunStore(db);
    const one = store.startRun('{"n":1}', 'h', '0/1');
    const two = store.startRun('{"n":2}', 'h', '0/1');
    expect(recordedRuns(db)).toEqual([
      { id: one, recipeJson: '{"n":1}' },
      { id: two, recipeJson: '{"n":2}' },
    ]);
    expect(latestRun(db)).toEqual({ id: two, recipeJson: '{"n":2}' });
    db.close();
  });
});
