import { describe, expect, it } from 'vitest';
import { inShard, parseShard, stableHash } from '../../src/core/shard.js';
import { toKey, isValidKey, publishedCaption, type Caption } from '../../src/core/sample.js';
import { expectEvery } from '../expect-every.js';

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
    expectEvery([...counts.values()], (n) => n === 1);
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

  it('keys keep letters, marks and digits of every script, in NFC; dots, slashes, spaces, symbols and format characters go', () => {
    expect(toKey('ünïcødé')).toBe('ünïcødé');
    expect(toKey('猫の写真_01')).toBe('猫の写真_01');
    // Devanagari vowel signs are marks (\p{M}): without them the word would be cut up.
    expect(toKey('हिन्दी-２')).toBe('हिन्दी-２');
    expect(toKey('Ελληνικά.jpg')).toBe('Ελληνικά_jpg');
    // Decomposed (NFD, as macOS file names come) and composed forms give one key.
    expect(toKey('e\u0301t\u00e9')).toBe('\u00e9t\u00e9');
    expect(isValidKey('e\u0301')).toBe(false);
    expect(isValidKey('\u00e9')).toBe(true);
    for (const [raw, key] of [
      ['a b.c/d\\e', 'a_b_c_d_e'],
      ['x\u202ey', 'x_y'], // bidi override: a format character
      ['zero\u200bwidth', 'zero_width'],
      ['emoji😀', 'emoji_'],
      ['tab\there', 'tab_here'],
      ['lone\ud800', 'lone_'],
      ['', '_'],
    ] as const) {
      expect(toKey(raw), raw).toBe(key);
      expect(isValidKey(key), key).toBe(true);
    }
    expect(isValidKey('a.b')).toBe(false);
    expect(isValidKey('a/b')).toBe(false);
    expect(isValidKey('a b')).toBe(false);
    expect(isValidKey('')).toBe(false);
  });

  it('publishedCaption prefers a kept caption once a filter ran', () => {
    const c = (text: string, extra: Partial<Caption> = {}): Caption => ({ text, origin: 'web', issue: null, usable: true, ...extra });
    expect(publishedCaption([c(''), c('a dog')])?.text).toBe('a dog');
    expect(publishedCaption([c('bad', { usable: false }), c('ok')])?.text).toBe('ok');
    expect(publishedCaption([c('web', { kept: false }), c('syn', { kept: true, origin: 'synthetic' })])?.text).toBe('syn');
    expect(publishedCaption([c('web', { kept: false })])).toBeNull();
  });
});
