/**
 * Errors of LLM calls: one class per kind, each with a stable `code` (stored as the reason of a failed
 * instruction) and `isRetryable` derived from the facts (HTTP 408/409/429/5xx, timeouts and dropped
 * connections are retryable; a truncated or filtered answer is not).
 */
import { VlcurateError } from '../core/errors.js';
import type { FailureCode } from '../core/failure-codes.js';
import { isRetryableStatus } from './retry-policy.js';

/** Retried besides 408, 429 and 5xx: 409 Conflict, as OpenAI's SDK retries it (openai-node `shouldRetry`). */
export const LLM_ALSO_RETRIED_STATUSES: readonly number[] = [409];

export interface LlmErrorDetails {
  /** HTTP status, when the server answered. */
  status?: number | null;
  /** How long the server asked us to wait before retrying, when it said. */
  retryAfterMs?: number | null;
  cause?: unknown;
}

export abstract class LlmError extends VlcurateError {
  /** The failure code recorded for it (`core/failure-codes.ts`). */
  declare readonly code: FailureCode;
  abstract readonly isRetryable: boolean;
  readonly status: number | null;
  readonly retryAfterMs: number | null;
  /** Attempts made before giving up (set by the client). */
  attempts = 1;
  /** Cache key of the request, when the failure is about a received answer (set by the client). */
  requestHash: string | null = null;

  constructor(code: FailureCode, message: string, details: LlmErrorDetails = {}) {
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
    this.isRetryable = isRetryableStatus(status, LLM_ALSO_RETRIED_STATUSES);
  }
}

/**
 * HTTP 401/403: the server refused the API key (or the account). Every later request would be refused
 * too, so the client stops: no retries, no further requests; a later run with a good key resumes.
 */
export class LlmKeyRejectedError extends LlmError {
  readonly isRetryable = false;
  constructor(status: number, message: string, details: LlmErrorDetails = {}) {
    super('key_rejected', message, { ...details, status });
  }
}

/**
 * The server cannot be reached at all (connection refused, DNS lookup or TLS handshake failed) before it
 * answered anything, or again after a request used up its retries on it: the client stops, a later run
 * resumes.
 */
export class LlmUnreachableError extends LlmError {
  readonly isRetryable = false;
  constructor(message: string, details: LlmErrorDetails = {}) {
    super('server_unreachable', message, details);
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

/**
 * Why a connection could not be opened, when that is what `thrown` (or an error in its cause chain) says:
 * refused, DNS lookup failed, no route, connect timeout, TLS handshake failed, a port fetch refuses. Null for anything else
 * (a connection that opened and then dropped, a timeout waiting for the answer).
 */
export function connectFailure(thrown: unknown): string | null {
  let error: unknown = thrown;
  for (let depth = 0; depth < 6 && error instanceof Error; depth++, error = error.cause) {
    // fetch refuses the ports of the Fetch standard's "bad port" list (9, 25, 6000, ...) without connecting.
    if (error.message === 'bad port') return 'fetch does not connect to this port (a "bad port" of the Fetch standard; use another)';
    const code = (error as { code?: unknown }).code;
    if (typeof code !== 'string') continue;
    if (code === 'ECONNREFUSED') return `connection refused (${code})`;
    if (code === 'ENOTFOUND' || code === 'EAI_AGAIN' || code === 'EAI_NONAME' || code === 'EAI_FAIL') return `DNS lookup failed (${error.message})`;
    if (code === 'EHOSTUNREACH' || code === 'ENETUNREACH' || code === 'EADDRNOTAVAIL') return `no route to the host (${code})`;
    if (code === 'UND_ERR_CONNECT_TIMEOUT') return `the connection could not be opened in time (${code})`;
    if (/^(ERR_SSL_|ERR_TLS_|CERT_|UNABLE_TO_)/.test(code) || TLS_CODES.has(code)) return `TLS handshake failed: ${opensslReason(error.message)} (${code})`;
  }
  return null;
}

const TLS_CODES = new Set(['DEPTH_ZERO_SELF_SIGNED_CERT', 'SELF_SIGNED_CERT_IN_CHAIN', 'HOSTNAME_MISMATCH', 'EPROTO']);

/** `80AC...:error:0A00010B:SSL routines:ssl3_get_record:wrong version number:file:line:` -> `wrong version number`. */
function opensslReason(message: string): string {
  return /:error:[0-9A-Fa-f]+:[^:]*:[^:]*:([^:]+):/.exec(message)?.[1] ?? message.split('\n')[0]!;
}

/** Classify an HTTP error status. */
export function errorForStatus(status: number, message: string, details: LlmErrorDetails = {}): LlmError {
  if (status === 429) return new LlmRateLimitError(message, details);
  if (status === 408) return new LlmTimeoutError(message, { ...details, status });
  if (status >= 500) return new LlmServerError(message, { ...details, status });
  return new LlmHttpError(status, message, details);
}
