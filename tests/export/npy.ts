/**
 * An independent reader of NumPy .npy files, written from the published format description
 * (numpy.lib.format, version 1.0): magic `\x93NUMPY`, major/minor version bytes, a little-endian uint16
 * header length, an ASCII Python dict literal header, then the raw data.
 */
export interface ParsedNpy {
  major: number;
  minor: number;
  headerLength: number;
  header: string;
  descr: string;
  fortranOrder: boolean;
  shape: number[];
  /** Offset of the data from the start of the file. */
  dataOffset: number;
  values: number[];
}

export function parseNpy(bytes: Uint8Array): ParsedNpy {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const magic = [0x93, ...'NUMPY'.split('').map((c) => c.charCodeAt(0))];
  magic.forEach((b, i) => {
    if (bytes[i] !== b) throw new Error(`bad magic at byte ${i}`);
  });
  const major = bytes[6]!;
  const minor = bytes[7]!;
  if (major !== 1) throw new Error(`only version 1.x parsed here, got ${major}.${minor}`);
  const headerLength = view.getUint16(8, true);
  const header = new TextDecoder('latin1').decode(bytes.subarray(10, 10 + headerLength));
  const descr = /'descr':\s*'([^']*)'/.exec(header)?.[1];
  const fortran = /'fortran_order':\s*(True|False)/.exec(header)?.[1];
  const shapeText = /'shape':\s*\(([^)]*)\)/.exec(header)?.[1];
  if (descr === undefined || fortran === undefined || shapeText === undefined) throw new Error(`cannot parse header ${header}`);
  const shape = shapeText
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0)
    .map(Number);
  const dataOffset = 10 + headerLength;
  if (descr !== '<i4') throw new Error(`only <i4 parsed here, got ${descr}`);
  const count = shape.reduce((a, b) => a * b, 1);
  if (bytes.byteLength - dataOffset !== count * 4) throw new Error(`data is ${bytes.byteLength - dataOffset} bytes, expected ${count * 4}`);
  const values: number[] = [];
  for (let i = 0; i < count; i++) values.push(view.getInt32(dataOffset + i * 4, true));
  return { major, minor, headerLength, header, descr, fortranOrder: fortran === 'True', shape, dataOffset, values };
}
