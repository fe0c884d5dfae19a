import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterEach, describe, expect, it } from 'vitest';
import type { InstructionSample, Turn } from '../../src/core/conversation.js';
import { ConfigError } from '../../src/core/errors.js';
import type { StageEvent } from '../../src/core/events.js';
import type { ExportStats } from '../../src/export/export-stats.js';
import type { InstructionExportable } from '../../src/export/instruction-records.js';
import type { JsonManifest } from '../../src/export/json-export.js';
import { regionPlaceholder } from '../../src/regions/region-format.js';
import { createExport, exportSchema } from '../../src/export/registry.js';
import type { RunStore } from '../../src/store/run-store.js';
import { llamaTokenizerDir, MINI_LLAMA_NONLEGACY_CONFIG, TOKENIZERS } from '../fixtures/tokenizers.js';
import { caption, cleanup, failedPair, makePair, openTestStore, runStage, sha256, sha256File, stageContext, tempDir } from './fixtures.js';
import { expectEvery } from '../expect-every.js';

afterEach(cleanup);

const h = (value: string): Turn => ({ from: 'human', value });
const g = (value: string): Turn => ({ from: 'gpt', value });

function instruction(key: string, task: InstructionSample['task'], conversations: Turn[], variant = 0): InstructionSample {
  return { sampleKey: key, task, variant, conversations };
}

interface LlavaRecord {
  id: string;
  image?: string;
  conversations: Turn[];
}

/** Samples covering every case: image records, a text-only record, a broken one, caption-only, not exportable. */
async function makeSamples(): Promise<InstructionExportable[]> {
  const a: InstructionExportable = {
    ...(await makePair('a1', 1)),
    instructions: [
      instruction('a1', 'conversation', [h('<image>\nWhat colour is it?'), g('It is teal.'), h('Is it big?'), g('No, it is tiny.')]),
      instruction('a1', 'detail', [h('<image>\nDescribe the image in detail.'), g('A small teal square fills the frame.')]),
    ],
  };
  const b: InstructionExportable = {
    ...(await makePair('b2', 2, { captions: [caption('web text', { kept: false }), caption('a purple tile', { kept: true })] })),
    instructions: [
      instruction('b2', 'reasoning', [h('Why are tiles square?'), g('So that they tile a plane without gaps.')]),
      instruction('b2', 'conversation', [g('I answer first.'), h('That is wrong.')]),
    ],
  };
  const c = await makePair('c3', 3, { format: 'jpeg' });
  const dropped: InstructionExportable = { ...(await makePair('d4', 4)), fate: { kind: 'dropped', reason: 'no_caption_kept', stage: 'filter' } };
  return [a, b, c, dropped, failedPair('e5')];
}

function readRecords(file: string): LlavaRecord[] {
  const text = readFileSync(file, 'utf8');
  expect(text.endsWith('\n')).toBe(true);
  return JSON.parse(text) as LlavaRecord[];
}

/** LLaVA's structural rules, checked on every written record. */
function expectLlavaShape(record: LlavaRecord): void {
  expect(Object.keys(record).sort()).toEqual(record.image === undefined ? ['conversations', 'id'] : ['conversations', 'id', 'image']);
  expect(record.conversations.length % 2).toBe(0);
  record.conversations.forEach((turn, i) => {
    expect(turn.from).toBe(i % 2 === 0 ? 'human' : 'gpt');
    expect(turn.value.trim().length).toBeGreaterThan(0);
  });
  const images = record.conversations.map((t) => t.value.split('<image>').length - 1);
  if (record.image === undefined) expectEvery(images, (n) => n === 0);
  else expect(images).toEqual([1, ...images.slice(1).map(() => 0)]);
}

function exportStage(store: RunStore, base: string, options: Record<string, unknown>) {
  const parsed = exportSchema.parse({ type: 'llava', out: 'llava', ...options });
  return createExport<InstructionExportable>(parsed, { store, baseDir: base, shard: { index: 0, count: 1 } });
}

