/**
 * `vlcurate caption --model DIR --image PATH [-n K] [--strategy greedy|beam|nucleus] [--top-p P] ...`:
 * write K captions for one image with an ONNX captioner folder. `--json` prints `{"captions": [...]}`.
 * Defaults are the captioner's (src/captioner/decoding/options.ts): nucleus sampling, top-p 0.9,
 * repetition penalty 1.1 (1.0 for greedy and beam), min/max length 10/30 caption tokens, seed 0.
 */
import type { Command } from 'commander';
import type { z } from 'zod';

import { OnnxCaptioner, type CaptionOptions } from '../../captioner/onnx-captioner.js';
import { crossFieldProblems, decodingFields, decodingOptionsSchema, type Strategy } from '../../captioner/decoding/options.js';
import { ConfigError } from '../../core/errors.js';
import { MODEL_VARIANTS } from '../../models/model-files.js';
import { parseVariantFlag, readImageFlag, withImageFlag } from './score.js';
import { addRuntimeFlags, sessionOptionsFromFlags, type RuntimeFlags } from '../runtime-flags.js';

/** The flags of `vlcurate caption`, as commander gives them. */
export interface CaptionFlags extends RuntimeFlags {
  model?: string;
  image?: string;
  n?: string;
  strategy?: string;
  topP?: string;
  topK?: string;
  temperature?: string;
  repetitionPenalty?: string;
  numBeams?: string;
  lengthPenalty?: string;
  earlyStopping?: boolean;
  prompt?: string;
  seed?: string;
  maxLength?: string;
  minLength?: string;
  variant: string;
  json?: boolean;
}

type NumericOption = 'k' | 'topP' | 'topK' | 'temperature' | 'repetitionPenalty' | 'numBeams' | 'lengthPenalty' | 'seed' | 'maxLength' | 'minLength';

/** Each numeric decoding option: its flag, its value in the flags object, and whether it is an integer. */
const NUMERIC: ReadonlyArray<{ option: NumericOption; flag: string; key: keyof CaptionFlags; integer: boolean }> = [
  { option: 'k', flag: '-n', key: 'n', integer: true },
  { option: 'topP', flag: '--top-p', key: 'topP', integer: false },
  { option: 'topK', flag: '--top-k', key: 'topK', integer: true },
  { option: 'temperature', flag: '--temperature', key: 'temperature', integer: false },
  { option: 'repetitionPenalty', flag: '--repetition-penalty', key: 'repetitionPenalty', integer: false },
  { option: 'numBeams', flag: '--num-beams', key: 'numBeams', integer: true },
  { option: 'lengthPenalty', flag: '--length-penalty', key: 'lengthPenalty', integer: false },
  { option: 'seed', flag: '--seed', key: 'seed', integer: true },
  { option: 'maxLength', flag: '--max-length', key: 'maxLength', integer: true },
  { option: 'minLength', flag: '--min-length', key: 'minLength', integer: true },
];

const FLAG_OF: Record<string, string> = { ...Object.fromEntries(NUMERIC.map((n) => [n.option, n.flag])), strategy: '--strategy', samples: '-n' };

/** The schema that checks one option (the same one caption() and recipes use), for messages naming the flag. */
function fieldSchema(option: NumericOption): z.ZodType {
  return option === 'k' ? decodingOptionsSchema.shape.k : decodingFields[option];
}

function expectation(schema: z.ZodType, value: unknown): string | undefined {
  const result = schema.safeParse(value);
  if (result.success) return undefined;
  return result.error.issues[0]!.message.replace(/^expected /, '');
}

/**
 * Turn the flags into caption() options. Every problem is a ConfigError naming the flag, the value and
 * what was expected, e.g. `--top-p: expected a number greater than 0 and at most 1, got "1.5"`.
 */
