/**
 * The LLM response cache over the `llm_cache` table. A request is identified by the sha256 of the
 * canonical JSON of `{model, messages, parameters, promptHash}`: the same prompt with the same sampling
 * parameters is never paid for twice, in this run or a resumed one. The raw response body is stored, so
 * answers can be parsed again (with changed parsers) without a request. Nothing secret is stored: the
 * request is kept without headers, and images as their sha256 rather than their bytes. The key and the
 * entry are defined beside the client that makes them (`backends/llm-cache-entry.ts`).
 */
import type { CachedResponse, NewCachedResponse } from '../backends/llm-cache-entry.js';
import type { Db } from './database.js';
import { nowIso } from './database.js';

export class LlmCache {
  private readonly select;
  private readonly insert;

  constructor(readonly db: Db) {
    this.select = db.prepare(`
      SELECT request_hash AS requestHash, model, request_json AS requestJson, response_json AS responseJson,
             prompt_tokens AS promptTokens, completion_tokens AS completionTokens, cost_usd AS costUsd,
             created_at AS createdAt
      FROM llm_cache WHERE request_hash = ?`);
    // The first answer for a request wins: a cached answer is never replaced by a later one.
    this.insert = db.prepare(`
      INSERT OR IGNORE INTO llm_cache (request_hash, model, request_json, response_json, prompt_tokens,
                                       completion_tokens, cost_usd, created_at)
      VALUES (@requestHash, @model, @requestJson, @responseJson, @promptTokens, @completionTokens, @costUsd, @createdAt)`);
  }

  get(hash: string): CachedResponse | null {
    return (this.select.get(hash) as CachedResponse | undefined) ?? null;
  }

  /** Store a response (committed at once: a response that arrived is never paid for again, even after a kill). */
  put(entry: NewCachedResponse): void {
    this.insert.run({ ...entry, createdAt: nowIso() });
  }

  /** Store many responses in one transaction (batch results). */
  putMany(entries: readonly NewCachedResponse[]): void {
    const createdAt = nowIso();
    this.db.transaction(() => {
      for (const entry of entries) this.insert.run({ ...entry, createdAt });
    })();
  }

  /** Which of `hashes` are cached. */
  has(hashes: readonly string[]): Set<string> {
    const found = new Set<string>();
    const CHUNK = 500;
    for (let i = 0; i < hashes.length; i += CHUNK) {
      const chunk = hashes.slice(i, i + CHUNK);
      const rows = this.db
        .prepare(`SELECT request_hash AS h FROM llm_cache WHERE request_hash IN (${chunk.map(() => '?').join(',')})`)
        .all(...chunk) as { h: string }[];
      for (const row of rows) found.add(row.h);
    }
    return found;
  }

  /** Every cached response, for parsing again without requests. */
  *entries(): IterableIterator<CachedResponse> {
    const rows = this.db
      .prepare(`
        SELECT request_hash AS requestHash, model, request_json AS requestJson, response_json AS responseJson,
               prompt_tokens AS promptTokens, completion_tokens AS completionTokens, cost_usd AS costUsd,
               created_at AS createdAt
        FROM llm_cache ORDER BY request_hash`)
      .iterate() as IterableIterator<CachedResponse>;
    yield* rows;
  }

  count(): number {
    return (this.db.prepare('SELECT COUNT(*) AS n FROM llm_cache').get() as { n: number }).n;
  }
}
