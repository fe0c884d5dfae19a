/**
 * The LLM client: the one place that talks to an OpenAI-compatible chat completions API (with
 * `llm-batch-api.ts`, the only importers of `openai`). It owns the whole request policy:
 *
 * - cache first: a request whose hash is in the run database is answered from there, never sent;
 * - limits: `rpm` (requests spread evenly, a sliding window in p-queue), `tpm` (a token bucket charged
 *   with the prompt estimate plus `max_tokens` before sending, corrected with the reported usage), and
 *   `concurrency` (requests in flight);
 * - retries: the SDK's own retries are off; ours (the shared policy of `retry-policy.ts`) retry 408/409/429/5xx, timeouts (`timeoutMs` covers
 *   the whole request, body included, as it does a batch file download), dropped or cut-off connections and malformed bodies with
 *   full-jitter exponential backoff, waiting at least what `Retry-After`, `retry-after-ms` or
 *   `x-ratelimit-reset-*` ask for;
 * - stop: a rejected key (401/403) stops the client at once, and so does a server that cannot be reached
 *   (refused, DNS, TLS) before it has answered anything; a server that answered and then went away is
 *   retried, and stops the client when one request has used up its retries on it. A stopped client sends
 *   nothing more: every request fails with the stop's code (`key_rejected`, `server_unreachable`);
 * - answers: `finish_reason` `length` and `content_filter` are failures with their own codes;
 * - money: usage is priced with the recipe's price table; once `maxCostUsd` is spent no new request
 *   starts (requests in flight finish).
 *
 * The API key is read from the environment variable the options name and handed to the SDK only; it
 * never appears in a message, an event, or the database.
 */
import { setMaxListeners } from 'node:events';
import OpenAI, { APIConnectionError, APIConnectionTimeoutError, APIError, APIUserAbortError } from 'openai';
import PQueue from 'p-queue';
import { z } from 'zod';
import { ConfigError, describeError } from '../core/errors.js';
import type { LlmCounters } from '../core/events.js';
import { compactDataUrls, requestHash, type CachedResponse, type NewCachedResponse } from './llm-cache-entry.js';
import {
  LlmAbortError,
  LlmBadResponseError,
  LlmBudgetError,
  LlmConnectionError,
  LlmContentFilterError,
  LlmError,
  LlmKeyRejectedError,
  LlmLengthError,
  LlmTimeoutError,
  LlmUnreachableError,
  connectFailure,
  errorForStatus,
} from './llm-errors.js';
import type { LlmOptions } from './llm-options.js';
import { decideRetry, serverWaitMs, sleep, type RetryPolicy } from './retry-policy.js';
import { TokenBucket } from './llm-token-bucket.js';
import { costUsd, estimatePromptTokens, estimateTextTokens } from './llm-tokens.js';
import { LlmBatchApi } from './llm-batch-api.js';

export type ContentPart = { type: 'text'; text: string } | { type: 'image_url'; image_url: { url: string; detail?: 'auto' | 'low' | 'high' } };

export interface ChatMessage {
  role: 'system' | 'user' | 'assistant';
  content: string | ContentPart[];
}

/** Sampling parameters sent with a request; together with the messages they make its identity. */
export interface ChatParameters {
  temperature?: number;
  max_tokens?: number;
  seed?: number;
  top_p?: number;
}

export interface ChatRequest {
  messages: ChatMessage[];
  /** Override the client's defaults (`temperature`, `maxTokens`) or add a `seed`. */
  parameters?: ChatParameters;
  /** Content hash of the prompt files the messages were built from; part of the cache key. */
  promptHash?: string;
}

/** A request made ready to send: its cache key, the JSON body, and the compact form stored in the cache. */
export interface PreparedRequest {
  hash: string;
  body: { model: string; messages: ChatMessage[] } & ChatParameters;
  /** The request as stored in `llm_cache.request_json` (images as their sha256). */
  storedJson: string;
  /** Prompt tokens estimated before sending. */
  promptEstimate: number;
  maxTokens: number;
}

export interface ChatResult {
  text: string;
  finishReason: string | null;
  promptTokens: number;
  completionTokens: number;
  costUsd: number;
  /** True when the answer came from the run database without a request. */
  cached: boolean;
  requestHash: string;
}

