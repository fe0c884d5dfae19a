/**
 * `vlcurate score` and `vlcurate caption`, run as the built CLI (`npm test` builds first; alone:
 * `npx tsc -p tsconfig.build.json && npx vitest run tests/cli/score-caption.test.ts`).
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { OnnxCaptioner } from '../../src/captioner/onnx-captioner.js';
import { captionOptionsFromFlags, type CaptionFlags } from '../../src/cli/commands/caption.js';
import { ConfigError } from '../../src/core/errors.js';
import { sessionOptionsFromFlags } from '../../src/cli/runtime-flags.js';
import { runCli } from '../e2e/helpers.js';

const models = path.resolve(import.meta.dirname, '../fixtures/models');
const image = path.join(models, 'images', 'square-a.png');
const clip = path.join(models, 'clip-split');
const itm = path.join(models, 'itm-split');
const siglip = path.join(models, 'siglip');
const captionerDir = path.join(models, 'captioner-merged');

interface Reference {
  texts: string[];
  images: string[];
  variants: { fp32: { cosine: number[][]; p_match: number[][]; probability: number[][] } };
}
const ref = (folder: string) => JSON.parse(readFileSync(path.join(models, folder, 'expected.json'), 'utf8')) as Reference;
const clipRef = ref('clip-split');
const itmRef = ref('itm-split');
const siglipRef = ref('siglip');
const texts = clipRef.texts; // the same three texts in every fixture
expect(clipRef.images[0]).toBe('square-a.png');

describe('vlcurate score', () => {
  it('prints exactly {"itc": cosine, "itm": p_match} for one text', async () => {
    const r = await runCli(['score', '--itc', clip, '--itm', itm, '--image', image, '--text', texts[0]!, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as Record<string, number>;
    expect(Object.keys(out)).toEqual(['itc', 'itm']);
    expect(out.itc).toBeCloseTo(clipRef.variants.fp32.cosine[0]![0]!, 4);
    expect(out.itm).toBeCloseTo(itmRef.variants.fp32.p_match[0]![0]!, 4);
  });

  it('prints only the keys of the models given, and one object per text (with the text) for several', async () => {
    const only = await runCli(['score', '--itm', itm, '--image', image, '--text', texts[1]!, '--json']);
    expect(only.code, only.stderr).toBe(0);
    expect(Object.keys(JSON.parse(only.stdout) as object)).toEqual(['itm']);

    const r = await runCli(['score', '--itc', clip, '--image', image, '--text', texts[0]!, '--text', texts[2]!, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const rows = JSON.parse(r.stdout) as Array<{ text: string; itc: number }>;
    expect(rows.map((row) => row.text)).toEqual([texts[0], texts[2]]);
    expect(rows[0]!.itc).toBeCloseTo(clipRef.variants.fp32.cosine[0]![0]!, 4);
    expect(rows[1]!.itc).toBeCloseTo(clipRef.variants.fp32.cosine[0]![2]!, 4);

    const table = await runCli(['score', '--itc', clip, '--itm', itm, '--image', image, '--text', texts[0]!, '--text', 'a dog']);
    expect(table.code, table.stderr).toBe(0);
    expect(table.stdout).toMatch(/^text\s+itc\s+itm\n/);
    expect(table.stdout).toContain(clipRef.variants.fp32.cosine[0]![0]!.toFixed(4));
  });

  it('adds SigLIP`s probability', async () => {
    const r = await runCli(['score', '--itc', siglip, '--image', image, '--text', texts[0]!, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as Record<string, number>;
    expect(out.itc).toBeCloseTo(siglipRef.variants.fp32.cosine[0]![0]!, 4);
    expect(out.itc_probability).toBeCloseTo(siglipRef.variants.fp32.probability[0]![0]!, 4);
  });

  it('exits 2 with a clear message for a missing image, missing models or texts, a bad variant', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['--itc', clip, '--image', 'missing.png', '--text', 'x'], /--image: expected an image file, got "missing.png" \(no such file\)/],
      [['--image', image, '--text', 'x'], /expected --itc DIR, --itm DIR or both, got neither/],
      [['--itc', clip, '--image', image], /--text: expected at least one caption/],
      [['--itc', clip, '--image', image, '--text', 'x', '--variant', 'int4'], /--variant: expected one of fp32, fp16, quantized, got "int4"/],
      [['--itc', clip, '--image', path.join(models, 'clip-split', 'config.json'), '--text', 'x'], /--image: ".*config.json" is not an image that can be decoded/],
      [['--itc', path.join(models, 'nope'), '--image', image, '--text', 'x'], /Missing model config: .*nope\/config.json does not exist/],
    ];
    const results = await Promise.all(cases.map(([args]) => runCli(['score', ...args])));
    results.forEach((r, i) => {
      expect(r.code, `${cases[i]![0].join(' ')}: ${r.stderr}`).toBe(2);
      expect(r.stderr).toMatch(cases[i]![1]);
      expect(r.stdout).toBe('');
    });
  });
});

describe('vlcurate caption', () => {
  let captioner: OnnxCaptioner;
  beforeAll(async () => {
    captioner = await OnnxCaptioner.load(captionerDir);
  });
  afterAll(async () => {
    await captioner.close();
  });

  it('prints {"captions": [...]} with the captioner`s captions', async () => {
    const args = ['caption', '--model', captionerDir, '--image', image, '--json'];
    const greedy = await runCli([...args, '--strategy', 'greedy', '--min-length', '0', '--max-length', '12']);
    expect(greedy.code, greedy.stderr).toBe(0);
    const api = await captioner.caption([readFileSync(image)], { strategy: 'greedy', minLength: 0, maxLength: 12 });
    expect(JSON.parse(greedy.stdout)).toEqual({ captions: [api[0]![0]!.text] });

    const sampled = await runCli([...args, '-n', '3', '--seed', '4', '--top-p', '0.8', '--top-k', '9', '--temperature', '1.2', '--min-length', '3', '--max-length', '10', '--prompt', 'a picture of ']);
    expect(sampled.code, sampled.stderr).toBe(0);
    const expected = await captioner.caption([readFileSync(image)], {
      k: 3, seed: 4, topP: 0.8, topK: 9, temperature: 1.2, minLength: 3, maxLength: 10, prompt: 'a picture of ',
    });
    expect(JSON.parse(sampled.stdout)).toEqual({ captions: expected[0]!.map((c) => c.text) });

    const beams = await runCli([...args, '--strategy', 'beam', '--num-beams', '4', '-n', '2', '--length-penalty', '0.5', '--early-stopping', '--max-length', '9', '--min-length', '1']);
    expect(beams.code, beams.stderr).toBe(0);
    const beamApi = await captioner.caption([readFileSync(image)], { strategy: 'beam', numBeams: 4, k: 2, lengthPenalty: 0.5, earlyStopping: true, maxLength: 9, minLength: 1 });
    expect(JSON.parse(beams.stdout)).toEqual({ captions: beamApi[0]!.map((c) => c.text) });

    const plain = await runCli(['caption', '--model', captionerDir, '--image', image, '-n', '2', '--min-length', '2', '--max-length', '6']);
    expect(plain.code, plain.stderr).toBe(0);
    expect(plain.stdout.trimEnd().split('\n')).toHaveLength(2);
  });

  it('turns every bad flag into a ConfigError naming the flag, the value and the expectation', () => {
    const cases: Array<[Partial<CaptionFlags>, RegExp]> = [
      [{ topP: '1.5' }, /^--top-p: expected a number greater than 0 and at most 1, got "1.5"$/],
      [{ topP: 'lots' }, /^--top-p: expected a number greater than 0 and at most 1, got "lots"$/],
      [{ n: '0' }, /^-n: expected an integer from 1 and up, got "0"$/],
      [{ numBeams: '2.5' }, /^--num-beams: expected an integer from 1 and up, got "2.5"$/],
      [{ temperature: '0' }, /^--temperature: expected a number greater than 0, got "0"$/],
      [{ topK: '-1' }, /^--top-k: expected an integer from 0 \(off\) and up, got "-1"$/],
      [{ lengthPenalty: 'x' }, /^--length-penalty: expected a number, got "x"$/],
      [{ strategy: 'topk' }, /^--strategy: expected one of greedy, beam, nucleus, got "topk"$/],
      [{ strategy: 'greedy', n: '2' }, /^-n: expected 1 with strategy "greedy"/],
      [{ strategy: 'beam', numBeams: '2', n: '3' }, /^-n: expected at most --num-beams \(2\) with strategy "beam", got 3$/],
      [{ minLength: '9', maxLength: '3' }, /^--min-length: expected at most --max-length \(3\), got 9$/],
      [{ seed: 'x' }, /^--seed: expected an integer from 0 to \d+, got "x"$/],
      [{ seed: '1e3' }, /^--seed: expected an integer from 0 to \d+, got "1e3"$/],
    ];
    for (const [flags, message] of cases) {
      expect(() => captionOptionsFromFlags({ variant: 'fp32', ...flags }), JSON.stringify(flags)).toThrow(ConfigError);
      expect(() => captionOptionsFromFlags({ variant: 'fp32', ...flags })).toThrow(message);
    }
    expect(captionOptionsFromFlags({ variant: 'fp32', n: '3', topP: '0.5', seed: '+7', earlyStopping: true, prompt: 'a' })).toEqual({
      k: 3, topP: 0.5, seed: 7, earlyStopping: true, prompt: 'a',
    });
  });

  it('exits 2 with the message for bad flags, a missing image, a folder that is not a captioner', async () => {
    const base = ['caption', '--model', captionerDir, '--image', image];
    const cases: Array<[string[], RegExp]> = [
      [[...base, '--top-p', '1.5'], /--top-p: expected a number greater than 0 and at most 1, got "1.5"/],
      [[...base, '--min-length', '40', '--max-length', '50'], /Expected --min-length to be at most 32 .*got 40/],
      [['caption', '--model', captionerDir, '--image', 'nope.jpg'], /--image: expected an image file, got "nope.jpg" \(no such file\)/],
      [['caption', '--model', clip, '--image', image], /Captioner folder .*clip-split has no fp32 encoder: expected .*encoder_model.onnx \(onnx\/ holds: .*vision_model.onnx/],
    ];
    const results = await Promise.all(cases.map(([args]) => runCli(args)));
    results.forEach((r, i) => {
      expect(r.code, `${cases[i]![0].join(' ')}: ${r.stderr}`).toBe(2);
      expect(r.stderr).toMatch(cases[i]![1]);
      expect(r.stdout).toBe('');
    });
  });
});

describe('runtime flags of score and caption (--device, --threads, --workers)', () => {
  const device = 'expected "cpu", "cuda" or "cuda:N" (N a CUDA device number from 0, e.g. "cuda:1")';
  const count = 'expected "auto" or an integer from 1 and up';

  it('are accepted by both commands and change no score or caption', async () => {
    const scored = await runCli(['score', '--itc', clip, '--itm', itm, '--image', image, '--text', texts[0]!, '--json', '--threads', '2', '--workers', '2', '--device', 'cpu']);
    expect(scored.code, scored.stderr).toBe(0);
    const out = JSON.parse(scored.stdout) as Record<string, number>;
    expect(out.itc).toBeCloseTo(clipRef.variants.fp32.cosine[0]![0]!, 4);
    expect(out.itm).toBeCloseTo(itmRef.variants.fp32.p_match[0]![0]!, 4);

    const args = ['caption', '--model', captionerDir, '--image', image, '--json', '--strategy', 'greedy', '--min-length', '0', '--max-length', '8'];
    const [plain, wide] = await Promise.all([runCli(args), runCli([...args, '--threads', 'auto', '--workers', '1', '--device', 'cpu'])]);
    expect(plain.code, plain.stderr).toBe(0);
    expect(wide.code, wide.stderr).toBe(0);
    expect(JSON.parse(wide.stdout)).toEqual(JSON.parse(plain.stdout));
  });

  it('exit 2 naming the flag, the value and what the recipe field expects', async () => {
    const score = ['score', '--itc', clip, '--image', image, '--text', 'a'];
    const caption = ['caption', '--model', captionerDir, '--image', image];
    const cases: Array<[string[], string]> = [
      [[...score, '--threads', '0'], `--threads: ${count}, got "0"`],
      [[...score, '--threads', '1.5'], `--threads: ${count}, got "1.5"`],
      [[...score, '--workers', 'many'], `--workers: ${count}, got "many"`],
      [[...score, '--device', 'gpu'], `--device: ${device}, got "gpu"`],
      [[...caption, '--workers', '-2'], `--workers: ${count}, got "-2"`],
      [[...caption, '--device', 'cuda:x'], `--device: ${device}, got "cuda:x"`],
    ];
    const results = await Promise.all(cases.map(([args]) => runCli(args)));
    results.forEach((r, i) => {
      expect(r.code, `${cases[i]![0].join(' ')}: ${r.stderr}`).toBe(2);
      expect(r.stderr).toContain(cases[i]![1]);
      expect(r.stdout).toBe('');
    });
  });

  it('resolve auto as one model alone on the machine, in one session; set values are kept', () => {
    expect(sessionOptionsFromFlags({}, 2)).toEqual({ executionProvider: 'cpu', intraOpThreads: 2, workers: 1 });
    expect(sessionOptionsFromFlags({}, 64)).toEqual({ executionProvider: 'cpu', intraOpThreads: 8, workers: 1 });
    expect(sessionOptionsFromFlags({ threads: ' 3 ', workers: '2' }, 64)).toEqual({ executionProvider: 'cpu', intraOpThreads: 3, workers: 2 });
    expect(sessionOptionsFromFlags({ device: 'cuda:1' }, 64)).toEqual({ executionProvider: 'cuda', deviceId: 1, intraOpThreads: 1, workers: 1 });
  });
});
