/**
 * The LLM response cache over the `llm_cache` table. A request is identified by the sha256 of the
 * canonical JSON of `{model, messages, parameters, promptHash}`: the same prompt with the same sampling
 * parameters is never paid for twice, in this run or a resumed one. The raw response body is stored, so
 * answers can be parsed again (with changed parsers) without a request. Nothing secret is stored: the
 * request is kept without headers, and images as their sha256 rather than their bytes.
 */
import { createHash } from 'node:crypto';
import type { Db } from './database.js';
import { nowIso } from './database.js';

/** JSON with object keys sorted at every level and `undefined` members left out: one text per value. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') {
    if (typeof value === 'number' && !Number.isFinite(value)) throw new TypeError(`canonicalJson: ${value} has no JSON form`);
    return JSON.stringify(value) ?? 'null';
  }
  if (Array.isArray(value)) return `[${value.map((item) => (item === undefined ? 'null' : canonicalJson(item))).join(',')}]`;
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
}

export function sha256Hex(text: string | Buffer): string {
  return createHash('sha256').update(text).digest('hex');
}

export interface RequestIdentity {
  model: string;
  messages: unknown;
  /** Sampling parameters sent with the request (temperature, max_tokens, seed, ...). */
  parameters: Record<string, unknown>;
  /** Content hash of the prompt files the messages came from ('' when none). */
  promptHash: string;
}

/** The cache key of a request. */
export function requestHash(identity: RequestIdentity): string {
  return sha256Hex(canonicalJson(identity));
}

/** Replace base64 `data:` URLs (inline images) by their sha256, for hashing and storing requests compactly. */
export function compactDataUrls<T>(value: T): T {
  if (typeof value === 'string') {
    const inline = /^data:[\w.+/-]+;base64,/.exec(value);
    if (inline) return `${inline[0].slice(0, -1)};sha256=${sha256Hex(value)}` as T;
    return value;
  }
  if (value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map((item) => compactDataUrls(item)) as T;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) out[k] = compactDataUrls(v);
  return out as T;
}

export interface CachedResponse {
  requestHash: string;
  model: string;
  requestJson: string;
  responseJson: string;
  promptTokens: number;
  completionTokens: number;
  costUsd: number;
  createdAt: string;
}

export type NewCachedResponse = Omit<CachedResponse, 'createdAt'>;

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
