import { ConfigError } from './errors.js';

/** `--shard I/N`: this process handles the samples whose key hashes to I modulo N. */
export interface ShardSpec {
  index: number;
  count: number;
}

export const WHOLE: ShardSpec = { index: 0, count: 1 };

export function parseShard(text: string): ShardSpec {
  const match = /^(\d+)\/(\d+)$/.exec(text.trim());
  if (!match) throw new ConfigError(`--shard: expected I/N such as 0/4, got "${text}"`);
  const index = Number(match[1]);
  const count = Number(match[2]);
  if (count < 1 || index >= count) {
    throw new ConfigError(`--shard: expected 0 <= I < N and N >= 1, got "${text}"`);
  }
  return { index, count };
}

/** FNV-1a, 32 bit: stable across processes, platforms and versions, unlike any runtime hash. */
export function stableHash(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
}

export function inShard(key: string, shard: ShardSpec): boolean {
  return shard.count === 1 || stableHash(key) % shard.count === shard.index;
}
