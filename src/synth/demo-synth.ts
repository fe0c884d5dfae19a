/**
 * Synthesis settings for `vlcurate demo`: stage-1 and grounding samples always; the LLM tasks only when
 * an endpoint is configured through the environment:
 *
 * - `VLCURATE_LLM_BASE_URL`: an OpenAI-compatible base URL, e.g. `http://127.0.0.1:8000/v1` (vLLM);
 * - `VLCURATE_LLM_MODEL`: the model name the server knows;
 * - `VLCURATE_LLM_API_KEY_ENV` (optional): the name of the variable that holds the API key, e.g.
 *   `OPENAI_API_KEY` (omit for local servers).
 */
import type { z } from 'zod';
import type { synthOptionsSchema } from './synth-options.js';

export const DEMO_LLM_ENV = {
  baseURL: 'VLCURATE_LLM_BASE_URL',
  model: 'VLCURATE_LLM_MODEL',
  apiKeyEnv: 'VLCURATE_LLM_API_KEY_ENV',
} as const;

export interface DemoSynth {
  /** The recipe's `synth` section (before defaults). */
  synth: z.input<typeof synthOptionsSchema>;
  /** One line for the user: what synthesis will do, or how to enable the LLM tasks. */
  note: string;
}

export function demoSynth(env: Record<string, string | undefined> = process.env): DemoSynth {
  const baseURL = env[DEMO_LLM_ENV.baseURL]?.trim();
  const model = env[DEMO_LLM_ENV.model]?.trim();
  if (!baseURL || !model) {
    return {
      synth: { tasks: ['stage1', 'grounding'] },
      note: `synthesis: LLM tasks skipped (set ${DEMO_LLM_ENV.baseURL} and ${DEMO_LLM_ENV.model} to enable them); stage-1 and grounding samples are made`,
    };
  }
  const apiKeyEnv = env[DEMO_LLM_ENV.apiKeyEnv]?.trim();
  return {
    synth: {
      tasks: ['conversation', 'detail', 'reasoning', 'stage1', 'grounding'],
      llm: { baseURL, model, ...(apiKeyEnv ? { apiKeyEnv } : {}) },
    },
    note: `synthesis: conversation, detail and reasoning through ${model} at ${baseURL}, plus stage-1 and grounding samples`,
  };
}
