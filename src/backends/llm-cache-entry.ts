/**
 * What the LLM response cache holds, as the client makes it: a request is identified by the sha256 of the
 * canonical JSON of `{model, messages, parameters, promptHash}`, with inline images replaced by their
 * sha256. The run database keeps the entries (`store/llm-cache.ts`); the client sees them through its
 * `LlmResponseStore` port.
 */
import { createHash } from 'node:crypto';

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
