import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { OPEN, type Caption, type DecodedPair } from '../../src/core/sample.js';
import { refilterRun } from '../../src/filter/refilter.js';
import { resolvePolicy } from '../../src/filter/resolve-policy.js';
import { scorePercentile } from '../../src/store/caption-verdicts.js';
import { filterOptionsSchema } from '../../src/filter/filter-options.js';
import type { ResolvedPolicy } from '../../src/filter/policy.js';
import { openDatabase, type Db } from '../../src/store/database.js';
import { RunStore } from '../../src/store/run-store.js';
import { showSample } from '../../src/store/queries.js';

const cap = (origin: Caption['origin'], itc: number, itm: number): Caption => ({ text: `${origin} ${itc} ${itm}`, origin, issue: null, usable: true, itc, itm });

function sample(key: string, captions: Caption[], failed = false): DecodedPair {
  return {
    key,
    source: 's',
    imageRef: `file:/${key}`,
    imageBytes: null,
    captions,
    boxes: [],
    meta: {},
    fate: failed ? { kind: 'failed', code: 'image_truncated', message: 'cut', stage: 'decode' } : OPEN,
    image: failed ? null : { width: 1, height: 1, format: 'jpeg', byteLength: 1, sha256: 'x', orientation: 1 },
  };
}

let dir: string;
let db: Db;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'vlc-refilter-'));
  db = openDatabase(join(dir, 'run.db'));
  const store = new RunStore(db);
  const run = store.startRun('{}', 'h', '0/1');
  store.writeSamples(run, [
    sample('a', [cap('web', 0.4, 0.9), cap('synthetic', 0.35, 0.8)]),
    sample('b', [cap('web', 0.1, 0.2), cap('synthetic', 0.3, 0.7)]),
    sample('c', [cap('web', 0.1, 0.1)]),
    sample('d', [cap('web', 0.9, 0.9)], true),
  ]);
});
afterEach(() => {
  db.close();
  rmSync(dir, { recursive: true, force: true });
});

const policy: ResolvedPolicy = { policy: 'both', itcThreshold: 0.28, itmThreshold: 0.5, topK: null, topKBy: 'itm', preferWeb: false };

describe('refilter', () => {
  it('re-decides from stored scores: verdicts, reasons, dropped samples; failed ones untouched', () => {
    const summary = refilterRun(db, policy);
    expect(summary).toEqual({ samples: 3, kept: 2, dropped: 1, changed: 1, revived: 0, captionsKept: 3, captionsRejected: 2 });
    const c = showSample(db, 'c')!;
    expect(c.sample).toMatchObject({ status: 'dropped', drop_reason: 'no_caption_passed' });
    expect(c.captions[0]).toMatchObject({ kept: 0, reason: 'itc 0.1 < 0.28, itm 0.1 < 0.5' });
    expect(showSample(db, 'd')!.sample).toMatchObject({ status: 'failed' });
    expect(showSample(db, 'b')!.captions.map((x) => x.kept)).toEqual([0, 1]);
  });

  it('is reversible: loosening the cut brings dropped samples back', () => {
    refilterRun(db, policy);
    const summary = refilterRun(db, { ...policy, itcThreshold: 0, itmThreshold: 0 });
    expect(summary).toMatchObject({ kept: 3, dropped: 0, changed: 1, revived: 1 });
    expect(showSample(db, 'c')!.sample).toMatchObject({ status: 'ok', drop_reason: null });
  });

  it('topK and preferWeb apply the same way as in the pipeline', () => {
    refilterRun(db, { ...policy, topK: 1 });
    expect(showSample(db, 'a')!.captions.map((x) => x.reason)).toEqual(['itc 0.4 >= 0.28, itm 0.9 >= 0.5', 'rank 2 of 2 by itm, topK 1']);
  });

  it('a dry run changes nothing', () => {
    const summary = refilterRun(db, { ...policy, itcThreshold: 0.99 }, { dryRun: true });
    expect(summary.dropped).toBe(3);
    expect(showSample(db, 'a')!.sample).toMatchObject({ status: 'ok' });
    expect(showSample(db, 'a')!.captions[0]).toMatchObject({ kept: null });
  });

  it('percentile and topFraction cuts resolve over the run, failed samples left out', () => {
    // itm over usable captions of samples that did not fail: 0.1 0.2 0.7 0.8 0.9 -> the 50th percentile is the 3rd.
    expect(scorePercentile(db, 'itm', 50)).toBe(0.7);
    expect(scorePercentile(db, 'itm', 100)).toBe(0.9);
    expect(scorePercentile(db, 'itc', 0)).toBe(0.1);
    const resolved = resolvePolicy(filterOptionsSchema.parse({ itm: { model: 'm', topFraction: 0.5 } }), db);
    expect(resolved).toMatchObject({ policy: 'itm', itmThreshold: 0.7 });
  });
});
