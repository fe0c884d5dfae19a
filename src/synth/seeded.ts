/** Deterministic choices keyed by text (sample key, task, variant, seed): the same run makes the same picks. */
import { stableHash } from '../core/shard.js';

export function seededIndex(length: number, ...parts: (string | number)[]): number {
  if (length <= 0) throw new RangeError(`seededIndex: expected a non-empty list, got length ${length}`);
  return stableHash(parts.join('\u0000')) % length;
}

export function seededPick<T>(items: readonly T[], ...parts: (string | number)[]): T {
  return items[seededIndex(items.length, ...parts)]!;
}

/** A 31-bit integer seed for an API request. */
export function seededInt(...parts: (string | number)[]): number {
  return stableHash(parts.join('\u0000')) & 0x7fffffff;
}

/** Fisher-Yates with a hash-derived sequence: a stable order for a given key. */
export function seededShuffle<T>(items: readonly T[], ...parts: (string | number)[]): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = stableHash([...parts, i].join('\u0000')) % (i + 1);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}