/** Where responses are cached (the run database's `llm_cache`, see `src/store/llm-cache.ts`). */
export interface LlmResponseStore {
  get(hash: string): CachedResponse | null;
  put(entry: NewCachedResponse): void;
}

export interface LlmClientDeps {
  cache?: LlmResponseStore | null;
  /** Stop starting requests once this many US dollars are spent by this client (`--max-cost`). */
  maxCostUsd?: number | null;
  /** Environment to read `apiKeyEnv` from (default `process.env`). */
  env?: Record<string, string | undefined>;
  /** The window `rpm` and `tpm` refer to, in milliseconds: 60,000 (tests and benchmarks shorten it). */
  minuteMs?: number;
  /** Recipe path of these options, for error messages (default `synth.llm`). */
  optionPath?: string;
  random?: () => number;
}

export type CountersListener = (counters: Omit<LlmCounters, 'stage'>) => void;

const completionSchema = z.looseObject({
  choices: z
    .array(
      z.looseObject({
        message: z.looseObject({ content: z.string().nullable().optional() }).nullable().optional(),
        finish_reason: z.string().nullable().optional(),
      }),
    )
    .min(1),
  usage: z.looseObject({ prompt_tokens: z.number(), completion_tokens: z.number() }).nullable().optional(),
});

type Completion = z.infer<typeof completionSchema>;

const COUNTERS_EVERY_MS = 200;

/**
 * The API key from the variable `apiKeyEnv` names (null when none is named). A named variable that is
 * unset is a configuration error, checked before a run starts as well as here.
 */
export function apiKeyOf(options: Pick<LlmOptions, 'apiKeyEnv'>, path: string, env: NodeJS.ProcessEnv = process.env): string | null {
  if (options.apiKeyEnv === undefined) return null;
  const value = env[options.apiKeyEnv];
  if (value === undefined || value === '') {
    throw new ConfigError(
      `${path}.apiKeyEnv: the environment variable ${options.apiKeyEnv} is not set (it should hold the API key; omit apiKeyEnv for a local server that needs none)`,
    );
  }
  return value;
}

/**
 * The LLM numbers of the shared retry policy (`retry-policy.ts`): `maxRetries` retries, full-jitter
 * backoff from `retryBaseMs` up to `retryMaxMs`, and a server's wait honoured up to `maxRetryAfterMs`.
 */
export function llmRetryPolicy(options: Pick<LlmOptions, 'maxRetries' | 'retryBaseMs' | 'retryMaxMs' | 'maxRetryAfterMs'>): RetryPolicy {
  return { retries: options.maxRetries, baseMs: options.retryBaseMs, maxBackoffMs: options.retryMaxMs, jitter: 'full', maxServerWaitMs: options.maxRetryAfterMs };
}

export class LlmClient {
  readonly options: LlmOptions;
  readonly batch: LlmBatchApi;
  private readonly openai: OpenAI;
  private readonly queue: PQueue;
  private readonly bucket: TokenBucket;
  private readonly cache: LlmResponseStore | null;
  private readonly maxCostUsd: number | null;
  private readonly random: () => number;
  private readonly retryPolicy: RetryPolicy;
  private readonly secret: string | null;
  private readonly stats = { inFlight: 0, requests: 0, retries: 0, cached: 0, promptTokens: 0, completionTokens: 0, costUsd: 0 };
  private readonly listeners = new Set<CountersListener>();
  private countersTimer: NodeJS.Timeout | null = null;
  /** Set once the client stops (see the top of this file); wakes requests waiting for a slot or a retry. */
  private stopError: LlmError | null = null;
  private readonly stopping = new AbortController();
  /** True once the server sent any HTTP answer (even an error status): it exists and is reachable. */
  private answered = false;
  /** The base URL as messages show it (without credentials or query). */
  readonly shownBaseURL: string;

