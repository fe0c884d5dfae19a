/**
 * NumPy `.npy` files, format version 1.0, for 1-D little-endian int32 arrays (`input_ids`, `labels`):
 *
 *     \x93NUMPY  0x01 0x00  HEADER_LEN (uint16 LE)  HEADER  DATA
 *
 * HEADER is the Python dict literal `{'descr': '<i4', 'fortran_order': False, 'shape': (N,), }` padded with
 * spaces and ended by `\n` so that magic + version + length + header is a multiple of 64 bytes (what
 * NumPy >= 1.x writes, keeping the data aligned). `np.load` reads these files as `int32` arrays of shape `(N,)`.
 */

const MAGIC = Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]); // \x93NUMPY
const PREAMBLE = MAGIC.length + 2 + 2;
const ALIGN = 64;
const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/** The .npy bytes of a 1-D int32 array. */
export function int32Npy(values: Int32Array): Buffer {
  const dict = `{'descr': '<i4', 'fortran_order': False, 'shape': (${values.length},), }`;
  const unpadded = PREAMBLE + dict.length + 1;
  const headerLength = dict.length + 1 + ((ALIGN - (unpadded % ALIGN)) % ALIGN);
  const out = Buffer.alloc(PREAMBLE + headerLength + values.length * 4);
  MAGIC.copy(out, 0);
  out[6] = 1;
  out[7] = 0;
  out.writeUInt16LE(headerLength, 8);
  out.write(dict.padEnd(headerLength - 1, ' '), PREAMBLE, 'latin1');
  out[PREAMBLE + headerLength - 1] = 0x0a;
  const at = PREAMBLE + headerLength;
  if (LITTLE_ENDIAN) {
    out.set(new Uint8Array(values.buffer, values.byteOffset, values.byteLength), at);
  } else {
    for (let i = 0; i < values.length; i++) out.writeInt32LE(values[i]!, at + i * 4);
  }
  return out;
}
