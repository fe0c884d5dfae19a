/**
 * A sample's fate is one field (issue 14): open, failed, dropped or deferred. The helpers only ever make
 * a fate more final (open < deferred < dropped < failed) and keep the first of two equal ones, which is
 * what the three nullable fields it replaces meant: a failure outweighed a drop, a drop a deferral.
 */
import { describe, expect, expectTypeOf, it } from 'vitest';
import {
  deferSample,
  dropSample,
  failSample,
  failureOf,
  isOpen,
  OPEN,
  sampleStatus,
  type Pair,
  type SampleFailure,
  type SampleFate,
} from '../../src/core/sample.js';

function pair(fate: SampleFate = OPEN): Pair {
  return { key: 'k', source: 's', imageRef: 'file:/x', imageBytes: null, captions: [], boxes: [], meta: {}, fate };
}

const failed = failSample(pair(), 'decode', 'image_truncated', 'cut off');
const dropped = dropSample(pair(), 'select', 'no_caption_passed');
const deferred = deferSample(pair(), 'synth', 'llm_unfinished: budget_exhausted');

describe('sample fate', () => {
  it('a new sample is open and recorded ok', () => {
    const open = pair();
    expect([isOpen(open), sampleStatus(open), failureOf(open)]).toEqual([true, 'ok', null]);
  });

  it('each helper sets its kind with the stage and why', () => {
    expect(failed.fate).toEqual({ kind: 'failed', code: 'image_truncated', message: 'cut off', stage: 'decode' });
    expect(dropped.fate).toEqual({ kind: 'dropped', reason: 'no_caption_passed', stage: 'select' });
    expect(deferred.fate).toEqual({ kind: 'deferred', reason: 'llm_unfinished: budget_exhausted', stage: 'synth' });
  });

  it('a failed, dropped or deferred sample is not open; a deferred one is recorded ok, the others as their kind', () => {
    const samples = [failed, dropped, deferred];
    expect(samples.map(isOpen)).toEqual([false, false, false]);
    expect(samples.map(sampleStatus)).toEqual(['failed', 'dropped', 'ok']);
  });

  it('failureOf gives the failure as it is stored (code, message, stage), null for other fates', () => {
    expect(failureOf(failed)).toEqual({ code: 'image_truncated', message: 'cut off', stage: 'decode' });
    expect([dropped, deferred].map(failureOf)).toEqual([null, null]);
  });

  it('the first failure stays; a failure outweighs a drop and a deferral', () => {
    expect(failSample(failed, 'filter', 'score_failed', 'later').fate).toBe(failed.fate);
    expect(failSample(dropped, 'record', 'key_duplicate', 'taken').fate).toMatchObject({ kind: 'failed', code: 'key_duplicate' });
    expect(failSample(deferred, 'image-ref', 'image_missing', 'gone').fate).toMatchObject({ kind: 'failed', code: 'image_missing' });
  });

  it('a drop never hides a failure and the first drop stays; a drop outweighs a deferral', () => {
    expect(dropSample(failed, 'dedup', 'duplicate_image')).toBe(failed);
    expect(dropSample(dropped, 'dedup', 'duplicate_image')).toBe(dropped);
    expect(dropSample(deferred, 'select', 'no_caption_passed').fate).toMatchObject({ kind: 'dropped', reason: 'no_caption_passed' });
  });

  it('only an open sample can be deferred', () => {
    for (const sample of [failed, dropped, deferred]) expect(deferSample(sample, 'synth', 'llm_unfinished: interrupted')).toBe(sample);
  });

  it('returns a new record and leaves the input as it was', () => {
    const open = pair();
    const out = dropSample(open, 'select', 'no_caption_passed');
    expect(out).not.toBe(open);
    expect(open.fate).toBe(OPEN);
  });

  it('is typed: a fate names its fields by kind, and the helpers keep the record type', () => {
    expectTypeOf<Extract<SampleFate, { kind: 'failed' }>>().toMatchTypeOf<SampleFailure>();
    expectTypeOf<Extract<SampleFate, { kind: 'dropped' }>>().toEqualTypeOf<{ readonly kind: 'dropped' } & { readonly reason: string; readonly stage: string }>();
    type Wider = Pair & { extra: number };
    expectTypeOf(failSample<Wider>).returns.toEqualTypeOf<Wider>();
    expectTypeOf(dropSample<Wider>).returns.toEqualTypeOf<Wider>();
    expectTypeOf(deferSample<Wider>).returns.toEqualTypeOf<Wider>();
    // @ts-expect-error a dropped fate has no failure code
    const _bad: SampleFate = { kind: 'dropped', reason: 'x', stage: 'y', code: 'z' };
  });
});
