/**
 * The EXIF orientation tag (0x0112 in IFD0) of a JPEG's `Exif` APP1 segment, read without a decoder, for
 * the JPEG structure walk (`jpeg-structure.ts`), so a whole JPEG needs no header read by sharp either.
 * Layout from the EXIF 2.32 specification (section 4.5: TIFF header, IFD entries of 12 bytes). Anything it
 * does not read plainly (a damaged or unusual IFD, an orientation of another type than SHORT) gives null,
 * and the decode stage then asks sharp, whose answer stands.
 */
const EXIF_HEADER = Buffer.from('Exif\0\0', 'latin1');
const ORIENTATION_TAG = 0x0112;
const SHORT = 3;

/** The tag's value from an APP1 segment's body, 1 when it has no orientation tag, null when unsure. */
export function exifOrientation(app1: Buffer): number | null {
  if (app1.length < EXIF_HEADER.length + 8 || !app1.subarray(0, EXIF_HEADER.length).equals(EXIF_HEADER)) return null;
  const tiff = app1.subarray(EXIF_HEADER.length);
  const order = tiff.toString('latin1', 0, 2);
  if (order !== 'II' && order !== 'MM') return null;
  const little = order === 'II';
  const u16 = (at: number) => (little ? tiff.readUInt16LE(at) : tiff.readUInt16BE(at));
  const u32 = (at: number) => (little ? tiff.readUInt32LE(at) : tiff.readUInt32BE(at));
  if (u16(2) !== 42) return null;
  const ifd = u32(4);
  if (ifd < 8 || ifd + 2 > tiff.length) return null;
  const count = u16(ifd);
  if (ifd + 2 + 12 * count > tiff.length) return null;
  for (let e = 0; e < count; e++) {
    const entry = ifd + 2 + 12 * e;
    if (u16(entry) !== ORIENTATION_TAG) continue;
    if (u16(entry + 2) !== SHORT || u32(entry + 4) !== 1) return null;
    return u16(entry + 8);
  }
  return 1;
}
