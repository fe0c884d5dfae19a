import { describe, expect, it } from 'vitest';

import {
  convertTensor,
  float16BitsToFloat32,
  float32ToFloat16Bits,
  tensor,
  toFloat32,
} from '../../src/backends/onnx-tensor.js';

describe('float16 conversion', () => {
  it('rounds to the nearest half, ties to even, as numpy and onnxruntime do', () => {
    const cases: Array<[number, number]> = [
      [1, 0x3c00],
      [-2, 0xc000],
      [0.1, 0x2e66],
      [1 / 3, 0x3555],
      [65504, 0x7bff],
      [65519, 0x7bff],
      [65520, 0x7c00], // rounds up to infinity
      [1e6, 0x7c00],
      [-Infinity, 0xfc00],
      [2 ** -14, 0x0400], // smallest normal
      [2 ** -24, 0x0001], // smallest subnormal
      [2 ** -25, 0x0000], // tie between 0 and 2^-24: even
      [3 * 2 ** -26, 0x0001],
      [1 + 2 ** -10, 0x3c01],
      [1 + 2 ** -11, 0x3c00], // tie: even
      [1 + 3 * 2 ** -11, 0x3c02], // tie: even
      [-0, 0x8000],
    ];
    for (const [value, bits] of cases) expect(float32ToFloat16Bits(value), String(value)).toBe(bits);
    expect(float32ToFloat16Bits(NaN) & 0x7c00).toBe(0x7c00);
    expect(Number.isNaN(float16BitsToFloat32(0x7e00))).toBe(true);
  });

  it('round-trips every finite half value exactly', () => {
    const wrong: number[] = [];
    for (let bits = 0; bits < 0x10000; bits++) {
      if ((bits & 0x7c00) === 0x7c00 && (bits & 0x3ff) !== 0) continue; // NaN payloads
      if (float32ToFloat16Bits(float16BitsToFloat32(bits)) !== bits) wrong.push(bits);
    }
    expect(wrong).toEqual([]);
  });

  it('reads float16 and float64 tensors as float32 and refuses integers', () => {
    expect(Array.from(toFloat32(tensor('float16', [2], Uint16Array.from([0x3c00, 0xc000]))))).toEqual([1, -2]);
    expect(Array.from(toFloat32(tensor('float64', [1], Float64Array.from([0.5]))))).toEqual([0.5]);
    expect(() => toFloat32(tensor('int32', [1], Int32Array.from([1])), 'logits')).toThrow('Expected logits to hold floating-point values, got int32');
  });
});

describe('tensor conversions for declared input types', () => {
  it('converts float32 to float16 and int64 to int32, and nothing lossy or odd', () => {
    expect(convertTensor(tensor('float32', [1], Float32Array.from([1])), 'float16')).toEqual(tensor('float16', [1], Uint16Array.from([0x3c00])));
    expect(convertTensor(tensor('int64', [2], BigInt64Array.from([3n, -4n])), 'int32')).toEqual(tensor('int32', [2], Int32Array.from([3, -4])));
    expect(convertTensor(tensor('int32', [1], Int32Array.from([3])), 'float32')).toBeUndefined();
    expect(() => tensor('float32', [2, 2], new Float32Array(3))).toThrow('Expected 4 values for a float32 tensor of dims [2, 2], got 3');
  });
});
