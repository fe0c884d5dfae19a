/**
 * `vlcurate score --itc DIR [--itm DIR] --image PATH --text "..." [--text "..."] [--json]`: score one image
 * against one or more captions with an ITC model (cosine of the embeddings), an ITM model (p(match)), or
 * both.
 *
 * `--json` prints, for one text, exactly `{"itc": cosine, "itm": p_match}` with the keys of the models
 * given (plus `"itc_probability"` for a SigLIP ITC model); for several texts, an array with one such
 * object per text, in order, each with its `"text"` first: `[{"text": "...", "itc": ..., "itm": ...}, ...]`.
 */

import type { Command } from 'commander';

import { ConfigError, SampleError } from '../../core/errors.js';
import { checkVariant, MODEL_VARIANTS, type ModelVariant } from '../../models/model-files.js';
import { loadItcModel } from '../../models/itc-model.js';
import { loadItmModel } from '../../models/itm-model.js';
import { renderTable } from '../table.js';
import { DEFAULT_MAX_FILE_BYTES, readLocalFile } from '../../images/local-file.js';
import type { OnnxSessionOptions } from '../../backends/onnx-session.js';
import { addRuntimeFlags, sessionOptionsFromFlags, type RuntimeFlags } from '../runtime-flags.js';

interface ScoreFlags extends RuntimeFlags {
  itc?: string;
  itm?: string;
  image?: string;
  text: string[];
  variant: string;
  json?: boolean;
}

/** Scores of one text. */
export interface TextScores {
  itc?: number;
  itc_probability?: number;
  itm?: number;
}

/** Read the file named by an `--image` flag; a missing or unreadable file is a ConfigError naming the flag. */
export async function readImageFlag(file: string | undefined, flag = '--image'): Promise<Buffer> {
  if (file === undefined || file === '') throw new ConfigError(`${flag}: expected an image file, got nothing`);
  const read = await readLocalFile(file, { maxBytes: DEFAULT_MAX_FILE_BYTES, what: 'image file' });
  if (read.ok) return read.bytes;
  const why = read.problem === 'missing' ? 'no such file' : read.problem === 'folder' ? 'it is a folder' : read.message;
  throw new ConfigError(`${flag}: expected an image file, got ${JSON.stringify(file)} (${why})`);
}

/** Turn an image that cannot be decoded into a ConfigError naming the flag and file (it is a command-line input). */
export async function withImageFlag<T>(file: string, run: () => Promise<T>, flag = '--image'): Promise<T> {
  try {
    return await run();
  } catch (err) {
    if (err instanceof SampleError) {
      throw new ConfigError(`${flag}: ${JSON.stringify(file)} is not an image that can be decoded (${err.message.replace(/^Image 0 of 1: /, '')})`, { cause: err });
    }
    throw err;
  }
}

/** `--variant` for model folders. */
export function parseVariantFlag(value: string): ModelVariant {
  try {
    return checkVariant(value);
  } catch (err) {
    throw new ConfigError(`--variant: expected one of ${MODEL_VARIANTS.join(', ')}, got ${JSON.stringify(value)}`, { cause: err });
  }
}

/** Score `image` against each of `texts` with the models given; one entry per text. */
export async function scoreImageTexts(
  image: Uint8Array,
  texts: readonly string[],
  models: { itc?: string; itm?: string; variant?: ModelVariant; session?: OnnxSessionOptions },
): Promise<TextScores[]> {
  const out: TextScores[] = texts.map(() => ({}));
  const variant = models.variant ?? 'fp32';
  // The models run one after the other, each with the whole session settings.
  const options = { ...models.session, variant };
  if (models.itc !== undefined) {
    const itc = await loadItcModel(models.itc, options);
    try {
      const imageEmbeds = await itc.encodeImages([image]);
      const textEmbeds = await itc.encodeTexts(texts);
      texts.forEach((_, j) => {
        const cosine = itc.cosine(imageEmbeds, 0, textEmbeds, j);
        out[j]!.itc = cosine;
        if (itc.hasProbability) out[j]!.itc_probability = itc.probability(cosine);
      });
    } finally {
      await itc.close();
    }
  }
  if (models.itm !== undefined) {
    const itm = await loadItmModel(models.itm, options);
    try {
      const pMatch = await itm.scorePairs(image, texts);
      texts.forEach((_, j) => (out[j]!.itm = pMatch[j]!));
    } finally {
      await itm.close();
    }
  }
  return out;
}

/** The `--json` document: one object for one text, an array of objects (with `text`) for several. */
export function scoreJson(texts: readonly string[], scores: readonly TextScores[]): unknown {
  if (texts.length === 1) return scores[0];
  return texts.map((text, j) => ({ text, ...scores[j] }));
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

export function registerScore(program: Command): void {
  const command = program
    .command('score')
    .description('score an image against captions with an ITC model (cosine) and/or an ITM model (p(match))')
    .option('--itc <dir>', 'ITC (dual encoder) model folder')
    .option('--itm <dir>', 'ITM (fusion encoder) model folder')
    .option('--image <path>', 'image file (required)')
    .option('--text <text>', 'caption to score; repeat for several', collect, [])
    .option('--variant <variant>', `model weights: ${MODEL_VARIANTS.join(' | ')}`, 'fp32')
    .option('--json', 'print {"itc": cosine, "itm": p_match} (an array of such objects, with "text", for several texts)');
  addRuntimeFlags(command).action(async (flags: ScoreFlags) => {
      if (flags.itc === undefined && flags.itm === undefined) {
        throw new ConfigError('score: expected --itc DIR, --itm DIR or both, got neither');
      }
      if (flags.text.length === 0) throw new ConfigError('--text: expected at least one caption to score, got none');
      const variant = parseVariantFlag(flags.variant);
      const session = sessionOptionsFromFlags(flags);
      const image = await readImageFlag(flags.image);
      const models: { itc?: string; itm?: string; variant: ModelVariant; session: OnnxSessionOptions } = { variant, session };
      if (flags.itc !== undefined) models.itc = flags.itc;
      if (flags.itm !== undefined) models.itm = flags.itm;
      const scores = await withImageFlag(flags.image!, () => scoreImageTexts(image, flags.text, models));
      if (flags.json) {
        process.stdout.write(`${JSON.stringify(scoreJson(flags.text, scores))}\n`);
        return;
      }
      const rows = flags.text.map((text, j) => ({ text, ...scores[j] }));
      const columns = ['text', ...(['itc', 'itc_probability', 'itm'] as const).filter((k) => rows.some((r) => r[k] !== undefined))];
      process.stdout.write(`${renderTable(rows, columns)}\n`);
    });
}
