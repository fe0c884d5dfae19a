/**
 * Decoding options: one zod schema declares every option with its default (BLIP's CapFilt settings), and
 * {@link resolveDecoding} turns a partial object into checked, complete options or a ConfigError that
 * names the option, the value and what was expected.
 *
 * Lengths count the tokens generated after the start token and the prompt, like transformers'
 * `min_new_tokens` / `max_new_tokens`. BLIP / LAVIS count `min_length` 10 and `max_length` 30 over the
 * whole decoder input instead ([DEC] + the prompt "a picture of " + the caption), which is about 5 and
 * 25 caption tokens; set `minLength` to suit the model (the shapes demo captions are 3 to 15 tokens).
 */
import { z } from 'zod';

import { ConfigError } from '../../core/errors.js';
import { describeValue } from '../../core/describe-value.js';

export const STRATEGIES = ['greedy', 'beam', 'nucleus'] as const;
export type Strategy = (typeof STRATEGIES)[number];

/** Largest seed: seeds are written in decimal into the stream key, so any safe integer works. */
const MAX_SEED = Number.MAX_SAFE_INTEGER;

const int = (min: number, what: string) =>
  z.number({ error: `expected ${what}` }).int({ error: `expected ${what}` }).min(min, { error: `expected ${what}` });

/** The decoding fields, shared by the captioner's recipe schema and `caption()`'s options. */
export const decodingFields = {
  /**
   * `nucleus` (default: BLIP's CapFilt captioner samples), `greedy` (argmax; one caption per image), or
   * `beam` (`numBeams` beams; up to `numBeams` captions per image, the best first).
   */
  strategy: z.enum(STRATEGIES, { error: `expected one of ${STRATEGIES.join(', ')}` }).default('nucleus'),
  /** Nucleus: sample from the smallest set of most likely tokens whose probability reaches `topP`. Default 0.9. */
  topP: z
    .number({ error: 'expected a number greater than 0 and at most 1' })
    .gt(0, { error: 'expected a number greater than 0 and at most 1' })
    .max(1, { error: 'expected a number greater than 0 and at most 1' })
    .default(0.9),
  /** Nucleus: sample only among the `topK` most likely tokens (ties at the k-th value kept); 0 (default) = off. */
  topK: int(0, 'an integer from 0 (off) and up').default(0),
  /** Nucleus: divide the logits by this before sampling. Default 1. */
  temperature: z.number({ error: 'expected a number greater than 0' }).gt(0, { error: 'expected a number greater than 0' }).default(1),
  /**
   * Divide the positive logits and multiply the negative ones of every token already in the sequence
   * (start token and prompt included), the CTRL rule transformers uses. 1 = off. Default: 1.1 for
   * `nucleus` (BLIP's sampling setting), 1.0 for `greedy` and `beam` (BLIP's beam-search setting).
   */
  repetitionPenalty: z
    .number({ error: 'expected a number greater than 0' })
    .gt(0, { error: 'expected a number greater than 0' })
    .optional(),
  /** No end-of-sequence token before this many caption tokens. Default 10 (BLIP's; see above). */
  minLength: int(0, 'an integer from 0 and up').default(10),
  /**
   * At most this many tokens after the prompt (the end-of-sequence token included). Default 30. The ONNX
   * captioner also stops where the decoder runs out of positions (config.json `n_positions`).
   */
  maxLength: int(1, 'an integer from 1 and up').default(30),
  /** Beam search: beams per image. Default 3 (LAVIS's BLIP captioner). */
  numBeams: int(1, 'an integer from 1 and up').default(3),
  /**
   * Beam search: a finished caption's score is its log-probability divided by (tokens generated, the
   * end-of-sequence token included) ** lengthPenalty. Above 0 favours longer captions. Default 1.
   */
  lengthPenalty: z.number({ error: 'expected a number' }).finite({ error: 'expected a finite number' }).default(1),
  /**
   * Beam search: stop an image as soon as `numBeams` captions are finished (true), or when no running
   * beam can still beat the worst finished one by transformers' estimate (false, default).
   */
  earlyStopping: z.boolean({ error: 'expected true or false' }).default(false),
  /** Text forced at the start of every caption (e.g. "a picture of "), removed from the returned text. */
  prompt: z.string({ error: 'expected a string' }).optional(),
  /**
   * Nucleus: seed of the random streams. Each image's samples draw from streams derived from
   * (seed, image key, sample index), so the same seed gives the same captions whatever else is in the
   * batch. Default 0.
   */
  seed: int(0, `an integer from 0 to ${MAX_SEED}`).max(MAX_SEED, { error: `expected an integer from 0 to ${MAX_SEED}` }).default(0),
};

