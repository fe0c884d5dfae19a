/**
 * One build, every training export, checked against what the trainers themselves would build.
 *
 * The built CLI runs one recipe: a COCO source (captions and boxes on wide, tall, odd-sized and square
 * images) and a LLaVA source (imported conversations, one with `<image>` after the question, one whose text
 * holds LLaVA's separators), template synthesis (stage 1, grounding, referring), and the exports qwen2vl,
 * qwen25vl, llava (vicuna_v1, stage 1 with plain) and tokenized WebDataset (vicuna_v1, plain, qwen2_vl).
 * Each written record and each .npy pair is compared with a reference computed in tests/fixtures/
 * trainer-reference.ts from the upstream definitions (LLaVA's preprocess_multimodal / preprocess_v1 /
 * preprocess_plain / expand2square, Qwen's chat template, finetune labels, smart_resize and bbox
 * notebook, Python's round), starting from the records synthesis stored (region placeholders in pixels).
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Turn } from '../../src/core/conversation.js';
import { openDatabase } from '../../src/store/database.js';
import { cleanup, extractWithNodeTar, listWithNodeTar, tempDir } from '../export/fixtures.js';
import { parseNpy } from '../export/npy.js';
import { llamaTokenizerDir, qwenAddedIds, qwenTokenizerDir, TOKENIZERS } from '../fixtures/tokenizers.js';
import {
  LlavaReference,
  llavaBoxRef,
  preprocessMultimodal,
  pyStrip,
  qwen25vlCornersRef,
  qwen2vlGridRef,
  QwenReference,
  smartResizeRef,
} from '../fixtures/trainer-reference.js';

const CLI = resolve(import.meta.dirname, '../../dist/src/cli/main.js');

const h = (value: string): Turn => ({ from: 'human', value });
const g = (value: string): Turn => ({ from: 'gpt', value });

/** Images: wide, tall, an odd size difference (expand2square's integer offset) and a square one. */
const IMAGES = [
  { id: 1, file: 'wide.png', width: 640, height: 480 },
  { id: 2, file: 'tall.png', width: 300, height: 500 },
  { id: 3, file: 'odd.png', width: 101, height: 50 },
  { id: 4, file: 'square.png', width: 224, height: 224 },
];
/** COCO boxes `[x, y, w, h]`, some fractional, some on the edges, two instances of one label. */
const BOXES: { image: number; category: number; bbox: [number, number, number, number] }[] = [
  { image: 1, category: 1, bbox: [64, 48.5, 256, 192] },
  { image: 1, category: 2, bbox: [400, 0, 240, 480] },
  { image: 1, category: 2, bbox: [10.25, 300, 100, 120.75] },
  { image: 2, category: 3, bbox: [30, 40, 90, 100] },
  { image: 2, category: 1, bbox: [0, 250, 300, 250] },
  { image: 3, category: 4, bbox: [0, 0, 101, 50] },
  { image: 3, category: 3, bbox: [50.5, 24.5, 1, 1] },
  { image: 4, category: 4, bbox: [56, 56, 112, 112] },
];
const CATEGORIES = [
  { id: 1, name: 'person' },
  { id: 2, name: 'dog' },
  { id: 3, name: 'cup' },
  { id: 4, name: 'red bar' },
];
const CAPTIONS = ['A person walking two dogs on a lawn.', 'A cup on a table, seen from above.', 'A thin red bar across the frame.', 'A red ball in the middle.'];

/** Conversations of an existing LLaVA file, imported as task `imported`. */
const IMPORTED = [
  { id: 'late', image: 'wide.png', conversations: [h('What shape is shown?\n<image>'), g('A red rectangle.'), h('And how many dogs?'), g('Two.')] },
  { id: 'separator', image: 'tall.png', conversations: [h('<image>\nAct out a chat: USER: hi ASSISTANT: hello'), g('Done, in character.')] },
  { id: 'plain-chat', image: 'odd.png', conversations: [h('<image>\nIs the bar thin?  '), g(' Yes, very thin. ')] },
];

