import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/core/errors.js';
import { expandBraces, expandPatterns, MAX_EXPANSION } from '../../src/sources/brace.js';

describe('brace expansion', () => {
  it('expands a zero-padded numeric range as img2dataset names shards', () => {
    const paths = expandBraces('data/shard-{000000..000009}.tar');
    expect(paths).toHaveLength(10);
    expect(paths[0]).toBe('data/shard-000000.tar');
    expect(paths[9]).toBe('data/shard-000009.tar');
  });

  it('pads when either bound has a leading zero, to the longer width', () => {
    expect(expandBraces('{08..11}')).toEqual(['08', '09', '10', '11']);
    expect(expandBraces('{8..11}')).toEqual(['8', '9', '10', '11']);
    expect(expandBraces('{0..3}')).toEqual(['0', '1', '2', '3']);
    expect(expandBraces('{005..7}')).toEqual(['005', '006', '007']);
  });

  it('supports descending ranges, steps, negative numbers and letters', () => {
    expect(expandBraces('{3..1}')).toEqual(['3', '2', '1']);
    expect(expandBraces('{0..10..5}')).toEqual(['0', '5', '10']);
    expect(expandBraces('{-1..1}')).toEqual(['-1', '0', '1']);
    expect(expandBraces('{a..c}')).toEqual(['a', 'b', 'c']);
  });

  it('expands lists, including empty and nested items', () => {
    expect(expandBraces('{train,val,test}.tar')).toEqual(['train.tar', 'val.tar', 'test.tar']);
    expect(expandBraces('x{,-big}.tar')).toEqual(['x.tar', 'x-big.tar']);
    expect(expandBraces('{a,{b,c}d}')).toEqual(['a', 'bd', 'cd']);
    expect(expandBraces('{a,b{1..2}}')).toEqual(['a', 'b1', 'b2']);
  });

  it('takes the cartesian product of several braces, leftmost slowest', () => {
    expect(expandBraces('{a,b}/s-{00..02}.tar')).toEqual([
      'a/s-00.tar',
      'a/s-01.tar',
      'a/s-02.tar',
      'b/s-00.tar',
      'b/s-01.tar',
      'b/s-02.tar',
    ]);
  });

  it('leaves patterns without braces alone and honours escapes', () => {
    expect(expandBraces('plain/shard.tar')).toEqual(['plain/shard.tar']);
    expect(expandBraces('odd\\{name\\}.tar')).toEqual(['odd{name}.tar']);
    expect(expandBraces('{a\\,b,c}')).toEqual(['a,b', 'c']);
  });

  it('splits several patterns on "::" and accepts lists of patterns', () => {
    expect(expandPatterns('a-{0..1}.tar::b-{0..1}.tar')).toEqual(['a-0.tar', 'a-1.tar', 'b-0.tar', 'b-1.tar']);
    expect(expandPatterns(['x.tar', 'y-{1,2}.tar::z.tar'])).toEqual(['x.tar', 'y-1.tar', 'y-2.tar', 'z.tar']);
  });

  it.each([
    ['shard-{000..009.tar', /never closed/],
    ['shard-000..009}.tar', /unmatched "}"/],
    ['shard-{}.tar', /empty braces/],
    ['shard-{abc}.tar', /neither a list .* nor a range/],
    ['shard-{1..x}.tar', /neither a list .* nor a range/],
    ['shard-{0..10..0}.tar', /step must not be 0/],
    ['a.tar::', /empty pattern/],
    ['a.tar::::b.tar', /empty pattern/],
    ['trailing\\', /escapes nothing/],
  ])('rejects the malformed pattern %s with a ConfigError naming it', (pattern, reason) => {
    let caught: unknown;
    try {
      expandPatterns(pattern);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(ConfigError);
    expect((caught as Error).message).toContain(`"${pattern}"`);
    expect((caught as Error).message).toMatch(reason);
  });

  it('refuses expansions that are implausibly large', () => {
    expect(() => expandBraces('{0..99999999}')).toThrow(ConfigError);
    expect(() => expandBraces('{0..999}{0..9999}')).toThrow(new RegExp(`more than ${MAX_EXPANSION.toLocaleString('en-US')}`));
  });
});
