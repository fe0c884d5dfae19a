/**
 * The one "is this sample still open" rule (`isOpen`): a sample failed, dropped or deferred is closed, and
 * every stage that works on samples passes closed ones through untouched (the same object), in order. Each
 * stage is fed the same array: open samples around a failed, a dropped and a deferred one that would each
 * be worked on if they were open (they have image bytes, facts, captions and a shared sha256).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, expectTypeOf, it } from 'vitest';
import { failureOf, isOpen, OPEN, type DecodedPair, type DedupedPair } from '../../src/core/sample.js';
import type { Stage } from '../../src/core/stage.js';
import { createCaptionerStage } from '../../src/captioner/captioner-stage.js';
import type { CaptionScorer } from '../../src/filter/caption-scorer.js';
import type { ResolvedPolicy } from '../../src/filter/policy.js';
import { createFilterStage } from '../../src/filter/filter-stage.js';
import { createSelectStage } from '../../src/filter/select-stage.js';
import { loadImages } from '../../src/images/image-ref.js';
import { openDatabase, type Db } from '../../src/store/database.js';
import { createDedupStage } from '../../src/decode/dedup-stage.js';
import { createReuseStage } from '../../src/run/reuse-stage.js';
import { RunStore } from '../../src/store/run-store.js';
import { createSynthStage, synthOptionsSchema } from '../../src/synth/synth-stage.js';
import { synthDeps } from '../synth/helpers.js';

const POLICY: ResolvedPolicy = { policy: 'itc', itcThreshold: 0.3, itmThreshold: null, topK: null, topKBy: 'itc', preferWeb: false };
const SHA = 'c0ffee'.repeat(10) + 'c0ff';

function open(key: string): DecodedPair {
  return {
    key,
    source: 'src-0',
    imageRef: `file:/nonexistent/${key}.png`,
    imageBytes: Buffer.from('bytes'),
    captions: [{ text: 'a red circle', origin: 'web', issue: null, usable: true }],
    boxes: [{ label: 'red circle', box: [1, 1, 20, 20] }],
    meta: {},
    fate: OPEN,
    image: { width: 64, height: 64, format: 'png', byteLength: 5, sha256: SHA, orientation: 1 },
  };
}

/** Closed samples that still carry everything a stage would work on. */
const closed = {
  failed: (key: string): DecodedPair => ({ ...open(key), fate: { kind: 'failed', code: 'caption_failed', message: 'the captioner failed', stage: 'captioner' } }),
  dropped: (key: string): DecodedPair => ({ ...open(key), fate: { kind: 'dropped', reason: 'duplicate_image', stage: 'dedup' } }),
  deferred: (key: string): DecodedPair => ({ ...open(key), fate: { kind: 'deferred', reason: 'budget_exhausted', stage: 'synth' } }),
};

function input(): DecodedPair[] {
  return [open('a'), closed.failed('b'), closed.dropped('c'), closed.deferred('d'), open('e')];
}

async function drain<I, O>(stage: Stage<I, O>, items: readonly I[]): Promise<O[]> {
  async function* from() {
    yield* items;
  }
  const out: O[] = [];
  for await (const item of stage.run(from(), { signal: new AbortController().signal, emit: () => undefined })) out.push(item);
  return out;
}

/** Closed samples come out as the same objects, at their places; open ones come out too. */
function expectClosedUntouched(samples: readonly DecodedPair[], out: readonly { key: string }[]): void {
  expect(out.map((s) => s.key)).toEqual(samples.map((s) => s.key));
  for (const [i, sample] of samples.entries()) if (!isOpen(sample)) expect(out[i], sample.key).toBe(sample);
}

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0).reverse()) cleanup();
});

