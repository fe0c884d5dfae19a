/**
 * WebDataset shards with conversations and loss masks, read back with node-tar (an independent tar reader)
 * and the .npy members with a parser written from the published format (./npy.ts).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { InstructionSample, Turn } from '../../src/core/conversation.js';
import type { ExportStats } from '../../src/export/export-stats.js';
import type { InstructionExportable } from '../../src/export/instruction-records.js';
import { IGNORE_INDEX } from '../../src/export/templates/index.js';
import { mergeConversations } from '../../src/export/webdataset-conversations.js';
import { createWebDatasetExport, webdatasetExportSchema } from '../../src/export/webdataset-export.js';
import { ChatTokenizer } from '../../src/tokenizers/chat-tokenizer.js';
import type { RunStore } from '../../src/store/run-store.js';
import { llamaTokenizerDir, qwenAddedIds, qwenTokenizerDir, TOKENIZERS } from '../fixtures/tokenizers.js';
import { cleanup, extractWithNodeTar, keyRuns, listWithNodeTar, makePair, openTestStore, runStage, tempDir } from './fixtures.js';
import { parseNpy } from './npy.js';
import { expectEvery } from '../expect-every.js';

afterEach(cleanup);

const h = (value: string): Turn => ({ from: 'human', value });
const g = (value: string): Turn => ({ from: 'gpt', value });

function withInstructions(sample: InstructionExportable, ...list: [InstructionSample['task'], Turn[]][]): InstructionExportable {
  return { ...sample, instructions: list.map(([task, conversations], variant) => ({ sampleKey: sample.key, task, variant, conversations })) };
}

async function samples(size = 12): Promise<InstructionExportable[]> {
  return [
    withInstructions(
      await makePair('w1', 1, { size }),
      ['conversation', [h('<image>\nWhat colour is the square?'), g('Teal.'), h('Any text in it?'), g('No — nothing at all, ünïcødé aside: 你好.')]],
      ['detail', [h('Describe the image.\n<image>'), g('A flat teal square on its own.')]],
    ),
    withInstructions(await makePair('w2', 2, { size }), ['reasoning', [h('Why is the sky blue?'), g('Rayleigh scattering.')]]),
    await makePair('w3', 3, { size }), // no instructions
  ];
}

function wdsStage(store: RunStore, base: string, options: Record<string, unknown>) {
  const parsed = webdatasetExportSchema.parse({ type: 'webdataset', out: 'wds', maxCount: 2, ...options });
  return createWebDatasetExport<InstructionExportable>(parsed, { store, baseDir: base, shard: { index: 0, count: 1 } });
}

/** Every member of every shard, extracted by node-tar. */
function readShards(dir: string): { names: string[]; files: Map<string, Buffer> } {
  const names: string[] = [];
  const files = new Map<string, Buffer>();
  for (const shard of readdirSync(dir).filter((f) => f.endsWith('.tar')).sort()) {
    const listed = listWithNodeTar(join(dir, shard)).map((m) => m.path);
    names.push(...listed);
    const x = extractWithNodeTar(join(dir, shard));
    for (const name of listed) files.set(name, readFileSync(join(x, name)));
  }
  return { names, files };
}

/** Decoded runs of trained positions. */
function trainedRuns(ids: number[], labels: number[], tok: ChatTokenizer): string[] {
  const runs: number[][] = [];
  labels.forEach((label, i) => {
    if (label === IGNORE_INDEX) return;
    expect(label).toBe(ids[i]);
    const last = runs[runs.length - 1];
    if (last && last[last.length - 1] === i - 1) last.push(i);
    else runs.push([i]);
  });
  return runs.map((r) => tok.decode(r.map((i) => ids[i]!)));
}

describe('merging instruction records into one conversation per image', () => {
  it('puts records with the image first and keeps <image> only at the very start', () => {
    const merged = mergeConversations([
      { conversations: [h('Text only?'), g('Yes.')], hasImage: false },
      { conversations: [h('<image>\nFirst.'), g('One.')], hasImage: true },
      { conversations: [h('Second.\n<image>'), g('Two.')], hasImage: true },
    ]);
    expect(merged).toEqual([h('<image>\nFirst.'), g('One.'), h('Second.'), g('Two.'), h('Text only?'), g('Yes.')]);
  });
});

