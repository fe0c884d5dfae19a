/**
 * A JPEG's structure, checked without decoding a pixel: every marker segment in bounds and well formed
 * (quantisation and Huffman tables as libjpeg validates them, one frame header of a process libjpeg
 * decodes, scan headers that name the frame's components and defined tables with legal spectral
 * parameters), every scan's entropy-coded data running to a marker, and an end-of-image marker after the
 * last scan.
 *
 * The decode stage uses it in place of a pixel decode when no model needs the pixels (`decode.validate:
 * structure`): a JPEG it calls `whole` is accepted without decoding, at a small fraction of a decode's
 * CPU; anything else (cut, damaged, or simply unusual: arithmetic coding, lossless, a DNL marker) goes
 * to the full decode, which decides and names the failure as before. Restart markers are left to the
 * decode too (a restart interval is `not whole` here): they are rare on the web, and a walk that counts
 * them would need fixtures no tool here writes. So it can only ever accept more
 * than the decode would where the damage is inside entropy-coded data without creating a marker, which
 * libjpeg itself reads as valid codes (a warning at most, not a refusal, with `failOn: 'truncated'`).
 *
 * Markers and segment layouts from ITU-T T.81 (Annex B); the table checks mirror libjpeg's
 * (jdhuff.c `jpeg_make_d_derived_tbl`, jdmarker.c `get_dqt`/`get_sos`, jdphuff.c progression checks).
 */
import { exifOrientation } from './exif-orientation.js';

/**
 * `whole`: the walk found nothing wrong; then the frame's size and the EXIF orientation are known from it
 * (`orientation` null when the walk could not read the EXIF plainly: then ask sharp).
 */
export type JpegStructure = { whole: true; width: number; height: number; orientation: number | null } | { whole: false; why: string };

const SOI = 0xd8;
const EOI = 0xd9;
const SOS = 0xda;
const DQT = 0xdb;
const DRI = 0xdd;
const DHT = 0xc4;
const APP1 = 0xe1;

interface Frame {
  progressive: boolean;
  width: number;
  height: number;
  components: Map<number, { h: number; v: number; quant: number }>;
}

function unsure(why: string): JpegStructure {
  return { whole: false, why };
}

export function jpegStructure(bytes: Buffer): JpegStructure {
  if (bytes.length < 4 || bytes[0] !== 0xff || bytes[1] !== SOI) return unsure('no start-of-image marker');
  const quant = new Set<number>();
  const huffman = new Set<number>(); // class * 4 + id
  let frame: Frame | null = null;
  const scanned = new Set<number>();
  let scans = 0;
  let orientation: number | null = 1;
  let exifSegments = 0;
  let at = 2;
  for (;;) {
    // A marker: 0xFF, any fill 0xFF bytes, then its code.
    if (at >= bytes.length || bytes[at] !== 0xff) return unsure(`no marker at byte ${at}`);
    while (at < bytes.length && bytes[at] === 0xff) at++;
    if (at >= bytes.length) return unsure('ends inside a marker');
    const marker = bytes[at]!;
    at++;
    if (marker === EOI) {
      if (scans === 0 || frame === null) return unsure('end-of-image before any scan');
      if (!frame.progressive && scanned.size !== frame.components.size) return unsure('end-of-image before every component was scanned');
      return { whole: true, width: frame.width, height: frame.height, orientation: exifSegments > 1 ? null : orientation };
    }
    if (marker === SOI || marker === 0x00 || (marker >= 0xd0 && marker <= 0xd7) || marker === 0x01) return unsure(`marker 0x${marker.toString(16)} outside a scan`);
    if (at + 2 > bytes.length) return unsure('ends inside a segment length');
    const length = bytes.readUInt16BE(at);
    const end = at + length;
    if (length < 2 || end > bytes.length) return unsure(`segment 0x${marker.toString(16)} runs past the end`);
    const body = bytes.subarray(at + 2, end);
    at = end;
    if (marker === APP1 && body.toString('latin1', 0, 4) === 'Exif') {
      exifSegments++;
      orientation = exifOrientation(body);
      continue;
    }
    if ((marker >= 0xe0 && marker <= 0xef) || marker === 0xfe) continue; // APPn, COM
    if (marker === DQT) {
      if (!quantTables(body, quant)) return unsure('bad quantisation table');
    } else if (marker === DHT) {
      if (!huffmanTables(body, huffman)) return unsure('bad Huffman table');
    } else if (marker === DRI) {
      return unsure('a restart interval (left to the decode)');
    } else if (marker === 0xc0 || marker === 0xc1 || marker === 0xc2) {
      if (frame !== null) return unsure('two frame headers');
      frame = frameHeader(body, marker === 0xc2);
      if (frame === null) return unsure('bad frame header');
    } else if (marker === SOS) {
      if (frame === null) return unsure('scan before the frame header');
      const scan = scanHeader(body, frame, quant, huffman);
      if (typeof scan === 'string') return unsure(scan);
      if (!frame.progressive) {
        // Sequential: each component is in exactly one scan.
        for (const id of scan.ids) {
          if (scanned.has(id)) return unsure('a component scanned twice in a sequential JPEG');
          scanned.add(id);
        }
      }
      const data = entropyData(bytes, at);
      if (typeof data === 'string') return unsure(data);
      at = data;
      scans++;
    } else {
      // SOF of another process (arithmetic, lossless, hierarchical), DAC, DNL, EXP, JPGn, reserved.
      return unsure(`marker 0x${marker.toString(16)} (not checked here)`);
    }
  }
}