interface JsonRecord {
  id: string;
  image?: string;
  conversations: Turn[];
}

interface Stats {
  records: number;
  verified: number | null;
  failed: number;
  reasons: Record<string, number>;
  regions: { format: string; padToSquare: boolean | null };
  legacy: { value: boolean; from: string } | null;
}

let dir: string;
let build: ReturnType<typeof spawnSync>;
/** Stored instruction records by id (`KEY-TASK-VARIANT`): the export's input, region placeholders in pixels. */
const stored = new Map<string, Turn[]>();
/** Image sizes by sample key. */
const sizes = new Map<string, { width: number; height: number }>();
/** Boxes by sample key, as `x1,y1,x2,y2` strings of the COCO boxes converted by the test. */
const sourceBoxes = new Map<string, Set<string>>();

function readJson<T>(...path: string[]): T {
  return JSON.parse(readFileSync(join(dir, ...path), 'utf8')) as T;
}

/** Records of a JSON export, every part. */
function records(folder: string): JsonRecord[] {
  return readdirSync(join(dir, folder))
    .filter((f) => /-(mixed|stage1)\.json$/.test(f))
    .flatMap((f) => readJson<JsonRecord[]>(folder, f));
}

const REGION = /<region box="([^"]*)"(?:\/>|>([^<]*)<\/region>)/g;
/** A group: labelled regions of one label joined by ", " (how synthesis writes several instances). */
const GROUP = /<region box="[^"]*">([^<]*)<\/region>(?:, <region box="[^"]*">\1<\/region>)*/g;

function corners(text: string): number[] {
  return text.split(',').map(Number);
}

/** Render region placeholders the way each model family's data is written (see the fixture for the formulas). */
function renderRef(text: string, format: 'llava' | 'qwen2vl' | 'qwen25vl', size: { width: number; height: number }): string {
  const { width, height } = size;
  const qwen2 = (c: number[]) => `<|box_start|>(${qwen2vlGridRef(c[0]!, width)},${qwen2vlGridRef(c[1]!, height)}),(${qwen2vlGridRef(c[2]!, width)},${qwen2vlGridRef(c[3]!, height)})<|box_end|>`;
  const qwen25 = (c: number[]) => `[${qwen25vlCornersRef(c, width, height).join(', ')}]`;
  if (format === 'llava') return text.replace(REGION, (_, box: string) => llavaBoxRef(corners(box), width, height));
  const grouped = text.replace(GROUP, (group: string, label: string) => {
    const boxes = [...group.matchAll(REGION)].map((m) => corners(m[1]!));
    return format === 'qwen2vl'
      ? `<|object_ref_start|>${label}<|object_ref_end|>${boxes.map(qwen2).join('')}`
      : `[${boxes.map((c) => `{"bbox_2d": ${qwen25(c)}, "label": ${JSON.stringify(label)}}`).join(', ')}]`;
  });
  return grouped.replace(REGION, (_, box: string) => (format === 'qwen2vl' ? qwen2(corners(box)) : qwen25(corners(box))));
}

/** Qwen's `_build_messages` reads a user turn as stripped segments around `<image>`; the JSON holds that text. */
function qwenUserText(text: string): string {
  return text.split('<image>').map(pyStrip).join('<image>');
}

function keyOf(recordId: string): string {
  return recordId.replace(/-(imported|stage1|grounding|referring)-\d+$/, '');
}

/** One sample per image in WebDataset: records with the image first, `<image>` kept only at the very start. */
function mergeRef(ids: readonly string[]): Turn[] {
  const merged: Turn[] = [];
  for (const id of ids) {
    stored.get(id)!.forEach((turn, i) => {
      let value = turn.value;
      if (merged.length > 0 && i === 0) value = value.replace('<image>\n', '').replace('\n<image>', '').replace('<image>', '');
      merged.push({ from: turn.from, value });
    });
  }
  return merged;
}