describe('LLaVA JSON export', () => {
  it('writes records, images beside them, a stage-1 file, and records a broken record with its reason', async () => {
    const base = tempDir();
    const samples = await makeSamples();
    const { store } = openTestStore(base, samples);
    const events: StageEvent[] = [];
    const out = await runStage(exportStage(store, base, {}), samples, events);
    expect(out).toEqual(samples);

    const dir = join(base, 'llava');
    expect(readdirSync(dir).sort()).toEqual(['images', 'llava-mixed.json', 'llava-stage1.json', 'manifest.json', 'stats.json']);
    const mixed = readRecords(join(dir, 'llava-mixed.json'));
    const stage1 = readRecords(join(dir, 'llava-stage1.json'));
    for (const r of [...mixed, ...stage1]) expectLlavaShape(r);
    expect(mixed.map((r) => r.id)).toEqual(['a1-conversation-0', 'a1-detail-0', 'b2-reasoning-0']);
    expect(mixed[0]).toEqual({
      id: 'a1-conversation-0',
      image: 'a1.png',
      conversations: [h('<image>\nWhat colour is it?'), g('It is teal.'), h('Is it big?'), g('No, it is tiny.')],
    });
    // Text-only: no image field.
    expect(mixed[2]).toEqual({ id: 'b2-reasoning-0', conversations: [h('Why are tiles square?'), g('So that they tile a plane without gaps.')] });
    // Stage 1 from the published (kept) caption of each exported sample.
    expect(stage1.map((r) => [r.id, r.image, r.conversations[1]!.value])).toEqual([
      ['a1-stage1-0', 'a1.png', 'a picture number 1'],
      ['b2-stage1-0', 'b2.png', 'a purple tile'],
      ['c3-stage1-0', 'c3.jpg', 'a picture number 3'],
    ]);

    // Original image bytes, named KEY.ext; nothing for samples that were not exported.
    expect(readdirSync(join(dir, 'images')).sort()).toEqual(['a1.png', 'b2.png', 'c3.jpg']);
    for (const s of samples.slice(0, 3)) {
      expect(sha256(readFileSync(join(dir, 'images', `${s.key}.${s.image!.format === 'jpeg' ? 'jpg' : 'png'}`)))).toBe(s.image!.sha256);
    }

    const manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as JsonManifest;
    expect(manifest.total).toBe(6);
    for (const f of manifest.files) expect(sha256File(join(dir, f.path))).toBe(f.sha256);
    const stats = JSON.parse(readFileSync(join(dir, 'stats.json'), 'utf8')) as ExportStats;
    expect(stats).toMatchObject({ records: 6, samples: 3, verified: null, failed: 1, dropped: 0, reasons: { conversation_alternation: 1 }, tokens: null });
    // The settings the trainer must share: LLaVA-1.5's padded frame by default; no tokenizer, no `legacy`.
    expect(stats.regions).toEqual({ format: 'llava', padToSquare: true });
    expect(stats.legacy).toBeNull();
    const failure = store.db.prepare("SELECT record_id, code, message FROM export_records WHERE status = 'failed'").get() as Record<string, string>;
    expect(failure).toMatchObject({ record_id: 'b2-conversation-0', code: 'conversation_alternation' });
    expect(failure.message).toMatch(/turn 0 is from gpt, expected human/);
    expect(store.handledKeys('llava', ['a1', 'b2', 'c3', 'd4', 'e5'])).toEqual(new Set(['a1', 'b2', 'c3']));
    expect(events.some((e) => e.type === 'log' && /6 records from 3 samples, 1 failed/.test(e.message))).toBe(true);
    expect(events.some((e) => e.type === 'log' && /llava boxes in the padded square frame \(padToSquare\)/.test(e.message))).toBe(true);
  });

  it('writes each record exactly once across an interrupted run and a crash', async () => {
    const base = tempDir();
    const samples: InstructionExportable[] = [];
    for (let i = 0; i < 300; i++) samples.push(await makePair(`k${String(i).padStart(3, '0')}`, i));
    const { store } = openTestStore(base, samples);
    const dir = join(base, 'llava');

    // 1. The consumer stops after 140 samples (Ctrl-C): what was committed is written out.
    let seen = 0;
    for await (const _ of exportStage(store, base, {}).run((async function* () { yield* samples; })(), stageContext())) {
      if (++seen === 140) break;
    }
    const partial = readRecords(join(dir, 'llava-stage1.json'));
    expect(partial.length).toBeGreaterThanOrEqual(128);
    expect(new Set(partial.map((r) => r.id)).size).toBe(partial.length);

    // 2. A crash: the input fails midway; the files keep their last complete state.
    async function* crashing() {
      for (let i = 0; i < 290; i++) yield samples[i]!;
      throw new Error('disk on fire');
    }
    await expect(async () => {
      for await (const _ of exportStage(store, base, {}).run(crashing(), stageContext())) {
        // drain
      }
    }).rejects.toThrow('disk on fire');
    expect(readRecords(join(dir, 'llava-stage1.json'))).toEqual(partial);

    // 3. Resume with everything: each record once, in first-written order.
    await runStage(exportStage(store, base, {}), samples);
    const all = readRecords(join(dir, 'llava-stage1.json'));
    expect(all.map((r) => r.id).sort()).toEqual(samples.map((s) => `${s.key}-stage1-0`).sort());
    expect(all.slice(0, partial.length)).toEqual(partial);
    expect(existsSync(join(dir, 'llava-stage1.json.tmp'))).toBe(false);
    expect(readdirSync(join(dir, 'images'))).toHaveLength(300);
    const stats = JSON.parse(readFileSync(join(dir, 'stats.json'), 'utf8')) as ExportStats;
    expect(stats.records).toBe(300);
  });

  it('writes one file per task with split: task, and only the tasks asked for', async () => {
    const base = tempDir();
    const samples = (await makeSamples()).slice(0, 3);
    const { store } = openTestStore(base, samples);
    await runStage(exportStage(store, base, { split: 'task', tasks: ['conversation', 'detail'] }), samples);
    const dir = join(base, 'llava');
    expect(readdirSync(dir).filter((f) => f.endsWith('.json')).sort()).toEqual(['llava-conversation.json', 'llava-detail.json', 'manifest.json', 'stats.json']);
    expect(readRecords(join(dir, 'llava-detail.json')).map((r) => r.id)).toEqual(['a1-detail-0']);
  });

  it('refuses to continue an export under other settings', async () => {
    const base = tempDir();
    const samples = (await makeSamples()).slice(0, 1);
    const { store } = openTestStore(base, samples);
    await runStage(exportStage(store, base, { split: 'mixed' }), samples);
    await expect(runStage(exportStage(store, base, { split: 'task' }), samples)).rejects.toThrow(ConfigError);
    await expect(runStage(exportStage(store, base, { split: 'task' }), samples)).rejects.toThrow(/split: "mixed" -> "task"/);
  });
});