  constructor(options: LlmOptions, deps: LlmClientDeps = {}) {
    this.options = options;
    this.shownBaseURL = shownURL(options.baseURL);
    // Every request waiting for a slot listens to it (Node warns above 10 listeners).
    setMaxListeners(0, this.stopping.signal);
    const env = deps.env ?? process.env;
    const path = deps.optionPath ?? 'synth.llm';
    let apiKey = 'none';
    this.secret = null;
    const value = apiKeyOf(options, path, env);
    if (value !== null) {
      apiKey = value;
      this.secret = value;
    }
    // Everything explicit, so the SDK reads nothing from the environment behind our back.
    this.openai = new OpenAI({
      apiKey,
      baseURL: options.baseURL,
      organization: null,
      project: null,
      maxRetries: 0,
      timeout: options.timeoutMs,
      logLevel: 'off',
    });
    // Batch management calls stop the client as requests do (a rejected key, a server not there).
    this.batch = new LlmBatchApi(
      this.openai,
      options.timeoutMs,
      (err, attempts, lastTry) => this.stopFor(this.toLlmError(err), attempts, lastTry),
      () => (this.answered = true),
    );
    const minuteMs = deps.minuteMs ?? 60_000;
    // A sliding window of about one second of the minute, holding that second's share of the requests:
    // 600 RPM is 10 per 1000 ms, 500 RPM is 8 per 960 ms, 30 RPM is 1 per 2000 ms. A minute then holds
    // at most rpm + intervalCap requests, and timer lateness costs little (it is paid once per window).
    const intervalCap = Math.max(1, Math.round(options.rpm / 60));
    this.queue = new PQueue({ concurrency: options.concurrency, interval: (minuteMs * intervalCap) / options.rpm, intervalCap, strict: true });
    this.bucket = new TokenBucket(options.tpm, minuteMs);
    this.cache = deps.cache ?? null;
    this.maxCostUsd = deps.maxCostUsd ?? null;
    this.random = deps.random ?? Math.random;
    this.retryPolicy = llmRetryPolicy(options);
  }

  /** The cache key, body and stored form of a request. */
  prepare(request: ChatRequest): PreparedRequest {
    const parameters: ChatParameters = {
      temperature: this.options.temperature,
      max_tokens: this.options.maxTokens,
      ...request.parameters,
    };
    const body = { model: this.options.model, messages: request.messages, ...parameters };
    const compactMessages = compactDataUrls(request.messages);
    const identity = { model: this.options.model, messages: compactMessages, parameters: { ...parameters }, promptHash: request.promptHash ?? '' };
    return {
      hash: requestHash(identity),
      body,
      storedJson: JSON.stringify(identity),
      promptEstimate: estimatePromptTokens(request.messages),
      maxTokens: parameters.max_tokens ?? this.options.maxTokens,
    };
  }

  /** Spent by this client so far, in US dollars. */
  get spentUsd(): number {
    return this.stats.costUsd;
  }

  /** True once `maxCostUsd` is spent: no new request will start. */
  budgetExhausted(): boolean {
    return this.maxCostUsd !== null && this.stats.costUsd >= this.maxCostUsd;
  }

  /** Why the client stopped sending (a `key_rejected` or `server_unreachable` error), or null. */
  get stopped(): LlmError | null {
    return this.stopError;
  }

  /** A cached answer without any request, or null when the request was never answered. */
  cachedResult(prepared: PreparedRequest, options: { count?: boolean } = {}): ChatResult | null {
    const hit = this.cache?.get(prepared.hash);
    if (!hit) return null;
    if (options.count !== false) {
      this.stats.cached++;
      this.changed();
    }
    return this.interpret(prepared.hash, JSON.parse(hit.responseJson), true, prepared);
  }

  /**
   * One chat completion: from the cache when it holds the request, otherwise sent within the limits,
   * retried by the policy above, and cached. Throws an `LlmError` (with `code`) when it fails for good.
   * An aborted `signal` stops requests that have not started; requests in flight finish.
   */
  async complete(request: ChatRequest | PreparedRequest, options: { signal?: AbortSignal } = {}): Promise<ChatResult> {
    const prepared = 'hash' in request ? request : this.prepare(request);
    const cached = this.cachedResult(prepared);
    if (cached) return cached;
    if (this.stopError) throw this.notSent();
    const { signal } = options;
    const wake = signal ? AbortSignal.any([signal, this.stopping.signal]) : this.stopping.signal;
    let attempt = 0;
    for (;;) {
      try {
        const raw = await this.send(prepared, attempt, signal);
        return this.interpret(prepared.hash, raw, false, prepared);
      } catch (thrown) {
        const err = this.toLlmError(thrown);
        err.attempts = attempt + 1;
        const decision = decideRetry(this.retryPolicy, { retryable: err.isRetryable, serverWaitMs: err.retryAfterMs }, attempt + 1, this.random);
        if (!decision.retry) throw err;
        this.stats.retries++;
        this.changed();
        try {
          await sleep(decision.delayMs, wake);
        } catch {
          if (this.stopError) throw this.notSent();
          throw Object.assign(new LlmAbortError(`interrupted while waiting to retry after ${err.code}`), { attempts: attempt + 1 });
        }
        attempt++;
      }
    }
  }

