/**
 * `vlcurate export RUN.db ...`: a real build over a real tar writes the run database; instruction rows are
 * added as synthesis would; the export is then written again from the database alone, images read back
 * from the tar.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Command } from 'commander';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { runBuild } from '../../src/run/run-build.js';
import { registerExport, runExport, type ExportReport } from '../../src/cli/commands/export.js';
import { parseRecipe } from '../../src/config/recipe.js';
import { ConfigError } from '../../src/core/errors.js';
import type { Turn } from '../../src/core/conversation.js';
import { describeSettings, type ExportStats } from '../../src/export/export-stats.js';
import { openDatabase } from '../../src/store/database.js';
import { readExportSamples } from '../../src/store/export-reader.js';
import { makeGoodSamples, sampleMembers, writeTar, type GoodSample } from '../fixtures/make-webdataset.js';
import { llamaTokenizerDir, qwenTokenizerDir, TOKENIZERS } from '../fixtures/tokenizers.js';
import { cleanup, extractWithNodeTar, keyRuns, listWithNodeTar, tempDir } from './fixtures.js';
import { parseNpy } from './npy.js';

afterEach(cleanup);

const h = (value: string): Turn => ({ from: 'human', value });
const g = (value: string): Turn => ({ from: 'gpt', value });

interface Built {
  dir: string;
  db: string;
  tar: string;
  goods: GoodSample[];
}

/** Build a run database from one tar of 6 samples (`height` px high), then add instruction rows. */
async function built(height?: number): Promise<Built> {
  const dir = tempDir();
  const goods = await makeGoodSamples(6, 0, height);
  const tar = join(dir, 'shard-000000.tar');
  await writeTar(tar, goods.flatMap(sampleMembers));
  const loaded = parseRecipe({ run: { db: 'run.db' }, sources: [{ type: 'webdataset', paths: 'shard-000000.tar' }] }, 'test', dir);
  for await (const _ of runBuild(loaded, { shard: { index: 0, count: 1 }, signal: new AbortController().signal })) {
    // drain the events
  }
  const db = openDatabase(join(dir, 'run.db'));
  const insert = db.prepare(
    `INSERT INTO instructions (sample_key, task, variant, status, code, conversations_json, created_at) VALUES (?, ?, ?, ?, ?, ?, '2024-01-01')`,
  );
  insert.run(goods[0]!.key, 'conversation', 0, 'ok', null, JSON.stringify([h('<image>\nWhat is shown?'), g('A noisy pattern.')]));
  insert.run(goods[0]!.key, 'detail', 0, 'rejected', 'leak', JSON.stringify([h('<image>\nDescribe.'), g('The caption says...')]));
  insert.run(goods[1]!.key, 'reasoning', 0, 'ok', null, JSON.stringify([h('<image>\nWhy so noisy?'), g('Gaussian noise was added.')]));
  insert.run(goods[2]!.key, 'conversation', 0, 'ok', null, '{not json');
  db.close();
  return { dir, db: join(dir, 'run.db'), tar, goods };
}

const quiet = { log: () => undefined };

/** `vlcurate ARGS` through the registered export command: its exit code and what it printed on stdout. */
async function runRegistered(args: string[]): Promise<{ exit: number; writes: string[] }> {
  let exit = -1;
  const program = new Command('vlcurate').exitOverride();
  registerExport(program, (code) => (exit = code));
  const writes: string[] = [];
  const stdout = vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => {
    writes.push(String(chunk));
    return true;
  });
  const stderr = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
  try {
    await program.parseAsync(['node', 'vlcurate', ...args]);
  } finally {
    stdout.mockRestore();
    stderr.mockRestore();
  }
  return { exit, writes };
}

describe('export reader', () => {
  it('reads samples back with captions, facts and accepted instructions, ordered by image reference', async () => {
    const { db, goods, tar } = await built();
    const samples = [];
    for await (const s of readExportSamples(db, { batchSize: 4 })) samples.push(s);
    expect(samples.map((s) => s.key)).toEqual(goods.map((g) => g.key));
    expect(samples[0]!.imageRef).toBe(`tar:${tar}#${goods[0]!.key}.jpg`);
    expect(samples[0]!.image).toMatchObject({ width: 32, height: 24, format: 'jpeg' });
    expect(samples[0]!.captions.map((c) => c.text)).toContain('a photo of thing number 0');
    expect(samples[0]!.instructions!.map((i) => i.task)).toEqual(['conversation']); // the rejected one stays out
    expect(samples[2]!.instructions![0]!.conversations).toBe('{not json');
    expect(samples[3]!.instructions).toBeUndefined();
  });
});