export const decodingOptionsSchema = z.strictObject({
  /** Captions per image. Default 1. */
  k: int(1, 'an integer from 1 and up').default(1),
  ...decodingFields,
});

/** Options as given (every field optional). */
export type DecodingInput = z.input<typeof decodingOptionsSchema>;

/** Checked, complete decoding options. */
export interface DecodingOptions {
  k: number;
  strategy: Strategy;
  topP: number;
  topK: number;
  temperature: number;
  repetitionPenalty: number;
  minLength: number;
  maxLength: number;
  numBeams: number;
  lengthPenalty: number;
  earlyStopping: boolean;
  prompt: string | undefined;
  seed: number;
}

/** The repetition penalty a strategy gets when none is given: BLIP's 1.1 for sampling, 1.0 otherwise. */
export function defaultRepetitionPenalty(strategy: Strategy): number {
  return strategy === 'nucleus' ? 1.1 : 1.0;
}

/**
 * Problems between fields, as `[field, message]` pairs; `samplesField` is the name of the captions-per-
 * image field where the options come from (`k` for caption(), `samples` in a recipe).
 */
export function crossFieldProblems(
  o: { strategy: Strategy; minLength: number; maxLength: number; numBeams: number },
  samples: number,
  samplesField: string,
): Array<[string, string]> {
  const problems: Array<[string, string]> = [];
  if (o.minLength > o.maxLength) {
    problems.push(['minLength', `expected at most \`maxLength\` (${o.maxLength}), got ${o.minLength}`]);
  }
  if (o.strategy === 'greedy' && samples !== 1) {
    problems.push([samplesField, `expected 1 with strategy "greedy" (it gives one caption per image; use "nucleus", or "beam" with numBeams >= ${samples}), got ${samples}`]);
  }
  if (o.strategy === 'beam' && samples > o.numBeams) {
    problems.push([samplesField, `expected at most \`numBeams\` (${o.numBeams}) with strategy "beam", got ${samples}`]);
  }
  return problems;
}


/**
 * Fill in defaults and check `input`. Throws a ConfigError such as
 * "Expected `topP` to be a number greater than 0 and at most 1, got 1.5".
 */
export function resolveDecoding(input: DecodingInput = {}): DecodingOptions {
  const parsed = decodingOptionsSchema.safeParse(input);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((issue) => {
      const field = issue.path.map(String).join('.');
      if (issue.code === 'unrecognized_keys') {
        return `Unknown decoding option${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `\`${k}\``).join(', ')}`;
      }
      const value = (input as Record<string, unknown>)[String(issue.path[0])];
      const expected = issue.message.replace(/^expected /, '').replace(/^Invalid input: expected /, '');
      return `Expected \`${field || 'options'}\` to be ${expected}, got ${describeValue(value, Infinity)}`;
    });
    throw new ConfigError(lines.join('; '));
  }
  const o = parsed.data;
  const problems = crossFieldProblems(o, o.k, 'k');
  if (problems.length > 0) {
    throw new ConfigError(problems.map(([field, message]) => `Expected \`${field}\` to be ${message.replace(/^expected /, '')}`).join('; '));
  }
  return {
    k: o.k,
    strategy: o.strategy,
    topP: o.topP,
    topK: o.topK,
    temperature: o.temperature,
    repetitionPenalty: o.repetitionPenalty ?? defaultRepetitionPenalty(o.strategy),
    minLength: o.minLength,
    maxLength: o.maxLength,
    numBeams: o.numBeams,
    lengthPenalty: o.lengthPenalty,
    earlyStopping: o.earlyStopping,
    prompt: o.prompt === '' ? undefined : o.prompt,
    seed: o.seed,
  };
}