/** Every sample of a WebDataset export folder: key.json and the two .npy members. */
function shardSamples(folder: string): { key: string; json: Record<string, unknown>; ids: number[]; labels: number[] }[] {
  const out: { key: string; json: Record<string, unknown>; ids: number[]; labels: number[] }[] = [];
  for (const shard of readdirSync(join(dir, folder)).filter((f) => f.endsWith('.tar')).sort()) {
    const names = listWithNodeTar(join(dir, folder, shard)).map((m) => m.path);
    const x = extractWithNodeTar(join(dir, folder, shard));
    for (const name of names.filter((n) => n.endsWith('.json'))) {
      const key = name.slice(0, -'.json'.length);
      expect(names).toContain(`${key}.input_ids.npy`);
      expect(names).toContain(`${key}.labels.npy`);
      out.push({
        key,
        json: JSON.parse(readFileSync(join(x, name), 'utf8')) as Record<string, unknown>,
        ids: parseNpy(readFileSync(join(x, `${key}.input_ids.npy`))).values,
        labels: parseNpy(readFileSync(join(x, `${key}.labels.npy`))).values,
      });
    }
  }
  return out;
}

beforeAll(async () => {
  dir = tempDir();
  mkdirSync(join(dir, 'images'));
  mkdirSync(join(dir, 'imgs'));
  for (const [i, image] of IMAGES.entries()) {
    const png = await sharp({ create: { width: image.width, height: image.height, channels: 3, background: { r: 200, g: 20 + 40 * i, b: 10 } } }).png().toBuffer();
    writeFileSync(join(dir, 'images', image.file), png);
  }
  for (const image of IMAGES) copyFileSync(join(dir, 'images', image.file), join(dir, 'imgs', image.file));
  const images = IMAGES.map((i) => ({ id: i.id, file_name: i.file, width: i.width, height: i.height }));
  writeFileSync(join(dir, 'captions.json'), JSON.stringify({ images, annotations: CAPTIONS.map((caption, i) => ({ id: 100 + i, image_id: i + 1, caption })) }));
  writeFileSync(
    join(dir, 'instances.json'),
    JSON.stringify({ images, categories: CATEGORIES, annotations: BOXES.map((b, i) => ({ id: 200 + i, image_id: b.image, category_id: b.category, bbox: b.bbox, area: b.bbox[2] * b.bbox[3], iscrowd: 0 })) }),
  );
  writeFileSync(join(dir, 'llava.json'), JSON.stringify(IMPORTED));
  const llama = llamaTokenizerDir();
  const qwen = qwenTokenizerDir();
  const recipe = {
    run: { db: 'run.db' },
    sources: [
      { type: 'coco', name: 'coco', captions: 'captions.json', instances: 'instances.json', images: 'images', keyPrefix: 'coco_' },
      { type: 'llava', name: 'llava-in', path: 'llava.json', images: 'imgs', keyPrefix: 'imp_' },
    ],
    synth: { tasks: ['stage1', 'grounding', 'referring'] },
    export: [
      { type: 'llava', name: 'llava', out: 'llava', tokenizer: llama },
      { type: 'qwen2vl', name: 'qwen2vl', out: 'qwen2vl', tokenizer: qwen },
      { type: 'qwen25vl', name: 'qwen25vl', out: 'qwen25vl', tokenizer: qwen },
      { type: 'webdataset', name: 'wds_v1', out: 'wds_v1', tokenizer: llama, template: 'vicuna_v1' },
      { type: 'webdataset', name: 'wds_plain', out: 'wds_plain', tokenizer: llama, template: 'plain' },
      { type: 'webdataset', name: 'wds_qwen', out: 'wds_qwen', tokenizer: qwen, template: 'qwen2_vl' },
    ],
  };
  writeFileSync(join(dir, 'recipe.json'), JSON.stringify(recipe));
  build = spawnSync(process.execPath, [CLI, 'build', join(dir, 'recipe.json'), '--progress', 'plain'], { encoding: 'utf8', timeout: 240_000 });

  const db = openDatabase(join(dir, 'run.db'), { readonly: true });
  try {
    for (const row of db.prepare("SELECT sample_key, task, variant, conversations_json FROM instructions WHERE status = 'ok'").all() as { sample_key: string; task: string; variant: number; conversations_json: string }[]) {
      stored.set(`${row.sample_key}-${row.task}-${row.variant}`, JSON.parse(row.conversations_json) as Turn[]);
    }
    for (const row of db.prepare("SELECT key, width, height FROM samples WHERE status = 'ok'").all() as { key: string; width: number; height: number }[]) {
      sizes.set(row.key, { width: row.width, height: row.height });
    }
  } finally {
    db.close();
  }
  for (const b of BOXES) {
    const key = `coco_${IMAGES.find((i) => i.id === b.image)!.file.replace('.png', '')}`;
    const [x, y, w, hh] = b.bbox;
    if (!sourceBoxes.has(key)) sourceBoxes.set(key, new Set());
    sourceBoxes.get(key)!.add([x, y, x + w, y + hh].join(','));
  }
}, 300_000);

