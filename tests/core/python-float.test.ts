/**
 * `round(x, n)` and `repr(float)` as CPython 3 computes them. Expected values were printed by CPython 3.12
 * (`python3 -c "print(repr(round(x, 2)))"`); the rules are CPython's Objects/floatobject.c `double_round`
 * (correctly rounded `_Py_dg_dtoa(x, 3, ndigits)`, i.e. the exact binary value rounded half to even) and
 * `float_repr` (`format_float_short(x, 'r', 0, Py_DTSF_ADD_DOT_0)`: shortest digits, exponent form when the
 * decimal point position is <= -4 or > 16).
 */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { formatPythonRound, pythonFloatRepr, pythonRound } from '../../src/core/python-float.js';

describe('pythonRound / repr', () => {
  it('rounds the exact binary value, ties to even, and writes the shortest repr', () => {
    const cases: [number, string, string][] = [
      // x, repr(round(x, 2)), repr(round(x, 3))
      [0.125, '0.12', '0.125'], // exact tie: to even (toFixed(2) says 0.13)
      [0.375, '0.38', '0.375'], // exact tie: to even, upwards
      [0.285, '0.28', '0.285'], // the double is 0.28499999999999997...
      [2.675, '2.67', '2.675'], // 2.67499999999999982236431605997495353221893310546875
      [1.005, '1.0', '1.005'], // 1.00499999999999989341858963598497211933135986328125
      [0.995, '0.99', '0.995'], // 0.99499999999999999555910790149937383830547332763671875
      [0.005, '0.01', '0.005'], // 0.005000000000000000104083408558608425664715468883514404296875
      [0.015, '0.01', '0.015'],
      [0.025, '0.03', '0.025'],
      [0.045, '0.04', '0.045'],
      [0.055, '0.06', '0.055'],
      [0.4, '0.4', '0.4'], // toFixed(2) says 0.40
      [1, '1.0', '1.0'], // toFixed(2) says 1.00
      [0, '0.0', '0.0'],
      [0.1 + 0.2, '0.3', '0.3'],
      [1e-5, '0.0', '0.0'],
      [-0.001, '-0.0', '-0.001'],
    ];
    for (const [x, two, three] of cases) {
      expect(formatPythonRound(x, 2), `round(${x}, 2)`).toBe(two);
      expect(formatPythonRound(x, 3), `round(${x}, 3)`).toBe(three);
    }
  });

  it('writes repr like Python for every magnitude', () => {
    const cases: [number, string][] = [
      [1e-5, '1e-05'],
      [0.0001, '0.0001'],
      [0.00012, '0.00012'],
      [1e16, '1e+16'],
      [1e15, '1000000000000000.0'],
      [123456789012345678, '1.2345678901234568e+17'],
      [0.30000000000000004, '0.30000000000000004'],
      [5e-324, '5e-324'],
      [1.7976931348623157e308, '1.7976931348623157e+308'],
      [-2.5, '-2.5'],
      [Number.NaN, 'nan'],
      [Number.POSITIVE_INFINITY, 'inf'],
    ];
    for (const [x, text] of cases) expect(pythonFloatRepr(x), String(x)).toBe(text);
    expect(pythonRound(Number.POSITIVE_INFINITY, 2)).toBe(Number.POSITIVE_INFINITY);
    expect(() => pythonRound(1, -1)).toThrow(RangeError);
  });

  it('agrees with CPython on 104,189 fractions (hash of the output)', () => {
    // vals = [i/w for w in (7, 96, 100, 333, 480, 500, 640, 1000, 1023) for i in range(w + 1)]
    //      + [i/100000 for i in range(100001)]
    const values: number[] = [];
    for (const w of [7, 96, 100, 333, 480, 500, 640, 1000, 1023]) for (let i = 0; i <= w; i++) values.push(i / w);
    for (let i = 0; i <= 100000; i++) values.push(i / 100000);
    expect(values.length).toBe(104189);
    const sha = (s: string) => createHash('sha256').update(s).digest('hex');
    // '\n'.join(repr(round(v, 2)) + ' ' + repr(round(v, 3)) for v in vals)
    expect(sha(values.map((v) => `${formatPythonRound(v, 2)} ${formatPythonRound(v, 3)}`).join('\n'))).toBe(
      'e3bbc2e2a5cb2608693a3af36d00cac2e1175cacfd0b5853b67980bbdafb20ba',
    );
    // '\n'.join(repr(v * 1000.0) + ' ' + repr(round(v * 7.3, 1)) for v in vals)
    expect(sha(values.map((v) => `${pythonFloatRepr(v * 1000)} ${formatPythonRound(v * 7.3, 1)}`).join('\n'))).toBe(
      'c1a4dbed7823165d358cb23659b1c2500abeab8a8221c2100dc65a5de135a530',
    );
  });
});