describe('vlcurate export', () => {
  it('writes LLaVA JSON from the database with images read back from the tar; a second run changes nothing', async () => {
    const { dir, db, goods } = await built();
    const out = join(dir, 'llava');
    const first = await runExport(db, { format: 'llava', out }, quiet);
    expect(first.code).toBe(1); // the unparseable instruction row is a failed record
    expect(first.report).toMatchObject({ export: 'llava', samplesRead: 6, samplesExported: 6, imageFailures: {} });
    expect(first.report.stats).toMatchObject({ records: 8, failed: 1, reasons: { conversation_invalid: 1 } });
    const mixed = JSON.parse(readFileSync(join(out, 'llava-mixed.json'), 'utf8')) as { id: string; image: string }[];
    expect(mixed.map((r) => r.id)).toEqual([`${goods[0]!.key}-conversation-0`, `${goods[1]!.key}-reasoning-0`]);
    for (const good of goods) {
      expect(Buffer.compare(readFileSync(join(out, 'images', `${good.key}.${good.ext}`)), good.image)).toBe(0);
    }
    const before = readFileSync(join(out, 'llava-stage1.json'));
    const second = await runExport(db, { format: 'llava', out }, quiet);
    expect(second.report.samplesExported).toBe(6);
    expect(second.report.stats!.records).toBe(8);
    expect(Buffer.compare(readFileSync(join(out, 'llava-stage1.json')), before)).toBe(0);
  });

  it('refuses other settings under the same name, and starts over with --fresh', async () => {
    const { dir, db } = await built();
    const out = join(dir, 'llava');
    await runExport(db, { format: 'llava', out, tasks: 'stage1' }, quiet);
    await expect(runExport(db, { format: 'llava', out, tasks: 'conversation' }, quiet)).rejects.toThrow(ConfigError);
    expect(readdirSync(join(out, 'images'))).toHaveLength(6);
    const fresh = await runExport(db, { format: 'llava', out, tasks: 'conversation', fresh: true }, quiet);
    // Starting over leaves only the images of what it writes now (one conversation record).
    expect(readdirSync(join(out, 'images'))).toHaveLength(1);
    expect(fresh.report.stats).toMatchObject({ records: 1, failed: 1 });
    expect(readdirSync(out).filter((f) => f.endsWith('.json')).sort()).toEqual(['llava-mixed.json', 'manifest.json', 'stats.json']);
  });

  it('refuses to continue a WebDataset export into another folder (it would write nothing there)', async () => {
    const { dir, db } = await built();
    const first = await runExport(db, { format: 'webdataset', out: join(dir, 'a') }, quiet);
    expect(first.report).toMatchObject({ export: 'webdataset', samplesExported: 6, stats: null });
    await expect(runExport(db, { format: 'webdataset', out: join(dir, 'b') }, quiet)).rejects.toThrow(/was written to .*\/a, not .*\/b/);
    const other = await runExport(db, { format: 'webdataset', out: join(dir, 'b'), name: 'copy' }, quiet);
    expect(other.report.samplesExported).toBe(6);
    expect(readdirSync(join(dir, 'b')).filter((f) => f.endsWith('.tar'))).toHaveLength(1);
  });

  it('--name alone continues an export with the settings it recorded; an unknown name lists the known ones', async () => {
    const { dir, db } = await built();
    const out = join(dir, 'llava');
    await runExport(db, { format: 'llava', out, tasks: 'stage1' }, quiet);
    const before = readFileSync(join(out, 'llava-stage1.json'));
    const lines: string[] = [];
    const again = await runExport(db, { name: 'llava' }, { log: (line) => lines.push(line) });
    expect(again.report).toMatchObject({ export: 'llava', format: 'llava', out, samplesExported: 6 });
    expect(lines).toContain(`export llava: continuing with the settings from what vlcurate export recorded (llava -> ${out})`);
    expect(Buffer.compare(readFileSync(join(out, 'llava-stage1.json')), before)).toBe(0);

    await runExport(db, { format: 'webdataset', out: join(dir, 'w'), maxCount: '2' }, quiet);
    const wds = await runExport(db, { name: 'webdataset' }, quiet);
    expect(wds.report).toMatchObject({ format: 'webdataset', out: join(dir, 'w'), samplesExported: 6 });
    expect(readdirSync(join(dir, 'w')).filter((f) => f.endsWith('.tar'))).toHaveLength(3);

    await expect(runExport(db, { name: 'nope' }, quiet)).rejects.toThrow(/records no settings of an export "nope" \(it knows "llava", "webdataset"\)/);
    await expect(runExport(db, { name: 'llava', tasks: 'detail' }, quiet)).rejects.toThrow(/--tasks: with --name alone export "llava" continues with its recorded settings/);
    await expect(runExport(db, { format: 'llava' }, quiet)).rejects.toThrow(/--out: expected the output folder/);
  });

  it('holds back samples whose synthesis is unfinished, as the build does', async () => {
    const { dir, db, goods } = await built();
    const handle = openDatabase(db);
    handle
      .prepare(`INSERT INTO instructions (sample_key, task, variant, status, code, message, created_at) VALUES (?, 'detail', 0, 'failed', ?, ?, '2024-01-01')`)
      .run(goods[3]!.key, 'budget_exhausted', '--max-cost reached');
    handle.close();
    const { report } = await runExport(db, { format: 'llava', out: join(dir, 'l'), tasks: 'stage1' }, quiet);
    expect(report.deferred).toBe(1);
    expect(report.samplesExported).toBe(5);
    const stage1 = JSON.parse(readFileSync(join(dir, 'l', 'llava-stage1.json'), 'utf8')) as { id: string }[];
    expect(stage1.map((r) => r.id)).not.toContain(`${goods[3]!.key}-stage1-0`);
  });

  it('reports images that cannot be read back and exits 1', async () => {
    const { dir, db, goods, tar } = await built();
    // The shard changes after the build: one member gone, one image replaced.
    const changed = goods.slice(1).map((s, i) => (i === 0 ? { ...s, image: goods[5]!.image } : s));
    await writeTar(tar, changed.flatMap(sampleMembers));
    const { code, report } = await runExport(db, { format: 'llava', out: join(dir, 'x'), tasks: 'stage1' }, quiet);
    expect(code).toBe(1);
    expect(report.imageFailures).toEqual({ image_missing: 1, image_changed: 1 });
    expect(report.samplesExported).toBe(4);
  });

  it('validates flags with the export schema, naming the flag', async () => {
    const { dir, db } = await built();
    await expect(runExport(db, { format: 'tfrecord', out: dir }, quiet)).rejects.toThrow(/--format: expected one of webdataset \| llava \| qwen2vl \| qwen25vl/);
    await expect(runExport(db, { format: 'llava', out: dir, split: 'sideways' }, quiet)).rejects.toThrow(/--split/);
    await expect(runExport(db, { format: 'llava', out: dir, maxLength: 'long' }, quiet)).rejects.toThrow(/--max-length: expected an integer/);
    await expect(runExport(join(dir, 'nope.db'), { format: 'llava', out: dir }, quiet)).rejects.toThrow(/does not exist/);
    await expect(runExport(db, { format: 'llava', out: dir, padToSquare: 'yes' }, quiet)).rejects.toThrow(/--pad-to-square: expected true or false, got "yes"/);
    await expect(runExport(db, { format: 'llava', out: dir, legacy: '0' }, quiet)).rejects.toThrow(/--legacy: expected true or false, got "0"/);
    await expect(runExport(db, { format: 'qwen2vl', out: dir, minPixels: 'lots' }, quiet)).rejects.toThrow(/--min-pixels: expected an integer, got "lots"/);
    await expect(runExport(db, { format: 'qwen2vl', out: dir, qwenImageText: 'sideways' }, quiet)).rejects.toThrow(/--qwen-image-text/);
  });

  it('Qwen settings (--min-pixels, --max-pixels, --qwen-image-text) reach the export, stats.json and the printed summary', async () => {
    const { dir, db } = await built(30);
    const out = join(dir, 'qwen');
    // The sizes Qwen's own sft scripts pass (qwen-vl-finetune/scripts/sft.sh: --max_pixels 50176 --min_pixels 784).
    const { exit, writes } = await runRegistered(['export', db, '--format', 'qwen25vl', '--out', out, '--tasks', 'conversation', '--min-pixels', '784', '--max-pixels', '50176', '--qwen-image-text', 'verbatim']);
    expect(exit).toBe(1); // the bad instruction row
    expect(writes.join('')).toContain('trainer must match: qwen min_pixels 784, max_pixels 50176 (options), user text verbatim after <|vision_end|> (qwenImageText: verbatim)');
    const stats = JSON.parse(readFileSync(join(out, 'stats.json'), 'utf8')) as ExportStats;
    expect(stats).toMatchObject({ visionPixels: { minPixels: 784, maxPixels: 50176, from: 'options' }, qwenImageText: 'verbatim' });
    const records = JSON.parse(readFileSync(join(out, 'qwen25vl-mixed.json'), 'utf8')) as { conversations: Turn[] }[];
    expect(records[0]!.conversations[0]!.value).toBe('<image>\nWhat is shown?');

    // The default: stripped, the pixel bounds' source named; a Qwen2-VL JSON without a tokenizer does not
    // depend on the bounds, so the summary leaves them out.
    const q2 = await runExport(db, { format: 'qwen2vl', out: join(dir, 'q2'), name: 'q2', tasks: 'conversation' }, quiet);
    expect(q2.report.stats).toMatchObject({ visionPixels: { minPixels: 3136, maxPixels: 1003520, from: 'defaults' }, qwenImageText: 'stripped' });
    expect(describeSettings(q2.report.stats!)).toEqual(['user text right after <|vision_end|> (qwenImageText: stripped)']);
    const stripped = JSON.parse(readFileSync(join(dir, 'q2', 'q2-mixed.json'), 'utf8')) as { conversations: Turn[] }[];
    expect(stripped[0]!.conversations[0]!.value).toBe('<image>What is shown?');
    const tokenized = await runExport(db, { format: 'qwen2vl', out: join(dir, 'q3'), name: 'q3', tasks: 'conversation', tokenizer: qwenTokenizerDir() }, quiet);
    expect(describeSettings(tokenized.report.stats!)).toEqual(['qwen min_pixels 3136, max_pixels 1003520 (defaults)', 'user text right after <|vision_end|> (qwenImageText: stripped)']);
    // A LLaVA export has no Qwen settings to match.
    const llava = await runExport(db, { format: 'llava', out: join(dir, 'l'), tasks: 'conversation' }, quiet);
    expect(llava.report.stats!.qwenImageText).toBeNull();
  });

  it('--pad-to-square false and --legacy reach the export and its stats', async () => {
    const { dir, db } = await built();
    const out = join(dir, 'flat');
    const { report } = await runExport(db, { format: 'llava', out, tasks: 'stage1', padToSquare: 'false', legacy: 'false', tokenizer: llamaTokenizerDir() }, quiet);
    expect(report.stats).toMatchObject({ regions: { format: 'llava', padToSquare: false }, legacy: { value: false, from: 'options' } });
  });

  it(`registered as a command: WebDataset with a tokenizer (${TOKENIZERS.qwenName}), --json report`, async () => {
    // Qwen exports refuse images with a side under 28 px: these are 32-37 x 30.
    const { dir, db, goods } = await built(30);
    const out = join(dir, 'wds');
    const { exit, writes } = await runRegistered(['export', db, '--format', 'webdataset', '--out', out, '--tokenizer', qwenTokenizerDir(), '--tasks', 'conversation,reasoning', '--json']);
    const report = JSON.parse(writes.join('')) as ExportReport;
    expect(exit).toBe(1); // the bad instruction row, and samples with nothing to tokenize
    expect(report.stats).toMatchObject({ format: 'webdataset', template: 'qwen2_vl', records: 2, verified: 2 });
    expect(report.stats!.reasons).toEqual({ no_conversation: 4, conversation_invalid: 1 });
    const shard = readdirSync(out).find((f) => f.endsWith('.tar'))!;
    const names = listWithNodeTar(join(out, shard)).map((m) => m.path);
    expect(keyRuns(names)).toEqual([goods[0]!.key, goods[1]!.key]);
    const x = extractWithNodeTar(join(out, shard));
    const ids = parseNpy(readFileSync(join(x, `${goods[0]!.key}.input_ids.npy`)));
    const labels = parseNpy(readFileSync(join(x, `${goods[0]!.key}.labels.npy`)));
    expect(ids.shape).toEqual(labels.shape);
    expect(labels.values.filter((l) => l !== -100).length).toBeGreaterThan(3);
    expect(Buffer.compare(readFileSync(join(x, `${goods[0]!.key}.jpg`)), goods[0]!.image)).toBe(0);
  });
});
