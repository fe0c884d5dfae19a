import { describe, expect, it } from 'vitest';
import { inShard, parseShard, stableHash } from '../../src/core/shard.js';
import { toKey, isValidKey, publishedCaption, type Caption } from '../../src/core/sample.js';

describe('shards', () => {
  it('parses I/N and rejects bad specs naming the flag and value', () => {
    expect(parseShard('1/4')).toEqual({ index: 1, count: 4 });
    expect(() => parseShard('4/4')).toThrow(/--shard.*"4\/4"/);
    expect(() => parseShard('x')).toThrow(/--shard: expected I\/N/);
  });

  it('N shards cover every key exactly once', () => {
    const keys = Array.from({ length: 1000 }, (_, i) => `k${i}`);
    const counts = new Map<string, number>();
    for (let index = 0; index < 3; index++) {
      for (const key of keys) if (inShard(key, { index, count: 3 })) counts.set(key, (counts.get(key) ?? 0) + 1);
    }
    expect(counts.size).toBe(1000);
    expect([...counts.values()].every((n) => n === 1)).toBe(true);
  });

  it('hash is the published FNV-1a 32-bit value (stable across versions)', () => {
    // Reference values of FNV-1a 32: "" -> 0x811c9dc5, "a" -> 0xe40c292c.
    expect(stableHash('')).toBe(0x811c9dc5);
    expect(stableHash('a')).toBe(0xe40c292c);
  });
});

describe('sample helpers', () => {
  it('toKey makes dot-free valid keys', () => {
    expect(toKey('a.b/c d')).toBe('a_b_c_d');
    expect(isValidKey(toKey('é.x'))).toBe(true);
  });

  it('publishedCaption prefers a kept caption once a filter ran', () => {
    const c = (text: string, extra: Partial<Caption> = {}): Caption => ({ text, origin: 'web', issue: null, usable: true, ...extra });
    expect(publishedCaption([c(''), c('a dog')])?.text).toBe('a dog');
    expect(publishedCaption([c('bad', { usable: false }), c('ok')])?.text).toBe('ok');
    expect(publishedCaption([c('web', { kept: false }), c('syn', { kept: true, origin: 'synthetic' })])?.text).toBe('syn');
    expect(publishedCaption([c('web', { kept: false })])).toBeNull();
  });
});
