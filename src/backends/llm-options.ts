/**
 * Options of the LLM client (`synth.llm` and `captioner` of type `openai` in a recipe). Every option is
 * declared here once, with its default.
 */
import { z } from 'zod';

export const llmPriceSchema = z
  .object({
    /** US dollars per million prompt (input) tokens. Default 0 (a local server costs nothing). */
    inputPerMTok: z.number().min(0).default(0),
    /** US dollars per million completion (output) tokens. Default 0. */
    outputPerMTok: z.number().min(0).default(0),
  })
  .strict();

export type LlmPrice = z.infer<typeof llmPriceSchema>;

function isHttpUrl(value: string): boolean {
  if (!URL.canParse(value)) return false;
  const { protocol, hostname, username, password } = new URL(value);
  // fetch refuses URLs with credentials, and they would end up in messages.
  return (protocol === 'http:' || protocol === 'https:') && hostname !== '' && username === '' && password === '';
}

export const llmOptionsSchema = z
  .object({
    /**
     * Base URL of an OpenAI-compatible API, e.g. `https://api.openai.com/v1` or `http://127.0.0.1:8000/v1`
     * (vLLM). Only http and https: the SDK would hand any other scheme (`file:`, `ftp:`) to fetch.
     */
    baseURL: z.string().refine(isHttpUrl, { message: 'expected an http:// or https:// URL without a user name or password (the key goes in apiKeyEnv)' }),
    /** Model name as the server knows it. */
    model: z.string().min(1),
    /**
     * Name of the environment variable that holds the API key (e.g. `OPENAI_API_KEY`). The key itself is
     * never written to a recipe, a log or the run database. Omit it for local servers that need no key.
     */
    apiKeyEnv: z
      .string()
      .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'expected an environment variable name such as OPENAI_API_KEY')
      .optional(),
    /** Requests per minute, spread over the minute (each second's share in a sliding one-second window). Default 500. */
    rpm: z.number().positive().default(500),
    /** Tokens per minute (prompt estimate + max tokens reserved before sending, corrected by the usage reported). Default 200,000. */
    tpm: z.number().positive().default(200_000),
    /** Requests in flight at once. Default 16. */
    concurrency: z.number().int().min(1).default(16),
    /**
     * What `rpm`, `tpm` and `concurrency` describe when a build is split with `--shard I/N` (see
     * `llm-part-share.ts`): `account` (default), the whole account, which the N parts share: each part
     * takes rpm/N, tpm/N and concurrency floor(c/N) (at least 1); `part`, each part's own limits, used as
     * given (N parts together then send up to N times as much).
     */
    limitsPer: z.enum(['account', 'part']).default('account'),
    /** Retries of one request after a retryable error (408, 409, 429, 5xx, timeout, connection, malformed body). Default 6. */
    maxRetries: z.number().int().min(0).default(6),
    /** Time limit of one request in milliseconds. Default 60,000. */
    timeoutMs: z.number().int().min(1).default(60_000),
    /** Sampling temperature. Default 0.7 (a retry after a rejected answer then gets a fresh sample). */
    temperature: z.number().min(0).max(2).default(0.7),
    /** Most completion tokens per request (`max_tokens`). Default 1024. */
    maxTokens: z.number().int().min(1).default(1024),
    /** Price table for cost accounting and `--max-cost`. Default zero cost. */
    price: llmPriceSchema.default(() => llmPriceSchema.parse({})),
    /** First backoff step in milliseconds; step n waits a random time up to `retryBaseMs * 2^n` (full jitter). Default 1000. */
    retryBaseMs: z.number().int().min(0).default(1000),
    /** Longest backoff step in milliseconds. Default 60,000. */
    retryMaxMs: z.number().int().min(0).default(60_000),
    /**
     * Longest `Retry-After` the client will wait in milliseconds; a server asking for longer (a daily quota
     * exhausted) fails the request instead. Default 120,000.
     */
    maxRetryAfterMs: z.number().int().min(0).default(120_000),
  })
  .strict();

export type LlmOptions = z.infer<typeof llmOptionsSchema>;
