/**
 * Batch mode: the requests a group of samples needs are written to a JSONL request file, uploaded,
 * run as an OpenAI batch, polled, and the answers ingested into the cache by `custom_id` (the request
 * hash). The synth stage then reads every answer from the cache exactly as in live mode, and requests
 * needed after rejections go out in the next round.
 *
 * Every submitted batch is written to a ledger (`<dir>/<batch id>.json`) before it is polled, so a run
 * killed while waiting collects that batch on resume instead of paying for it again.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { LlmClient, PreparedRequest } from '../../backends/llm-client.js';
import { BATCH_FINAL_STATES, type BatchStatus } from '../../backends/llm-batch-api.js';
import { LlmBadResponseError, LlmError, errorForStatus } from '../../backends/llm-errors.js';
import { sleep } from '../../backends/retry-policy.js';
import { batchRequestLine, parseBatchOutput, writeBatchJsonl } from './batch-file.js';

export interface BatchRunnerOptions {
  dir: string;
  /** Metadata attached to each batch at the provider (e.g. the run id). */
  metadata?: Record<string, string>;
  pollIntervalMs: number;
  maxWaitMs: number;
  log?: (message: string) => void;
}

interface LedgerEntry {
  batchId: string;
  inputFileId: string;
  requestFile: string;
  submittedAt: string;
  /** Cache rows to write for each custom_id: the request as stored and its prompt estimate. */
  requests: Record<string, { storedJson: string; promptEstimate: number }>;
  ingested: boolean;
  finalStatus?: string;
}

export interface BatchRoundResult {
  /** Requests answered and now in the cache. */
  answered: number;
  /** Requests that came back with an error, by hash. */
  errors: Map<string, LlmError>;
  /** Requests the batch did not answer (expired, cancelled, still running when we stopped waiting). */
  missing: string[];
  status: string;
}

export class BatchRunner {
  constructor(
    private readonly client: LlmClient,
    private readonly options: BatchRunnerOptions,
  ) {
    mkdirSync(options.dir, { recursive: true });
  }

  private ledgerPath(batchId: string): string {
    return join(this.options.dir, `${batchId.replace(/[^A-Za-z0-9_-]/g, '_')}.json`);
  }

  private saveLedger(entry: LedgerEntry): void {
    const path = this.ledgerPath(entry.batchId);
    writeFileSync(`${path}.tmp`, JSON.stringify(entry));
    renameSync(`${path}.tmp`, path);
  }

  /** Batches an earlier run submitted and never ingested: wait for each and ingest what it answered. */
  async recover(signal?: AbortSignal): Promise<number> {
    if (!existsSync(this.options.dir)) return 0;
    let recovered = 0;
    for (const name of readdirSync(this.options.dir).sort()) {
      if (!name.endsWith('.json')) continue;
      let entry: LedgerEntry;
      try {
        entry = JSON.parse(readFileSync(join(this.options.dir, name), 'utf8')) as LedgerEntry;
      } catch {
        continue;
      }
      if (entry.ingested || typeof entry.batchId !== 'string') continue;
      this.options.log?.(`batch ${entry.batchId} from an earlier run: collecting its answers`);
      const result = await this.finish(entry, signal);
      recovered += result.answered;
    }
    return recovered;
  }

  /** Submit one batch for `requests`, wait for it, and ingest its answers. */
  async run(requests: readonly PreparedRequest[], signal?: AbortSignal): Promise<BatchRoundResult> {
    const unique = [...new Map(requests.map((r) => [r.hash, r])).values()];
    const stamp = new Date().toISOString().replace(/[:.]/g, '-');
    const requestFile = join(this.options.dir, `requests-${stamp}.jsonl`);
    writeFileSync(requestFile, writeBatchJsonl(unique.map((r) => batchRequestLine(r.hash, r.body))));
    const inputFileId = await this.client.batch.upload(readFileSync(requestFile, 'utf8'), `vlcurate-${stamp}.jsonl`);
    const created = await this.client.batch.create(inputFileId, { tool: 'vlcurate', ...this.options.metadata });
    const entry: LedgerEntry = {
      batchId: created.id,
      inputFileId,
      requestFile,
      submittedAt: new Date().toISOString(),
      requests: Object.fromEntries(unique.map((r) => [r.hash, { storedJson: r.storedJson, promptEstimate: r.promptEstimate }])),
      ingested: false,
    };
    this.saveLedger(entry);
    this.options.log?.(`batch ${created.id}: ${unique.length} requests submitted (${requestFile})`);
    return this.finish(entry, signal);
  }

  private async poll(batchId: string, signal?: AbortSignal): Promise<BatchStatus> {
    const started = Date.now();
    let status = await this.client.batch.retrieve(batchId);
    while (!BATCH_FINAL_STATES.has(status.status)) {
      if (Date.now() - started >= this.options.maxWaitMs || signal?.aborted) return status;
      try {
        await sleep(this.options.pollIntervalMs, signal);
      } catch {
        return status;
      }
      status = await this.client.batch.retrieve(batchId);
    }
    return status;
  }

  private async finish(entry: LedgerEntry, signal?: AbortSignal): Promise<BatchRoundResult> {
    const status = await this.poll(entry.batchId, signal);
    const errors = new Map<string, LlmError>();
    const answered = new Set<string>();
    if (!BATCH_FINAL_STATES.has(status.status)) {
      this.options.log?.(`batch ${entry.batchId}: still ${status.status}; a later run collects it`);
      return { answered: 0, errors, missing: Object.keys(entry.requests), status: status.status };
    }
    for (const fileId of [status.outputFileId, status.errorFileId]) {
      if (!fileId) continue;
      const { lines } = parseBatchOutput(await this.client.batch.content(fileId));
      for (const line of lines) {
        const known = entry.requests[line.custom_id];
        if (!known || answered.has(line.custom_id)) continue;
        const response = line.response;
        if (response && response.status_code === 200 && this.client.ingest({ hash: line.custom_id, ...known }, response.body)) {
          answered.add(line.custom_id);
          errors.delete(line.custom_id);
          continue;
        }
        const message = describeLineError(line.error, response?.body);
        errors.set(
          line.custom_id,
          response && response.status_code !== 200
            ? errorForStatus(response.status_code, `batch: HTTP ${response.status_code}: ${message}`)
            : new LlmBadResponseError(`batch: ${message}`),
        );
      }
    }
    for (const message of status.errors) this.options.log?.(`batch ${entry.batchId}: ${message}`);
    entry.ingested = true;
    entry.finalStatus = status.status;
    this.saveLedger(entry);
    const missing = Object.keys(entry.requests).filter((hash) => !answered.has(hash) && !errors.has(hash));
    this.options.log?.(`batch ${entry.batchId}: ${status.status}, ${answered.size} answered, ${errors.size} errors, ${missing.length} missing`);
    return { answered: answered.size, errors, missing, status: status.status };
  }
}

function describeLineError(error: { code?: string | null; message?: string | null } | null | undefined, body: unknown): string {
  if (error && (error.code || error.message)) return [error.code, error.message].filter(Boolean).join(': ');
  const bodyError = (body as { error?: { message?: string } } | undefined)?.error?.message;
  return bodyError ?? 'no chat completion in the answer';
}
