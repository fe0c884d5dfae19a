/**
 * Errors of LLM calls: one class per kind, each with a stable `code` (stored as the reason of a failed
 * instruction) and `isRetryable` derived from the facts (HTTP 408/409/429/5xx, timeouts and dropped
 * connections are retryable; a truncated or filtered answer is not).
 */
import { VlcurateError } from '../core/errors.js';

export interface LlmErrorDetails {
  /** HTTP status, when the server answered. */
  status?: number | null;
  /** How long the server asked us to wait before retrying, when it said. */
  retryAfterMs?: number | null;
  cause?: unknown;
}

export abstract class LlmError extends VlcurateError {
  abstract readonly isRetryable: boolean;
  readonly status: number | null;
  readonly retryAfterMs: number | null;
  /** Attempts made before giving up (set by the client). */
  attempts = 1;
  /** Cache key of the request, when the failure is about a received answer (set by the client). */
  requestHash: string | null = null;

  constructor(code: string, message: string, details: LlmErrorDetails = {}) {
    super(code, message, { cause: details.cause });
    this.status = details.status ?? null;
    this.retryAfterMs = details.retryAfterMs ?? null;
  }
}

/** HTTP 429: the server's rate limit. */
export class LlmRateLimitError extends LlmError {
  readonly isRetryable = true;
  constructor(message: string, details: LlmErrorDetails = {}) {
    super('rate_limited', message, { status: 429, ...details });
  }
}

/** HTTP 5xx. */
export class LlmServerError extends LlmError {
  readonly isRetryable = true;
  constructor(message: string, details: LlmErrorDetails = {}) {
    super('server_error', message, details);
  }
}

/** The request ran past `timeoutMs`, or the server answered 408. */
export class LlmTimeoutError extends LlmError {
  readonly isRetryable = true;
  constructor(message: string, details: LlmErrorDetails = {}) {
    super('timeout', message, details);
  }
}

/** The connection failed or dropped before an answer. */
export class LlmConnectionError extends LlmError {
  readonly isRetryable = true;
  constructor(message: string, details: LlmErrorDetails = {}) {
    super('connection_error', message, details);
  }
}

/** Any other HTTP error status: retryable only for 409 (conflict); 400/401/403/404/422 are not. */
export class LlmHttpError extends LlmError {
  readonly isRetryable: boolean;
  constructor(status: number, message: string, details: LlmErrorDetails = {}) {
    super(`http_${status}`, message, { ...details, status });
    this.isRetryable = status === 409;
  }
}

/** The server answered 200 with a body that is not a chat completion (bad JSON, no choices). */
export class LlmBadResponseError extends LlmError {
  readonly isRetryable = true;
  constructor(message: string, details: LlmErrorDetails = {}) {
    super('bad_response', message, details);
  }
}

/** `finish_reason: length`: the answer was cut at `max_tokens`. Recorded, not retried blindly. */
export class LlmLengthError extends LlmError {
  readonly isRetryable = false;
  constructor(message: string, details: LlmErrorDetails = {}) {
    super('finish_length', message, details);
  }
}

/** `finish_reason: content_filter`: the provider withheld the answer. */
export class LlmContentFilterError extends LlmError {
  readonly isRetryable = false;
  constructor(message: string, details: LlmErrorDetails = {}) {
    super('content_filter', message, details);
  }
}

/** `--max-cost` reached: the request was not sent. A later run can resume it. */
export class LlmBudgetError extends LlmError {
  readonly isRetryable = false;
  constructor(message: string) {
    super('budget_exhausted', message);
  }
}

/** The run was interrupted before the request was sent. A later run can resume it. */
export class LlmAbortError extends LlmError {
  readonly isRetryable = false;
  constructor(message = 'interrupted before the request was sent') {
    super('aborted', message);
  }
}

/** Failure codes after which a later run should try again (nothing was learned about the answer). */
export const RESUMABLE_CODES: ReadonlySet<string> = new Set([
  'budget_exhausted',
  'aborted',
  'rate_limited',
  'server_error',
  'timeout',
  'connection_error',
  'bad_response',
  'http_409',
]);

/** Classify an HTTP error status. */
export function errorForStatus(status: number, message: string, details: LlmErrorDetails = {}): LlmError {
  if (status === 429) return new LlmRateLimitError(message, details);
  if (status === 408) return new LlmTimeoutError(message, { ...details, status });
  if (status >= 500) return new LlmServerError(message, { ...details, status });
  return new LlmHttpError(status, message, details);
}
