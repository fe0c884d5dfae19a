/**
 * `decode.validate: structure` (issue 15): the JPEG structure walk calls whole JPEGs whole (baseline,
 * progressive, grey, with APP segments and trailers), calls anything cut or damaged in its markers not
 * whole, and, the property the decode stage relies on, the stage in structure mode accepts and refuses
 * exactly what it does when it decodes every JPEG, with the same codes, on damaged web-size JPEGs (a
 * smaller version of bench/jpeg-check-equivalence.ts: 1,200 variants, 0 mismatches).
 */
import sharp from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import { decodeImage } from '../../src/decode/decode-stage.js';
import { jpegStructure } from '../../src/decode/jpeg-structure.js';
import { makeImage, makeOrientedJpeg } from '../fixtures/make-webdataset.js';

const LIMIT = 89_478_485;
const SOS = Buffer.from([0xff, 0xda]);

let baseline: Buffer;
let progressive: Buffer;

beforeAll(async () => {
  baseline = await makeImage(640, 480, 'jpeg', 9);
  progressive = await sharp(baseline).jpeg({ quality: 88, progressive: true }).toBuffer();
});

/** `bytes` with `insert` put in at `at`. */
function splice(bytes: Buffer, at: number, insert: number[]): Buffer {
  return Buffer.concat([bytes.subarray(0, at), Buffer.from(insert), bytes.subarray(at)]);
}

describe('jpegStructure', () => {
  it('calls whole JPEGs whole: baseline, progressive, grey, 4:4:4, EXIF and ICC segments, bytes after the end', async () => {
    const grey = await sharp(baseline).greyscale().jpeg().toBuffer();
    const full = await sharp(baseline).jpeg({ chromaSubsampling: '4:4:4', optimiseCoding: true }).toBuffer();
    const withMeta = await sharp(baseline).withIccProfile('p3').withMetadata({ orientation: 6 }).jpeg().toBuffer();
    const trailer = Buffer.concat([baseline, Buffer.from('camera trailer data')]);
    for (const [name, jpeg] of Object.entries({ baseline, progressive, grey, full, withMeta, trailer, small: await makeOrientedJpeg(9, 7, 3) })) {
      expect(jpegStructure(jpeg), name).toMatchObject({ whole: true });
    }
  });

  it('the facts of a whole JPEG from the walk (size, EXIF orientation 1-8) are those sharp reads', async () => {
    const oriented = await Promise.all([1, 2, 3, 4, 5, 6, 7, 8].map((o) => makeOrientedJpeg(40, 24, o)));
    // The orientation tag as a LONG: not read plainly, so sharp is asked (same facts either way).
    const long = Buffer.from(oriented[5]!);
    const tag = long.indexOf(Buffer.from([0x01, 0x12, 0x00, 0x03])) >= 0 ? long.indexOf(Buffer.from([0x01, 0x12, 0x00, 0x03])) : long.indexOf(Buffer.from([0x12, 0x01, 0x03, 0x00]));
    expect(tag).toBeGreaterThan(0);
    long[tag + (long[tag] === 0x01 ? 3 : 2)] = 4;
    expect(jpegStructure(long)).toMatchObject({ whole: true, orientation: null });
    for (const [i, jpeg] of [...oriented, long, baseline, progressive].entries()) {
      const walked = await decodeImage(jpeg, LIMIT, undefined, { validate: 'structure' });
      const decoded = await decodeImage(jpeg, LIMIT, undefined, { validate: 'decode' });
      expect(walked, `image ${i}`).toEqual(decoded);
      if (i < 8) expect(jpegStructure(jpeg), `orientation ${i + 1}`).toMatchObject({ whole: true, width: 40, height: 24, orientation: i + 1 });
    }
    // The pixel limit holds on the walk's size too.
    const tooBig = await decodeImage(baseline, 640 * 480 - 1, undefined, { validate: 'structure' });
    expect(tooBig.ok ? 'ok' : tooBig.code).toBe('image_too_large');
  });

  it('a JPEG cut anywhere is not whole', () => {
    for (const jpeg of [baseline, progressive]) {
      const cuts = [2, 20, 200, 600, ...[0.1, 0.3, 0.5, 0.7, 0.9, 0.99].map((f) => Math.floor(jpeg.length * f)), jpeg.length - 2, jpeg.length - 1];
      expect(cuts).toHaveLength(12);
      for (const cut of cuts) expect(jpegStructure(jpeg.subarray(0, cut)).whole, `cut at ${cut} of ${jpeg.length}`).toBe(false);
    }
  });

  it('markers in the wrong place, bad tables and processes it does not walk are not whole (left to the decode)', () => {
    const scan = baseline.indexOf(SOS);
    const inScan = scan + 400;
    const dht = baseline.indexOf(Buffer.from([0xff, 0xc4]));
    const overfull = Buffer.from(baseline);
    overfull[dht + 5] = 3; // three 1-bit codes: more than 1 bit can hold
    const sof = baseline.indexOf(Buffer.from([0xff, 0xc0]));
    const arithmetic = Buffer.from(baseline);
    arithmetic[sof + 1] = 0xc9;
    const noEnd = Buffer.from(baseline);
    noEnd[noEnd.length - 1] = 0x00;
    const cases: Record<string, Buffer> = {
      'a frame marker inside scan data': splice(baseline, inScan, [0xff, 0xc0]),
      'a second start-of-image': splice(baseline, 2, [0xff, 0xd8]),
      'a restart interval': splice(baseline, 2, [0xff, 0xdd, 0x00, 0x04, 0x00, 0x10]),
      'a restart marker in scan data': splice(baseline, inScan, [0xff, 0xd0]),
      'an overfull Huffman table': overfull,
      'an arithmetic-coded frame': arithmetic,
      'no end-of-image marker': noEnd,
      'not a JPEG': Buffer.from('GIF89a not a jpeg at all'),
    };
    for (const [name, bytes] of Object.entries(cases)) expect(jpegStructure(bytes).whole, name).toBe(false);
  });

  it('an end-of-image marker inside scan data ends the image there, for the walk as for libjpeg (the rest is a trailer)', async () => {
    const early = splice(baseline, baseline.indexOf(SOS) + 400, [0xff, 0xd9]);
    expect(jpegStructure(early)).toMatchObject({ whole: true });
    // libjpeg decodes what came before it and fills the rest: the full decode accepts it too.
    expect((await decodeImage(early, LIMIT, undefined, { validate: 'decode' })).ok).toBe(true);
  });
});

