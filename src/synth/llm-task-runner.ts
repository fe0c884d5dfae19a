/**
 * One LLM-written instruction sample: ask, parse, check; when the answer is rejected, ask again with a
 * fresh sample (a new seed, so a new request and cache key) up to `maxAttempts`. The outcome is always
 * data: `ok` with turns (and flags), `rejected` with every attempt's reason, or `failed` with the
 * request's error code. `pending` is only seen in batch mode: the answer is not in the cache yet.
 */
import type { Turn } from '../core/conversation.js';
import type { ChatRequest, ChatResult, PreparedRequest } from '../backends/llm-client.js';
import { LlmError } from '../backends/llm-errors.js';
import { interpretAnswer, llmRequest, type TaskContext } from './llm-tasks.js';
import type { LlmTaskName, TaskPrompt } from './prompts.js';
import { seededInt } from './seeded.js';
import { VlcurateError } from '../core/errors.js';

export interface TaskOutcome {
  task: LlmTaskName;
  variant: number;
  status: 'ok' | 'rejected' | 'failed' | 'not_applicable' | 'pending';
  /** Why not ok (`leak_caption`, `http_429`, ...); null when ok or pending. */
  code: string | null;
  /** What happened, or an ok sample's notes (`unsupported_objects: dog`). */
  message: string | null;
  conversations: Turn[] | null;
  requestHash: string | null;
  attempts: number;
  /** Batch mode: the request whose answer is awaited. */
  pending?: PreparedRequest;
}

/** Asks the model (live: through the client; batch: from the cache, or `PendingRequest`). */
export type Ask = (request: ChatRequest) => Promise<ChatResult>;

/** Thrown by a batch-mode `Ask` for a request that has no answer yet. */
export class PendingRequest extends VlcurateError {
  constructor(readonly prepared: PreparedRequest) {
    super('answer_pending', 'answer not available yet');
  }
}

export interface RunTaskOptions {
  key: string;
  task: LlmTaskName;
  variant: number;
  seed: number;
  maxAttempts: number;
  prompt: TaskPrompt;
  context: TaskContext;
  detailInstruction: string;
}

export async function runLlmTask(ask: Ask, options: RunTaskOptions): Promise<TaskOutcome> {
  const { key, task, variant } = options;
  const base = { task, variant };
  if (options.context.context.text === '') {
    return { ...base, status: 'not_applicable', code: 'no_context', message: 'no usable caption or box to write about', conversations: null, requestHash: null, attempts: 0 };
  }
  const rejections: { code: string; detail: string }[] = [];
  const codesOf = () => rejections.map((r) => r.code).join(', ');
  let requestHash: string | null = null;
  for (let attempt = 0; attempt < options.maxAttempts; attempt++) {
    const request = llmRequest(options.prompt, options.context.context.text, seededInt(options.seed, key, task, variant, attempt));
    let result: ChatResult;
    try {
      result = await ask(request);
    } catch (err) {
      if (err instanceof PendingRequest) {
        return { ...base, status: 'pending', code: null, message: null, conversations: null, requestHash: err.prepared.hash, attempts: attempt + 1, pending: err.prepared };
      }
      if (err instanceof LlmError) {
        const earlier = rejections.length > 0 ? ` (after ${rejections.length} rejected: ${codesOf()})` : '';
        return { ...base, status: 'failed', code: err.code, message: `${err.message}${earlier}`, conversations: null, requestHash: err.requestHash ?? requestHash, attempts: attempt + 1 };
      }
      throw err;
    }
    requestHash = result.requestHash;
    const interpreted = interpretAnswer(task, result.text, options.context.evidence, options.detailInstruction);
    if (interpreted.ok) {
      const notes = [...interpreted.flags];
      if (rejections.length > 0) notes.push(`retried: ${rejections.map((r) => `${r.code}: ${r.detail}`).join('; ')}`);
      const message = notes.length > 0 ? notes.join('; ') : null;
      return { ...base, status: 'ok', code: null, message, conversations: interpreted.conversations, requestHash, attempts: attempt + 1 };
    }
    rejections.push({ code: interpreted.code, detail: interpreted.detail });
  }
  const last = rejections[rejections.length - 1]!;
  const message = rejections.length > 1 ? `${last.detail} (${rejections.length} attempts: ${codesOf()})` : last.detail;
  return { ...base, status: 'rejected', code: last.code, message, conversations: null, requestHash, attempts: options.maxAttempts };
}
