/**
 * The captioner stage on the committed demo captioner (models/shapes-captioner, a real onnxruntime
 * session), fed arrays of samples as the decode stage's tests feed theirs: order kept, each wanted open
 * sample gets the captions the model gives its image alone (seeded by key), an image the model cannot read
 * fails alone (`caption_failed`) while the rest of its batch is captioned, and samples that are closed,
 * unwanted or already captioned pass through untouched. Then, with a scripted captioner answering as the
 * OpenAI one does, images held back for a later run: failed under their code, a stopped client said once.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCaptionerStage, type CaptionBatch } from '../../src/captioner/captioner-stage.js';
import { OnnxCaptioner, type CaptionOptions } from '../../src/captioner/onnx-captioner.js';
import type { StageEvent } from '../../src/core/events.js';
import { failureOf, OPEN, type DecodedPair } from '../../src/core/sample.js';
import { decodeImage } from '../../src/decode/decode-stage.js';

const ROOT = resolve(import.meta.dirname, '../..');
const DECODING: CaptionOptions = { strategy: 'nucleus', k: 2, topP: 0.9, seed: 7, minLength: 3, maxLength: 24 };
let captioner: OnnxCaptioner;
let captionBatch: CaptionBatch;

beforeAll(async () => {
  captioner = await OnnxCaptioner.load(resolve(ROOT, 'models/shapes-captioner'));
  // As the registered ONNX captioner wires it (captioner/onnx-captioner.ts).
  captionBatch = async (images) =>
    (await captioner.caption(images.map((i) => i.bytes), { ...DECODING, keys: images.map((i) => i.key) })).map((list) => ({ captions: list.map((c) => c.text) }));
});
afterAll(async () => {
  await captioner?.close();
});

async function sample(key: string, bytes: Buffer): Promise<DecodedPair> {
  const decoded = await decodeImage(bytes, 89_478_485);
  if (!decoded.ok) throw new Error(`fixture ${key} does not decode: ${decoded.message}`);
  return { key, source: 'test', imageRef: `file:/x/${key}`, imageBytes: bytes, image: decoded.image, captions: [{ text: 'a shape', origin: 'web', issue: null, usable: true }], boxes: [], meta: {}, fate: OPEN };
}

async function shapes(count: number): Promise<DecodedPair[]> {
  const keys = readFileSync(resolve(ROOT, 'datasets/shapes-sample/ground_truth.jsonl'), 'utf8').trim().split('\n').slice(0, count).map((l) => (JSON.parse(l) as { key: string }).key);
  return Promise.all(keys.map((key) => sample(key, readFileSync(resolve(ROOT, 'datasets/shapes-sample/coco/images', `${key}.jpg`)))));
}

/** A JPEG whose scan holds a stray restart marker: decode's check passes, the model's strict decode does not. */
async function jpegWithCorruptData(): Promise<Buffer> {
  const raw = Buffer.alloc(256 * 192 * 3);
  for (let i = 0; i < raw.length; i++) raw[i] = (i * 7919) % 251;
  const jpeg = Buffer.from(await sharp(raw, { raw: { width: 256, height: 192, channels: 3 } }).jpeg({ quality: 90 }).toBuffer());
  const scan = jpeg.indexOf(Buffer.from([0xff, 0xda]));
  jpeg[scan + 500] = 0xff;
  jpeg[scan + 501] = 0xd3;
  return jpeg;
}

async function runStage(input: readonly DecodedPair[], options: { batchSize: number; wants?: (s: DecodedPair) => boolean }) {
  const stage = createCaptionerStage(captionBatch, { model: 'shapes-captioner', batchSize: options.batchSize, wants: options.wants ?? (() => true) });
  const out: DecodedPair[] = [];
  const events: StageEvent[] = [];
  async function* feed() {
    yield* input;
  }
  for await (const s of stage.run(feed(), { signal: new AbortController().signal, emit: (e) => events.push(e) })) out.push(s);
  return { out, events };
}

