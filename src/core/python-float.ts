/**
 * Numbers written the way Python writes `repr(round(x, n))`, for formats whose reference data was made in
 * Python (LLaVA-1.5's normalised boxes: `0.4`, `1.0`, `0.12`).
 *
 * Python's `round(x, n)` on a float rounds the **exact binary value** of `x` to `n` decimals, ties to even
 * (CPython's `double_round`: a correctly rounded `_Py_dg_dtoa` in mode 3, then back to a float). So
 * `round(2.675, 2)` is 2.67 (the double is 2.67499999...), `round(0.125, 2)` is 0.12 (an exact tie, to even)
 * and `round(0.375, 2)` is 0.38. `repr` then writes the shortest text that reads back as the same float,
 * with `.0` on whole numbers and exponent form below 1e-4 or from 1e16 up.
 */

const view = new DataView(new ArrayBuffer(8));

/** `|x|` as `digits / 10^scale`, exactly (every finite double is a finite decimal). */
function exactDecimal(x: number): { digits: bigint; scale: number } {
  view.setFloat64(0, Math.abs(x));
  const hi = view.getUint32(0);
  const lo = view.getUint32(4);
  const biased = (hi >>> 20) & 0x7ff;
  let mantissa = (BigInt(hi & 0xfffff) << 32n) | BigInt(lo);
  let exponent: number;
  if (biased === 0) {
    exponent = -1074; // subnormal
  } else {
    mantissa |= 1n << 52n;
    exponent = biased - 1075;
  }
  if (exponent >= 0) return { digits: mantissa << BigInt(exponent), scale: 0 };
  // m * 2^-k = m * 5^k / 10^k
  const k = -exponent;
  return { digits: mantissa * 5n ** BigInt(k), scale: k };
}

/** Python 3's `round(x, ndigits)` for a float and `ndigits >= 0`. */
export function pythonRound(x: number, ndigits: number): number {
  if (!Number.isInteger(ndigits) || ndigits < 0) throw new RangeError(`ndigits must be a whole number >= 0, got ${ndigits}`);
  if (!Number.isFinite(x) || x === 0) return x;
  const { digits, scale } = exactDecimal(x);
  if (scale <= ndigits) return x;
  const unit = 10n ** BigInt(scale - ndigits);
  let q = digits / unit;
  const r = digits % unit;
  const half = unit / 2n; // unit is a power of ten >= 10, so even
  if (r > half || (r === half && q % 2n === 1n)) q += 1n;
  // The decimal q / 10^ndigits read back as the nearest float (JS number parsing is correctly rounded).
  const rounded = Number(`${q}e-${ndigits}`);
  return x < 0 ? -rounded : rounded;
}

/** Python's `repr(float)`: shortest round-tripping digits, `1.0` for whole numbers, exponent form outside [1e-4, 1e16). */
export function pythonFloatRepr(x: number): string {
  if (Number.isNaN(x)) return 'nan';
  if (!Number.isFinite(x)) return x > 0 ? 'inf' : '-inf';
  if (x === 0) return Object.is(x, -0) ? '-0.0' : '0.0';
  const sign = x < 0 ? '-' : '';
  // toExponential() with no argument gives the shortest digits that round-trip (as repr does).
  const [mantissa, exp] = Math.abs(x).toExponential().split('e') as [string, string];
  const digits = mantissa.replace('.', '');
  const decpt = Number(exp) + 1; // position of the decimal point after the first digit
  if (decpt <= -4 || decpt > 16) {
    const e = decpt - 1;
    const body = digits.length > 1 ? `${digits[0]}.${digits.slice(1)}` : digits;
    return `${sign}${body}e${e < 0 ? '-' : '+'}${String(Math.abs(e)).padStart(2, '0')}`;
  }
  if (decpt <= 0) return `${sign}0.${'0'.repeat(-decpt)}${digits}`;
  if (decpt >= digits.length) return `${sign}${digits}${'0'.repeat(decpt - digits.length)}.0`;
  return `${sign}${digits.slice(0, decpt)}.${digits.slice(decpt)}`;
}

/** `repr(round(x, ndigits))`: `0.4`, `1.0`, `0.12` (for 0.125), `2.67` (for 2.675). */
export function formatPythonRound(x: number, ndigits: number): string {
  return pythonFloatRepr(pythonRound(x, ndigits));
}