describe('WebDataset with conversations, no tokenizer', () => {
  it('adds the merged conversation to key.json and writes every sample as before', async () => {
    const base = tempDir();
    const input = await samples();
    const { store } = openTestStore(base, input);
    await runStage(wdsStage(store, base, {}), input);
    const { names, files } = readShards(join(base, 'wds'));
    expect(keyRuns(names)).toEqual(['w1', 'w2', 'w3']);
    expect(names.filter((n) => n.endsWith('.npy'))).toEqual([]);
    const w1 = JSON.parse(files.get('w1.json')!.toString('utf8')) as Record<string, unknown>;
    expect(w1.conversations).toEqual([
      h('<image>\nWhat colour is the square?'),
      g('Teal.'),
      h('Any text in it?'),
      g('No — nothing at all, ünïcødé aside: 你好.'),
      h('Describe the image.'),
      g('A flat teal square on its own.'),
    ]);
    expect(w1.conversation_records).toEqual(['w1-conversation-0', 'w1-detail-1']);
    expect(JSON.parse(files.get('w3.json')!.toString('utf8'))).not.toHaveProperty('conversations');
    // No conversation option set: nothing recorded, no stats file (the plain export is unchanged).
    expect(readdirSync(join(base, 'wds'))).not.toContain('stats.json');
  });

  it('with a conversation option, leaves out a sample that has no conversation (no_conversation), as with a tokenizer', async () => {
    const base = tempDir();
    const input = await samples();
    const { store } = openTestStore(base, input);
    await runStage(wdsStage(store, base, { tasks: ['conversation', 'detail', 'reasoning'] }), input);
    const { names, files } = readShards(join(base, 'wds'));
    expect(keyRuns(names)).toEqual(['w1', 'w2']);
    // The obvious loader of a conversation export reads json["conversations"]: every sample has it.
    for (const key of ['w1', 'w2']) expect(JSON.parse(files.get(`${key}.json`)!.toString('utf8'))).toHaveProperty('conversations');
    const stats = JSON.parse(readFileSync(join(base, 'wds', 'stats.json'), 'utf8')) as ExportStats;
    expect(stats.reasons).toEqual({ no_conversation: 1 });
  });
});