describe('imported LLaVA records are written as LLaVA prepares them', () => {
  async function imported(): Promise<InstructionExportable[]> {
    const a = await makePair('i1', 1);
    const b = await makePair('i2', 2);
    return [
      { ...a, instructions: [instruction('i1', 'imported', [h('What shape is shown?\n<image>'), g('A square.')])] },
      // preprocess_v1 would split this record's first round in three and mask all of it.
      { ...b, instructions: [instruction('i2', 'imported', [h('<image>\nAct it out: USER: hi ASSISTANT: hello'), g('Done.')])] },
    ];
  }

  it('llava (no tokenizer): <image> moved first as preprocess_multimodal does; a separator in the text fails the record', async () => {
    const base = tempDir();
    const samples = await imported();
    const { store } = openTestStore(base, samples);
    await runStage(exportStage(store, base, { tasks: ['imported'] }), samples);
    const records = readRecords(join(base, 'llava', 'llava-mixed.json'));
    expect(records).toEqual([{ id: 'i1-imported-0', image: 'i1.png', conversations: [h('<image>\nWhat shape is shown?'), g('A square.')] }]);
    const stats = JSON.parse(readFileSync(join(base, 'llava', 'stats.json'), 'utf8')) as ExportStats;
    expect(stats.reasons).toEqual({ separator_in_text: 1 });
    const failure = store.db.prepare("SELECT record_id, message FROM export_records WHERE code = 'separator_in_text'").get() as Record<string, string>;
    expect(failure.record_id).toBe('i2-imported-0');
    expect(failure.message).toMatch(/turn 0 contains " ASSISTANT: "/);
  });

  it(`llava with a tokenizer (${TOKENIZERS.llamaName}): the same, reported by vicuna_v1`, async () => {
    const base = tempDir();
    const samples = await imported();
    const { store } = openTestStore(base, samples);
    await runStage(exportStage(store, base, { tasks: ['imported'], tokenizer: llamaTokenizerDir() }), samples);
    const records = readRecords(join(base, 'llava', 'llava-mixed.json'));
    expect(records.map((r) => r.conversations[0]!.value)).toEqual(['<image>\nWhat shape is shown?']);
    const stats = JSON.parse(readFileSync(join(base, 'llava', 'stats.json'), 'utf8')) as ExportStats;
    expect(stats).toMatchObject({ verified: 1, reasons: { separator_in_text: 1 } });
  });
});