export function captionOptionsFromFlags(flags: CaptionFlags): CaptionOptions {
  const options: Record<string, unknown> = {};
  for (const { option, flag, key, integer } of NUMERIC) {
    const raw = flags[key];
    if (raw === undefined) continue;
    const text = String(raw).trim();
    const value = text === '' ? Number.NaN : Number(text);
    const schema = fieldSchema(option);
    const bad = !Number.isFinite(value) || (integer && !/^[+]?\d+$/.test(text)) ? expectation(schema, Number.NaN) : expectation(schema, value);
    if (bad !== undefined) throw new ConfigError(`${flag}: expected ${bad}, got ${JSON.stringify(raw)}`);
    options[option] = value;
  }
  if (flags.strategy !== undefined) {
    const bad = expectation(decodingFields.strategy, flags.strategy);
    if (bad !== undefined) throw new ConfigError(`--strategy: expected ${bad}, got ${JSON.stringify(flags.strategy)}`);
    options.strategy = flags.strategy as Strategy;
  }
  if (flags.earlyStopping) options.earlyStopping = true;
  if (flags.prompt !== undefined) options.prompt = flags.prompt;
  const resolved = decodingOptionsSchema.parse(options);
  const problems = crossFieldProblems(resolved, resolved.k, 'k');
  if (problems.length > 0) {
    const [field, message] = problems[0]!;
    const mentioned = message.replace(/`(\w+)`/g, (_, name: string) => FLAG_OF[name] ?? name);
    throw new ConfigError(`${FLAG_OF[field] ?? field}: ${mentioned}`);
  }
  return options as CaptionOptions;
}

export function registerCaption(program: Command): void {
  const command = program
    .command('caption')
    .description('write captions for an image with an ONNX captioner (vision encoder-decoder) folder')
    .option('--model <dir>', 'captioner model folder (required)')
    .option('--image <path>', 'image file (required)')
    .option('-n <k>', 'captions to write (default 1)')
    .option('--strategy <name>', 'greedy | beam | nucleus (default nucleus)')
    .option('--top-p <p>', 'nucleus: keep the most likely tokens up to this probability (default 0.9)')
    .option('--top-k <k>', 'nucleus: keep only the k most likely tokens; 0 = off (default 0)')
    .option('--temperature <t>', 'nucleus: divide the logits by t (default 1)')
    .option('--repetition-penalty <x>', 'penalise tokens already in the caption (default 1.1 nucleus, 1.0 greedy/beam)')
    .option('--num-beams <n>', 'beam: beams per image (default 3)')
    .option('--length-penalty <x>', 'beam: score = logprob / length^x (default 1)')
    .option('--early-stopping', 'beam: stop once numBeams captions are finished')
    .option('--prompt <text>', 'text forced at the start of the caption and removed from the output, e.g. "a picture of "')
    .option('--seed <s>', 'nucleus: random seed (default 0)')
    .option('--max-length <n>', 'most tokens after the prompt (default 30)')
    .option('--min-length <n>', 'fewest caption tokens before the end (default 10)')
    .option('--variant <variant>', `model weights: ${MODEL_VARIANTS.join(' | ')}`, 'fp32')
    .option('--json', 'print {"captions": [...]}');
  addRuntimeFlags(command).action(async (flags: CaptionFlags) => {
      if (flags.model === undefined || flags.model === '') throw new ConfigError('--model: expected a captioner model folder, got nothing');
      const options = captionOptionsFromFlags(flags);
      const variant = parseVariantFlag(flags.variant);
      const session = sessionOptionsFromFlags(flags);
      const image = await readImageFlag(flags.image);
      const captioner = await OnnxCaptioner.load(flags.model, { ...session, variant });
      try {
        const [captions = []] = await withImageFlag(flags.image!, () => captioner.caption([image], options)).catch((err: unknown) => {
          // Name flags, not option fields, in what the captioner says about its options.
          if (err instanceof ConfigError) throw new ConfigError(err.message.replace(/`(\w+)`/g, (m, name: string) => FLAG_OF[name] ?? m), { cause: err });
          throw err;
        });
        const texts = captions.map((c) => c.text);
        process.stdout.write(flags.json ? `${JSON.stringify({ captions: texts })}\n` : texts.map((t) => `${t}\n`).join(''));
      } finally {
        await captioner.close();
      }
    });
}
