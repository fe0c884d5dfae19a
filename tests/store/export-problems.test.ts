/**
 * `exportProblems` on a real run database: an export holding nothing is a problem unless every sample it
 * lacks waits for a later run (synthesis held back by --max-cost), and a caption export, which records no
 * reasons, is judged by the ok samples it does not hold.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { InstructionStore } from '../../src/store/instruction-store.js';
import { exportProblems } from '../../src/store/export-problems.js';
import { cleanup, makePairs, openTestStore, tempDir } from '../export/fixtures.js';

afterEach(cleanup);

describe('exportProblems', () => {
  it('samples held back by the budget are not counted; samples left out for no recorded reason are', async () => {
    const samples = await makePairs(4);
    const { db, store } = openTestStore(tempDir(), samples);
    const instructions = new InstructionStore(db);
    const held = (key: string) => ({ sampleKey: key, task: 'detail' as const, variant: 0, status: 'failed' as const, code: 'budget_exhausted', message: '--max-cost 0 reached', conversations: null, requestHash: null, attempts: 0 });
    instructions.write(samples.map((s) => held(s.key)));
    // Every sample waits: the export is empty for now, and that is no problem.
    expect(exportProblems(db, ['wds'])).toEqual([]);

    // Two of them were decided after all and still not written: most of what the export could hold is missing.
    instructions.write(samples.slice(0, 3).map((s) => ({ ...held(s.key), status: 'ok' as const, code: null, message: null })));
    store.recordShard({ exportName: 'wds', shardIndex: 0, path: '/x/wds-000000.tar', sampleCount: 1, byteLength: 1, sha256: 'a' }, [samples[0]!.key]);
    expect(exportProblems(db, ['wds'])).toEqual([
      { export: 'wds', kind: 'mostly_left_out', written: 1, total: 3, reason: null, count: 2, message: "export wds: 2 of 3 ok samples left out (the run's log says why)" },
    ]);
    // An export the recipe has that holds nothing while samples could be in it.
    expect(exportProblems(db, ['other'])).toEqual([
      { export: 'other', kind: 'empty', written: 0, total: 3, reason: null, count: 3, message: "export other holds no sample: 3 of 3 ok samples left out (the run's log says why)" },
    ]);
    db.close();
  });

  it('a run with no sample at all: the sources gave none', () => {
    const { db } = openTestStore(tempDir());
    expect(exportProblems(db, ['wds']).map((p) => p.message)).toEqual(['export wds holds no sample: the sources gave none']);
    db.close();
  });
});