describe('decode.validate: structure against decode', () => {
  it('damaged web-size JPEGs: the same verdicts and codes as decoding every JPEG', async () => {
    let state = 11;
    const next = () => {
      state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
      return state / 2 ** 32;
    };
    let variants = 0;
    let refused = 0;
    let walked = 0;
    for (const jpeg of [baseline, progressive]) {
      for (let k = 0; k < 120; k++) {
        const b = Buffer.from(jpeg);
        const at = Math.floor(next() * b.length);
        if (k % 5 === 0) b[at] = b[at]! ^ (1 << Math.floor(next() * 8));
        else if (k % 5 === 1) for (let i = 0; i < 8 && at + i < b.length; i++) b[at + i] = Math.floor(next() * 256);
        else if (k % 5 === 2) {
          b[at] = 0xff;
          if (at + 1 < b.length) b[at + 1] = 0xc0 + Math.floor(next() * 64);
        } else if (k % 5 === 3) b.fill(0xff, at, Math.min(b.length, at + 3));
        const bytes = k % 5 === 4 ? jpeg.subarray(0, at) : b;
        const decoded = await decodeImage(bytes, LIMIT, undefined, { validate: 'decode' });
        const structure = await decodeImage(bytes, LIMIT, undefined, { validate: 'structure' });
        variants++;
        if (!decoded.ok) refused++;
        if (jpegStructure(bytes).whole) walked++;
        const verdict = (r: typeof decoded) => (r.ok ? 'ok' : r.code);
        expect(verdict(structure), `variant ${k}, byte ${at}: ${JSON.stringify(structure)}`).toBe(verdict(decoded));
      }
    }
    expect(variants).toBe(240);
    // The sample means something: many refusals, and many variants the walk accepted without a decode.
    expect(refused).toBeGreaterThan(40);
    expect(walked).toBeGreaterThan(40);
  });
});

describe('jpegStructure on sequential scans', () => {
  it('a sequential JPEG whose only scan covers part of its frame is left to the decode', () => {
    // Rewrite the frame to claim a fourth component no scan covers (length + 3, count + 1).
    const sof = baseline.indexOf(Buffer.from([0xff, 0xc0]));
    const length = baseline.readUInt16BE(sof + 2);
    const count = baseline[sof + 9]!;
    const frame = Buffer.from(baseline.subarray(sof, sof + 2 + length));
    frame.writeUInt16BE(length + 3, 2);
    frame[9] = count + 1;
    const widened = Buffer.concat([baseline.subarray(0, sof), frame, Buffer.from([9, 0x11, 0]), baseline.subarray(sof + 2 + length)]);
    expect(jpegStructure(widened)).toEqual({ whole: false, why: 'end-of-image before every component was scanned' });
  });
});
