/**
 * Plain tensor values exchanged with ONNX sessions. They hold only a typed array, its element type and
 * its dims, so they cross `worker_threads` boundaries by moving the underlying ArrayBuffer.
 */

/** Element types the sessions accept and return. */
export type TensorType = 'float32' | 'float16' | 'float64' | 'int64' | 'int32' | 'int8' | 'uint8' | 'bool';

/**
 * The typed array that holds each element type. Node 20 has no `Float16Array`, so float16 values are kept
 * as their IEEE 754 half-precision bit patterns in a `Uint16Array` (onnxruntime-node does the same); use
 * {@link toFloat32} to read them as numbers. `bool` is one byte per value, 0 or 1.
 */
export interface TensorArrays {
  float32: Float32Array;
  float16: Uint16Array;
  float64: Float64Array;
  int64: BigInt64Array;
  int32: Int32Array;
  int8: Int8Array;
  uint8: Uint8Array;
  bool: Uint8Array;
}

/** One tensor: element type, dims (row-major) and data. */
export type TensorData = {
  [T in TensorType]: { type: T; dims: number[]; data: TensorArrays[T] };
}[TensorType];

/** A tensor of one given element type. */
export type TensorOf<T extends TensorType> = Extract<TensorData, { type: T }>;

/** Name, element type and shape a graph declares for one input or output. Symbolic dims are strings. */
export interface ValueInfo {
  name: string;
  /** Element type, or `undefined` for a non-tensor value (sequence or map). */
  type: TensorType | undefined;
  /** Declared dims: a number when fixed, a name (e.g. `"batch"`) when symbolic; empty when unknown. */
  shape: Array<number | string>;
}

const TENSOR_TYPES: ReadonlySet<string> = new Set<TensorType>([
  'float32', 'float16', 'float64', 'int64', 'int32', 'int8', 'uint8', 'bool',
]);

export function isTensorType(value: string): value is TensorType {
  return TENSOR_TYPES.has(value);
}

/** Number of elements described by `dims`. */
export function elementCount(dims: readonly number[]): number {
  let n = 1;
  for (const d of dims) n *= d;
  return n;
}

export function tensor<T extends TensorType>(type: T, dims: number[], data: TensorArrays[T]): TensorOf<T> {
  const expected = elementCount(dims);
  if (data.length !== expected) {
    throw new RangeError(`Expected ${expected} values for a ${type} tensor of dims [${dims.join(', ')}], got ${data.length}`);
  }
  return { type, dims, data } as unknown as TensorOf<T>;
}

// ---------------------------------------------------------------------------------------------------
// float16 <-> float32, bit-exact with round-to-nearest-even (the conversion numpy and onnxruntime use).
// ---------------------------------------------------------------------------------------------------

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

/** The IEEE 754 half-precision bit pattern nearest to `value` (ties to even; overflow to infinity). */
export function float32ToFloat16Bits(value: number): number {
  f32Scratch[0] = value;
  const bits = u32Scratch[0]!;
  const sign = (bits >>> 16) & 0x8000;
  const exponent = (bits >>> 23) & 0xff;
  let mantissa = bits & 0x7fffff;
  if (exponent === 0xff) {
    // Infinity stays infinity; NaN stays a (quiet) NaN.
    return sign | 0x7c00 | (mantissa !== 0 ? 0x200 : 0);
  }
  const halfExponent = exponent - 127 + 15;
  if (halfExponent >= 0x1f) return sign | 0x7c00;
  if (halfExponent <= 0) {
    // Subnormal half (or zero): shift the full significand (implicit 1 included) into place.
    if (halfExponent < -10) return sign;
    mantissa |= 0x800000;
    const shift = 14 - halfExponent;
    let half = mantissa >>> shift;
    const remainder = mantissa & ((1 << shift) - 1);
    const halfway = 1 << (shift - 1);
    if (remainder > halfway || (remainder === halfway && (half & 1) === 1)) half += 1;
    return sign | half;
  }
  let half = (halfExponent << 10) | (mantissa >>> 13);
  const remainder = mantissa & 0x1fff;
  // A carry out of the mantissa correctly bumps the exponent (and reaches infinity at the top).
  if (remainder > 0x1000 || (remainder === 0x1000 && (half & 1) === 1)) half += 1;
  return sign | half;
}

/** The number a half-precision bit pattern stands for. */
export function float16BitsToFloat32(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >>> 10) & 0x1f;
  const mantissa = bits & 0x3ff;
  if (exponent === 0) return sign * mantissa * 2 ** -24;
  if (exponent === 0x1f) return mantissa === 0 ? sign * Infinity : NaN;
  return sign * (1 + mantissa / 1024) * 2 ** (exponent - 15);
}

export function float32ArrayToFloat16(values: Float32Array): Uint16Array {
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = float32ToFloat16Bits(values[i]!);
  return out;
}

export function float16ArrayToFloat32(bits: Uint16Array): Float32Array {
  const out = new Float32Array(bits.length);
  for (let i = 0; i < bits.length; i++) out[i] = float16BitsToFloat32(bits[i]!);
  return out;
}

/**
 * Read a floating-point tensor as float32 values (float16 and float64 are converted; a float32 tensor's
 * own array is returned as is). Throws for integer and bool tensors.
 */
export function toFloat32(t: TensorData, what = 'tensor'): Float32Array {
  switch (t.type) {
    case 'float32':
      return t.data;
    case 'float16':
      return float16ArrayToFloat32(t.data);
    case 'float64':
      return Float32Array.from(t.data);
    default:
      throw new TypeError(`Expected ${what} to hold floating-point values, got ${t.type}`);
  }
}

/**
 * Convert a tensor to the element type a graph declares, where the conversion is lossless or the usual
 * one (float32 -> float16 for fp16 graphs, int64 <-> int32 for token ids, float32 <-> float64). Returns
 * `undefined` when there is no such conversion.
 */
export function convertTensor(t: TensorData, to: TensorType): TensorData | undefined {
  if (t.type === to) return t;
  const dims = t.dims;
  if (t.type === 'float32' && to === 'float16') return { type: to, dims, data: float32ArrayToFloat16(t.data) };
  if (t.type === 'float16' && to === 'float32') return { type: to, dims, data: float16ArrayToFloat32(t.data) };
  if (t.type === 'float32' && to === 'float64') return { type: to, dims, data: Float64Array.from(t.data) };
  if (t.type === 'float64' && to === 'float32') return { type: to, dims, data: Float32Array.from(t.data) };
  if (t.type === 'int64' && to === 'int32') {
    const out = new Int32Array(t.data.length);
    for (let i = 0; i < out.length; i++) out[i] = Number(t.data[i]!);
    return { type: to, dims, data: out };
  }
  if (t.type === 'int32' && to === 'int64') {
    const out = new BigInt64Array(t.data.length);
    for (let i = 0; i < out.length; i++) out[i] = BigInt(t.data[i]!);
    return { type: to, dims, data: out };
  }
  return undefined;
}