describe('LLaVA-1.5 boxes: the padded square frame by default, stated in stats.json', () => {
  /** A 101x50 image (wide, odd difference) with one grounding record covering the whole image. */
  async function wide(): Promise<InstructionExportable> {
    const bytes = await sharp({ create: { width: 101, height: 50, channels: 3, background: { r: 200, g: 10, b: 10 } } }).png().toBuffer();
    const pair = await makePair('w1', 7);
    return {
      ...pair,
      imageBytes: bytes,
      image: { ...pair.image!, width: 101, height: 50, byteLength: bytes.length, sha256: sha256(bytes) },
      instructions: [instruction('w1', 'grounding', [h('<image>\nWhere is the red area?'), g(regionPlaceholder([0, 0, 101, 50], 'red area'))])],
    };
  }

  // haotian-liu/LLaVA llava/mm_utils.py:152-163 and llava/train/train.py:702-715 (commit c121f04): with
  // `image_aspect_ratio: pad` the trainer pastes the image at (0, (101 - 50) // 2 = 25) into a 101x101 square
  // when it loads it. So the box is [0, 25/101, 1, 75/101] = [0, 0.2475, 1, 0.7426] -> Python round: 0.25, 0.74.
  it('writes fractions of the padded square, leaves the image file as it is, and says so in stats.json', async () => {
    const base = tempDir();
    const sample = await wide();
    const { store } = openTestStore(base, [sample]);
    const events: StageEvent[] = [];
    await runStage(exportStage(store, base, { tasks: ['grounding'] }), [sample], events);
    const [record] = readRecords(join(base, 'llava', 'llava-mixed.json'));
    expect(record!.conversations[1]!.value).toBe('[0.0, 0.25, 1.0, 0.74]');
    // LLaVA pads at train time: the exported image is the original, unpadded bytes.
    const exported = readFileSync(join(base, 'llava', 'images', 'w1.png'));
    expect(sha256(exported)).toBe(sample.image!.sha256);
    expect(await sharp(exported).metadata()).toMatchObject({ width: 101, height: 50 });
    const stats = JSON.parse(readFileSync(join(base, 'llava', 'stats.json'), 'utf8')) as ExportStats;
    expect(stats.regions).toEqual({ format: 'llava', padToSquare: true });
  });

  it('padToSquare: false writes fractions of the image itself, and stats.json says so', async () => {
    const base = tempDir();
    const sample = await wide();
    const { store } = openTestStore(base, [sample]);
    const events: StageEvent[] = [];
    await runStage(exportStage(store, base, { tasks: ['grounding'], padToSquare: false }), [sample], events);
    const [record] = readRecords(join(base, 'llava', 'llava-mixed.json'));
    expect(record!.conversations[1]!.value).toBe('[0.0, 0.0, 1.0, 1.0]');
    const stats = JSON.parse(readFileSync(join(base, 'llava', 'stats.json'), 'utf8')) as ExportStats;
    expect(stats.regions).toEqual({ format: 'llava', padToSquare: false });
    expect(events.some((e) => e.type === 'log' && /llava boxes in the image frame \(padToSquare: false\)/.test(e.message))).toBe(true);
  });

  it('a Qwen export has no LLaVA frame', async () => {
    const base = tempDir();
    const sample = await wide();
    const { store } = openTestStore(base, [sample]);
    await runStage(
      createExport<InstructionExportable>(exportSchema.parse({ type: 'qwen2vl', out: 'q', tasks: ['grounding'] }), { store, baseDir: base, shard: { index: 0, count: 1 } }),
      [sample],
    );
    const stats = JSON.parse(readFileSync(join(base, 'q', 'stats.json'), 'utf8')) as ExportStats;
    expect(stats.regions).toEqual({ format: 'qwen2vl', padToSquare: null });
  });
});