describe(`WebDataset with input_ids.npy / labels.npy (${TOKENIZERS.llamaName}, ${TOKENIZERS.qwenName})`, () => {
  let qwen: ChatTokenizer;
  let llama: ChatTokenizer;
  /** Added token -> id, from the Qwen folder's tokenizer_config.json (Qwen2: <|image_pad|> 151655). */
  const added = qwenAddedIds();
  beforeAll(async () => {
    qwen = await ChatTokenizer.load(qwenTokenizerDir());
    llama = await ChatTokenizer.load(llamaTokenizerDir());
  });

  it('qwen2_vl: int32 .npy members whose masks train exactly the answers, image pads from smart_resize', async () => {
    const base = tempDir();
    // A 12 px image is refused for Qwen (transformers' processor raised for a side under 28 px, later
    // versions and qwen-vl-utils upscale it differently).
    const tiny = withInstructions(await makePair('w4', 4), ['detail', [h('<image>\nDescribe it.'), g('A dot.')]]);
    const input = [...(await samples(40)), tiny];
    const { store } = openTestStore(base, input);
    await runStage(wdsStage(store, base, { tokenizer: qwenTokenizerDir() }), input);
    const { names, files } = readShards(join(base, 'wds'));
    // w3 has no record of the default tasks: its caption is its conversation (stage 1). w4 has an image
    // Qwen cannot size: left out with a recorded reason.
    expect(keyRuns(names)).toEqual(['w1', 'w2', 'w3']);
    expect(names.slice(0, 5)).toEqual(['w1.input_ids.npy', 'w1.json', 'w1.labels.npy', 'w1.png', 'w1.txt']);

    const ids = parseNpy(files.get('w1.input_ids.npy')!);
    const labels = parseNpy(files.get('w1.labels.npy')!);
    expect(ids.shape).toEqual(labels.shape);
    expect(ids.descr).toBe('<i4');
    const json = JSON.parse(files.get('w1.json')!.toString('utf8')) as { tokens: { count: number; truncated: boolean }; width: number; height: number };
    expect(json.tokens).toEqual({ count: ids.values.length, truncated: false });
    // A 41x40 image: smart_resize scales it up to the least area, 56x84: 2 x 3 = 6 visual tokens.
    expect(ids.values.filter((id) => id === added['<|image_pad|>'])).toHaveLength(6);
    expect(trainedRuns(ids.values, labels.values, qwen)).toEqual([
      'Teal.<|im_end|>\n',
      'No — nothing at all, ünïcødé aside: 你好.<|im_end|>\n',
      'A flat teal square on its own.<|im_end|>\n',
    ]);
    // The system block: up to the second <|im_start|> (Qwen2: 11 tokens).
    expect(ids.values[0]).toBe(added['<|im_start|>']);
    const user = ids.values.indexOf(added['<|im_start|>']!, 1);
    expect(qwen.decode(ids.values.slice(0, user))).toBe('<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n');
    if (TOKENIZERS.kind === 'real') expect(user).toBe(11);

    const w2 = parseNpy(files.get('w2.input_ids.npy')!);
    expect(w2.values).not.toContain(added['<|vision_start|>']); // text-only: no vision tokens
    const w3 = files.get('w3.json')!.toString('utf8');
    expect(JSON.parse(w3).conversation_records).toEqual(['w3-stage1-0']);
    expect(trainedRuns(parseNpy(files.get('w3.input_ids.npy')!).values, parseNpy(files.get('w3.labels.npy')!).values, qwen)).toEqual(['a picture number 3<|im_end|>\n']);

    const stats = JSON.parse(readFileSync(join(base, 'wds', 'stats.json'), 'utf8')) as ExportStats;
    expect(stats).toMatchObject({ format: 'webdataset', template: 'qwen2_vl', records: 3, samples: 3, verified: 3, failed: 1, reasons: { image_too_small: 1 } });
    expect(stats.tokens!.count).toBe(3);
    expect(stats.tokens!.max).toBe(ids.values.length);
  });

  it('vicuna_v1 with -200 image placeholders, and truncation at maxLength', async () => {
    const base = tempDir();
    const input = (await samples()).slice(0, 2);
    const { store } = openTestStore(base, input);
    await runStage(wdsStage(store, base, { tokenizer: llamaTokenizerDir(), template: 'vicuna_v1', maxLength: 90, overLength: 'truncate' }), input);
    const { files } = readShards(join(base, 'wds'));
    const ids = parseNpy(files.get('w1.input_ids.npy')!).values;
    const labels = parseNpy(files.get('w1.labels.npy')!).values;
    // Cut after the last whole answer within 90 tokens: the sequence ends with that answer's </s>.
    expect(ids.length).toBeLessThanOrEqual(90);
    expect(ids.at(-1)).toBe(llama.eosId);
    expect(labels.at(-1)).toBe(llama.eosId);
    expect(ids.filter((id) => id === -200)).toHaveLength(1);
    expect(ids[0]).toBe(llama.bosId);
    const runs = trainedRuns(ids, labels, llama);
    expect(runs[0]).toBe(' Teal.</s>');
    expectEvery(runs, (run) => run.endsWith('</s>'));
    const json = JSON.parse(files.get('w1.json')!.toString('utf8')) as { tokens: { count: number; truncated: boolean }; conversations: { from: string; value: string }[] };
    expect(json.tokens).toEqual({ count: ids.length, truncated: true });
    // The text keeps the same whole rounds as the tokens, ending with the last kept answer.
    expect(json.conversations).toHaveLength(2 * runs.length);
    expect(` ${json.conversations.at(-1)!.value}</s>`).toBe(runs.at(-1));
    const stats = JSON.parse(readFileSync(join(base, 'wds', 'stats.json'), 'utf8')) as ExportStats;
    expect(stats.truncated).toBe(1);
    expect(stats.tokens!.overMaxLength).toBe(1);
  });

  it('plain: stage-1 records from captions only', async () => {
    const base = tempDir();
    const input = await samples();
    const { store } = openTestStore(base, input);
    await runStage(wdsStage(store, base, { tokenizer: llamaTokenizerDir(), template: 'plain' }), input);
    const { files } = readShards(join(base, 'wds'));
    for (const key of ['w1', 'w2', 'w3']) {
      const ids = parseNpy(files.get(`${key}.input_ids.npy`)!).values;
      const labels = parseNpy(files.get(`${key}.labels.npy`)!).values;
      expect(ids.slice(0, 2)).toEqual([1, -200]);
      expect(trainedRuns(ids, labels, llama)).toEqual([` a picture number ${key.slice(1)}\n`]);
    }
  });
});
