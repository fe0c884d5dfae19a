import { ConfigError } from '../core/errors.js';

/** Bytes per unit. Decimal units are powers of 1000 (as disks and `maxsize` in webdataset count), binary ones of 1024. */
const UNITS: Readonly<Record<string, number>> = {
  '': 1,
  b: 1,
  k: 1e3,
  kb: 1e3,
  m: 1e6,
  mb: 1e6,
  g: 1e9,
  gb: 1e9,
  t: 1e12,
  tb: 1e12,
  kib: 1024,
  mib: 1024 ** 2,
  gib: 1024 ** 3,
  tib: 1024 ** 4,
};

const SIZE_PATTERN = /^([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:e([+-]?[0-9]+))?\s*([A-Za-z]*)$/;

/**
 * Parse a byte size: a number of bytes (`1000000`, `1e9`) or a number with a unit: `KB`, `MB`, `GB`, `TB`
 * (powers of 1000; `K`, `M`, `G`, `T` mean the same) or `KiB`, `MiB`, `GiB`, `TiB` (powers of 1024), in any
 * letter case. Fractions are allowed (`1.5GB`) and the result is rounded down to whole bytes.
 *
 * @param what names the option in the error message, e.g. `maxSize`.
 * @throws ConfigError naming the option and the value when the text is not a size or the size is not positive.
 */
export function parseSize(value: string | number, what = 'size'): number {
  const fail = (): never => {
    throw new ConfigError(
      `Expected \`${what}\` to be a positive size such as 1GB, 500MB, 64KiB or a number of bytes, got ${JSON.stringify(value)}`,
    );
  };
  let bytes: number;
  if (typeof value === 'number') {
    bytes = value;
  } else {
    const match = SIZE_PATTERN.exec(value.trim());
    if (!match) return fail();
    const unit = UNITS[(match[3] ?? '').toLowerCase()];
    if (unit === undefined) return fail();
    bytes = Number(match[1]) * 10 ** Number(match[2] ?? 0) * unit;
  }
  if (!Number.isFinite(bytes)) return fail();
  bytes = Math.floor(bytes);
  if (bytes < 1 || bytes > Number.MAX_SAFE_INTEGER) return fail();
  return bytes;
}