describe('Qwen-family JSON exports render regions in their own format', () => {
  async function grounding(): Promise<InstructionExportable> {
    // 56x56: Qwen exports refuse images with a side under 28 px.
    const pair = await makePair('g1', 5, { size: 56 });
    const { width, height } = pair.image!;
    return {
      ...pair,
      instructions: [
        instruction('g1', 'grounding', [
          h('<image>\nWhere is the square?'),
          g(`The ${regionPlaceholder([0, 0, width / 2, height / 2], 'square')} is at the top left.`),
        ]),
      ],
    };
  }

  it('qwen2vl: <|object_ref_start|>...<|box_start|>(x1,y1),(x2,y2)<|box_end|> with integers in [0, 1000]', async () => {
    const base = tempDir();
    const sample = await grounding();
    const { store } = openTestStore(base, [sample]);
    await runStage(
      createExport<InstructionExportable>(exportSchema.parse({ type: 'qwen2vl', out: 'q', tasks: ['grounding'] }), { store, baseDir: base, shard: { index: 0, count: 1 } }),
      [sample],
    );
    const [record] = readRecords(join(base, 'q', 'qwen2vl-mixed.json'));
    expect(record!.image).toBe('g1.png');
    expect(record!.conversations[1]!.value).toBe(
      'The <|object_ref_start|>square<|object_ref_end|><|box_start|>(0,0),(500,500)<|box_end|> is at the top left.',
    );
  });

  it('qwen25vl: [{"bbox_2d": [...], "label": ...}] in pixels of the smart-resized image', async () => {
    const base = tempDir();
    const sample = await grounding();
    const { store } = openTestStore(base, [sample]);
    await runStage(
      createExport<InstructionExportable>(exportSchema.parse({ type: 'qwen25vl', out: 'q', tasks: ['grounding'] }), { store, baseDir: base, shard: { index: 0, count: 1 } }),
      [sample],
    );
    const [record] = readRecords(join(base, 'q', 'qwen25vl-mixed.json'));
    // A 56x56 image keeps its size (the least area is 56x56): half of it is 28 px.
    expect(record!.conversations[1]!.value).toBe('The [{"bbox_2d": [0, 0, 28, 28], "label": "square"}] is at the top left.');
  });
});

describe('Qwen-family JSON exports write what Qwen\'s finetune code reads', () => {
  function qwenExport(store: RunStore, base: string, options: Record<string, unknown> = {}) {
    return createExport<InstructionExportable>(exportSchema.parse({ type: 'qwen2vl', out: 'q', ...options }), { store, baseDir: base, shard: { index: 0, count: 1 } });
  }
  async function withTurns(key: string, seed: number, size: number, turns: Turn[]): Promise<InstructionExportable> {
    return { ...(await makePair(key, seed, { size })), instructions: [instruction(key, 'conversation', turns)] };
  }

  it('user text stripped around <image> (the JSON carries the text the tokens are made of), verbatim as an option', async () => {
    const turns = [h('Look:\n<image>\n  What colour is it? '), g('\nTeal.'), h(' And the shape?\n'), g('A square.')];
    const sample = await withTurns('t1', 5, 56, turns);
    for (const [options, human] of [
      [{}, ['Look:<image>What colour is it?', 'And the shape?']],
      [{ qwenImageText: 'stripped' }, ['Look:<image>What colour is it?', 'And the shape?']],
      [{ qwenImageText: 'verbatim', name: 'v' }, ['Look:\n<image>\n  What colour is it? ', ' And the shape?\n']],
    ] as const) {
      const base = tempDir();
      const { store } = openTestStore(base, [sample]);
      await runStage(qwenExport(store, base, options), [sample]);
      const [record] = readRecords(join(base, 'q', `${'name' in options ? options.name : 'qwen2vl'}-mixed.json`));
      expect(record!.conversations.map((t) => t.value)).toEqual([human[0], '\nTeal.', human[1], 'A square.']);
    }
  });

  it('refuses images with a side under 28 px (processors refuse or upscale them differently) and <video> in user text', async () => {
    const base = tempDir();
    const ok = await withTurns('k1', 5, 28, [h('<image>\nWhat is it?'), g('A square.')]);
    const small = await withTurns('k2', 6, 27, [h('<image>\nWhat is it?'), g('A square.')]);
    const video = await withTurns('k3', 5, 56, [h('<image>\nIs this a <video> still?'), g('No.')]);
    const samples = [ok, small, video];
    const { store } = openTestStore(base, samples);
    await runStage(qwenExport(store, base, { tasks: ['conversation'] }), samples);
    expect(readRecords(join(base, 'q', 'qwen2vl-mixed.json')).map((r) => r.id)).toEqual(['k1-conversation-0']);
    const stats = JSON.parse(readFileSync(join(base, 'q', 'stats.json'), 'utf8')) as ExportStats;
    expect(stats.reasons).toEqual({ image_too_small: 1, text_video_token: 1 });
  });

  it('qwenImageText is a configuration error on a LLaVA export', async () => {
    const base = tempDir();
    const sample = await withTurns('l1', 5, 56, [h('<image>\nWhat is it?'), g('A square.')]);
    const { store } = openTestStore(base, [sample]);
    const stage = createExport<InstructionExportable>(exportSchema.parse({ type: 'llava', out: 'l', qwenImageText: 'verbatim' }), { store, baseDir: base, shard: { index: 0, count: 1 } });
    await expect(runStage(stage, [sample])).rejects.toThrow(/qwenImageText.*Qwen export/);
  });
});

