import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/core/errors.js';
import { parseSize } from '../../src/export/size.js';

describe('parseSize', () => {
  it('reads decimal units as powers of 1000', () => {
    expect(parseSize('1GB')).toBe(1_000_000_000);
    expect(parseSize('500MB')).toBe(500_000_000);
    expect(parseSize('10kb')).toBe(10_000);
    expect(parseSize('2 TB')).toBe(2e12);
    expect(parseSize('3G')).toBe(3e9);
    expect(parseSize('1.5GB')).toBe(1_500_000_000);
  });

  it('reads binary units as powers of 1024', () => {
    expect(parseSize('64KiB')).toBe(65_536);
    expect(parseSize('2MiB')).toBe(2 * 1024 * 1024);
    expect(parseSize('1gib')).toBe(1024 ** 3);
  });

  it('reads plain numbers and exponents as bytes', () => {
    expect(parseSize('1e9')).toBe(1e9);
    expect(parseSize('4096')).toBe(4096);
    expect(parseSize(' 123B ')).toBe(123);
    expect(parseSize(1e6)).toBe(1e6);
    expect(parseSize(1000.9)).toBe(1000);
  });

  it.each(['abc', '', '1XB', '1 G B', '-5MB', '0', '0.1', 'GB', '1e999'])('rejects %j with a message naming the option and value', (text) => {
    let error: unknown;
    try {
      parseSize(text, 'maxSize');
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as Error).message).toContain('`maxSize`');
    expect((error as Error).message).toContain(JSON.stringify(text));
  });

  it('rejects non-positive and non-finite numbers', () => {
    expect(() => parseSize(0, 'maxSize')).toThrow(/got 0/);
    expect(() => parseSize(-1, 'maxSize')).toThrow(/got -1/);
    expect(() => parseSize(Number.NaN, 'maxSize')).toThrow(ConfigError);
    expect(() => parseSize(Number.POSITIVE_INFINITY, 'maxSize')).toThrow(ConfigError);
  });
});
