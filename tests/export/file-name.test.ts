import { describe, expect, it } from 'vitest';
import { isValidKey } from '../../src/core/sample.js';
import { fileStem, MAX_STEM_BYTES } from '../../src/export/file-name.js';

describe('fileStem', () => {
  it('keeps a key that fits as it is', () => {
    expect(fileStem('000000042')).toBe('000000042');
    const fits = 'k'.repeat(MAX_STEM_BYTES);
    expect(fileStem(fits)).toBe(fits);
  });

  it('cuts a long key and adds a hash of the whole key: short enough, deterministic, distinct', () => {
    const long = `${'dir_'.repeat(60)}sample`;
    const other = `${'dir_'.repeat(60)}sampla`;
    const stem = fileStem(long);
    expect(Buffer.byteLength(stem)).toBeLessThanOrEqual(MAX_STEM_BYTES);
    expect(Buffer.byteLength(`${stem}.input_ids.npy.tmp`)).toBeLessThanOrEqual(255);
    expect(stem).toMatch(/^(dir_)+d?i?r?_?-[0-9a-f]{16}$/);
    expect(fileStem(long)).toBe(stem);
    expect(fileStem(other)).not.toBe(stem);
    expect(isValidKey(stem)).toBe(true);
  });

  it('counts bytes, not characters, and never cuts inside a character', () => {
    const key = 'ü'.repeat(150); // 300 bytes in UTF-8
    const stem = fileStem(key);
    expect(Buffer.byteLength(stem)).toBeLessThanOrEqual(MAX_STEM_BYTES);
    expect(stem).toMatch(/^ü+-[0-9a-f]{16}$/);
    expect(stem.startsWith('ü'.repeat(91))).toBe(true);
  });
});