afterAll(cleanup);

describe(`every training export of one build equals the trainers' own construction (${TOKENIZERS.llamaName}, ${TOKENIZERS.qwenName})`, () => {
  it('builds, and synthesis stored the source boxes in pixels', () => {
    // Every sample is ok; the record with LLaVA's separators fails in the LLaVA exports, which say so.
    expect(build.status, `${build.stderr}`).toBe(0);
    expect(build.stderr).toMatch(/export llava: .*1 failed, 0 dropped \(separator_in_text 1\)/);
    expect([...sizes.keys()].sort()).toEqual(['coco_odd', 'coco_square', 'coco_tall', 'coco_wide', 'imp_late', 'imp_plain-chat', 'imp_separator']);
    const grounding = [...stored].filter(([id]) => /-(grounding|referring)-/.test(id));
    expect(grounding.length).toBe(8); // grounding and referring for each COCO image
    for (const [id, turns] of grounding) {
      for (const turn of turns) for (const m of turn.value.matchAll(REGION)) expect(sourceBoxes.get(keyOf(id))).toContain(corners(m[1]!).join(','));
    }
  });

  it('llava JSON: <image> first, boxes in the padded square as Python rounds them, separators refused; stats say so', () => {
    const written = records('llava');
    const expected = [...stored].filter(([id]) => id !== 'imp_separator-imported-0');
    expect(written.map((r) => r.id).sort()).toEqual(expected.map(([id]) => id).sort());
    for (const record of written) {
      const size = sizes.get(keyOf(record.id))!;
      const reference = preprocessMultimodal(stored.get(record.id)!).map((t) => ({ from: t.from, value: renderRef(t.value, 'llava', size) }));
      expect(record.conversations, record.id).toEqual(reference);
    }
    // The imported question "What shape is shown?\n<image>" is trained as preprocess_multimodal leaves it.
    expect(written.find((r) => r.id === 'imp_late-imported-0')!.conversations[0]!.value).toBe('<image>\nWhat shape is shown?');
    // A box of the wide image: dog [400, 0, 640, 480] -> [0.625, 0.125, 1.0, 0.875] in the 640x640 square.
    expect(written.some((r) => r.conversations.some((t) => t.value.includes('[0.62, 0.12, 1.0, 0.88]')))).toBe(true);
    const stats = readJson<Stats>('llava', 'stats.json');
    expect(stats).toMatchObject({ records: written.length, verified: written.length, failed: 1, reasons: { separator_in_text: 1 } });
    expect(stats.regions).toEqual({ format: 'llava', padToSquare: true });
    expect(stats.legacy).toEqual({ value: true, from: 'default' });
  });

  it('qwen2vl and qwen25vl JSON: the notebook boxes, user text as Qwen reads it', () => {
    for (const format of ['qwen2vl', 'qwen25vl'] as const) {
      const written = records(format);
      expect(written.map((r) => r.id).sort()).toEqual([...stored.keys()].sort());
      for (const record of written) {
        const size = sizes.get(keyOf(record.id))!;
        const reference = stored.get(record.id)!.map((t) => {
          const value = renderRef(t.value, format, size);
          return { from: t.from, value: t.from === 'human' ? qwenUserText(value) : value };
        });
        expect(record.conversations, `${format} ${record.id}`).toEqual(reference);
      }
      const stats = readJson<Stats>(format, 'stats.json');
      expect(stats).toMatchObject({ records: written.length, verified: written.length, failed: 0 });
      expect(stats.regions).toEqual({ format, padToSquare: null });
    }
    // convert_to_qwen2vl_format of dog [400, 0, 640, 480] on 640x480: (625,0),(1000,1000).
    expect(records('qwen2vl').some((r) => r.conversations.some((t) => t.value.includes('<|box_start|>(625,0),(1000,1000)<|box_end|>')))).toBe(true);
  });

  it("WebDataset vicuna_v1: each sample's ids and labels equal preprocess_v1 on its merged conversation", () => {
    const samples = shardSamples('wds_v1');
    const reference = new LlavaReference(llamaTokenizerDir());
    // The sample whose imported record holds LLaVA's separators is left out (LLaVA would mask all of it).
    expect(samples.map((s) => s.key).sort()).toEqual([...sizes.keys()].filter((k) => k !== 'imp_separator').sort());
    for (const sample of samples) {
      const ids = sample.json['conversation_records'] as string[];
      const size = sizes.get(sample.key)!;
      const conversation = preprocessMultimodal(mergeRef(ids)).map((t) => ({ from: t.from, value: renderRef(t.value, 'llava', size) }));
      expect(sample.json['conversations'], sample.key).toEqual(conversation);
      const expected = reference.preprocessV1(conversation, true);
      expect(expected.mismatch).toBe(false);
      expect(sample.ids, sample.key).toEqual(expected.inputIds);
      expect(sample.labels, sample.key).toEqual(expected.labels);
    }
    expect(readJson<Stats>('wds_v1', 'stats.json').reasons).toEqual({ separator_in_text: 1 });
  });

  it('WebDataset plain: ids and labels equal preprocess_plain on the caption', () => {
    const samples = shardSamples('wds_plain');
    const reference = new LlavaReference(llamaTokenizerDir());
    expect(samples.map((s) => s.key).sort()).toEqual(['coco_odd', 'coco_square', 'coco_tall', 'coco_wide']); // the imported records carry no caption
    for (const sample of samples) {
      const [id] = sample.json['conversation_records'] as string[];
      const caption = stored.get(id!)![1]!.value;
      expect(CAPTIONS).toContain(caption);
      const expected = reference.preprocessPlain(caption, true);
      expect(sample.ids, sample.key).toEqual(expected.inputIds);
      expect(sample.labels, sample.key).toEqual(expected.labels);
    }
  });

  it("WebDataset qwen2_vl: ids and labels equal the chat template + Qwen's finetune labels, image pads from smart_resize", () => {
    const samples = shardSamples('wds_qwen');
    const reference = new QwenReference(qwenTokenizerDir(), qwenAddedIds());
    const pad = qwenAddedIds()['<|image_pad|>']!;
    expect(samples.map((s) => s.key).sort()).toEqual([...sizes.keys()].sort());
    for (const sample of samples) {
      const ids = sample.json['conversation_records'] as string[];
      const size = sizes.get(sample.key)!;
      const conversation = mergeRef(ids).map((t) => {
        const value = renderRef(t.value, 'qwen2vl', size);
        return { from: t.from, value: t.from === 'human' ? qwenUserText(value) : value };
      });
      expect(sample.json['conversations'], sample.key).toEqual(conversation);
      const resized = smartResizeRef(size.height, size.width);
      const pads = (resized.height / 28) * (resized.width / 28);
      const expected = reference.preprocess(conversation, pads);
      expect(expected.text).toContain('<|vision_end|>'); // text follows the image directly (no "\n")
      expect(expected.text).not.toContain('<|vision_end|>\n');
      expect(sample.ids.filter((id) => id === pad)).toHaveLength(pads);
      expect(sample.ids, sample.key).toEqual(expected.inputIds);
      expect(sample.labels, sample.key).toEqual(expected.labels);
    }
  });
});