describe(`LLaVA JSON export with a tokenizer (${TOKENIZERS.llamaName})`, () => {
  it('verifies every record, reports token statistics, and drops what is over maxLength', async () => {
    const base = tempDir();
    const samples = (await makeSamples()).slice(0, 3);
    samples[2] = {
      ...samples[2]!,
      instructions: [
        instruction('c3', 'conversation', [h('<image>\nSay it.'), g('The end </s> of text.')]),
        instruction('c3', 'detail', [h('<image>\nDescribe at length.'), g(Array.from({ length: 60 }, (_, i) => `word${i}`).join(' '))]),
      ],
    };
    const { store } = openTestStore(base, samples);
    await runStage(exportStage(store, base, { tokenizer: llamaTokenizerDir(), maxLength: 150 }), samples);
    const stats = JSON.parse(readFileSync(join(base, 'llava', 'stats.json'), 'utf8')) as ExportStats;
    expect(stats.template).toBe('vicuna_v1');
    expect(stats.stage1Template).toBe('plain');
    // Neither tokenizer config says `legacy`: transformers' default (true) was used, and stats.json says so.
    expect(stats.legacy).toEqual({ value: true, from: 'default' });
    expect(stats.regions).toEqual({ format: 'llava', padToSquare: true });
    expect(stats.reasons).toEqual({ conversation_alternation: 1, text_special_token: 1, over_length: 1 });
    expect(stats.records).toBe(6);
    expect(stats.verified).toBe(6);
    expect(stats.dropped).toBe(1);
    expect(stats.tokens!.count).toBe(7); // written + dropped as too long
    expect(stats.tokens!.max).toBeGreaterThan(150);
    expect(stats.tokens!.overMaxLength).toBe(1);
    expect(stats.tokens!.histogram.reduce((n, b) => n + b.count, 0)).toBe(7);
    const mixed = readRecords(join(base, 'llava', 'llava-mixed.json')).map((r) => r.id);
    expect(mixed).not.toContain('c3-conversation-0');
    expect(mixed).not.toContain('c3-detail-0');
  });

  it("records the tokenizer's legacy mode and where it came from: its config, or the export's option", async () => {
    for (const [options, expected] of [
      [{ tokenizer: MINI_LLAMA_NONLEGACY_CONFIG }, { value: false, from: 'tokenizer_config.json' }],
      [{ tokenizer: MINI_LLAMA_NONLEGACY_CONFIG, legacy: true }, { value: true, from: 'options' }],
    ] as const) {
      const base = tempDir();
      const samples = (await makeSamples()).slice(0, 1);
      const { store } = openTestStore(base, samples);
      const events: StageEvent[] = [];
      await runStage(exportStage(store, base, options), samples, events);
      const stats = JSON.parse(readFileSync(join(base, 'llava', 'stats.json'), 'utf8')) as ExportStats;
      expect(stats.legacy).toEqual(expected);
      expect(events.some((e) => e.type === 'log' && e.message.includes(`tokenizer legacy ${expected.value} (${expected.from})`))).toBe(true);
    }
  });
});
