/**
 * Does the decode stage's JPEG check (1/8 shrink-on-load decode) refuse exactly what a full decode
 * refuses? Damages 40 copies each of 20 web-like JPEGs and 10 progressive re-encodings of them (a bit
 * flip, 8 random bytes, a stray marker, a run of 0xFF at a random offset) and checks each copy four
 * ways, all with the stage's end-marker check: full decode, shrink decode, header only, and the
 * structure walk (`decode.validate: structure`: header read, then `jpegStructure`; what it does not call
 * whole is decoded). `structureMismatches` counts the variants where that walk's verdict differs from
 * the full decode's; `missed` lists the first few.
 * Run after `npm run build`: `node dist/bench/jpeg-check-equivalence.js` (prints one JSON line;
 * the figures in BENCHMARKS.md, "Ingest at web size", come from it).
 */
import sharp from 'sharp';
import { webLikeJpeg } from './web-images.js';
import { jpegStructure } from '../src/decode/jpeg-structure.js';

const JPEG_SOS = Buffer.from([0xff, 0xda]);
const JPEG_EOI = Buffer.from([0xff, 0xd9]);
const endIntact = (b: Buffer) => {
  const lastScan = b.lastIndexOf(JPEG_SOS);
  return !(lastScan >= 0 && b.lastIndexOf(JPEG_EOI) < lastScan);
};
const accepts = (work: Promise<unknown>) =>
  work.then(
    () => true,
    () => false,
  );
const full = (b: Buffer) => accepts(sharp(b, { failOn: 'truncated', sequentialRead: true }).raw().toBuffer());
const shrink = (b: Buffer) =>
  accepts(
    sharp(b)
      .metadata()
      .then((m) =>
        sharp(b, { failOn: 'truncated', sequentialRead: true })
          .resize(Math.ceil(m.width / 8), Math.ceil(m.height / 8), { fit: 'fill', kernel: 'nearest' })
          .raw()
          .toBuffer(),
      ),
  );
const header = (b: Buffer) => accepts(sharp(b).metadata());
// `decode.validate: structure`: header read, then the structure check; what it does not call whole is decoded.
const structure = async (b: Buffer) => (await header(b)) && (jpegStructure(b).whole || (await full(b)));

let state = 5;
const next = () => {
  state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
  return state / 2 ** 32;
};

const baseline = await Promise.all(Array.from({ length: 20 }, (_, i) => webLikeJpeg(i, 7)));
const progressive = await Promise.all(baseline.slice(0, 10).map((b) => sharp(b).jpeg({ quality: 88, progressive: true }).toBuffer()));
const counts = { variants: 0, fullRefused: 0, shrinkMismatches: 0, headerOnlyMismatches: 0, structureMismatches: 0, structureWholeIntact: 0 };
const missed: string[] = [];
for (const image of [...baseline, ...progressive]) if (jpegStructure(image).whole) counts.structureWholeIntact++;
for (const image of [...baseline, ...progressive]) {
  for (let k = 0; k < 40; k++) {
    const b = Buffer.from(image);
    const at = Math.floor(next() * b.length);
    if (k % 4 === 0) b[at] = b[at]! ^ (1 << Math.floor(next() * 8));
    else if (k % 4 === 1) for (let i = 0; i < 8 && at + i < b.length; i++) b[at + i] = Math.floor(next() * 256);
    else if (k % 4 === 2) {
      b[at] = 0xff;
      if (at + 1 < b.length) b[at + 1] = 0xc0 + Math.floor(next() * 64);
    } else b.fill(0xff, at, Math.min(b.length, at + 3));
    const intact = endIntact(b);
    const byFull = (await full(b)) && intact;
    counts.variants++;
    if (!byFull) counts.fullRefused++;
    if (((await shrink(b)) && intact) !== byFull) counts.shrinkMismatches++;
    if (((await header(b)) && intact) !== byFull) counts.headerOnlyMismatches++;
    if (((await structure(b)) && intact) !== byFull) {
      counts.structureMismatches++;
      if (missed.length < 10) missed.push(`k=${k} at=${at}/${b.length} progressive=${progressive.some((p) => p === image)}`);
    }
  }
}
process.stdout.write(`${JSON.stringify({ ...counts, missed })}\n`);
