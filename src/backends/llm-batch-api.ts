/**
 * OpenAI Batch API calls through the SDK: upload a JSONL request file, create a batch, poll it, and
 * download its output. Management calls are few, so each gets a short retry of its own (the SDK's
 * retries stay off, as for chat requests).
 */
import type OpenAI from 'openai';
import { toFile } from 'openai';
import { LlmTimeoutError, type LlmError } from './llm-errors.js';
import { decideRetry, sleep, type RetryPolicy } from './retry-policy.js';

export interface BatchStatus {
  id: string;
  /** validating | in_progress | finalizing | completed | failed | expired | cancelling | cancelled */
  status: string;
  outputFileId: string | null;
  errorFileId: string | null;
  counts: { total: number; completed: number; failed: number };
  /** Errors the provider reported for the whole batch (e.g. a malformed line), one per line. */
  errors: string[];
}

/** Batch states after which nothing more will happen. */
export const BATCH_FINAL_STATES: ReadonlySet<string> = new Set(['completed', 'failed', 'expired', 'cancelled']);

/** Four tries in all, full-jitter backoff from 0.5 s up to 10 s, any wait a server asks for. */
const MANAGEMENT_POLICY: RetryPolicy = { retries: 3, baseMs: 500, maxBackoffMs: 10_000, jitter: 'full', maxServerWaitMs: null };

export class LlmBatchApi {
  /**
   * `toLlmError` classifies a failed call (`lastTry`: no retry follows); `onAnswer` hears of each call the
   * server answered (the client's rule for stopping on connection failures depends on it). `timeoutMs`
   * bounds a file download, body included.
   */
  constructor(
    private readonly openai: OpenAI,
    private readonly timeoutMs: number,
    private readonly toLlmError: (err: unknown, attempts: number, lastTry: boolean) => LlmError,
    private readonly onAnswer: () => void = () => {},
  ) {}

  private async retrying<T>(what: string, call: () => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      try {
        const result = await call();
        this.onAnswer();
        return result;
      } catch (thrown) {
        const err = this.toLlmError(thrown, attempt + 1, attempt >= MANAGEMENT_POLICY.retries);
        const decision = decideRetry(MANAGEMENT_POLICY, { retryable: err.isRetryable, serverWaitMs: err.retryAfterMs }, attempt + 1);
        if (!decision.retry) {
          err.message = `${what}: ${err.message}`;
          throw err;
        }
        await sleep(decision.delayMs);
      }
    }
  }

  /** Upload a JSONL request file (`purpose: batch`); returns its file id. */
  async upload(jsonl: string, filename: string): Promise<string> {
    const file = await toFile(Buffer.from(jsonl, 'utf8'), filename, { type: 'application/jsonl' });
    const created = await this.retrying('batch file upload', () => this.openai.files.create({ file, purpose: 'batch' }, { maxRetries: 0 }));
    return created.id;
  }

  /** Start a batch over an uploaded file of chat completion requests. */
  async create(inputFileId: string, metadata: Record<string, string> = {}): Promise<BatchStatus> {
    const batch = await this.retrying('batch create', () =>
      this.openai.batches.create(
        { input_file_id: inputFileId, endpoint: '/v1/chat/completions', completion_window: '24h', metadata },
        { maxRetries: 0 },
      ),
    );
    return toStatus(batch);
  }

  async retrieve(batchId: string): Promise<BatchStatus> {
    return toStatus(await this.retrying('batch status', () => this.openai.batches.retrieve(batchId, { maxRetries: 0 })));
  }

  async cancel(batchId: string): Promise<BatchStatus> {
    return toStatus(await this.retrying('batch cancel', () => this.openai.batches.cancel(batchId, { maxRetries: 0 })));
  }

  /** The text of a file (a batch's output or error JSONL). */
  async content(fileId: string): Promise<string> {
    return this.retrying('batch file download', async () => {
      // The SDK's timeout ends once the headers are in; a server may send them and then stall.
      const deadline = new AbortController();
      const timer = setTimeout(() => deadline.abort(), this.timeoutMs);
      try {
        const response = await this.openai.files.content(fileId, { maxRetries: 0, timeout: this.timeoutMs, signal: deadline.signal });
        return await response.text();
      } catch (err) {
        if (deadline.signal.aborted) throw new LlmTimeoutError(`no complete file within ${this.timeoutMs} ms`, { cause: err });
        throw err;
      } finally {
        clearTimeout(timer);
      }
    });
  }
}

function toStatus(batch: OpenAI.Batches.Batch): BatchStatus {
  return {
    id: batch.id,
    status: batch.status,
    outputFileId: batch.output_file_id ?? null,
    errorFileId: batch.error_file_id ?? null,
    counts: {
      total: batch.request_counts?.total ?? 0,
      completed: batch.request_counts?.completed ?? 0,
      failed: batch.request_counts?.failed ?? 0,
    },
    errors: (batch.errors?.data ?? []).map((e) => [e.line !== undefined && e.line !== null ? `line ${e.line}` : '', e.code, e.message].filter(Boolean).join(': ')),
  };
}
