/**
 * The stages that talk to the run database take a narrow port (`store/stage-ports.ts`), not the whole
 * RunStore: each is fed an array here with a plain object standing in for its port, which records what it
 * was asked. The same stages on a real database are covered by resume-reuse, dedup and the build tests.
 */
import { describe, expect, it } from 'vitest';
import { OPEN, type Caption, type DecodedPair, type Pair } from '../../src/core/sample.js';
import { createDedupStage } from '../../src/decode/dedup-stage.js';
import { createRecordStage } from '../../src/run/record-stage.js';
import { createResumeStage } from '../../src/run/resume-stage.js';
import { createReuseStage } from '../../src/run/reuse-stage.js';
import type { DoneRule } from '../../src/store/done-rule.js';
import type { ContentIndex, DoneKeys, RecordedWork, RecordedWorkLookup, SampleRecorder } from '../../src/store/stage-ports.js';
import { drain } from '../synth/helpers.js';

const web = (text: string): Caption => ({ text, origin: 'web', issue: null, usable: true });

function decoded(key: string, sha256: string, extra: Partial<DecodedPair> = {}): DecodedPair {
  return {
    key,
    source: 'src',
    imageRef: `file:/x/${key}.jpg`,
    imageBytes: null,
    captions: [web(`caption of ${key}`)],
    boxes: [],
    meta: {},
    fate: OPEN,
    image: { width: 8, height: 8, format: 'jpeg', byteLength: 1, sha256, orientation: 1 },
    ...extra,
  };
}

const rule: DoneRule = { exports: ['wds'], synth: [] };

describe('stages on their ports', () => {
  it('resume asks DoneKeys per source and batch; done keys are skipped, a key another source recorded becomes key_duplicate', async () => {
    const asked: { keys: readonly string[]; source?: string }[] = [];
    const port: DoneKeys = {
      resumeState(keys, given, source) {
        expect(given).toBe(rule);
        asked.push({ keys, source });
        return { done: new Set(keys.filter((k) => k === 'done')), owners: new Map(keys.filter((k) => k === 'taken').map((k) => [k, 'other'])), reopened: new Set() };
      },
    };
    const pairs: Pair[] = ['done', 'new', 'taken'].map((key) => ({ ...decoded(key, key), source: 'src' }));
    const { out } = await drain(createResumeStage(port, rule, 2), pairs);
    expect(asked).toEqual([
      { keys: ['done', 'new'], source: 'src' },
      { keys: ['taken'], source: 'src' },
    ]);
    expect(out.map((p) => [p.key, p.fate.kind])).toEqual([
      ['new', 'open'],
      ['taken__src', 'failed'],
    ]);
    expect(out[1]!.fate).toMatchObject({ kind: 'failed', code: 'key_duplicate' });
  });

  it('dedup asks the ContentIndex for the open samples\' sha256s; a recorded owner (not the sample itself) makes a duplicate', async () => {
    const asked: (readonly string[])[] = [];
    const port: ContentIndex = {
      imageOwners(sha256s) {
        asked.push(sha256s);
        return new Map([['x', ['old', 'a']]]);
      },
    };
    const closed = decoded('c', 'x', { fate: { kind: 'dropped', reason: 'no_caption_passed', stage: 'select' } });
    const { out } = await drain(createDedupStage(port), [decoded('a', 'y'), decoded('b', 'x'), closed, decoded('d', 'y')]);
    expect(asked).toEqual([['y', 'x', 'y']]);
    expect(out.map((s) => [s.key, s.fate.kind])).toEqual([
      ['a', 'open'],
      ['b', 'dropped'],
      ['c', 'dropped'],
      ['d', 'dropped'],
    ]);
    expect(out[1]!.fate).toMatchObject({ reason: 'duplicate_image' });
  });

  it('reuse takes recorded captions from the RecordedWorkLookup only for the same image and the same source captions', async () => {
    const scored = (text: string): Caption => ({ ...web(text), itc: 0.3, itm: 0.9 });
    const asked: { keys: readonly string[]; source: string; runs: readonly number[] }[] = [];
    const port: RecordedWorkLookup = {
      recordedWork(keys, source, runIds) {
        asked.push({ keys, source, runs: runIds });
        const work = new Map<string, RecordedWork>([
          ['same', { sha256: 'same', captions: [scored('caption of same'), { ...scored('a synthetic one'), origin: 'synthetic' }] }],
          ['other-image', { sha256: 'changed', captions: [scored('caption of other-image')] }],
          ['other-text', { sha256: 'other-text', captions: [scored('an older caption')] }],
        ]);
        return new Map(keys.filter((k) => work.has(k)).map((k) => [k, work.get(k)!]));
      },
    };
    const samples = [decoded('same', 'same'), decoded('other-image', 'other-image'), decoded('other-text', 'other-text')];
    const { out } = await drain(createReuseStage(port, [3, 5]), samples);
    expect(asked).toEqual([{ keys: ['same', 'other-image', 'other-text'], source: 'src', runs: [3, 5] }]);
    expect(out[0]!.captions.map((c) => [c.text, c.itm])).toEqual([
      ['caption of same', 0.9],
      ['a synthetic one', 0.9],
    ]);
    expect(out[1]).toBe(samples[1]);
    expect(out[2]).toBe(samples[2]);
  });

  it('record hands each batch to the SampleRecorder and passes on the samples as recorded, after their batch', async () => {
    const batches: string[][] = [];
    const port: SampleRecorder = {
      writeSamples(runId, samples) {
        expect(runId).toBe(7);
        batches.push(samples.map((s) => s.key));
        return samples.map((s) => ({ ...s, meta: { recorded: true } }));
      },
    };
    const { out, events } = await drain(createRecordStage(port, 7, 2), ['a', 'b', 'c'].map((k) => decoded(k, k)));
    expect(batches).toEqual([['a', 'b'], ['c']]);
    expect(out.map((s) => [s.key, s.meta.recorded])).toEqual([
      ['a', true],
      ['b', true],
      ['c', true],
    ]);
    expect(events.filter((e) => e.type === 'batch-latency')).toHaveLength(2);
  });
});