describe('captioner stage fed an array of samples', () => {
  it('captions each wanted open sample as its image alone is captioned, fails the unreadable one alone, passes the rest through', async () => {
    const [a, b, c, d, e, f, g] = await shapes(7);
    const input: DecodedPair[] = [
      a!,
      { ...b!, fate: { kind: 'failed', code: 'image_truncated', message: 'cut', stage: 'decode' } },
      await sample('bad', await jpegWithCorruptData()),
      c!,
      { ...d!, fate: { kind: 'dropped', reason: 'duplicate_image', stage: 'dedup' } },
      { ...e!, fate: { kind: 'deferred', reason: 'budget_exhausted', stage: 'synth' } },
      // Resumed with its recorded synthetic captions: never captioned twice.
      { ...f!, captions: [...f!.captions, { text: 'a recorded caption', origin: 'synthetic', issue: null, usable: true, model: 'shapes-captioner' }] },
      { ...g!, key: 'not_wanted' },
      g!,
    ];
    const { out, events } = await runStage(input, { batchSize: 3, wants: (s) => s.key !== 'not_wanted' });
    expect(out.map((s) => s.key)).toEqual(input.map((s) => s.key));
    for (const i of [1, 4, 5, 6, 7]) expect(out[i], input[i]!.key).toBe(input[i]);

    for (const i of [0, 3, 8]) {
      const alone = await captioner.caption([input[i]!.imageBytes!], { ...DECODING, keys: [input[i]!.key] });
      const added = out[i]!.captions.slice(1);
      expect(failureOf(out[i]!)).toBeNull();
      expect(out[i]!.captions[0]).toBe(input[i]!.captions[0]);
      expect(added.map((cap) => cap.text)).toEqual(alone[0]!.map((cap) => cap.text));
      expect(added).toHaveLength(2);
      for (const cap of added) expect(cap).toMatchObject({ origin: 'synthetic', usable: true, issue: null, model: 'shapes-captioner' });
    }

    expect(failureOf(out[2]!)).toMatchObject({ code: 'caption_failed', stage: 'captioner' });
    expect(failureOf(out[2]!)!.message).toMatch(/^the captioner failed on this image: .*(Corrupt JPEG data|failOn)/);
    expect(out[2]!.captions).toEqual(input[2]!.captions);
    // Batches of 3: [a failed bad] [c dropped deferred] [recorded not_wanted g]: each has work.
    expect(events.filter((ev) => ev.type === 'batch-latency')).toHaveLength(3);
  });

  it('gives the same captions whatever the batch size, so a resumed run writes the same ones', async () => {
    const input = await shapes(5);
    const one = await runStage(input, { batchSize: 1 });
    const five = await runStage(input, { batchSize: 5 });
    const texts = (out: DecodedPair[]) => out.map((s) => s.captions.map((cap) => cap.text));
    expect(texts(five.out)).toEqual(texts(one.out));
    expect(one.events.filter((ev) => ev.type === 'batch-latency')).toHaveLength(5);
    expect(five.events.filter((ev) => ev.type === 'batch-latency')).toHaveLength(1);
  });

  it('a batch with nothing to caption calls no model and says no latency', async () => {
    const [a] = await shapes(1);
    const input: DecodedPair[] = [{ ...a!, fate: { kind: 'failed', code: 'image_truncated', message: 'cut', stage: 'decode' } }];
    const { out, events } = await runStage(input, { batchSize: 4 });
    expect(out[0]).toBe(input[0]);
    expect(events).toEqual([]);
  });
});

describe('captioner stage: images held back for a later run', () => {
  /** A captioner (as the OpenAI one answers) that holds back the images of `held` with `code`. */
  function holding(held: ReadonlySet<string>, code: 'server_unreachable' | 'budget_exhausted'): CaptionBatch {
    return async (images) =>
      images.map((image) => (held.has(image.key) ? { captions: ['half of it'], heldBack: { code, message: `${code} for ${image.key}` } } : { captions: [`caption of ${image.key}`] }));
  }

  async function run(captionBatch: CaptionBatch, input: readonly DecodedPair[]) {
    const stage = createCaptionerStage(captionBatch, { model: 'vlm', batchSize: 2, wants: () => true });
    const out: DecodedPair[] = [];
    const events: StageEvent[] = [];
    async function* feed() {
      yield* input;
    }
    for await (const s of stage.run(feed(), { signal: new AbortController().signal, emit: (e) => events.push(e) })) out.push(s);
    return { out, events: events.filter((e) => e.type === 'log') };
  }

  it('a stopped client holds its samples back under its code, says so once, and the samples get no line each', async () => {
    const input = await shapes(5);
    const held = new Set([input[1]!.key, input[2]!.key, input[4]!.key]);
    const { out, events } = await run(holding(held, 'server_unreachable'), input);
    expect(out.map((s) => s.key)).toEqual(input.map((s) => s.key));
    for (const [i, s] of out.entries()) {
      if (held.has(s.key)) {
        expect(failureOf(s)).toEqual({ code: 'server_unreachable', message: `server_unreachable for ${s.key}`, stage: 'captioner', said: true });
        // Captions of a held-back image are incomplete: none are kept.
        expect(s.captions).toEqual(input[i]!.captions);
      } else {
        expect(failureOf(s)).toBeNull();
        expect(s.captions.slice(1).map((c) => c.text)).toEqual([`caption of ${s.key}`]);
      }
    }
    expect(events).toEqual([{ type: 'log', level: 'warn', message: `captioner: captioning stopped: server_unreachable for ${input[1]!.key}; the samples wait for the next run` }]);
  });

  it('a sample held back for a code of its own (not a stopped client) is failed with it, and the runner reports it', async () => {
    const input = await shapes(2);
    const { out, events } = await run(holding(new Set([input[0]!.key]), 'budget_exhausted'), input);
    expect(failureOf(out[0]!)).toEqual({ code: 'budget_exhausted', message: `budget_exhausted for ${input[0]!.key}`, stage: 'captioner' });
    expect(failureOf(out[1]!)).toBeNull();
    expect(events).toEqual([]);
  });
});