  /**
   * The error a failed attempt ends in, after deciding whether it stops the client: a rejected key
   * always does; a connection that cannot be opened does before the server has answered anything (a
   * wrong URL, a server not started) and, once it has, when this was the request's last retry (the
   * server went away for good).
   */
  private stopFor(err: LlmError, attempts: number, lastTry: boolean): LlmError {
    if (err.status !== null) this.answered = true;
    if (err instanceof LlmKeyRejectedError || err instanceof LlmUnreachableError) {
      this.stop(err);
      return err;
    }
    const cause = err instanceof LlmConnectionError ? connectFailure(err.cause) : null;
    if (cause === null || (this.answered && !lastTry)) return err;
    const more = this.answered ? `, after it had answered earlier (${attempts} attempts)` : '';
    const stop = new LlmUnreachableError(`cannot reach ${this.shownBaseURL}: ${cause}${more}`, { cause: err });
    this.stop(stop);
    return stop;
  }

  private stop(err: LlmError): void {
    if (this.stopError) return;
    this.stopError = err;
    this.stopping.abort(err);
  }

  /** The stop's error for a request that was not sent because of it. */
  private notSent(): LlmError {
    const stop = this.stopError!;
    const copy = stop instanceof LlmKeyRejectedError ? new LlmKeyRejectedError(stop.status ?? 401, stop.message) : new LlmUnreachableError(stop.message);
    copy.attempts = 0;
    return copy;
  }

  /**
   * Tokens to reserve for the completion: the mean completion seen so far (the first requests reserve
   * `max_tokens`), never more than `max_tokens`. The reported usage corrects the bucket afterwards.
   */
  private expectedCompletion(maxTokens: number): number {
    if (this.completionsSeen === 0) return maxTokens;
    return Math.min(maxTokens, Math.ceil(this.completionTokensSeen / this.completionsSeen));
  }

  private completionsSeen = 0;
  private completionTokensSeen = 0;