function database(): Db {
  const dir = mkdtempSync(join(tmpdir(), 'vlc-open-'));
  const db = openDatabase(join(dir, 'run.db'));
  cleanups.push(() => {
    db.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return db;
}

describe('isOpen', () => {
  it('is true only for a sample neither failed, dropped nor deferred', () => {
    expect(isOpen(open('a'))).toBe(true);
    expect(isOpen(closed.failed('b'))).toBe(false);
    expect(isOpen(closed.dropped('c'))).toBe(false);
    expect(isOpen(closed.deferred('d'))).toBe(false);
  });
});

describe('stages pass closed samples through untouched', () => {
  it('select decides open samples only', async () => {
    const samples = input();
    const out = await drain(createSelectStage(POLICY), samples);
    expectClosedUntouched(samples, out);
    expect(out[0]!.captions[0]!.kept).not.toBeUndefined();
  });

  it('filter scores open samples only', async () => {
    const scored: number[] = [];
    const scorer = {
      score: async (requests: readonly { texts: readonly string[] }[]) => {
        scored.push(requests.length);
        return requests.map((r) => ({ itc: r.texts.map(() => 0.5), itm: r.texts.map(() => 0.5) }));
      },
    } as unknown as CaptionScorer;
    const samples = input();
    const out = await drain(createFilterStage(scorer, { name: 'filter', batchSize: 8 }), samples);
    expectClosedUntouched(samples, out);
    expect(scored).toEqual([2]);
    expect(out[4]!.captions[0]!.itc).toBe(0.5);
  });

  it('the captioner captions open samples only', async () => {
    const asked: string[] = [];
    const captionBatch = async (images: { key: string }[]) => {
      asked.push(...images.map((i) => i.key));
      return images.map(() => ({ captions: ['a new caption'] }));
    };
    const samples = input();
    const out = await drain(createCaptionerStage(captionBatch, { model: 'm', batchSize: 8, wants: () => true }), samples);
    expectClosedUntouched(samples, out);
    expect(asked).toEqual(['a', 'e']);
  });

  it('dedup looks at open samples only', async () => {
    const samples = input();
    const out = await drain(createDedupStage(new RunStore(database())), samples);
    expectClosedUntouched(samples, out);
    // The second open sample with the same bytes is the duplicate; the closed ones in between are not owners.
    expect(out[4]!.fate).toEqual({ kind: 'dropped', reason: 'duplicate_image', stage: 'dedup' });
    expect(out[4]!.duplicateOf).toBe('a');
    // A typed field of what dedup yields (the record stage stores it with the metadata), not a key in `meta`.
    expect(out[4]!.meta).not.toHaveProperty('duplicateOf');
    expectTypeOf(out[4]!).toEqualTypeOf<DedupedPair>();
  });

  it('reuse gives recorded work back to open samples only', async () => {
    const store = new RunStore(database());
    const earlier = store.startRun('{}', 'h', '0/1');
    const recorded = input().map((s) => ({ ...open(s.key), captions: [{ ...s.captions[0]!, itc: 0.25, itm: 0.75 }] }));
    store.writeSamples(earlier, recorded);
    const samples = input();
    const out = await drain(createReuseStage(store, [earlier]), samples);
    expectClosedUntouched(samples, out);
    expect(out[0]!.captions[0]!.itc).toBe(0.25);
  });

  it('synthesis works on open samples only', async () => {
    const db = database();
    const store = new RunStore(db);
    const runId = store.startRun('{}', 'h', '0/1');
    const samples = input();
    store.writeSamples(runId, samples);
    const out = await drain(createSynthStage(synthOptionsSchema.parse({ tasks: ['stage1'] }), { ...synthDeps(db), runId }), samples);
    // Synthesis yields as samples finish: closed ones are the same objects, open ones got instructions.
    expect(out.map((s) => s.key).sort()).toEqual(['a', 'b', 'c', 'd', 'e']);
    for (const sample of samples) {
      const done = out.find((s) => s.key === sample.key)!;
      if (isOpen(sample)) expect(done.instructions?.length, sample.key).toBe(1);
      else expect(done, sample.key).toBe(sample);
    }
  });

  it('loadImages reads bytes for open samples only', async () => {
    const samples = input().map((s) => ({ ...s, imageBytes: null }));
    const out: DecodedPair[] = [];
    for await (const sample of loadImages(
      (async function* () {
        yield* samples;
      })(),
    ))
      out.push(sample);
    expectClosedUntouched(samples, out);
    // The open ones point at files that are not there.
    expect(failureOf(out[0]!)?.code).toBe('image_missing');
  });
});
