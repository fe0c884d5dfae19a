/**
 * Building and reshaping plain tensors (`onnx-tensor.ts`) for batched model steps: pick rows of a batch,
 * copy one (a tensor sent to a session worker is moved, so a value kept for later is sent as a copy),
 * and the small int64 and empty tensors decoders are fed.
 */
import { elementCount, type TensorData, type TensorType } from './onnx-tensor.js';

/** What the typed arrays of every element type have in common. */
type AnyArray = {
  length: number;
  subarray(a: number, b: number): AnyArray;
  set(src: AnyArray, offset: number): void;
  slice(): AnyArray;
};

/** Rows `rows[i]` of `t` along its first dim, stacked into a new tensor of the same type. */
export function gatherRows(t: TensorData, rows: readonly number[]): TensorData {
  const rest = t.dims.slice(1);
  const size = elementCount(rest);
  const src = t.data as unknown as AnyArray;
  const Ctor = t.data.constructor as new (n: number) => AnyArray;
  const out = new Ctor(rows.length * size);
  rows.forEach((r, i) => out.set(src.subarray(r * size, (r + 1) * size), i * size));
  return { type: t.type, dims: [rows.length, ...rest], data: out } as unknown as TensorData;
}

/** `t` with a copy of its data. */
export function copyTensor(t: TensorData): TensorData {
  return { ...t, data: (t.data as unknown as AnyArray).slice() } as unknown as TensorData;
}

/** A tensor with no values (a zero dim) of a floating-point `type` (float32 when unknown or not floating-point). */
export function emptyFloatTensor(type: TensorType | undefined, dims: number[]): TensorData {
  if (type === 'float16') return { type, dims, data: new Uint16Array(0) };
  if (type === 'float64') return { type, dims, data: new Float64Array(0) };
  return { type: 'float32', dims, data: new Float32Array(0) };
}

/** An int64 `[rows, cols]` tensor whose values are `value(row, col)`. */
export function int64Matrix(dims: [number, number], value: (row: number, col: number) => number): TensorData {
  const data = new BigInt64Array(dims[0] * dims[1]);
  for (let r = 0; r < dims[0]; r++) for (let c = 0; c < dims[1]; c++) data[r * dims[1] + c] = BigInt(value(r, c));
  return { type: 'int64', dims, data };
}