  /** Send once within the limits; returns the validated body (already cached and priced). */
  private async send(prepared: PreparedRequest, attempt: number, signal?: AbortSignal): Promise<Completion> {
    if (signal?.aborted) throw new LlmAbortError();
    if (this.stopError) throw this.notSent();
    this.checkBudget();
    const reserved = prepared.promptEstimate + this.expectedCompletion(prepared.maxTokens);
    try {
      await this.bucket.take(reserved, signal ? AbortSignal.any([signal, this.stopping.signal]) : this.stopping.signal);
    } catch {
      throw this.stopError ? this.notSent() : new LlmAbortError();
    }
    let settled = false;
    let started = false;
    try {
      // Everything up to the accounting happens inside the queue slot, so the next request's budget
      // check already sees this one's cost.
      // The signal may cancel the request while it waits in the queue, never once it is sent: p-queue
      // would race a running task against the signal and abandon an answer that is on its way.
      // A stop cancels it there too.
      const whileQueued = new AbortController();
      const onAbort = () => whileQueued.abort(signal?.reason);
      const listened = signal ? [signal, this.stopping.signal] : [this.stopping.signal];
      for (const s of listened) s.addEventListener('abort', onAbort, { once: true });
      const unlisten = () => {
        for (const s of listened) s.removeEventListener('abort', onAbort);
      };
      return await this.queue.add(
        async () => {
          started = true;
          unlisten();
          // The wait may have been long: look again before spending.
          if (signal?.aborted) throw new LlmAbortError();
          if (this.stopError) throw this.notSent();
          this.checkBudget();
          this.stats.inFlight++;
          this.stats.requests++;
          this.changed();
          let raw: unknown;
          // The SDK's own timeout ends once the headers are in; ours covers the body too (a server may
          // send headers and then stall).
          const deadline = new AbortController();
          const timer = setTimeout(() => deadline.abort(), this.options.timeoutMs);
          try {
            raw = await this.openai.chat.completions.create(prepared.body as unknown as OpenAI.ChatCompletionCreateParamsNonStreaming, {
              maxRetries: 0,
              timeout: this.options.timeoutMs,
              signal: deadline.signal,
            });
          } catch (err) {
            if (deadline.signal.aborted) throw new LlmTimeoutError(`no complete answer within ${this.options.timeoutMs} ms`, { cause: err });
            // Decided before the slot is free, so a stop keeps the next queued request from being sent.
            throw this.stopFor(this.toLlmError(err), attempt + 1, attempt >= this.options.maxRetries);
          } finally {
            clearTimeout(timer);
            this.stats.inFlight--;
            this.changed();
          }
          this.answered = true;
          const parsed = completionSchema.safeParse(raw);
          if (!parsed.success) {
            const shown = typeof raw === 'string' ? JSON.stringify(raw.slice(0, 80)) : 'a JSON value without choices';
            throw new LlmBadResponseError(`the server answered 200 with ${shown}, not a chat completion`);
          }
          const completion = parsed.data;
          const usage = this.usageOf(completion, prepared);
          settled = true;
          this.bucket.adjust(reserved - (usage.promptTokens + usage.completionTokens));
          this.completionsSeen++;
          this.completionTokensSeen += usage.completionTokens;
          this.account(prepared, completion, usage);
          return completion;
        },
        { signal: whileQueued.signal },
      ).finally(unlisten);
    } catch (err) {
      // A failed request produced no answer: give back the completion part of the reservation.
      if (!settled) this.bucket.adjust(reserved - prepared.promptEstimate);
      // p-queue rejects a queued task with the signal's reason when the run is interrupted or the client stops.
      if (!started) throw this.stopError ? this.notSent() : new LlmAbortError();
      throw err;
    }
  }

  /** Count, price and cache an answer. */
  private account(prepared: { hash: string; storedJson: string }, completion: Completion, usage: { promptTokens: number; completionTokens: number }): void {
    const cost = costUsd(usage, this.options.price);
    this.stats.promptTokens += usage.promptTokens;
    this.stats.completionTokens += usage.completionTokens;
    this.stats.costUsd += cost;
    this.changed();
    this.cache?.put({
      requestHash: prepared.hash,
      model: this.options.model,
      requestJson: prepared.storedJson,
      responseJson: JSON.stringify(completion),
      promptTokens: usage.promptTokens,
      completionTokens: usage.completionTokens,
      costUsd: cost,
    });
  }

  /**
   * Record a response obtained elsewhere (a batch result) as if it had been sent now: cached, priced,
   * counted. Returns false (and stores nothing) when the body is not a chat completion.
   */
  ingest(prepared: { hash: string; storedJson: string; promptEstimate?: number }, body: unknown): boolean {
    const parsed = completionSchema.safeParse(body);
    if (!parsed.success) return false;
    this.stats.requests++;
    this.account(prepared, parsed.data, this.usageOf(parsed.data, { promptEstimate: prepared.promptEstimate ?? 0 }));
    return true;
  }

  private usageOf(completion: Completion, prepared: { promptEstimate: number }): { promptTokens: number; completionTokens: number } {
    if (completion.usage) return { promptTokens: completion.usage.prompt_tokens, completionTokens: completion.usage.completion_tokens };
    const text = completion.choices[0]?.message?.content ?? '';
    return { promptTokens: prepared.promptEstimate, completionTokens: estimateTextTokens(text) };
  }

  private interpret(hash: string, raw: unknown, cached: boolean, prepared: PreparedRequest): ChatResult {
    const parsed = completionSchema.safeParse(raw);
    if (!parsed.success) {
      throw Object.assign(new LlmBadResponseError('the cached response is not a chat completion'), { requestHash: hash });
    }
    const choice = parsed.data.choices[0]!;
    const finishReason = choice.finish_reason ?? null;
    const text = choice.message?.content ?? '';
    const usage = this.usageOf(parsed.data, prepared);
    if (finishReason === 'length') {
      throw Object.assign(new LlmLengthError(`the answer was cut off at max_tokens (${prepared.maxTokens}) after ${usage.completionTokens} tokens`), { requestHash: hash });
    }
    if (finishReason === 'content_filter') {
      throw Object.assign(new LlmContentFilterError('the provider withheld the answer (finish_reason content_filter)'), { requestHash: hash });
    }
    return {
      text,
      finishReason,
      promptTokens: usage.promptTokens,
      completionTokens: usage.completionTokens,
      costUsd: costUsd(usage, this.options.price),
      cached,
      requestHash: hash,
    };
  }

