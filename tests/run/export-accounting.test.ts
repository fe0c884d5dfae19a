/**
 * Every sample accounted for, through the built CLI: an export that ends up empty, or that leaves most of
 * what reached it out for one reason, says so in the run summary and the build exits 1; the defaults do not
 * make that the normal outcome (a WebDataset export with a tokenizer on a build without synthesis writes
 * each sample's caption as a stage-1 conversation instead of leaving every sample out).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import type { PipelineEvent, RunSummary } from '../../src/core/events.js';
import { runCli } from '../e2e/helpers.js';
import { cleanup, tempDir } from '../export/fixtures.js';
import { makeGoodSamples, makeImage, sampleMembers, writeTar } from '../fixtures/make-webdataset.js';
import { MINI_LLAMA } from '../fixtures/tokenizers.js';

afterEach(cleanup);

async function build(dir: string, exportLine: string): Promise<{ code: number | null; summary: RunSummary; stderr: string; plain: string }> {
  writeFileSync(join(dir, 'recipe.yaml'), ['run: { db: run.db }', 'sources: [{ type: webdataset, paths: in.tar }]', 'export:', `  - ${exportLine}`, ''].join('\n'));
  const json = await runCli(['build', 'recipe.yaml', '--progress', 'json'], { cwd: dir });
  const events = json.stdout.trim().split('\n').map((line) => JSON.parse(line) as PipelineEvent);
  const end = events.find((e): e is Extract<PipelineEvent, { type: 'run-end' }> => e.type === 'run-end');
  expect(end, json.stderr).toBeDefined();
  // The same run again with the plain log: nothing new to do, the summary (from the database) is the same.
  const plain = await runCli(['build', 'recipe.yaml', '--progress', 'plain'], { cwd: dir });
  expect(plain.code).toBe(json.code);
  return { code: json.code, summary: end!.summary, stderr: json.stderr, plain: plain.stderr };
}

describe('exports that leave samples out', () => {
  it('a WebDataset export with a tokenizer and no synthesis writes each sample`s caption as a stage-1 conversation (exit 0)', async () => {
    const dir = tempDir();
    await writeTar(join(dir, 'in.tar'), (await makeGoodSamples(4)).flatMap(sampleMembers));
    const run = await build(dir, `{ type: webdataset, out: wds, tokenizer: ${JSON.stringify(MINI_LLAMA)} }`);
    expect(run.code, run.stderr).toBe(0);
    expect(run.summary.exported).toEqual({ wds: 4 });
    expect(JSON.parse(readFileSync(join(dir, 'wds', 'manifest.json'), 'utf8')).total).toBe(4);
    expect(run.summary.exportProblems ?? []).toEqual([]);
  });

  it('an export that ends up empty says so and exits 1', async () => {
    const dir = tempDir();
    // Images without any caption: no stage-1 record, no conversation to tokenize.
    const members = [];
    for (let i = 0; i < 3; i++) members.push({ name: `s${i}.png`, data: await makeImage(16, 12, 'png', i) });
    await writeTar(join(dir, 'in.tar'), members);
    const run = await build(dir, `{ type: webdataset, out: wds, tokenizer: ${JSON.stringify(MINI_LLAMA)} }`);
    expect(run.code).toBe(1);
    expect(run.summary.samples).toMatchObject({ total: 3, ok: 3, failed: 0 });
    expect(run.summary.exported).toEqual({ wds: 0 });
    expect(run.summary.exportProblems).toEqual([
      { export: 'wds', kind: 'empty', written: 0, total: 3, reason: 'no_conversation', count: 3, message: expect.stringMatching(/^export wds holds no sample: 3 of 3 left out for no_conversation \(.+\)/) },
    ]);
    expect(run.plain).toMatch(/^export wds holds no sample: 3 of 3 left out for no_conversation/m);
  });

  it('an export that leaves most samples out for one reason says so and exits 1', async () => {
    const dir = tempDir();
    await writeTar(join(dir, 'in.tar'), (await makeGoodSamples(4)).flatMap(sampleMembers));
    const run = await build(dir, `{ type: webdataset, out: wds, tokenizer: ${JSON.stringify(MINI_LLAMA)}, maxLength: 8 }`);
    expect(run.code).toBe(1);
    expect(run.summary.exportProblems).toHaveLength(1);
    expect(run.summary.exportProblems![0]).toMatchObject({ export: 'wds', reason: 'over_length', count: 4, total: 4 });
    expect(run.plain).toMatch(/^export wds holds no sample: 4 of 4 left out for over_length/m);
  });

  it('an export that writes some samples but leaves most out for one reason says so and exits 1', async () => {
    const dir = tempDir();
    const members = [];
    for (let i = 0; i < 4; i++) {
      members.push({ name: `s${i}.png`, data: await makeImage(16, 12, 'png', i) });
      members.push({ name: `s${i}.txt`, data: i === 0 ? 'a red square' : 'a red square '.repeat(40) });
    }
    await writeTar(join(dir, 'in.tar'), members);
    const run = await build(dir, `{ type: webdataset, out: wds, tokenizer: ${JSON.stringify(MINI_LLAMA)}, maxLength: 100 }`);
    expect(run.code).toBe(1);
    expect(run.summary.exported).toEqual({ wds: 1 });
    expect(run.summary.exportProblems).toEqual([
      { export: 'wds', kind: 'mostly_left_out', written: 1, total: 4, reason: 'over_length', count: 3, message: expect.stringMatching(/^export wds: 3 of 4 left out for over_length \(\d+ tokens, over maxLength 100\)$/) },
    ]);
    expect(run.plain).toMatch(/^export wds: 3 of 4 left out for over_length/m);
  });

  it('a caption export whose samples have no caption to train on is empty: exit 1', async () => {
    const dir = tempDir();
    const members = [];
    for (let i = 0; i < 3; i++) members.push({ name: `s${i}.png`, data: await makeImage(16, 12, 'png', i) });
    await writeTar(join(dir, 'in.tar'), members);
    const run = await build(dir, '{ type: webdataset, out: wds }');
    expect(run.code).toBe(1);
    expect(run.summary.samples).toMatchObject({ total: 3, ok: 3, failed: 0 });
    expect(run.summary.exportProblems).toEqual([expect.objectContaining({ export: 'wds', kind: 'empty', written: 0, total: 3, reason: 'no_caption', count: 3 })]);
    expect(run.plain).toMatch(/^export wds holds no sample: 3 of 3 ok samples left out \(no_caption 3\)$/m);
  });

  it('a plain WebDataset export with nothing to write (every sample failed upstream) is empty too', async () => {
    const dir = tempDir();
    await writeTar(join(dir, 'in.tar'), [{ name: 'a.png', data: Buffer.from('not a png') }, { name: 'a.txt', data: 'x' }]);
    const run = await build(dir, '{ type: webdataset, out: wds }');
    expect(run.code).toBe(1);
    expect(run.summary.exportProblems).toEqual([expect.objectContaining({ export: 'wds', kind: 'empty', written: 0 })]);
    expect(run.plain).toMatch(/^export wds holds no sample: none of the run's 1 samples could be exported \(1 failed\)$/m);
    // `vlcurate export` says the same of an export it leaves empty.
    const again = await runCli(['export', join(dir, 'run.db'), '--format', 'llava', '--out', join(dir, 'llava')]);
    expect(again.code).toBe(1);
    expect(again.stdout).toMatch(/^export llava holds no sample: none of the run's 1 samples could be exported \(1 failed\)$/m);
  });
});
