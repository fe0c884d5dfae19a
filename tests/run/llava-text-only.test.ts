/**
 * Text-only records of a LLaVA file (no image: ShareGPT-style chat in the LLaVA-1.5 mix) are part of the
 * input, so every count shows them: the build's summary, `--progress json` and `inspect stats`, as samples
 * dropped with reason `text_only`. Through the built CLI.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { PipelineEvent } from '../../src/core/events.js';
import { runCli } from '../e2e/helpers.js';
import { cleanup, makeImage, tempDir } from '../export/fixtures.js';

afterEach(cleanup);

const human = (value: string) => ({ from: 'human', value });
const gpt = (value: string) => ({ from: 'gpt', value });

async function makeRun(textOnly?: string): Promise<string> {
  const dir = tempDir();
  mkdirSync(join(dir, 'imgs'));
  writeFileSync(join(dir, 'imgs', 'a.png'), await makeImage(1, 'png', 20));
  const records = [
    // A brief description: its answer is the caption the (caption) WebDataset export writes.
    { id: 'with-image', image: 'a.png', conversations: [human('<image>\nDescribe the image briefly.'), gpt('A square.')] },
    { id: 'chat-1', conversations: [human('Tell me a joke.'), gpt('No.')] },
    { id: 'chat-2', image: '', conversations: [human('Hello?'), gpt('Hi.')] },
  ];
  writeFileSync(join(dir, 'in.json'), JSON.stringify(records));
  const source = `{ type: llava, path: in.json, images: imgs${textOnly ? `, textOnly: ${textOnly}` : ''} }`;
  writeFileSync(join(dir, 'recipe.yaml'), ['run: { db: run.db }', 'sources:', `  - ${source}`, 'export:', '  - { type: webdataset, out: wds }', ''].join('\n'));
  return dir;
}

describe('text-only LLaVA records', () => {
  it('are counted as dropped (text_only) in the summary, --progress json and inspect stats', async () => {
    const dir = await makeRun();
    const build = await runCli(['build', 'recipe.yaml', '--progress', 'json'], { cwd: dir });
    expect(build.code, build.stderr).toBe(0);
    const events = build.stdout.trim().split('\n').map((line) => JSON.parse(line) as PipelineEvent);
    const end = events.find((e): e is Extract<PipelineEvent, { type: 'run-end' }> => e.type === 'run-end')!;
    expect(end.summary.samples).toEqual({ total: 3, ok: 1, failed: 0, dropped: 2 });
    expect(end.summary.exported).toEqual({ wds: 1 });
    const read = end.stages.find((s) => s.stage === 'read')!;
    expect(read).toMatchObject({ out: 3, dropped: 2, failed: 0 });

    const stats = await runCli(['inspect', join(dir, 'run.db'), 'stats', '--json']);
    expect(stats.code, stats.stderr).toBe(0);
    const parsed = JSON.parse(stats.stdout) as { samples: unknown; dropReasons: Record<string, number> };
    expect(parsed.samples).toEqual({ total: 3, ok: 1, failed: 0, dropped: 2 });
    expect(parsed.dropReasons).toEqual({ text_only: 2 });

    const shown = await runCli(['inspect', join(dir, 'run.db'), 'show', 'chat-1', '--json']);
    const detail = JSON.parse(shown.stdout) as { sample: { status: string; drop_reason: string; meta: Record<string, unknown> } };
    expect(detail.sample).toMatchObject({ status: 'dropped', drop_reason: 'text_only' });
    expect(detail.sample.meta['id']).toBe('chat-1');

    // A second build finds them done: nothing is counted twice.
    const again = await runCli(['build', 'recipe.yaml', '--progress', 'json'], { cwd: dir });
    expect(again.code, again.stderr).toBe(0);
    const last = again.stdout.trim().split('\n').map((line) => JSON.parse(line) as PipelineEvent).find((e) => e.type === 'run-end') as Extract<PipelineEvent, { type: 'run-end' }>;
    expect(last.summary.samples).toEqual({ total: 3, ok: 1, failed: 0, dropped: 2 });
  });

  it('textOnly: fail still records each as a failure (exit 1)', async () => {
    const dir = await makeRun('fail');
    const build = await runCli(['build', 'recipe.yaml', '--progress', 'json'], { cwd: dir });
    expect(build.code).toBe(1);
    const end = build.stdout.trim().split('\n').map((line) => JSON.parse(line) as PipelineEvent).find((e) => e.type === 'run-end') as Extract<PipelineEvent, { type: 'run-end' }>;
    expect(end.summary.samples).toEqual({ total: 3, ok: 1, failed: 2, dropped: 0 });
    expect(end.summary.failures).toEqual({ text_only: 2 });
  });
});