function quantTables(body: Buffer, defined: Set<number>): boolean {
  let i = 0;
  while (i < body.length) {
    const precision = body[i]! >> 4;
    const id = body[i]! & 15;
    if (precision > 1 || id > 3) return false;
    i += 1 + 64 * (precision + 1);
    if (i > body.length) return false;
    defined.add(id);
  }
  return body.length > 0;
}

function huffmanTables(body: Buffer, defined: Set<number>): boolean {
  let i = 0;
  while (i < body.length) {
    if (i + 17 > body.length) return false;
    const tableClass = body[i]! >> 4;
    const id = body[i]! & 15;
    if (tableClass > 1 || id > 3) return false;
    let longest = 0;
    for (let bits = 1; bits <= 16; bits++) if (body[i + bits]! > 0) longest = bits;
    let symbols = 0;
    let code = 0;
    for (let bits = 1; bits <= longest; bits++) {
      const count = body[i + bits]!;
      symbols += count;
      code += count;
      // Codes of each length up to the longest must leave the all-ones code free (libjpeg's
      // jpeg_make_d_derived_tbl: "Bogus Huffman table definition").
      if (code >= 2 ** bits) return false;
      code *= 2;
    }
    if (symbols > 256 || i + 17 + symbols > body.length) return false;
    if (tableClass === 0) {
      for (let s = 0; s < symbols; s++) if (body[i + 17 + s]! > 15) return false;
    }
    i += 17 + symbols;
    defined.add(tableClass * 4 + id);
  }
  return body.length > 0;
}

function frameHeader(body: Buffer, progressive: boolean): Frame | null {
  if (body.length < 6) return null;
  const precision = body[0]!;
  const height = body.readUInt16BE(1);
  const width = body.readUInt16BE(3);
  const count = body[5]!;
  if (precision !== 8 || height === 0 || width === 0 || count < 1 || count > 4 || body.length !== 6 + 3 * count) return null;
  const components = new Map<number, { h: number; v: number; quant: number }>();
  for (let c = 0; c < count; c++) {
    const id = body[6 + 3 * c]!;
    const h = body[7 + 3 * c]! >> 4;
    const v = body[7 + 3 * c]! & 15;
    const quant = body[8 + 3 * c]!;
    if (components.has(id) || h < 1 || h > 4 || v < 1 || v > 4 || quant > 3) return null;
    components.set(id, { h, v, quant });
  }
  return { progressive, width, height, components };
}

function scanHeader(body: Buffer, frame: Frame, quant: Set<number>, huffman: Set<number>): { ids: number[] } | string {
  const count = body[0] ?? 0;
  if (count < 1 || count > 4 || body.length !== 4 + 2 * count) return 'bad scan header';
  const ss = body[1 + 2 * count]!;
  const se = body[2 + 2 * count]!;
  const ah = body[3 + 2 * count]! >> 4;
  const al = body[3 + 2 * count]! & 15;
  if (frame.progressive) {
    // jdphuff.c: DC scans cover coefficient 0 only, AC scans one component; successive approximation by one bit.
    if (ss > se || se > 63 || (ss === 0 && se !== 0) || (ss > 0 && count !== 1) || ah > 13 || al > 13 || (ah !== 0 && al !== ah - 1)) return 'bad progression';
  } else if (ss !== 0 || se !== 63 || ah !== 0 || al !== 0) {
    return 'sequential scan with progressive parameters';
  }
  const ids: number[] = [];
  for (let c = 0; c < count; c++) {
    const id = body[1 + 2 * c]!;
    const component = frame.components.get(id);
    if (component === undefined || ids.includes(id)) return 'scan names a component the frame lacks';
    if (!quant.has(component.quant)) return 'quantisation table not defined';
    const dc = body[2 + 2 * c]! >> 4;
    const ac = body[2 + 2 * c]! & 15;
    const needsDc = ss === 0 && ah === 0;
    const needsAc = se > 0;
    if ((needsDc && !huffman.has(dc)) || (needsAc && !huffman.has(4 + ac))) return 'Huffman table not defined';
    ids.push(id);
  }
  if (count > 1 && ss !== 0) return 'bad progression';
  return { ids };
}

/**
 * Walk one scan's entropy-coded data from `at` to the marker after it: the offset of that marker, or why
 * the data is not whole (it runs to the end, holds a restart marker, or is empty).
 */
function entropyData(bytes: Buffer, at: number): number | string {
  const start = at;
  for (;;) {
    const ff = bytes.indexOf(0xff, at);
    if (ff < 0 || ff + 1 >= bytes.length) return 'scan data runs to the end of the file';
    const next = bytes[ff + 1]!;
    if (next === 0x00) {
      at = ff + 2; // a stuffed 0xFF data byte
    } else if (next === 0xff) {
      at = ff + 1; // fill byte before a marker
    } else if (next >= 0xd0 && next <= 0xd7) {
      return 'a restart marker (left to the decode)';
    } else {
      return ff === start ? 'empty scan' : ff;
    }
  }
}
