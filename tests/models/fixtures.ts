/** Paths and readers for the fixtures written by tools/make_variant_fixtures.py. */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { expect } from 'vitest';

export const fixtureRoot = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'models');

export function modelDir(name: string): string {
  return path.join(fixtureRoot, name);
}

export function readImage(name: string): Buffer {
  return readFileSync(path.join(fixtureRoot, 'images', name));
}

export function readExpected<T>(folder: string): T {
  return JSON.parse(readFileSync(path.join(fixtureRoot, folder, 'expected.json'), 'utf8')) as T;
}

/** Reference pixels computed with PIL, keyed by preprocessor name then image name. */
export function referencePixels(config: string, image: string): Float32Array {
  const all = JSON.parse(readFileSync(path.join(fixtureRoot, 'preprocess-expected.json'), 'utf8')) as Record<
    string,
    Record<string, { f32le: string }>
  >;
  const entry = all[config]?.[image];
  if (!entry) throw new Error(`no reference pixels for ${config}/${image}`);
  const bytes = Buffer.from(entry.f32le, 'base64');
  return new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
}

/** Largest absolute difference between two equally long arrays. */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i]! - b[i]!));
  return max;
}

export function meanAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += Math.abs(a[i]! - b[i]!);
  return sum / a.length;
}

/** Compare a flat array with a nested list of reference numbers to an absolute tolerance. */
export function expectClose(actual: ArrayLike<number>, expected: unknown, tolerance: number): void {
  const flat = (expected as unknown[]).flat(Infinity as 1) as number[];
  expect(actual.length).toBe(flat.length);
  const diff = maxAbsDiff(actual, flat);
  expect(diff, `max abs diff ${diff}`).toBeLessThanOrEqual(tolerance);
}