  private checkBudget(): void {
    if (this.budgetExhausted()) {
      throw new LlmBudgetError(`--max-cost reached: $${this.stats.costUsd.toFixed(4)} spent of $${this.maxCostUsd}; the request was not sent (a later run resumes it)`);
    }
  }

  /** Map anything the SDK throws to one of our error kinds, with the key scrubbed from its message. */
  toLlmError(thrown: unknown): LlmError {
    if (thrown instanceof LlmError) return thrown;
    const message = this.scrub(describeError(thrown));
    if (thrown instanceof APIUserAbortError) return new LlmAbortError();
    if (thrown instanceof APIConnectionTimeoutError) return new LlmTimeoutError(`no answer within ${this.options.timeoutMs} ms`, { cause: thrown });
    if (thrown instanceof APIConnectionError) return new LlmConnectionError(`connection failed: ${message}`, { cause: thrown });
    if (thrown instanceof APIError && typeof thrown.status === 'number') {
      const headers = thrown.headers as Headers | undefined;
      // The SDK's message starts with the status already ("429 Rate limit reached ...").
      const detail = message.startsWith(`${thrown.status} `) ? message.slice(String(thrown.status).length + 1) : message;
      if (thrown.status === 401 || thrown.status === 403) {
        const hint = this.secret === null ? '; no key was sent: name the variable that holds it in apiKeyEnv' : '';
        return new LlmKeyRejectedError(thrown.status, `API key rejected by ${this.shownBaseURL} (HTTP ${thrown.status}: ${detail}${hint})`, { cause: thrown });
      }
      return errorForStatus(thrown.status, `HTTP ${thrown.status}: ${detail}`, { retryAfterMs: serverWaitMs(headers ?? null), cause: thrown });
    }
    if (thrown instanceof SyntaxError) return new LlmBadResponseError(`the server answered with malformed JSON (${message})`, { cause: thrown });
    // Reading the body failed after the headers came: undici's fetch says `TypeError: terminated`, the
    // socket error as its cause (the SDK wraps only failures before the headers).
    if (thrown instanceof TypeError && thrown.message === 'terminated') {
      return new LlmConnectionError(`the connection closed before the whole answer arrived (${this.scrub(describeError(thrown.cause ?? thrown))})`, { cause: thrown });
    }
    if (thrown instanceof Error && thrown.name === 'AbortError') return new LlmAbortError();
    throw thrown;
  }

  private scrub(text: string): string {
    return this.secret ? text.split(this.secret).join('***') : text;
  }

  counters(): Omit<LlmCounters, 'stage'> {
    return { ...this.stats };
  }

  /** Listen to counter changes (at most every 200 ms). Returns the unsubscribe function. */
  onCounters(listener: CountersListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Tell listeners the current counters now. */
  flushCounters(): void {
    if (this.countersTimer) {
      clearTimeout(this.countersTimer);
      this.countersTimer = null;
    }
    const snapshot = this.counters();
    for (const listener of this.listeners) listener(snapshot);
  }

  private changed(): void {
    if (this.countersTimer || this.listeners.size === 0) return;
    this.countersTimer = setTimeout(() => {
      this.countersTimer = null;
      this.flushCounters();
    }, COUNTERS_EVERY_MS);
    this.countersTimer.unref();
  }

  /** Wait for requests in flight and queued to finish. */
  async idle(): Promise<void> {
    await this.queue.onIdle();
  }
}

/** A URL as messages show it: without user name, password or query (where keys sometimes travel). */
function shownURL(url: string): string {
  if (!URL.canParse(url)) return url;
  const parsed = new URL(url);
  if (parsed.username === '' && parsed.password === '' && parsed.search === '') return url;
  return `${parsed.origin}${parsed.pathname}`;
}
